"""Stage `eosfm fit-head`: train a light head on a downstream task over the frozen ensemble.

The EosFM encoder is built from the workspace ensemble (or ``--ensemble FILE``) for the
downstream dataset's bands, so band adaptation happens by name. With frozen specialists and the
cache enabled, features are computed once per sample and read back from ``cache/features/``
(see :mod:`eosfm_cli.head_features`); otherwise they stream, with one line saying why. With
``ensemble.max_encoders: K`` the head learns one gate per specialist (``downstream.gate``).

Outputs go to ``heads/<run>/``: ``head.safetensors``, ``head.json``, ``metrics.json`` (val and
test of the best epoch), and ``gates.json`` (gate scores per epoch).
"""

from __future__ import annotations

from pathlib import Path

from eosfm_cli.artifact_names import artifact_name
from eosfm_cli.context import StageContext, print_dry_run
from eosfm_cli.downstream import downstream_spec, ensemble_file
from eosfm_cli.head_training import HEAD_RUN_FILES, HeadResult, fit_head_run, print_head_result


def fit_head(
    ctx: StageContext,
    freeze: bool = True,
    ensemble: Path | None = None,
    dataset: str | None = None,
    run: str | None = None,
    k: int | None = None,
) -> HeadResult | None:
    """Run the `fit-head` stage.

    Args:
        ctx: the resolved profile and workspace.
        freeze: keep the specialists frozen (``--no-freeze`` fine-tunes them too).
        ensemble: the ensemble file (default: the workspace's).
        dataset: the downstream experiment (default: ``downstream.dataset``).
        run: the run name under ``heads/``.
        k: number of specialists to keep (default: ``ensemble.max_encoders``).

    Returns:
        The result, or ``None`` for a dry run (and on a DDP rank other than 0).
    """
    spec, root, bands = downstream_spec(ctx, dataset)
    k = k if k is not None else ctx.profile.ensemble.max_encoders
    run_name = artifact_name(run or (spec.name + (f"-k{k}" if k else "")), "--run")
    if ctx.dry_run:
        ens_s = str(ensemble or f"ensembles/{ctx.profile.ensemble.name}.safetensors")
        print_dry_run(
            ctx,
            "fit-head",
            [ens_s, f"{root} ({spec.name})"],
            [
                "cache/features/",
                *(f"heads/{run_name}/{f}" for f in HEAD_RUN_FILES),
                "manifest.json",
            ],
        )
        return None
    ens = ensemble_file(ctx, ensemble)
    result = fit_head_run(ctx, spec, root, bands, ens, run_name, freeze=freeze, k=k)
    if result is not None:
        print_head_result(result)
    return result
