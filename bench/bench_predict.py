"""predict figures: memory that stays flat in the raster size.

- ``predict_rss_4096_vs_2048``: peak RSS (VmHWM) of ``predict`` on a 4096 x 4096 13-band
  uint16 raster over that on a 2048 x 2048 one, each in a fresh subprocess. Four times the
  pixels should cost (almost) no more memory: only the strip of running sums grows, with the
  width. Target <= 1.15.

The head is built without training: one random-weight ``convnextv2_atto`` S2_ALL specialist in an
ensemble file and a segmentation head (6 classes, UPerNet width 64) saved as a head run. One
specialist and a decoder narrower than the default 128 keep the bench short (how long it took
where: docs/performance.md); memory is dominated by the torch/timm import and the batch's
activations, neither of which depends on the raster size. The rasters are tiled,
deflate-compressed GeoTIFFs written 256 rows at a time. predict runs with its defaults: tiles
of 256 px, overlap 32, batches of 8, a uint8 class map.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SIDES = (2048, 4096)
TARGET = 1.15
RUN = "bench"
MEASURES = [
    "eosfm_cli/stages/predict.py",
    "eosfm_cli/inference",
    "eosfm_cli/tiles.py",
    "eosfm_cli/models",
]
#: (name, band set) of the random-weight specialists.
SPECIALISTS = (("s2_all", "S2_ALL"),)

_CHILD = """
import json, sys, time
from pathlib import Path
from eosfm_cli.console import Verbosity
from eosfm_cli.context import resolve
from eosfm_cli.stages.predict import predict

Verbosity.quiet = True
ws, raster, out = (Path(a) for a in sys.argv[1:4])
ctx = resolve(sys.argv[4], ["emissions.enabled=false"], workspace=ws)
t0 = time.perf_counter()
predict(ctx, raster, run=sys.argv[5], output=out, tile=256, overlap=32, batch_size=8)
seconds = time.perf_counter() - t0
status = Path("/proc/self/status").read_text().splitlines()
hwm = next(int(line.split()[1]) for line in status if line.startswith("VmHWM"))
last = ctx.workspace.runs("predict")[-1]
print(json.dumps({"hwm_kb": hwm, "seconds": seconds, "tiles": last["tiles"],
                  "tiles_per_second": last["tiles_per_second"]}))
