"""Run every ``bench/bench_*.py`` and merge their figures.

Each benchmark module exposes ``run() -> dict[str, dict]`` mapping a figure name to
``{"value", "unit", "baseline", "target", ...}``. This harness stamps each figure with ``when``,
merges it into ``bench/results.json`` (figures not re-measured keep their last value) and
renders ``bench/RESULTS.md``. ``python bench/run.py bench_machine`` runs only the named ones.
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import json
import sys
import traceback
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results.json"
MARKDOWN = HERE / "RESULTS.md"


def _load(path: Path) -> Any:
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(HERE.parent))
    spec.loader.exec_module(module)
    return module


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def render(results: dict[str, dict[str, Any]]) -> str:
    """Render the figures as a Markdown table."""
    lines = [
        "# Benchmark results",
        "",
        "Written by `make bench` (bench/run.py). Speed figures are ratios against a baseline run "
        "in the same process, so machine noise cancels out.",
        "",
        "| figure | value | unit | baseline | target | met | when |",
        "|---|---|---|---|---|---|---|",
    ]
    for name in sorted(results):
        f = results[name]
        met = f.get("met")
        met_s = "" if met is None else ("yes" if met else "**no**")
        lines.append(
            f"| `{name}` | {_fmt(f.get('value'))}"
            + (f" ± {_fmt(f['std'])}" if "std" in f else "")
            + f" | {f.get('unit', '')} | {f.get('baseline', '')} | {f.get('target', '')} "
            f"| {met_s} | {f.get('when', '')} |"
        )
    notes = [(n, f["note"]) for n, f in sorted(results.items()) if f.get("note")]
    if notes:
        lines += ["", "## Notes", ""]
        lines += [f"- `{n}`: {note}" for n, note in notes]
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    """Run the benchmarks named in ``argv`` (all when empty)."""
    wanted = set(argv)
    files = sorted(HERE.glob("bench_*.py"))
    fresh: dict[str, dict[str, Any]] = {}
    failed = 0
    for path in files:
        if wanted and path.stem not in wanted:
            continue
        print(f"== {path.stem}", flush=True)
        try:
            figures = _load(path).run()
        except Exception:
            traceback.print_exc()
            failed += 1
            continue
        when = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
        for name, fig in figures.items():
            fig.setdefault("baseline", "")
            fig.setdefault("target", "")
            fig["when"] = when
            fresh[name] = fig
            print(f"   {name}: {_fmt(fig['value'])} {fig.get('unit', '')}", flush=True)
    # Read the file again just before writing: another bench run may have finished meanwhile.
    results: dict[str, dict[str, Any]] = {}
    if RESULTS.is_file():
        results = json.loads(RESULTS.read_text())
    results.update(fresh)
    RESULTS.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    MARKDOWN.write_text(render(results))
    print(f"wrote {RESULTS.relative_to(HERE.parent)} and {MARKDOWN.relative_to(HERE.parent)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
