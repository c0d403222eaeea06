"""Ensemble files: native safetensors, the reference .pth list, and refusing unsafe input."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import pytest
import timm
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from eosfm_cli.bands import BAND_SETS
from eosfm_cli.errors import ArtifactError
from eosfm_cli.models.ensemble_file import detect_format, load_any
from eosfm_cli.models.native_file import (
    FORMAT_NAME,
    load_ensemble,
    load_state_dicts,
    read_metadata,
    save_ensemble,
)
from eosfm_cli.models.reference_file import load_reference, save_reference
from eosfm_cli.models.spec import SpecialistSpec


def make_spec(name: str, bands: list[str], backbone: str = "convnextv2_atto") -> SpecialistSpec:
    n = len(bands)
    return SpecialistSpec(
        name=name,
        backbone=backbone,
        bands=bands,
        mean=[1000.0 + i for i in range(n)],
        std=[400.0 + i for i in range(n)],
        dataset=name,
        task="classification",
        classes=["a", "b"],
        metrics={"val/acc": 0.5},
        versions={"timm": timm.__version__},
    )


def weights(spec: SpecialistSpec, seed: int) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    model = timm.create_model(
        spec.backbone, pretrained=False, features_only=True, in_chans=spec.in_chans
    )
    return {k: v.clone() for k, v in model.state_dict().items()}


@pytest.fixture(scope="module")
def ensemble() -> tuple[list[SpecialistSpec], list[dict[str, torch.Tensor]]]:
    specs = [
        make_spec("eurosat_rgb", ["B04", "B03", "B02"]),
        make_spec("ben_s1", ["VV", "VH", "VH"]),
        make_spec("eurosat_s2", list(BAND_SETS["S2_ALL"])),
    ]
    return specs, [weights(s, i) for i, s in enumerate(specs)]


Ensemble = tuple[list[SpecialistSpec], list[dict[str, torch.Tensor]]]


def assert_same_state(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


# ----------------------------------------------------------------------------------- native


def test_native_round_trip(tmp_path: Path, ensemble: Ensemble) -> None:
    specs, states = ensemble
    path = save_ensemble(tmp_path / "e.safetensors", specs, states)
    assert detect_format(path) == "native"
    loaded = load_ensemble(path)
    assert [s for s, _ in loaded] == specs
    for (_, got), want in zip(loaded, states, strict=True):
        assert_same_state(got, want)
    assert read_metadata(path) == specs
    assert not list(tmp_path.glob(".*tmp"))  # the temporary file was renamed away


def test_native_layout_and_metadata(tmp_path: Path, ensemble: Ensemble) -> None:
    specs, states = ensemble
    path = save_ensemble(tmp_path / "e.safetensors", specs, states)
    with safe_open(str(path), framework="pt") as handle:
        meta = handle.metadata()
        keys = list(handle.keys())
    assert meta["format"] == FORMAT_NAME
    assert meta["version"] == "1"
    assert [d["name"] for d in json.loads(meta["specialists"])] == [s.name for s in specs]
    assert "specialists.0.stem_0.weight" in keys
    assert all(k.startswith(("specialists.0.", "specialists.1.", "specialists.2.")) for k in keys)


def test_header_length_starting_with_0x80_is_still_native(tmp_path: Path) -> None:
    # A header of 128 mod 256 bytes starts the file with 0x80, pickle's PROTO opcode.
    state = {"w": torch.arange(4.0)}
    for extra in range(300):
        spec = make_spec("x" * (1 + extra), ["B04", "B03", "B02"])
        path = save_ensemble(tmp_path / "e.safetensors", [spec], [state])
        if path.read_bytes()[0] == 0x80:
            break
    else:  # pragma: no cover - the name length sweeps every header length mod 256
        pytest.fail("could not produce a 0x80 header length")
    assert detect_format(path) == "native"
    entries, _ = load_any(path)
    assert entries[0][0] == spec


def test_load_state_dicts_reads_only_what_is_asked(tmp_path: Path, ensemble: Ensemble) -> None:
    specs, states = ensemble
    path = save_ensemble(tmp_path / "e.safetensors", specs, states)
    got = load_state_dicts(path, [2])
    assert list(got) == [2]
    assert_same_state(got[2], states[2])
    with pytest.raises(ArtifactError, match="index 5"):
        load_state_dicts(path, [5])


def test_save_handles_views_and_tied_tensors(tmp_path: Path) -> None:
    spec = make_spec("tied", ["B04", "B03", "B02"])
    base = torch.arange(12.0)
    state = {"a": base, "b": base, "c": base.view(3, 4).t()}
    path = save_ensemble(tmp_path / "t.safetensors", [spec], [state])
    ((_, got),) = load_ensemble(path)
    assert torch.equal(got["a"], base) and torch.equal(got["b"], base)
    assert torch.equal(got["c"], base.view(3, 4).t())


def test_save_rejects_bad_input(tmp_path: Path, ensemble: Ensemble) -> None:
    specs, states = ensemble
    with pytest.raises(ArtifactError, match="state dicts"):
        save_ensemble(tmp_path / "x.safetensors", specs, states[:1])
    with pytest.raises(ArtifactError, match="twice"):
        save_ensemble(tmp_path / "x.safetensors", [specs[0], specs[0]], [states[0], states[0]])
    with pytest.raises(ArtifactError, match="at least one"):
        save_ensemble(tmp_path / "x.safetensors", [], [])
    assert not (tmp_path / "x.safetensors").exists()


# -------------------------------------------------------------------------------- reference


def test_reference_written_by_us_loads_with_plain_torch_load(
    tmp_path: Path, ensemble: Ensemble
) -> None:
    specs, states = ensemble
    path = tmp_path / "e.pth"
    notes = save_reference(path, specs, states)
    assert len(notes) == 3 and "identity" in notes[0]
    raw = torch.load(path, map_location="cpu", weights_only=True)
    assert isinstance(raw, list) and len(raw) == 3
    for (in_chans, state, config), spec, want in zip(raw, specs, states, strict=True):
        assert in_chans == spec.in_chans
        assert config["backbone"] == "timm_convnextv2_atto"
        assert config["encoder_name"] == spec.name
        assert_same_state(state, want)
    # Read back: names and bands survive, statistics become the identity.
    entries, assumptions = load_reference(path)
    assert [s.name for s, _ in entries] == [s.name for s in specs]
    assert [s.bands for s, _ in entries] == [s.bands for s in specs]
    assert all(s.mean == [0.0] * s.in_chans and s.std == [1.0] * s.in_chans for s, _ in entries)
    assert all(s.source == "reference" for s, _ in entries)
    assert len(assumptions) == 1 and "identity" in assumptions[0]


def reference_file(path: Path, entries: list[tuple[int, dict[str, torch.Tensor], dict]]) -> Path:
    """Write a file the way the reference code does: tuples, no bands, maybe no name."""
    torch.save(entries, path)
    return path


def test_reference_band_inference_records_assumptions(tmp_path: Path, ensemble: Ensemble) -> None:
    _specs, states = ensemble
    path = reference_file(
        tmp_path / "ref.pth",
        [
            (3, states[0], {"backbone": "timm_convnextv2_atto"}),
            (3, states[1], {"backbone": "timm_convnextv2_atto", "encoder_name": "ben_s1"}),
            (13, states[2], {"backbone": "timm_convnextv2_atto", "encoder_name": "s2"}),
        ],
    )
    entries, assumptions = load_any(path)
    got = [s for s, _ in entries]
    assert [s.name for s in got] == ["specialist_0", "ben_s1", "s2"]
    assert got[0].bands == ["B04", "B03", "B02"]
    assert got[1].bands == ["B04", "B03", "B02"]  # wrong for SAR: hence the stated assumption
    assert got[2].bands == list(BAND_SETS["S2_ALL"])
    assert sum("assumed B04,B03,B02" in a for a in assumptions) == 2
    assert any("S2_ALL" in a and "--bands" in a for a in assumptions)
    assert any("assumed" in note for note in got[1].assumed)
    assert_same_state(entries[2][1], states[2])

    # The user's bands win, and set names are accepted.
    entries, assumptions = load_any(path, bands=[None, "S1_COMPOSITE", None])
    assert entries[1][0].bands == ["VV", "VH", "VH"]
    assert not any("ben_s1" in a for a in assumptions)


def test_reference_two_channel_infers_s1(tmp_path: Path) -> None:
    spec = make_spec("s1", ["VV", "VH"])
    path = reference_file(
        tmp_path / "s1.pth", [(2, weights(spec, 0), {"backbone": "timm_convnextv2_atto"})]
    )
    entries, _ = load_reference(path)
    assert entries[0][0].bands == ["VV", "VH"]


def test_reference_other_counts_need_bands(tmp_path: Path) -> None:
    spec = make_spec("rgbn", ["R", "G", "B", "NIR"])
    state = weights(spec, 0)
    path = reference_file(tmp_path / "r.pth", [(4, state, {"backbone": "timm_convnextv2_atto"})])
    with pytest.raises(ArtifactError, match="`bands=`"):
        load_reference(path)
    entries, _assumptions = load_reference(path, bands=[["R", "G", "B", "NIR"]])
    assert entries[0][0].bands == ["R", "G", "B", "NIR"]
    with pytest.raises(ArtifactError, match="in_chans=4"):
        load_reference(path, bands=[["R", "G", "B"]])
    with pytest.raises(ArtifactError, match="2 band lists for 1"):
        load_reference(path, bands=[["R", "G", "B", "NIR"], ["R"]])
    with pytest.raises(ArtifactError, match="unknown band"):
        load_reference(path, bands=[["R", "G", "B", "NIRR"]])


def test_reference_structure_is_checked(tmp_path: Path, ensemble: Ensemble) -> None:
    _, states = ensemble
    cases = {
        "ckpt": {"state_dict": states[0], "epoch": 3},
        "not_list": {"a": 1},
        "empty": [],
        "pair": [(3, states[0])],
        "chans": [(0, states[0], {"backbone": "timm_convnextv2_atto"})],
        "no_backbone": [(3, states[0], {"encoder_name": "x"})],
        "state": [(3, {"a": 1}, {"backbone": "timm_convnextv2_atto"})],
    }
    for name, obj in cases.items():
        path = tmp_path / f"{name}.pth"
        torch.save(obj, path)
        with pytest.raises(ArtifactError) as info:
            load_any(path)
        if name == "ckpt":
            assert "export-ensemble" in str(info.value)


class _Payload:
    """Unpickling this runs a shell command that creates a marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("writer", ["torch_save", "plain_pickle", "inside_config"])
