"""Run every ``bench/bench_*.py`` and merge their figures.

Each benchmark module exposes ``run() -> dict[str, dict]`` mapping a figure name to
``{"value", "unit", "baseline", "target", "met", "note", ...}`` and may declare
``MEASURES``: the repository paths of the code its figures measure (its own file and
``bench/common.py`` always count). This harness stamps each figure with ``when``, ``commit``
(``git`` HEAD, ``+dirty`` when the tree has changes), ``machine``
(:func:`eosfm_cli.hardware.machine`), ``module`` and ``measures``; merges it into
``bench/results.json`` and renders ``bench/RESULTS.md``.

Old figures never pass for fresh ones: when a benchmark raises, or returns no figure for a
name it produced before (its data went missing, the figure was dropped), its old figures are
kept but marked ``stale`` with the reason; ``RESULTS.md`` also marks a figure measured on a
commit older than the last commit touching the code it measures. The exit status is 1 when any
benchmark raised, so ``make bench`` fails. ``python bench/run.py bench_machine`` runs only the
named ones; ``EOSFM_BENCH_QUICK=1`` runs them at tiny sizes into ``bench/out/quick/`` (a
plumbing check). See ``docs/performance.md``.
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import json
import os
import subprocess
import sys
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
RESULTS = HERE / "results.json"
MARKDOWN = HERE / "RESULTS.md"
#: Paths every figure depends on besides its own module.
ALWAYS_MEASURED = ("bench/common.py",)

Figures = dict[str, dict[str, Any]]


def _load(path: Path) -> Any:
    for folder in (str(REPO), str(HERE)):
        if folder not in sys.path:
            sys.path.insert(0, folder)
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    # Registered before it runs: dataclasses (and pickling) look their module up by name.
    sys.modules[spec.name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[spec.name]
        raise
    return module


def _git(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["git", "-C", str(repo), *args], capture_output=True, text=True, check=False
    )


def commit_of(repo: Path) -> str:
    """HEAD's short sha, with ``+dirty`` when the working tree differs from it.

    Args:
        repo: the git checkout.

    Returns:
        ``"abc1234"``, ``"abc1234+dirty"``, or ``"unknown"`` outside a git checkout.
    """
    head = _git(repo, "rev-parse", "--short", "HEAD")
    if head.returncode != 0:
        return "unknown"
    dirty = _git(repo, "status", "--porcelain").stdout.strip()
    return head.stdout.strip() + ("+dirty" if dirty else "")


def machine_fields() -> dict[str, object]:
    """The machine the figures are measured on, as :func:`eosfm_cli.hardware.machine` sees it."""
    from eosfm_cli.hardware import machine

    return machine().as_dict()


def measured_paths(module: Any, path: Path, repo: Path) -> list[str]:
    """The repository paths whose changes can change ``module``'s figures."""
    paths = list(getattr(module, "MEASURES", []))
    if path.resolve().is_relative_to(repo.resolve()):  # not so for the harness's tests
        paths.append(path.resolve().relative_to(repo.resolve()).as_posix())
    paths += [p for p in ALWAYS_MEASURED if (repo / p).exists()]
    return sorted(set(paths))


def _uncommitted(repo: Path, paths: Sequence[str]) -> list[str]:
    if not paths:
        return []
    out = _git(repo, "status", "--porcelain", "--", *paths).stdout
    return sorted({line[3:].strip() for line in out.splitlines() if line.strip()})


def run_benchmarks(
    files: Sequence[Path],
    results_path: Path = RESULTS,
    markdown_path: Path = MARKDOWN,
    repo: Path = REPO,
    machine: Callable[[], dict[str, object]] = machine_fields,
) -> int:
    """Run the benchmark modules in ``files``, merge and render their figures.

    Args:
        files: ``bench_*.py`` modules, each with a ``run()``.
        results_path: the JSON file of all figures (read, merged, written).
        markdown_path: the Markdown table written from it.
        repo: the git checkout whose commit stamps the figures.
        machine: describes the machine (injectable for tests).

    Returns:
        0 when every benchmark ran, 1 when any raised.
    """
    commit = commit_of(repo)
    fields = machine()
    fresh: Figures = {}
    stale: dict[str, str] = {}  # module -> why its unrefreshed figures are stale
    ran: set[str] = set()
    failures: list[str] = []
    for path in files:
        print(f"== {path.stem}", flush=True)
        when = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
        try:
            module = _load(path)
            measures = measured_paths(module, path, repo)
            figures = module.run()
        except Exception as err:
            traceback.print_exc()
            why = f"{type(err).__name__}: {err}".splitlines()[0][:200]
            failures.append(f"{path.stem} ({why})")
            stale[path.stem] = f"{path.stem} failed at {when} on {commit}: {why}"
            continue
        ran.add(path.stem)
        stale[path.stem] = (
            f"{path.stem} ran at {when} on {commit} without producing it "
            "(its data missing, or the figure dropped)"
        )
        dirty = _uncommitted(repo, measures)
        for name, fig in figures.items():
            fig.setdefault("baseline", "")
            fig.setdefault("target", "")
            fig.pop("stale", None)
            fig.update(when=when, commit=commit, machine=fields, module=path.stem)
            fig["measures"] = measures
            if dirty:
                fig["uncommitted"] = dirty
            fresh[name] = fig
            print(f"   {name}: {_fmt(fig['value'])} {fig.get('unit', '')}", flush=True)
    # Read the file again just before writing: another bench run may have finished meanwhile.
    results: Figures = {}
    if results_path.is_file():
        results = json.loads(results_path.read_text())
    for name, fig in results.items():
        if name not in fresh and fig.get("module") in stale:
            fig["stale"] = stale[fig["module"]]
    results.update(fresh)
    results_path.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    markdown_path.write_text(render(results, repo))
    print(f"wrote {results_path} and {markdown_path}")
    if failures:
        print(
            f"bench: {len(failures)} benchmark(s) FAILED, their old figures are marked stale: "
            + "; ".join(failures),
            file=sys.stderr,
            flush=True,
        )
        return 1
    return 0


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _last_change(repo: Path, paths: tuple[str, ...]) -> str:
    """The short sha of the last commit touching ``paths`` (``""`` when none or no git)."""
    return _git(repo, "log", "-1", "--format=%h", "--", *paths).stdout.strip()


