"""predict with a detection head: tiling, ownership of boxes between tiles, vector outputs."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from rasterio.crs import CRS
from rasterio.transform import Affine
from training_helpers import dior_head_ctx

from eosfm_cli.errors import ProfileError
from eosfm_cli.inference.boxes import Boxes, detect_tiles, keep_owned, ownership, suppress
from eosfm_cli.inference.raster import open_source
from eosfm_cli.inference.tiling import TileGrid
from eosfm_cli.inference.vectors import box_polygons
from eosfm_cli.stages.predict import predict, vector_output
from eosfm_cli.viz.previews import Quicklook

TRANSFORM = Affine(0.5, 0.0, 500000.0, 0.0, -0.5, 4200000.0)
CRS_UTM = CRS.from_epsg(32633)


@pytest.mark.parametrize(("size", "tile", "overlap"), [(200, 64, 24), (64, 64, 16), (97, 64, 8)])
def test_ownership_partitions_the_axis_inside_the_tiles(size: int, tile: int, overlap: int) -> None:
    grid = TileGrid(size, size, tile, overlap)
    spans = ownership(grid.rows, tile, size)
    assert spans[0][0] == 0 and spans[-1][1] == size
    for (_, high), (low, _) in itertools.pairwise(spans):
        assert high == low  # contiguous, no gap and no double ownership
    for origin, (low, high) in zip(grid.rows, spans, strict=True):
        # Away from the raster's edges, a tile owns only pixels at least overlap/2 inside it.
        assert low == 0 or low >= origin + overlap / 2
        assert high == size or high <= origin + tile - overlap / 2


class SquareFinder:
    """A stand-in detector: the bounding box of each square value (> 0) visible in a tile.

    A square cut by the tile's edge gives its visible part, scored by the visible fraction, as
    a real detector gives a partial box for a cut object.
    """

    def __init__(self, side: int) -> None:
        self.side = side
        self.calls = 0

    def detect(self, images: list[torch.Tensor]) -> list[dict[str, torch.Tensor]]:
        self.calls += 1
        out = []
        for img in images:
            band = img[0]
            boxes, scores, labels = [], [], []
            for v in torch.unique(band).tolist():
                if v <= 0:
                    continue
                rows, cols = torch.nonzero(band == v, as_tuple=True)
                x0, y0 = int(cols.min()), int(rows.min())
                x1, y1 = int(cols.max()) + 1, int(rows.max()) + 1
                boxes.append([x0, y0, x1, y1])
                scores.append(len(rows) / self.side**2)
                labels.append(int(v) % 3)
            out.append(
                {
                    "boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
                    "scores": torch.tensor(scores, dtype=torch.float32),
                    "labels": torch.tensor(labels, dtype=torch.int64),
                }
            )
        return out


def _write_rgb(path: Path, data: np.ndarray, nodata: float | None = None) -> Path:
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        height=data.shape[1],
        width=data.shape[2],
        count=data.shape[0],
        dtype=data.dtype,
        crs=CRS_UTM,
        transform=TRANSFORM,
        nodata=nodata,
    ) as dst:
        dst.write(data)
        dst.descriptions = ("R", "G", "B")
    return path


def _squares(height: int, width: int, side: int, corners: list[tuple[int, int]]) -> np.ndarray:
    data = np.zeros((3, height, width), np.float32)
    for k, (y, x) in enumerate(corners, start=1):
        data[:, y : y + side, x : x + side] = k
    return data


def test_every_object_is_reported_once_with_its_whole_box(tmp_path: Path) -> None:
    side, tile, overlap = 10, 64, 24  # objects smaller than the overlap
    # Squares everywhere, including across every tile boundary and at the raster's edges.
    corners = [(y, x) for y in range(0, 170 - side, 23) for x in range(0, 200 - side, 29)]
    corners.append((170 - side, 200 - side))
    data = _squares(170, 200, side, corners)
    path = _write_rgb(tmp_path / "squares.tif", data)
    source = open_source(path, ["R", "G", "B"])
    look = Quicklook.create(source.height, source.width, ["R", "G", "B"])
    finder = SquareFinder(side)
    det, stats = detect_tiles(
        finder,  # type: ignore[arg-type]
        source,
        look,
        tile=tile,
        overlap=overlap,
        batch_size=4,
        device=torch.device("cpu"),
    )
    assert stats.tiles == TileGrid(170, 200, tile, overlap).n_tiles and finder.calls > 1
    expected = sorted((x, y, x + side, y + side) for y, x in corners)
    got = sorted(tuple(int(v) for v in b) for b in det.boxes)
    assert got == expected
    assert np.all(det.scores == 1.0)  # the whole square, never a cut part


def test_boxes_on_nodata_or_in_padding_are_dropped() -> None:
    det = Boxes(
        np.array([[2, 2, 6, 6], [40, 40, 44, 44], [10, 10, 14, 14]], np.float32),
        np.array([0.9, 0.8, 0.7], np.float32),
        np.array([0, 1, 2]),
    )
    valid = np.ones((30, 30), bool)
    valid[10:20, 10:20] = False  # the third box's centre is nodata
    kept = keep_owned(det, 100, 50, valid, (0.0, 1e9), (0.0, 1e9), 1000, 1000)
    # The second box's centre (42, 42) lies in reflection padding (the real tile is 30 px).
    assert kept.boxes.tolist() == [[102.0, 52.0, 106.0, 56.0]]


def test_suppression_is_per_class() -> None:
    det = Boxes(
        np.array([[0, 0, 10, 10], [1, 1, 11, 11], [0, 0, 10, 10]], np.float32),
        np.array([0.9, 0.8, 0.7], np.float32),
        np.array([0, 0, 1]),
    )
    kept = suppress(det)
    assert kept.scores.tolist() == pytest.approx([0.9, 0.7])
    assert kept.labels.tolist() == [0, 1]


def test_polygons_are_in_map_coordinates() -> None:
    import struct

    wkb = box_polygons(np.array([[2, 4, 6, 10]], np.float32), TRANSFORM)[0]
    order, kind, rings, points = struct.unpack("<BIII", wkb[:13])
    assert (order, kind, rings, points) == (1, 3, 1, 5)
    coords = [struct.unpack("<dd", wkb[13 + 16 * i : 29 + 16 * i]) for i in range(5)]
    assert coords[0] == (500001.0, 4199998.0)
    assert coords[2] == (500003.0, 4199995.0)
    assert coords[4] == coords[0]


def test_output_suffixes() -> None:
    assert vector_output(Path("a/b.tif")) == Path("a/b.gpkg")
    assert vector_output(Path("a/b.geojson")) == Path("a/b.geojson")
    with pytest.raises(ProfileError, match=r"\.gpkg or \.geojson"):
        vector_output(Path("a/b.png"))


# ------------------------------------------------------------------ end to end, real head


@pytest.fixture(scope="module")
def detection_ws(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A detection head fitted for one epoch on the DIOR fixture over a 2-specialist ensemble."""
    import timm

    from eosfm_cli.bands import BAND_SETS
    from eosfm_cli.models.native_file import save_ensemble
    from eosfm_cli.models.spec import SpecialistSpec
    from eosfm_cli.stages.fit_head import fit_head

    base = tmp_path_factory.mktemp("boxes")
    ens = base / "ensemble.safetensors"
    rgb = list(BAND_SETS["S2_RGB"])
    specs, states = [], []
    for i in range(2):
        torch.manual_seed(i)
        model = timm.create_model("convnextv2_atto", features_only=True, in_chans=3)
        specs.append(
            SpecialistSpec(
                name=f"rgb_{i}",
                backbone="convnextv2_atto",
                bands=rgb,
                mean=[90.0] * 3,
                std=[50.0] * 3,
            )
        )
        states.append(model.state_dict())
    save_ensemble(ens, specs, states)
    ws = base / "ws"
    fit_head(dior_head_ctx(ws), ensemble=ens, run="dior")
    return ws