def test_malicious_pickle_is_refused_and_never_executed(
    tmp_path: Path, ensemble: Ensemble, writer: str
) -> None:
    _, states = ensemble
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    payload = _Payload(marker)
    if writer == "torch_save":
        torch.save([payload], path)
    elif writer == "plain_pickle":
        path.write_bytes(pickle.dumps([payload], protocol=2))
    else:
        torch.save([(3, states[0], {"backbone": "timm_convnextv2_atto", "x": payload})], path)
    assert not marker.exists()
    with pytest.raises(ArtifactError, match="refused"):
        load_any(path)
    with pytest.raises(ArtifactError, match="refused"):
        load_reference(path)
    assert not marker.exists()


# --------------------------------------------------------------------------- broken files


def test_missing_empty_and_foreign_files(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="no such file"):
        load_any(tmp_path / "absent.safetensors")
    with pytest.raises(ArtifactError, match="not a file"):
        load_any(tmp_path)
    empty = tmp_path / "empty.safetensors"
    empty.write_bytes(b"")
    with pytest.raises(ArtifactError, match="empty file"):
        load_any(empty)
    text = tmp_path / "notes.txt"
    text.write_text("hello, this is not an ensemble")
    with pytest.raises(ArtifactError, match="not an ensemble file"):
        load_any(text)
    with pytest.raises(ArtifactError, match="not a safetensors"):
        read_metadata(text)


