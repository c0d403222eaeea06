"""Head runs in a workspace: finding one, loading it with its data, and where it runs.

Every stage that applies a fitted head (evaluate, predict, select-encoders, and those that
export or embed with it) looks runs up here, so ``--run`` means the same everywhere.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from eosfm_cli.console import info
from eosfm_cli.errors import ArtifactError, WorkspaceError

if TYPE_CHECKING:
    import torch

    from eosfm_cli.context import StageContext


def find_head_run(ctx: StageContext, run: str | None) -> Path:
    """The head run folder: ``--run`` (a name under ``heads/`` or a folder), else the newest.

    Raises:
        ArtifactError: when the named run does not exist.
        WorkspaceError: when the workspace holds no head run.
    """
    base = ctx.workspace.root / "heads"
    runs = head_run_names(ctx)
    if run is not None:
        if (Path(run) / "head.json").is_file():
            return Path(run)
        folder = ctx.workspace.path("heads", run)
        if (folder / "head.json").is_file():
            return folder
        close = difflib.get_close_matches(run, runs, n=1, cutoff=0.5)
        hint = f"did you mean {close[0]!r}?" if close else None
        raise ArtifactError(
            f"no head run {run!r}",
            where=str(base),
            hint=hint or (f"choose among {', '.join(runs)}" if runs else "run `eosfm fit-head`"),
        )
    if not runs:
        raise WorkspaceError(
            "no head run to predict with",
            where=str(base),
            hint="fit one with `eosfm fit-head`, or pass --run",
        )
    if len(runs) == 1:
        return base / runs[0]
    order = {name: i for i, name in enumerate(fitted_order(ctx))}
    newest = max(
        runs, key=lambda n: (order.get(n, -1), (base / n / "head.json").stat().st_mtime_ns)
    )
    info(f"using head run {newest!r}, the newest of {len(runs)} ({', '.join(runs)}); pass --run")
    return base / newest


def head_run_names(ctx: StageContext) -> list[str]:
    """The finished head runs of the workspace (those with a ``head.json``), sorted by name."""
    base = ctx.workspace.root / "heads"
    return sorted(p.parent.name for p in base.glob("*/head.json")) if base.is_dir() else []


def fitted_order(ctx: StageContext) -> list[str]:
    """Head runs in the order the manifest says they were fitted."""
    try:
        runs = ctx.workspace.runs("fit-head")
    except WorkspaceError:
        return []
    return [str(r["head"]) for r in runs if r.get("status") == "ok" and r.get("head")]


def select_device(ctx: StageContext) -> torch.device:
    """CUDA when present and the profile's accelerator allows it, else the CPU."""
    import torch

    accel = str(ctx.profile.trainer.accelerator).lower()
    if accel in ("auto", "gpu", "cuda") and torch.cuda.is_available():
        return torch.device("cuda")
    return torch.device("cpu")


def load_head_run(
    ctx: StageContext, name: str, ensemble: Path | None = None
) -> tuple[Any, dict[str, Any], Any, dict[str, Any], Any]:
    """Load a fitted head run with its downstream splits and a task module for scoring.

    Returns:
        ``(generalist, head meta, experiment spec, {split: dataset}, task module)``.
    """
    from eosfm_cli.data.registry import get_experiment
    from eosfm_cli.downstream import downstream_splits, head_module
    from eosfm_cli.models.head_file import load_generalist

    model, meta = load_generalist(ctx.workspace.path("heads", name), ensemble)
    spec = get_experiment(meta["dataset"])
    datasets = downstream_splits(ctx, spec, Path(meta["root"]), model.cfg.input_bands)
    module = head_module(spec, model, lr=1e-3, weight_decay=0.0, max_epochs=1)
    return model, meta, spec, datasets, module
