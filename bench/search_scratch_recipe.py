"""Choose the from-scratch EuroSAT100 recipe on the validation split (not part of ``make bench``).

Trains the ``eurosat_s2`` specialist from scratch on the 60 real EuroSAT100 train patches once
per seed for each candidate (changes on top of :data:`common.BASE_RECIPE`), and prints the mean
val and test accuracy of each. The rule: the candidate with the highest mean **val** accuracy
wins; test accuracy is printed for the record only and never used to choose. With 20 val
patches one patch is worth 0.05, so every candidate runs on 10 seeds.

Usage::

    python bench/search_scratch_recipe.py                 # every candidate, seeds 0-9
    python bench/search_scratch_recipe.py --seeds 0,1,2   # fewer seeds

The full search trains every candidate on 10 seeds (how long that took where, and what it
found: docs/performance.md). Results go to ``bench/out/scratch_recipes.json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from bench.common import (  # noqa: E402
    BASE_RECIPE,
    EUROSAT100,
    SCRATCH_SEEDS,
    eurosat100_scratch,
    with_changes,
)

#: Changes tried on top of the base recipe (60 epochs, lr 1e-3, batch 16, crops at 0.5).
CANDIDATES: dict[str, list[str]] = {
    "base": [],
    "label smoothing 0.1": ["model.label_smoothing=0.1"],
    "drop path 0.1": ["model.drop_path_rate=0.1"],
    "batch 8": ["trainer.batch_size=8"],
    "lr 2e-3": ["trainer.lr=0.002"],
    "120 epochs": ["trainer.max_epochs=120"],
    "120 epochs + label smoothing 0.1": ["trainer.max_epochs=120", "model.label_smoothing=0.1"],
    # Round 2, on top of the round-1 winner: an exponential moving average of the weights
    # (per step; 4 steps per epoch, so 0.99 averages over ~25 epochs, 0.995 over ~50); their
    # scores are in docs/performance.md.
    "120 epochs + EMA 0.99": ["trainer.max_epochs=120", "trainer.ema_decay=0.99"],
    "120 epochs + EMA 0.995": ["trainer.max_epochs=120", "trainer.ema_decay=0.995"],
}


def main(argv: list[str]) -> int:
    """Run the search; print a Markdown table and write the JSON results."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default=",".join(str(s) for s in SCRATCH_SEEDS))
    parser.add_argument("--only", default="", help="comma-separated candidate names")
    args = parser.parse_args(argv)
    if not EUROSAT100.is_dir():
        print(f"{EUROSAT100} not found: this search needs the real EuroSAT100 patches")
        return 2
    seeds = [int(s) for s in args.seeds.split(",")]
    wanted = [n for n in args.only.split(",") if n] or list(CANDIDATES)
    unknown = [n for n in wanted if n not in CANDIDATES]
    if unknown:
        parser.error(f"unknown candidate(s) {unknown}; choose among {list(CANDIDATES)}")
    rows = []
    for name in wanted:
        recipe = with_changes(BASE_RECIPE, CANDIDATES[name])
        runs = eurosat100_scratch(EUROSAT100, seeds, recipe=recipe)
        val, test = list(runs["val"]), list(runs["test"])
        rows.append(
            {
                "candidate": name,
                "changes": CANDIDATES[name],
                "seeds": seeds,
                "val": val,
                "test": test,
                "val_mean": round(statistics.mean(val), 3),
                "test_mean": round(statistics.mean(test), 3),
                "seconds": round(float(runs["seconds"])),  # type: ignore[arg-type]
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    best = max(rows, key=lambda r: r["val_mean"])
    print("\n| candidate | val (mean) | test (mean, not used to choose) |\n|---|---|---|")
    for r in rows:
        mark = " (chosen)" if r is best else ""
        print(f"| {r['candidate']}{mark} | {r['val_mean']:.3f} | {r['test_mean']:.3f} |")
    out = HERE / "out" / "scratch_recipes.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"chosen": best["candidate"], "runs": rows}, indent=2) + "\n")
    print(f"\nwrote {out.relative_to(HERE.parent)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
