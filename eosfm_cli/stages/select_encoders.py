"""Stage `eosfm select-encoders`: learn gates, rank the specialists, keep the best K.

Gates are trained jointly with a head on the downstream task (a fit-head run with
``max_encoders: K``), or taken from an existing run (``--from-run``). The stage then checks the
ranking by ablation, zeroing each selected specialist's features in turn and measuring the
validation metric drop, and writes:

- ``selection/<run>.json``: gate values, ranking, the K selected, and the ablation deltas;
- ``ensembles/<ensemble>-k<K>.safetensors``: a **physically pruned** ensemble holding only the
  K selected specialists, so inference cost scales with K, not N.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from eosfm_cli.artifact_names import artifact_name
from eosfm_cli.console import console, info
from eosfm_cli.context import StageContext, print_dry_run
from eosfm_cli.downstream import downstream_spec, ensemble_file
from eosfm_cli.errors import ArtifactError, ProfileError
from eosfm_cli.head_features import feature_key, feature_loader, prepare_features
from eosfm_cli.head_runs import load_head_run
from eosfm_cli.head_scoring import score_split
from eosfm_cli.head_training import fit_head_run, print_head_result


def select_encoders(
    ctx: StageContext,
    k: int | None = None,
    ensemble: Path | None = None,
    from_run: str | None = None,
) -> dict[str, Any] | None:
    """Run the `select-encoders` stage.

    Args:
        ctx: the resolved profile and workspace.
        k: number of specialists to keep (default: ``ensemble.max_encoders``).
        ensemble: the ensemble file (default: the workspace's).
        from_run: reuse the gates of this fit-head run instead of training new ones.

    Returns:
        The selection record, or ``None`` for a dry run.
    """
    k = k if k is not None else ctx.profile.ensemble.max_encoders
    if k is None:
        raise ProfileError(
            "no K given",
            where=f"{ctx.source}: ensemble.max_encoders",
            hint="pass --k K or set ensemble.max_encoders",
        )
    if k < 1:
        raise ProfileError(f"K must be at least 1 (got {k})", where="--k")
    name = ctx.profile.ensemble.name
    spec, root, bands = downstream_spec(ctx, None)
    run_name = from_run or f"select-{spec.name}-k{k}"
    pruned = ctx.workspace.path("ensembles", f"{name}-k{k}.safetensors")
    if ctx.dry_run:
        print_dry_run(
            ctx,
            "select-encoders",
            [f"ensembles/{name}.safetensors"],
            [f"heads/{run_name}/", f"selection/{run_name}.json", ctx.workspace.relative(pruned)],
        )
        return None
    ens = ensemble_file(ctx, ensemble)
    if from_run is None:
        # The gates are learnt by a fit-head run of their own (recorded as such), with K
        # written into the profile it records.
        ctx.profile.ensemble.max_encoders = k
        run = artifact_name(run_name, "--run")
        head = fit_head_run(ctx, spec, root, bands, ens, run, freeze=True, k=k)
        if head is not None:
            print_head_result(head)
    return _select(ctx, ens, run_name, k, pruned)


def _select(ctx: StageContext, ens: Path, run_name: str, k: int, pruned: Path) -> dict[str, Any]:
    from eosfm_cli.io import atomic_write_json, sha256_file
    from eosfm_cli.models.native_file import load_ensemble, save_ensemble

    folder = ctx.workspace.path("heads", run_name)
    model, meta, spec, datasets, module = load_head_run(ctx, run_name, ens)
    if model.gates is None:
        raise ArtifactError(
            "this head run has no gates",
            where=str(folder / "head.json"),
            hint="fit it with ensemble.max_encoders set, or drop --from-run",
        )
    if model.cfg.k != k:
        raise ProfileError(f"run {run_name} keeps K={model.cfg.k}, not {k}", where="--k")
    datasets = {"val": datasets["val"]}
    with ctx.workspace.stage_run(
        "select-encoders", ctx.profile.to_dict(), wait=ctx.wait, emissions=ctx.profile.emissions
    ) as record:
        key = feature_key(ctx, model, meta["ensemble_sha256"], spec.name, Path(meta["root"]))
        data, _ = prepare_features(ctx, model, datasets, key, use_cache=model.cfg.freeze)
        monitor = module.monitor.split("/", 1)[1]
        loader = feature_loader(data["val"], ctx.profile.trainer.batch_size, 0, False, 0)
        full = score_split(module, loader)[monitor]
        names = model.active_names
        selected = model.gates.selected()
        ablation = {}
        for i in selected:
            score = score_split(module, loader, frozenset({i}))[monitor]
            ablation[names[i]] = {"metric": score, "drop": full - score}
        selection = {
            "run": run_name,
            "k": k,
            "gate_kind": model.cfg.gate,
            "metric": monitor,
            "val_metric": full,
            "names": names,
            "gate_values": model.gates.values(),
            "ranking": [names[i] for i in model.gates.ranking()],
            "selected": [names[i] for i in selected],
            "ablation": ablation,
            "pruned_ensemble": ctx.workspace.relative(pruned),
        }
        keep = set(selection["selected"])
        entries = [e for e in load_ensemble(ens) if e[0].name in keep]
        save_ensemble(pruned, [e[0] for e in entries], [e[1] for e in entries])
        atomic_write_json(ctx.workspace.path("selection", f"{run_name}.json"), selection)
        record.inputs = {ctx.workspace.relative(ens): sha256_file(ens)}
        record.outputs = [f"selection/{run_name}.json", ctx.workspace.relative(pruned)]
        record.extra.update(selected=selection["selected"], k=k)
    _summary(selection)
    return selection


def _summary(sel: dict[str, Any]) -> None:
    from rich.table import Table

    table = Table(
        title=f"encoder selection K={sel['k']} ({sel['gate_kind']} gates) — val "
        f"{sel['metric']} {sel['val_metric']:.4f}",
        title_justify="left",
    )
    for col in ("rank", "specialist", "gate", "kept", f"{sel['metric']} drop if removed"):
        table.add_column(col)
    values = dict(zip(sel["names"], sel["gate_values"], strict=True))
    for rank, name in enumerate(sel["ranking"], 1):
        ab = sel["ablation"].get(name)
        table.add_row(
            str(rank),
            name,
            f"{values[name]:+.3f}",
            "[green]yes[/green]" if name in sel["selected"] else "no",
            f"{ab['drop']:+.4f}" if ab else "-",
        )
    console.print(table)
    info(f"[green]wrote[/green] selection/{sel['run']}.json and {sel['pruned_ensemble']}")