def test_truncated_files(tmp_path: Path, ensemble: Ensemble) -> None:
    specs, states = ensemble
    native = save_ensemble(tmp_path / "e.safetensors", specs[:1], states[:1])
    data = native.read_bytes()
    for cut, name in ((len(data) // 2, "half"), (40, "header")):
        broken = tmp_path / f"{name}.safetensors"
        broken.write_bytes(data[:cut])
        with pytest.raises(ArtifactError, match="truncated"):
            load_any(broken)
    save_reference(tmp_path / "e.pth", specs[:1], states[:1])
    data = (tmp_path / "e.pth").read_bytes()
    broken = tmp_path / "half.pth"
    broken.write_bytes(data[: len(data) // 2])
    with pytest.raises(ArtifactError, match="truncated or corrupt"):
        load_any(broken)


def test_safetensors_that_is_not_an_ensemble(tmp_path: Path, ensemble: Ensemble) -> None:
    specs, _states = ensemble
    plain = tmp_path / "plain.safetensors"
    save_file({"w": torch.zeros(2)}, str(plain))
    with pytest.raises(ArtifactError, match="not an eosfm ensemble"):
        load_any(plain)

    meta = {"format": FORMAT_NAME, "version": "99", "specialists": "[]"}
    future = tmp_path / "future.safetensors"
    save_file({"specialists.0.w": torch.zeros(2)}, str(future), metadata=meta)
    with pytest.raises(ArtifactError, match="version '99'"):
        read_metadata(future)

    meta = {
        "format": FORMAT_NAME,
        "version": "1",
        "specialists": json.dumps([specs[0].to_dict()]),
    }
    stray = tmp_path / "stray.safetensors"
    save_file({"specialists.0.w": torch.zeros(2), "other.w": torch.zeros(1)}, str(stray), meta)
    with pytest.raises(ArtifactError, match="belongs to no listed specialist"):
        load_ensemble(stray)

    bad_json = tmp_path / "bad.safetensors"
    save_file({"specialists.0.w": torch.zeros(2)}, str(bad_json), {**meta, "specialists": "[{"})
    with pytest.raises(ArtifactError, match="not valid JSON"):
        read_metadata(bad_json)

    lacking = tmp_path / "lacking.safetensors"
    save_file({"specialists.0.w": torch.zeros(2)}, str(lacking), {**meta, "specialists": "[{}]"})
    with pytest.raises(ArtifactError, match="lacks"):
        read_metadata(lacking)


def test_bands_are_refused_for_native_files(tmp_path: Path, ensemble: Ensemble) -> None:
    specs, states = ensemble
    path = save_ensemble(tmp_path / "e.safetensors", specs[:1], states[:1])
    with pytest.raises(ArtifactError, match="reference files only"):
        load_any(path, bands=[["B04", "B03", "B02"]])


_WRITE_IN_A_FRESH_PROCESS = """
import sys, torch
sys.path.insert(0, sys.argv[2])
from test_ensemble_file import make_spec, weights
from eosfm_cli.models.native_file import save_ensemble
specs = [make_spec("rgb", ["B04", "B03", "B02"]), make_spec("s1", ["VV", "VH"])]
save_ensemble(sys.argv[1], specs, [weights(s, i) for i, s in enumerate(specs)])
"""


def test_the_same_ensemble_is_written_with_the_same_bytes(tmp_path: Path) -> None:
    # safetensors orders its header by a hash map that changes between processes; the
    # file's sha256 keys caches and head runs, so two writes must give the same bytes.
    import hashlib
    import subprocess
    import sys

    digests = set()
    for i in range(3):
        path = tmp_path / f"e{i}.safetensors"
        subprocess.run(
            [
                sys.executable,
                "-c",
                _WRITE_IN_A_FRESH_PROCESS,
                str(path),
                str(Path(__file__).parent),
            ],
            check=True,
            capture_output=True,
        )
        digests.add(hashlib.sha256(path.read_bytes()).hexdigest())
        assert read_metadata(path)[1].name == "s1"
        assert (
            load_state_dicts(path, [0])[0].keys()
            == weights(make_spec("rgb", ["B04", "B03", "B02"]), 0).keys()
        )
    assert len(digests) == 1
