"""Stage `eosfm emissions-report` (arrives with issue 5)."""

from __future__ import annotations

from pathlib import Path

from eosfm_cli.stages.common import StageContext, not_built, print_dry_run


def emissions_report(
    ctx: StageContext, workspaces: list[Path] | None = None, fmt: str | None = None
) -> None:
    """Run the `emissions-report` stage.

    Args:
        ctx: the resolved profile and workspace.
        workspaces: command-line option `--workspaces`.
        fmt: command-line option `--fmt`.
    """
    if ctx.dry_run:
        print_dry_run(
            ctx,
            "emissions-report",
            ["emissions/*.csv"],
            ["reports/emissions.md", "reports/emissions.json", "reports/emissions.png"],
        )
        return
    not_built("emissions-report", 5)
