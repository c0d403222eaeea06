"""Stage `eosfm fit-head` (arrives with issue 6)."""

from __future__ import annotations

from pathlib import Path

from eosfm_cli.stages.common import StageContext, not_built, print_dry_run


def fit_head(
    ctx: StageContext,
    freeze: bool = True,
    ensemble: Path | None = None,
    dataset: str | None = None,
    run: str | None = None,
) -> None:
    """Run the `fit-head` stage.

    Args:
        ctx: the resolved profile and workspace.
        freeze: command-line option `--freeze`.
        ensemble: command-line option `--ensemble`.
        dataset: command-line option `--dataset`.
        run: command-line option `--run`.
    """
    if ctx.dry_run:
        print_dry_run(
            ctx,
            "fit-head",
            [f"ensembles/{ctx.profile.ensemble.name}.safetensors"],
            ["cache/", "heads/<run>/"],
        )
        return
    not_built("fit-head", 6)
