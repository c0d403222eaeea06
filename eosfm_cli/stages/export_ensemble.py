"""Stage `eosfm export-ensemble` (arrives with issue 4)."""

from __future__ import annotations

from pathlib import Path

from eosfm_cli.stages.common import StageContext, not_built, print_dry_run


def export_ensemble(
    ctx: StageContext,
    only: str | None = None,
    encoders_folder: Path | None = None,
    fmt: str = "safetensors",
    output: Path | None = None,
    inspect: Path | None = None,
    input_bands: str | None = None,
    bands: list[str] | None = None,
) -> None:
    """Run the `export-ensemble` stage.

    Args:
        ctx: the resolved profile and workspace.
        only: command-line option `--only`.
        encoders_folder: command-line option `--encoders-folder`.
        fmt: command-line option `--fmt`.
        output: command-line option `--output`.
        inspect: command-line option `--inspect`.
        input_bands: command-line option `--input-bands`.
        bands: command-line option `--bands`.
    """
    if ctx.dry_run:
        print_dry_run(
            ctx,
            "export-ensemble",
            ["specialists/*/best.ckpt", "specialists/*/specialist.json"],
            [f"ensembles/{ctx.profile.ensemble.name}.{fmt}"],
        )
        return
    not_built("export-ensemble", 4)
