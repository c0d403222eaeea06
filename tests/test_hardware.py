"""What ``auto`` precision and compile become, from the machine's own flags."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from training_helpers import SYNTHETIC, check_specialist, run_training
from typer.testing import CliRunner

from eosfm_cli import hardware
from eosfm_cli.cli import app
from eosfm_cli.hardware import (
    COMPILE_MIN_STEPS,
    ENSEMBLE_COMPILE_MIN_SAMPLES,
    resolve_channels_last,
    resolve_compile,
    resolve_ensemble_compile,
    resolve_ensemble_precision,
    resolve_precision,
)
from eosfm_cli.profiles import load_profile

CPUINFO = """processor\t: 0
vendor_id\t: GenuineIntel
model name\t: Example CPU @ 2.0GHz
flags\t\t: fpu sse avx2 avx512f {extra}

processor\t: 1
model name\t: Example CPU @ 2.0GHz
flags\t\t: fpu sse avx2 avx512f {extra}
"""


def _flags(monkeypatch: pytest.MonkeyPatch, *flags: str) -> None:
    monkeypatch.setattr(hardware, "cpu_flags", lambda: frozenset(flags))


def test_cpuinfo_is_parsed(tmp_path: Path) -> None:
    path = tmp_path / "cpuinfo"
    path.write_text(CPUINFO.format(extra="amx_tile amx_bf16"))
    model, flags = hardware._cpuinfo(path)
    assert model == "Example CPU @ 2.0GHz"
    assert {"avx2", "avx512f", "amx_tile", "amx_bf16"} <= flags
    assert hardware._cpuinfo(tmp_path / "missing") == ("", frozenset())


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        (("avx2", "avx512f", "avx512_bf16"), "bf16-mixed"),
        (("avx2", "amx_tile", "amx_bf16"), "bf16-mixed"),
        (("avx2", "avx512f"), "32-true"),
        ((), "32-true"),
    ],
)
def test_auto_precision_follows_the_cpu_flags(
    monkeypatch: pytest.MonkeyPatch, flags: tuple[str, ...], expected: str
) -> None:
    _flags(monkeypatch, *flags)
    r = resolve_precision("auto", "cpu")
    assert r.value == expected
    assert r.why.startswith("the CPU has none of") == (expected == "32-true" and bool(flags))
    ens = resolve_ensemble_precision("auto", "cpu")
    assert ens.value == ("bf16" if expected == "bf16-mixed" else "fp32")
    # A value set in the profile is kept whatever the machine.
    assert resolve_precision("16-mixed", "cpu").value == "16-mixed"
    assert resolve_ensemble_precision("fp32", "cpu").value == "fp32"


def test_unreadable_flags_never_assume_bf16(monkeypatch: pytest.MonkeyPatch) -> None:
    _flags(monkeypatch)
    assert "cannot be read" in resolve_precision("auto", "cpu").why


def test_auto_compile_pays_only_for_long_runs() -> None:
    bf16, fp32 = COMPILE_MIN_STEPS["bf16"], COMPILE_MIN_STEPS["fp32"]
    assert resolve_compile("auto", bf16, "bf16-mixed").value is True
    assert resolve_compile("auto", bf16 - 1, "bf16-mixed").value is False
    assert resolve_compile("auto", bf16, "32-true").value is (bf16 >= fp32)
    assert resolve_compile("auto", fp32, "32-true").value is True
    assert resolve_compile(True, 1).value is True
    assert resolve_compile(False, 10**9).value is False
    n = ENSEMBLE_COMPILE_MIN_SAMPLES
    assert resolve_ensemble_compile("auto", n).value is True
    assert resolve_ensemble_compile("auto", n - 1).value is False
    assert resolve_ensemble_compile("auto", None).value is False


def test_machine_describes_itself() -> None:
    m = hardware.machine()
    assert m.cores >= 1 and m.threads >= 1 and m.torch == torch.__version__
    assert set(m.flags) <= set(hardware.RELEVANT_FLAGS)
    d = m.as_dict()
    assert d["cpu_model"] == m.cpu_model and isinstance(d["flags"], list)
    assert m.cpu_model in m.describe()


def test_the_default_profile_is_auto() -> None:
    profile = load_profile(Path(__file__).resolve().parents[1] / "profiles" / "default.yaml")
    assert profile.trainer.precision == "auto" and profile.trainer.compile == "auto"
    assert profile.ensemble.precision == "auto" and profile.ensemble.compile == "auto"


def test_dry_run_says_what_auto_became(monkeypatch: pytest.MonkeyPatch) -> None:
    _flags(monkeypatch, "avx2")
    res = CliRunner().invoke(app, ["train-specialist", "--dry-run"])
    assert res.exit_code == 0, res.output
    assert "trainer.precision: auto -> 32-true (the CPU has none of" in res.output
    assert "ensemble.precision: auto -> fp32" in res.output
    assert f"{COMPILE_MIN_STEPS['fp32']} with fp32" in res.output
    assert "trainer.channels_last: auto -> False" in res.output


def test_auto_channels_last_follows_the_precision() -> None:
    assert resolve_channels_last("auto", "32-true", "cpu").value is False
    assert resolve_channels_last(True, "32-true", "cpu").value is True
    assert resolve_channels_last("auto", "bf16-mixed", "cpu").value is False
    assert resolve_channels_last(False, "32-true", "cpu") == hardware.Resolved(
        False, "set in the profile"
    )


def test_channels_last_training_matches_contiguous(tmp_path: Path) -> None:
    """NHWC changes strides only: the same seed trains to the same weights."""
    weights = {}
    for nhwc in (True, False):
        root = tmp_path / str(nhwc)
        root.mkdir()
        _, res = run_training(
            root,
            "synthetic_s2",
            SYNTHETIC,
            ["trainer.precision=32-true", "trainer.compile=false", f"trainer.channels_last={nhwc}"],
        )
        assert res is not None
        folder = root / "ws" / "specialists" / "synthetic_s2"
        check_specialist(folder, "classification")
        ckpt = torch.load(folder / "best.ckpt", map_location="cpu", weights_only=True)
        weights[nhwc] = ckpt["state_dict"]
    assert weights[True].keys() == weights[False].keys()
    for key, value in weights[True].items():
        torch.testing.assert_close(value, weights[False][key], rtol=1e-3, atol=1e-4)


def _failing_backend(gm: Any, example_inputs: Any) -> Any:
    raise RuntimeError("this backend cannot compile")


def test_a_failed_compile_trains_eager_with_one_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import eosfm_cli.training.specialist_fit as fit

    monkeypatch.setattr(fit, "_compiled", lambda m: torch.compile(m, backend=_failing_backend))
    torch._dynamo.reset()
    _, res = run_training(
        tmp_path, "synthetic_s2", SYNTHETIC, ["trainer.compile=true", "trainer.precision=32-true"]
    )
    assert res is not None
    check_specialist(tmp_path / "ws" / "specialists" / "synthetic_s2", "classification")
    out = capsys.readouterr()
    text = out.out + out.err
    assert text.count("torch.compile failed") == 1, text
    assert "training runs eager instead" in text
