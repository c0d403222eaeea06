"""Shared helpers for the one-epoch training tests of every dataset.

Import from a test module with ``from training_helpers import run_training, check_specialist``
(pytest puts ``tests/`` on ``sys.path``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from eosfm_cli.context import StageContext, resolve
from eosfm_cli.stages.train_specialist import train_specialist

REPO = Path(__file__).resolve().parents[1]
DEFAULT = REPO / "profiles" / "default.yaml"
SYNTHETIC = REPO / "tests" / "data" / "synthetic"
FAST = ["trainer.max_epochs=1", "trainer.batch_size=4", "emissions.enabled=false"]
DIOR = REPO / "tests" / "data" / "dior"

EXPECTED_METRICS = {
    "classification": {"accuracy", "f1_macro"},
    "multilabel": {"map_micro", "map_macro", "f1_micro", "f1_macro"},
    "segmentation": {"miou", "accuracy", "iou_per_class"},
    "change_detection": {"f1_change", "iou_change", "miou"},
    "regression": {"rmse", "mae"},
    "detection": {"map", "map_50"},
}
#: Metrics that are not bounded to [0, 1].
UNBOUNDED = {"rmse", "mae", "mse"}


def dior_head_ctx(ws: Path, *sets: str) -> StageContext:
    """A fit-head context for a small detection head on the DIOR fixture (R, G, B input)."""
    base = [
        "trainer.max_epochs=1",
        "trainer.batch_size=2",
        "emissions.enabled=false",
        "downstream.dataset=dior",
        f"downstream.root={DIOR}",
        "downstream.bands=[R, G, B]",
        "model.decoder_channels=32",
    ]
    return resolve(DEFAULT, [*base, *sets], workspace=ws)


def run_training(
    tmp_path: Path, dataset: str, root: Path, sets: list[str] | None = None, **kw: Any
) -> tuple[StageContext, Any]:
    """Train ``dataset`` for one short epoch on ``root`` into ``tmp_path / "ws"``."""
    ctx = resolve(
        DEFAULT, [*FAST, *(sets or [])], dataset=dataset, root=root, workspace=tmp_path / "ws"
    )
    return ctx, train_specialist(ctx, **kw)


def check_specialist(folder: Path, task: str) -> dict[str, Any]:
    """Check the artifacts of a finished specialist folder and return its specialist.json."""
    for name in ("last.ckpt", "best.ckpt", "metrics.json", "specialist.json"):
        assert (folder / name).is_file(), name
    assert (folder / "logs" / "metrics.csv").is_file()
    spec = json.loads((folder / "specialist.json").read_text())
    for key in (
        "name",
        "backbone",
        "in_chans",
        "bands",
        "mean",
        "std",
        "dataset",
        "task",
        "classes",
        "metrics",
        "versions",
    ):
        assert key in spec, key
    assert spec["in_chans"] == len(spec["bands"]) == len(spec["mean"]) == len(spec["std"])
    assert all(s > 0 for s in spec["std"])
    metrics = json.loads((folder / "metrics.json").read_text())
    assert set(metrics) == {"val", "test"}
    for split in ("val", "test"):
        assert EXPECTED_METRICS[task] <= set(metrics[split]), metrics[split]
        for key, value in metrics[split].items():
            vals = value if isinstance(value, list) else [value]
            if key in UNBOUNDED:
                assert all(v >= 0.0 for v in vals), key
            else:
                assert all(0.0 <= v <= 1.0 for v in vals), key
    return spec
