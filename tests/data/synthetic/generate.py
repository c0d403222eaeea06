#!/usr/bin/env python3
"""Write the tiny synthetic test dataset next to this script.

Run ``python tests/data/synthetic/generate.py`` from the repository root after changing the
generator; the output (synthetic.json, scenes.csv, scenes/) is committed.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[2]))

from eosfm_cli.data.synthetic import generate  # noqa: E402

N = 12
SIZE = 32
SEED = 0


def main() -> None:
    """Regenerate the committed test data in place."""
    # Stale scenes from an earlier, larger run would otherwise linger.
    shutil.rmtree(HERE / "scenes", ignore_errors=True)
    generate(HERE, n=N, size=SIZE, seed=SEED)
    total = sum(p.stat().st_size for p in HERE.rglob("*") if p.is_file())
    print(f"wrote {N} scenes of {SIZE}x{SIZE} to {HERE} ({total / 1e3:.0f} kB)")


if __name__ == "__main__":
    main()
