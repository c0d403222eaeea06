"""A distilled student against the ensemble it replaces: frozen-inference speed.

``distill_speed_vs_ensemble`` (target >= 4): samples/s of one student (the default student
backbone, taking all 13 S2 bands, as ``eosfm distill`` writes it: a one-specialist ensemble
file) over the 6-specialist bench ensemble, both built as :class:`~eosfm_cli.models.EosFM`
from files, frozen, under ``torch.no_grad``, same precision, eager, same batches, interleaved
rounds, median of per-round ratios. Measured in fp32 and in bf16 (the bf16 figure only where
this CPU runs bf16 natively).

The student's weights are random: speed does not depend on them. The feature cosine and the
downstream gap of a trained student (issue 20) are not measured here yet.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import timm
import torch

from bench.bench_ensemble import BACKBONE, INPUT_BANDS, _batches, _specialists
from bench.common import QUICK, interleaved, round_ratios
from eosfm_cli.models import EosFM
from eosfm_cli.models.native_file import save_ensemble
from eosfm_cli.models.spec import SpecialistSpec

MEASURES = ["eosfm_cli/models", "eosfm_cli/tasks/distill.py", "eosfm_cli/distillation.py"]
ROUNDS = 2 if QUICK else 15
BATCHES = 1 if QUICK else 3


def _files(folder: Path) -> tuple[Path, Path]:
    specs, states = _specialists()
    teacher = save_ensemble(folder / "teacher.safetensors", specs, states)
    n = len(INPUT_BANDS)
    torch.manual_seed(0)
    net = timm.create_model(BACKBONE, pretrained=False, features_only=True, in_chans=n)
    spec = SpecialistSpec(
        "student", BACKBONE, INPUT_BANDS, [1800.0] * n, [700.0] * n, task="distillation"
    )
    student = save_ensemble(folder / "student.safetensors", [spec], [net.state_dict()])
    return teacher, student


def run() -> dict[str, dict[str, Any]]:
    """Measure the student's frozen-inference speed-up over the ensemble."""
    from eosfm_cli.hardware import bf16_native, machine

    native, why = bf16_native("cpu")
    batches = _batches(BATCHES, 16 if QUICK else 64)
    out: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        teacher_file, student_file = _files(Path(tmp))
        for precision in ("fp32", "bf16") if native else ("fp32",):
            teacher = EosFM.from_file(teacher_file, INPUT_BANDS, precision=precision).eval()
            student = EosFM.from_file(student_file, INPUT_BANDS, precision=precision).eval()

            def side(model: EosFM) -> Any:
                def call() -> None:
                    with torch.no_grad():
                        for x in batches:
                            model(x)

                return call

            times = interleaved({"teacher": side(teacher), "student": side(student)}, ROUNDS)
            ratio, spread = round_ratios(times["teacher"], times["student"])
            n = sum(x.shape[0] for x in batches)
            teacher_sps = n / sorted(times["teacher"])[len(times["teacher"]) // 2]
            name = "distill_speed_vs_ensemble" + ("" if precision == "fp32" else "_bf16")
            out[name] = {
                "value": round(ratio, 2),
                "std": round(spread, 2),
                "unit": "x",
                "baseline": f"the {len(teacher.active_names)}-specialist ensemble, frozen, "
                f"{precision} eager ({teacher_sps:.1f} samples/s, median round)",
                "target": ">= 4",
                "met": ratio >= 4,
                "note": f"one {BACKBONE} student on {len(INPUT_BANDS)} bands, batch "
                f"{batches[0].shape[0]} of {batches[0].shape[2]}x{batches[0].shape[3]}, "
                f"{ROUNDS} interleaved rounds, median of per-round ratios; "
                f"bf16 {'native' if native else 'not native'} ({why}); {machine().describe()}",
            }
    return out