def _is_ancestor(repo: Path, older: str, newer: str) -> bool | None:
    """Whether ``older`` is an ancestor of (or is) ``newer``; ``None`` when unknown here."""
    out = _git(repo, "merge-base", "--is-ancestor", older, newer)
    return {0: True, 1: False}.get(out.returncode)


def status_of(fig: dict[str, Any], repo: Path) -> str:
    """Why a figure may not describe the code as it is now (``""`` when it does).

    Args:
        fig: one figure of ``results.json``.
        repo: the git checkout.
    """
    if fig.get("stale"):
        return f"**stale**: {fig['stale']}"
    commit = fig.get("commit")
    if not commit:
        return "**not stamped**: measured before figures recorded their commit"
    if fig.get("uncommitted"):
        return f"measured with uncommitted changes to {', '.join(fig['uncommitted'])}"
    base = str(commit).removesuffix("+dirty")
    paths = tuple(fig.get("measures") or ())
    last = _last_change(repo, paths) if paths else ""
    if not last or base == "unknown":
        return ""
    ancestor = _is_ancestor(repo, last, base)
    if ancestor is None:
        return f"commit {base} not in this checkout"
    if not ancestor:
        return f"**outdated**: the code it measures changed in {last}, after {base}"
    return ""


def _machine_line(fields: dict[str, Any]) -> str:
    flags = " ".join(fields.get("flags") or []) or "none of the listed flags"
    gpu = f", CUDA {fields['cuda']}" if fields.get("cuda") else ""
    return (
        f"{fields.get('cpu_model', '?')}, {fields.get('cores', '?')} cores, "
        f"{fields.get('threads', '?')} torch threads, flags: {flags}, "
        f"torch {fields.get('torch', '?')}{gpu}"
    )


def render(results: Figures, repo: Path = REPO) -> str:
    """Render the figures as a Markdown table, with their machines and any staleness.

    Args:
        results: every figure of ``results.json``.
        repo: the git checkout, to tell figures on outdated code.
    """
    machines: dict[str, str] = {}
    for name in sorted(results):
        m = results[name].get("machine")
        if isinstance(m, dict):
            machines.setdefault(_machine_line(m), f"M{len(machines) + 1}")
    lines = [
        "# Benchmark results",
        "",
        "Written by `make bench` (bench/run.py); how each figure is measured is in "
        "[docs/performance.md](../docs/performance.md). Ratios compare two sides measured in the "
        "same run, in interleaved rounds, with the same statistic on both sides.",
        "",
        "| figure | value | unit | baseline | target | met | commit | machine | when | status |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name in sorted(results):
        f = results[name]
        met = f.get("met")
        met_s = "" if met is None else ("yes" if met else "**no**")
        m = f.get("machine")
        m_s = machines[_machine_line(m)] if isinstance(m, dict) else ""
        lines.append(
            f"| `{name}` | {_fmt(f.get('value'))}"
            + (f" ± {_fmt(f['std'])}" if "std" in f else "")
            + f" | {f.get('unit', '')} | {f.get('baseline', '')} | {f.get('target', '')} "
            f"| {met_s} | {f.get('commit', '')} | {m_s} | {f.get('when', '')} "
            f"| {status_of(f, repo)} |"
        )
    if machines:
        lines += ["", "## Machines", ""]
        lines += [f"- {label}: {line}" for line, label in machines.items()]
    notes = [(n, f["note"]) for n, f in sorted(results.items()) if f.get("note")]
    if notes:
        lines += ["", "## Notes", ""]
        lines += [f"- `{n}`: {note}" for n, note in notes]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str], bench_dir: Path = HERE) -> int:
    """Run the benchmarks named in ``argv`` (all ``bench_*.py`` of ``bench_dir`` when empty)."""
    files = sorted(bench_dir.glob("bench_*.py"))
    wanted = set(argv)
    unknown = wanted - {p.stem for p in files}
    if unknown:
        known = ", ".join(p.stem for p in files)
        print(f"bench: no benchmark {', '.join(sorted(unknown))}; choose among {known}")
        return 2
    chosen = [p for p in files if not wanted or p.stem in wanted]
    if os.environ.get("EOSFM_BENCH_QUICK") == "1":
        # Plumbing check: tiny sizes whose figures mean nothing; keep them out of the record.
        out = bench_dir / "out" / "quick"
        out.mkdir(parents=True, exist_ok=True)
        print(f"EOSFM_BENCH_QUICK=1: figures go to {out}, not to bench/results.json")
        return run_benchmarks(chosen, out / "results.json", out / "RESULTS.md")
    return run_benchmarks(chosen)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
