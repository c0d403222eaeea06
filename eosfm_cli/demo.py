"""``make demo``: the whole pipeline on the built-in default, with a short summary per stage.

Run as ``python -m eosfm_cli.demo [--synthetic] [--workspace DIR] [--data DIR]``. Stages that
have not landed yet are reported as not yet available, and the demo stops there with a
non-zero exit code.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from eosfm_cli.console import console
from eosfm_cli.errors import EosfmError, NotBuiltError

REPO = Path(__file__).resolve().parents[1]


def _step(title: str) -> float:
    console.rule(f"[bold cyan]{title}")
    return time.perf_counter()


def main(argv: list[str] | None = None) -> int:
    """Run the demo; returns the exit code."""
    parser = argparse.ArgumentParser(prog="eosfm-demo", description=__doc__)
    parser.add_argument(
        "--synthetic",
        action="store_true",
        help="use the built-in synthetic data (the default for now)",
    )
    parser.add_argument("--workspace", default="workspace")
    parser.add_argument("--data", default="data/synthetic")
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--head-epochs", type=int, default=20)
    args = parser.parse_args(argv)

    from eosfm_cli.stages.common import resolve
    from eosfm_cli.stages.datasets import generate
    from eosfm_cli.stages.train_specialist import train_specialist

    profile = REPO / "profiles" / "default.yaml"
    data = Path(args.data)
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
    except NotBuiltError as err:
        console.print(f"[yellow]not yet available:[/yellow] {err.one_line()}")
        console.print(f"demo stopped after {time.perf_counter() - started:.0f} s")
        return 3
    except EosfmError as err:
        console.print(f"[bold red]error:[/bold red] {err.one_line()}")
        return 2
    console.print(f"[green]demo finished[/green] in {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
