"""Stage `eosfm predict` (arrives with issue 6)."""

from __future__ import annotations

from pathlib import Path

from eosfm_cli.stages.common import StageContext, not_built, print_dry_run


def predict(
    ctx: StageContext, raster: Path, run: str | None = None, output: Path | None = None
) -> None:
    """Run the `predict` stage.

    Args:
        ctx: the resolved profile and workspace.
        raster: command-line option `--raster`.
        run: command-line option `--run`.
        output: command-line option `--output`.
    """
    if ctx.dry_run:
        print_dry_run(ctx, "predict", [str(raster), "heads/<run>/"], ["predictions/<name>.tif"])
        return
    not_built("predict", 6)