def test_predict_writes_boxes_as_a_geopackage_in_the_raster_crs(
    detection_ws: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The real head run is loaded and run; its boxes are then replaced by known squares."""
    from pyogrio import read_info
    from pyogrio.raw import read

    from eosfm_cli.data.registry import DIOR_CLASSES as CLASSES
    from eosfm_cli.models.generalist import Generalist

    real = Generalist.detect
    calls: list[int] = []

    def detect(self: Generalist, images: list[torch.Tensor]) -> list[dict[str, torch.Tensor]]:
        real(self, images)  # the fitted detector runs on every tile
        calls.append(len(images))
        return SquareFinder(8).detect(images)

    monkeypatch.setattr(Generalist, "detect", detect)
    data = _squares(150, 130, 8, [(3, 5), (60, 44), (140, 120)]).astype(np.uint8)
    raster = _write_rgb(tmp_path / "scene.tif", data)
    out = predict(dior_head_ctx(detection_ws), raster, run="dior", tile=64, overlap=16)
    assert out == detection_ws / "predictions" / "scene-dior.gpkg"
    assert sum(calls) == 9
    info = read_info(out, layer="detections")
    assert CRS.from_user_input(info["crs"]) == CRS_UTM
    assert list(info["fields"]) == [
        "class",
        "class_index",
        "score",
        "col_min",
        "row_min",
        "col_max",
        "row_max",
    ]
    _, _, geometry, fields = read(out, layer="detections")
    found = sorted(
        (
            float(np.frombuffer(wkb[13:], "<f8")[0::2].min()),
            float(np.frombuffer(wkb[13:], "<f8")[1::2].max()),
            str(name),
        )
        for wkb, name in zip(geometry, fields[0], strict=True)
    )
    # Upper-left map corners: x = 500000 + 0.5 col, y = 4200000 - 0.5 row.
    expected = sorted(
        (500000.0 + 0.5 * x, 4200000.0 - 0.5 * y, CLASSES[k % 3])
        for k, (y, x) in enumerate([(3, 5), (60, 44), (140, 120)], start=1)
    )
    assert found == expected
    assert (out.with_suffix(".png")).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    last = dior_head_ctx(detection_ws).workspace.runs("predict")[-1]
    assert last["status"] == "ok" and last["output"] == "boxes" and last["tiles"] == 9
    assert last["detections"] == 3
    assert last["outputs"] == ["predictions/scene-dior.gpkg", "predictions/scene-dior.png"]
    assert not list(out.parent.glob(".*.tmp*"))


def test_predict_geojson_output(detection_ws: Path, tmp_path: Path) -> None:
    data = np.full((3, 64, 64), 100, np.uint8)
    raster = _write_rgb(tmp_path / "flat.tif", data)
    out = predict(
        dior_head_ctx(detection_ws), raster, run="dior", output=tmp_path / "boxes.geojson"
    )
    doc = json.loads(Path(out).read_text())  # type: ignore[arg-type]
    assert doc["type"] == "FeatureCollection"
    with pytest.raises(ProfileError, match="--output"):
        predict(dior_head_ctx(detection_ws), raster, run="dior", output=tmp_path / "boxes.png")
    with pytest.raises(ProfileError, match="--probabilities"):
        predict(dior_head_ctx(detection_ws), raster, run="dior", probabilities=True)


def test_dry_run_names_the_vector_output(
    detection_ws: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    raster = _write_rgb(tmp_path / "flat.tif", np.full((3, 64, 64), 100, np.uint8))
    ctx = dior_head_ctx(detection_ws)
    ctx.dry_run = True
    assert predict(ctx, raster, run="dior") is None
    assert "predictions/flat-dior.gpkg" in capsys.readouterr().out.replace("\n", "")