"""


def build_head(ws: Path) -> None:
    """Write a random-weight ensemble and a segmentation head run into ``ws``."""
    import timm
    import torch

    from eosfm_cli.bands import BAND_SETS
    from eosfm_cli.io import sha256_file
    from eosfm_cli.models.generalist import HeadConfig, build_generalist
    from eosfm_cli.models.head_file import save_head_run
    from eosfm_cli.models.native_file import save_ensemble
    from eosfm_cli.models.spec import SpecialistSpec

    torch.manual_seed(0)
    specs, states = [], []
    for name, band_set in SPECIALISTS:
        bands = list(BAND_SETS[band_set])
        n = len(bands)
        encoder = timm.create_model(
            "convnextv2_atto", features_only=True, in_chans=n, pretrained=False
        )
        specs.append(
            SpecialistSpec(
                name=name,
                backbone="convnextv2_atto",
                bands=bands,
                mean=[1500.0] * n,
                std=[900.0] * n,
            )
        )
        states.append(encoder.state_dict())
    ens = ws / "ensembles" / "bench.safetensors"
    ens.parent.mkdir(parents=True, exist_ok=True)
    save_ensemble(ens, specs, states)
    cfg = HeadConfig(
        task="segmentation",
        classes=["water", "forest", "cropland", "grassland", "urban", "bare_soil"],
        input_bands=list(BAND_SETS["S2_ALL"]),
        decoder_channels=64,
    )
    model = build_generalist(ens, cfg)
    save_head_run(ws / "heads" / RUN, model, ens.resolve(), sha256_file(ens), {})


def write_raster(path: Path, side: int, seed: int = 0) -> None:
    """A ``side`` x ``side`` 13-band uint16 GeoTIFF, tiled, written 256 rows at a time."""
    import rasterio
    from rasterio.transform import Affine
    from rasterio.windows import Window

    from eosfm_cli.bands import BAND_SETS

    rng = np.random.default_rng(seed)
    spectra = rng.uniform(200, 3500, (13, 6)).astype(np.float32)
    profile = {
        "driver": "GTiff",
        "count": 13,
        "dtype": "uint16",
        "height": side,
        "width": side,
        "crs": "EPSG:32631",
        "transform": Affine(10.0, 0.0, 300_000.0, 0.0, -10.0, 5_000_000.0),
        "tiled": True,
        "blockxsize": 256,
        "blockysize": 256,
        "compress": "deflate",
        "predictor": 2,
    }
    xs = np.arange(side, dtype=np.float32)
    with rasterio.open(path, "w", **profile) as dst:
        # Band names, as a real export carries them: predict never reads bands by position.
        dst.descriptions = tuple(BAND_SETS["S2_ALL"])
        for top in range(0, side, 256):
            ys = np.arange(top, min(side, top + 256), dtype=np.float32)[:, None]
            # Blobby classes from two interfering waves, plus sensor noise.
            field = np.sin(ys / 37.0) + np.cos(xs[None] / 53.0) + 0.5 * np.sin((xs + ys) / 19.0)
            classes = np.clip(((field + 2.5) / 5.0 * 6).astype(np.int64), 0, 5)
            block = spectra[:, classes]
            block += rng.normal(0, 30, block.shape).astype(np.float32)
            dst.write(
                np.clip(block, 0, 65535).astype(np.uint16),
                window=Window(0, top, side, len(ys)),
            )


def measure(ws: Path, raster: Path) -> dict[str, Any]:
    """Run predict on ``raster`` in a fresh interpreter; return its peak RSS and speed."""
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            _CHILD,
            str(ws),
            str(raster),
            str(raster.with_name(raster.stem + "-pred.tif")),
            str(REPO / "profiles" / "default.yaml"),
            RUN,
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode != 0:
        raise RuntimeError(f"predict on {raster.name} failed:\n{out.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def run() -> dict[str, dict[str, Any]]:
    """Measure predict's peak RSS on two raster sizes."""
    from eosfm_cli.hardware import machine

    with tempfile.TemporaryDirectory(prefix="eosfm-bench-predict-") as tmp:
        folder = Path(tmp)
        ws = folder / "ws"
        build_head(ws)
        got: dict[int, dict[str, Any]] = {}
        for side in SIDES:
            raster = folder / f"s2_{side}.tif"
            t0 = time.perf_counter()
            write_raster(raster, side)
            write_s = time.perf_counter() - t0
            got[side] = measure(ws, raster)
            got[side]["write_s"] = write_s
            print(
                f"   {side}x{side}: peak RSS {got[side]['hwm_kb'] / 1024:.0f} MB, "
                f"{got[side]['tiles']} tiles in {got[side]['seconds']:.1f} s "
                f"({got[side]['tiles_per_second']:.2f} tiles/s)",
                flush=True,
            )
    small, big = got[SIDES[0]], got[SIDES[1]]
    ratio = big["hwm_kb"] / small["hwm_kb"]
    return {
        "predict_rss_4096_vs_2048": {
            "value": round(ratio, 3),
            "unit": "x",
            "baseline": f"predict on 2048x2048 ({small['hwm_kb'] / 1024:.0f} MB peak RSS)",
            "target": f"<= {TARGET}",
            "met": ratio <= TARGET,
            "note": (
                f"peak RSS (VmHWM, fresh subprocess each) {big['hwm_kb'] / 1024:.0f} MB on "
                f"4096x4096 vs {small['hwm_kb'] / 1024:.0f} MB on 2048x2048, 13-band uint16 "
                f"tiled GeoTIFFs; {big['tiles']} tiles at {big['tiles_per_second']:.2f} tiles/s "
                f"and {small['tiles']} tiles at {small['tiles_per_second']:.2f} tiles/s; "
                f"{len(SPECIALISTS)} random-weight convnextv2_atto specialist(s) + UPerNet-64 "
                "segmentation head, tile 256, overlap 32, batch 8, uint8 class map; "
                f"load average {os.getloadavg()[0]:.1f}; {machine().describe()}"
            ),
        }
    }


if __name__ == "__main__":
    for name, fig in run().items():
        print(name, fig)
