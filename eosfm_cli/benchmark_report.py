"""A benchmark's results: choices made on val, intervals, verdicts, and the Markdown report.

:func:`aggregate_fraction` takes, for one task and label fraction, every model's runs per
learning rate and seed. It keeps each model's learning rate with the best mean validation
score, picks the best single specialist on validation too, and computes on the test split the
mean over seeds with its bootstrap interval, and the paired differences ``ensemble - best
single`` and ``ensemble - scratch``. :func:`markdown` renders every task and fraction.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from eosfm_cli.benchmark_plan import COMPARED, SINGLE, Model, Run, Task
from eosfm_cli.benchmark_runs import RunOutcome, file_digest
from eosfm_cli.benchmark_stats import (
    bootstrap,
    paired_difference,
    score,
    score_name,
    verdict,
)
from eosfm_cli.io import atomic_write_json, atomic_write_text

#: The models the differences are taken against, when present (and every compared file).
REFERENCES = ("best single", "scratch")


def aggregate_fraction(
    task: str,
    runs: Mapping[str, Mapping[float, Sequence[RunOutcome]]],
    *,
    draws: int,
    seed: int = 0,
) -> dict[str, Any]:
    """Choose on val and score on test every model of one task and label fraction.

    Args:
        task: the task kind.
        runs: ``runs[model][lr]``: the outcome of each seed, in seed order.
        draws: bootstrap resamples.
        seed: the resampling seed.

    Returns:
        ``{"models": {...}, "best_single": name or None, "differences": {...}}``.
    """
    _, higher = score_name(task)
    sign = 1.0 if higher else -1.0
    chosen: dict[str, Sequence[RunOutcome]] = {}
    models: dict[str, Any] = {}
    for model, by_lr in runs.items():
        val_by_lr = {lr: statistics.mean(o.val for o in outs) for lr, outs in by_lr.items()}
        # ties: the first rate listed wins
        lr = max(val_by_lr, key=lambda r: sign * val_by_lr[r])
        chosen[model] = by_lr[lr]
        models[model] = {
            "lr": lr,
            "val_by_lr": {f"{r:g}": v for r, v in val_by_lr.items()},
            "val": [o.val for o in by_lr[lr]],
            "test": [score(task, o.rows) for o in by_lr[lr]],
            "seconds": round(sum(o.seconds for outs in by_lr.values() for o in outs), 3),
        }
    names = list(chosen)
    for name, interval in zip(
        names,
        bootstrap(task, [[o.rows for o in chosen[n]] for n in names], draws=draws, seed=seed),
        strict=True,
    ):
        models[name]["interval"] = interval.to_dict()
    singles = [n for n in names if n.startswith(SINGLE)]
    best = max(singles, key=lambda n: sign * statistics.mean(models[n]["val"])) if singles else None
    refs = {"best single": best, "scratch": "scratch" if "scratch" in chosen else None}
    refs.update({n.removeprefix(COMPARED): n for n in names if n.startswith(COMPARED)})
    differences = {}
    if "ensemble" in chosen:
        for label, other in refs.items():
            if other is None:
                continue
            diff = paired_difference(
                task,
                [o.rows for o in chosen["ensemble"]],
                [o.rows for o in chosen[other]],
                draws=draws,
                seed=seed,
            )
            differences[f"ensemble - {label}"] = {
                **diff.to_dict(),
                "against": other,
                "verdict": verdict(diff, higher),
            }
    return {"models": models, "best_single": best, "differences": differences}


def task_verdict(task_name: str, kind: str, fractions: Mapping[str, Any]) -> str:
    """One paragraph: how the ensemble compares with its references at every fraction."""
    name, _ = score_name(kind)
    parts = []
    for frac, res in fractions.items():
        ens = res["models"].get("ensemble")
        if ens is None:
            continue
        iv = ens["interval"]
        said = [f"at label fraction {frac} the ensemble scores {_ci(iv)}"]
        for label, diff in res["differences"].items():
            ref = label.removeprefix("ensemble - ")
            who = f"{ref} ({diff['against'].removeprefix(SINGLE)})" if ref == "best single" else ref
            word = diff["verdict"]
            text = f"{word} than {who}" if word in ("better", "worse") else f"{word} from {who}"
            said.append(f"{text}: difference {_signed(diff)}")
        parts.append(", ".join(said))
    if not parts:
        return f"{task_name}: the ensemble was not run."
    return (
        f"**{task_name}** (test {name}, mean over seeds with 95% bootstrap intervals over seeds "
        f"and test samples): " + "; ".join(parts) + "."
    )


def _signed(iv: Mapping[str, float]) -> str:
    return f"{iv['mean']:+.3f} [{iv['low']:+.3f}, {iv['high']:+.3f}]"


def markdown(result: Mapping[str, Any]) -> str:
    """The benchmark's Markdown report: per task and fraction a table, then its verdict."""
    lines = [
        f"# Benchmark `{result['name']}`",
        "",
        f"Ensemble `{result['ensemble']}` (sha256 `{result['ensemble_sha256'][:12]}`), "
        f"{result['seeds']} seeds, fractions {', '.join(f'{f:g}' for f in result['fractions'])}. "
        "Every choice (learning rate, best single specialist, K's gates, the kept epoch) was "
        "made on val; test scores are mean over seeds with a 95% percentile bootstrap interval "
        f"({result['draws']} draws over seeds and test samples, paired across models).",
        "",
        f"Searched on val: head learning rates {_rates(result['head_lrs'])}; scratch learning "
        f"rates {_rates(result['scratch_lrs'])} at {result['scratch_epochs']} epochs.",
        "",
    ]
    for task, tres in result["tasks"].items():
        lines += [f"## {task} ({tres['kind']}, test {tres['score']})", ""]
        for frac, fres in tres["fractions"].items():
            lines += [
                f"### label fraction {frac} ({fres['train_samples']} train samples)",
                "",
                "| model | test (95% CI) | val | lr (chosen on val) |",
                "|---|---|---|---|",
            ]
            for model, m in fres["models"].items():
                star = " (best single by val)" if model == fres["best_single"] else ""
                lines.append(
                    f"| {model}{star} | {_ci(m['interval'])} | "
                    f"{statistics.mean(m['val']):.3f} | {m['lr']:g} |"
                )
            for label, d in fres["differences"].items():
                lines.append(f"| **{label}** | {_signed(d)} | | {d['verdict']} |")
            lines.append("")
        lines += [tres["verdict"], "", f"![{task}]({tres['plot']})", ""]
    return "\n".join(lines)


