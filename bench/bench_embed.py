"""embed figures: throughput, and memory that stays flat in the scene size.

- ``embed_rss_4096_vs_2048``: peak RSS (VmHWM) of ``embed`` on a 4096 x 4096 13-band uint16
  scene over that on a 2048 x 2048 one, each in a fresh subprocess. The level grid is written
  by windows (a strip of running sums, finished rows to a scratch GeoTIFF, then GDAL's COG
  driver), so four times the pixels should cost (almost) no more memory. Target <= 1.15.
- ``embed_tiles_per_second_2048`` and ``embed_tiles_per_second_4096``: tiles embedded per
  second in those runs, over embed's tile loop (reading, the frozen forward, blending and
  writing rows; the model load and the COG copy after the last tile are in the RSS, not in the
  rate).

The ensemble is one random-weight ``convnextv2_atto`` S2_ALL specialist (13 bands), embedded at
level 0 (1/4: 40 channels) with embed's defaults: tiles of 256 px, overlap 32, batches of 8,
no reduction, a half-float COG. The scenes are the tiled, deflate-compressed GeoTIFFs of
``bench_predict``. ``EOSFM_BENCH_QUICK=1`` uses 256 and 512 px scenes (plumbing only).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench.bench_predict import write_raster
from bench.common import QUICK

REPO = Path(__file__).resolve().parents[1]
SIDES = (256, 512) if QUICK else (2048, 4096)
TARGET = 1.15
MEASURES = [
    "eosfm_cli/stages/embed.py",
    *(
        f"eosfm_cli/inference/{name}.py"
        for name in (
            "embeddings",
            "embedding_files",
            "pca",
            "raster",
            "reading",
            "strips",
            "tiling",
            "outputs",
        )
    ),
    "eosfm_cli/viz/embedding_preview.py",
    *(
        f"eosfm_cli/models/{name}.py"
        for name in (
            "ensemble",
            "ensemble_input",
            "frozen_forward",
            "specialist",
            "adaptation",
            "pyramid",
            "native_file",
            "ensemble_file",
        )
    ),
    "eosfm_cli/hardware.py",
    "bench/bench_predict.py",
]

_CHILD = """
import json, sys, time
from pathlib import Path
from eosfm_cli.console import Verbosity
from eosfm_cli.context import resolve
from eosfm_cli.stages.embed import embed

Verbosity.quiet = True
ws, scene, ens, out = (Path(a) for a in sys.argv[1:5])
ctx = resolve(sys.argv[5], ["emissions.enabled=false"], workspace=ws)
t0 = time.perf_counter()
embed(ctx, scene, ensemble=ens, output=out, tile=256, overlap=32, batch_size=8)
seconds = time.perf_counter() - t0
status = Path("/proc/self/status").read_text().splitlines()
hwm = next(int(line.split()[1]) for line in status if line.startswith("VmHWM"))
last = ctx.workspace.runs("embed")[-1]
print(json.dumps({"hwm_kb": hwm, "seconds": seconds, "tiles": last["tiles"],
                  "tiles_per_second": last["tiles_per_second"], "grid": last["grid"],
                  "dimensions": last["dimensions"], "bytes": out.stat().st_size}))
"""


def build_ensemble(path: Path) -> Path:
    """Write a one-specialist random-weight ``convnextv2_atto`` S2_ALL ensemble."""
    import timm
    import torch

    from eosfm_cli.bands import BAND_SETS
    from eosfm_cli.models.native_file import save_ensemble
    from eosfm_cli.models.spec import SpecialistSpec

    torch.manual_seed(0)
    bands = list(BAND_SETS["S2_ALL"])
    encoder = timm.create_model(
        "convnextv2_atto", features_only=True, in_chans=len(bands), pretrained=False
    )
    spec = SpecialistSpec(
        name="s2_all",
        backbone="convnextv2_atto",
        bands=bands,
        mean=[1500.0] * len(bands),
        std=[900.0] * len(bands),
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    return save_ensemble(path, [spec], [encoder.state_dict()])


def measure(ws: Path, scene: Path, ensemble: Path) -> dict[str, Any]:
    """Run embed on ``scene`` in a fresh interpreter; return its peak RSS and speed."""
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            _CHILD,
            str(ws),
            str(scene),
            str(ensemble),
            str(scene.with_name(scene.stem + "-emb.tif")),
            str(REPO / "profiles" / "default.yaml"),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode != 0:
        raise RuntimeError(f"embed on {scene.name} failed:\n{out.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def run() -> dict[str, dict[str, Any]]:
    """Measure embed's peak RSS and tiles/s on two scene sizes."""
    from eosfm_cli.hardware import machine

    with tempfile.TemporaryDirectory(prefix="eosfm-bench-embed-") as tmp:
        folder = Path(tmp)
        ensemble = build_ensemble(folder / "ws" / "ensembles" / "bench.safetensors")
        got: dict[int, dict[str, Any]] = {}
        for side in SIDES:
            scene = folder / f"s2_{side}.tif"
            write_raster(scene, side)
            got[side] = measure(folder / "ws", scene, ensemble)
            scene.unlink()
            print(
                f"   {side}x{side}: peak RSS {got[side]['hwm_kb'] / 1024:.0f} MB, "
                f"{got[side]['tiles']} tiles in {got[side]['seconds']:.1f} s "
                f"({got[side]['tiles_per_second']:.2f} tiles/s), COG "
                f"{got[side]['bytes'] / 1e6:.0f} MB",
                flush=True,
            )
    small, big = got[SIDES[0]], got[SIDES[1]]
    ratio = big["hwm_kb"] / small["hwm_kb"]
    setup = (
        f"1 random-weight convnextv2_atto S2_ALL specialist, level 0 "
        f"({big['dimensions']} channels), tile 256, overlap 32, batch 8, half-float COG; "
        f"load average {os.getloadavg()[0]:.1f}; {machine().describe()}"
    )
    figures: dict[str, dict[str, Any]] = {
        f"embed_rss_{SIDES[1]}_vs_{SIDES[0]}": {
            "value": round(ratio, 3),
            "unit": "x",
            "baseline": (
                f"embed on {SIDES[0]}x{SIDES[0]} ({small['hwm_kb'] / 1024:.0f} MB peak RSS)"
            ),
            "target": f"<= {TARGET}",
            "met": ratio <= TARGET,
            "note": (
                f"peak RSS (VmHWM, fresh subprocess each) {big['hwm_kb'] / 1024:.0f} MB on "
                f"{SIDES[1]}x{SIDES[1]} (level grid {big['grid'][0]}x{big['grid'][1]}) vs "
                f"{small['hwm_kb'] / 1024:.0f} MB on {SIDES[0]}x{SIDES[0]}, 13-band uint16 "
                f"tiled GeoTIFFs; {setup}"
            ),
        }
    }
    for side in SIDES:
        g = got[side]
        figures[f"embed_tiles_per_second_{side}"] = {
            "value": round(g["tiles_per_second"], 2),
            "unit": "tiles/s",
            "note": (
                f"{g['tiles']} tiles of a {side}x{side} 13-band scene in "
                f"{g['tiles'] / g['tiles_per_second']:.1f} s of tile loop (read, forward, "
                f"blend, write); the whole call took {g['seconds']:.1f} s with the model load and "
                f"the COG copy; {g['bytes'] / 1e6:.0f} MB COG; {setup}"
            ),
        }
    return figures


if __name__ == "__main__":
    for name, fig in run().items():
        print(name, fig)
