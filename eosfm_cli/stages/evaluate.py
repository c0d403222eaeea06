"""Stage `eosfm evaluate` (arrives with issue 6)."""

from __future__ import annotations

from eosfm_cli.stages.common import StageContext, not_built, print_dry_run


def evaluate(ctx: StageContext, runs: list[str] | None = None) -> None:
    """Run the `evaluate` stage.

    Args:
        ctx: the resolved profile and workspace.
        runs: command-line option `--runs`.
    """
    if ctx.dry_run:
        print_dry_run(
            ctx,
            "evaluate",
            ["heads/<run>/"],
            ["eval/<run>/metrics.json", "eval/<run>/confusion.png"],
        )
        return
    not_built("evaluate", 6)