def _ci(iv: Mapping[str, float]) -> str:
    return f"{iv['mean']:.3f} [{iv['low']:.3f}, {iv['high']:.3f}]"


def _rates(rates: Sequence[float]) -> str:
    return ", ".join(f"{r:g}" for r in rates)


def benchmark_results(
    bench_name: str,
    ens: Path,
    tasks: Sequence[Task],
    models: Sequence[Model],
    outcomes: dict[Run, RunOutcome],
    fractions: Sequence[float],
    seeds: int,
    draws: int,
    head_lrs: Sequence[float],
    scratch_lrs: Sequence[float],
    epochs: int,
) -> dict[str, Any]:
    """Every task's choices, intervals and verdict."""
    out: dict[str, Any] = {
        "name": bench_name,
        "ensemble": str(ens),
        "ensemble_sha256": file_digest(ens),
        "seeds": seeds,
        "fractions": list(fractions),
        "draws": draws,
        "head_lrs": list(head_lrs),
        "scratch_lrs": list(scratch_lrs),
        "scratch_epochs": epochs,
        "tasks": {},
    }
    for t in tasks:
        kind = t.spec.task
        per_fraction = {}
        for f in fractions:
            runs: dict[str, dict[float, list[RunOutcome]]] = {}
            for run, outcome in outcomes.items():
                if run.task == t.label and run.fraction == f:
                    runs.setdefault(run.model.name, {}).setdefault(run.lr, []).append(outcome)
            ordered = {m.name: runs[m.name] for m in models if m.name in runs}
            res = aggregate_fraction(kind, ordered, draws=draws)
            res["train_samples"] = len(t.subsets[(f, 0)])
            per_fraction[f"{f:g}"] = res
        name, higher = score_name(kind)
        out["tasks"][t.label] = {
            "kind": kind,
            "score": name,
            "higher_is_better": higher,
            "test_samples": len(t.datasets["test"]),
            "fractions": per_fraction,
            "verdict": task_verdict(t.label, kind, per_fraction),
            "plot": f"{t.label}.png",
        }
    return out


def write_outputs(folder: Path, result: dict[str, Any]) -> None:
    """results.json, report.md and one PNG per task."""
    from eosfm_cli.viz.benchmark_plot import benchmark_png

    for task, tres in result["tasks"].items():
        names: list[str] = []
        for fres in tres["fractions"].values():
            names += [n for n in fres["models"] if n not in names]
        points = {
            n: [
                (
                    (
                        fres["models"][n]["interval"]["mean"],
                        fres["models"][n]["interval"]["low"],
                        fres["models"][n]["interval"]["high"],
                    )
                    if n in fres["models"]
                    else None
                )
                for fres in tres["fractions"].values()
            ]
            for n in names
        }
        benchmark_png(folder / tres["plot"], task, tres["score"], result["fractions"], points)
    atomic_write_json(folder / "results.json", result)
    atomic_write_text(folder / "report.md", markdown(result))
