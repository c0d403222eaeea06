"""Stage `eosfm select-encoders` (arrives with issue 6)."""

from __future__ import annotations

from pathlib import Path

from eosfm_cli.stages.common import StageContext, not_built, print_dry_run


def select_encoders(
    ctx: StageContext,
    k: int | None = None,
    ensemble: Path | None = None,
    from_run: str | None = None,
) -> None:
    """Run the `select-encoders` stage.

    Args:
        ctx: the resolved profile and workspace.
        k: command-line option `--k`.
        ensemble: command-line option `--ensemble`.
        from_run: command-line option `--from-run`.
    """
    if ctx.dry_run:
        print_dry_run(
            ctx,
            "select-encoders",
            [f"ensembles/{ctx.profile.ensemble.name}.safetensors"],
            ["selection/<run>.json", "ensembles/<name>-k<K>.safetensors"],
        )
        return
    not_built("select-encoders", 6)
