"""predict: tiled, blended inference over a GeoTIFF, with bounded memory and atomic outputs."""

from __future__ import annotations

import itertools
import json
import os
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from rasterio.transform import Affine
from rasterio.windows import Window

from eosfm_cli.context import StageContext, resolve
from eosfm_cli.data.synthetic import S2_BANDS, generate, large_scene_path
from eosfm_cli.errors import ArtifactError, DataError, ProfileError, WorkspaceError
from eosfm_cli.inference import heads as predict_mod
from eosfm_cli.inference.raster import open_source
from eosfm_cli.inference.strips import StripAccumulator
from eosfm_cli.inference.tiling import TileGrid, blend_ramp, blend_window
from eosfm_cli.models.head_file import load_generalist
from eosfm_cli.stages.export_ensemble import export_ensemble
from eosfm_cli.stages.fit_head import fit_head
from eosfm_cli.stages.predict import predict
from eosfm_cli.stages.train_specialist import train_specialist
from eosfm_cli.tiles import tile_starts as tile_origins

REPO = Path(__file__).resolve().parents[1]
DEFAULT = REPO / "profiles" / "default.yaml"
SYNTHETIC = REPO / "tests" / "data" / "synthetic"
FAST = ["trainer.max_epochs=1", "trainer.batch_size=4", "emissions.enabled=false"]
BANDS = ["B02", "B03", "B04", "B08"]
RUN = "synthetic_seg"


def _ctx(ws: Path, *sets: str) -> StageContext:
    return resolve(DEFAULT, [*FAST, *sets], workspace=ws)


@pytest.fixture(scope="module")
def head_ws(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A workspace with one 1-epoch S2 specialist, its ensemble and a segmentation head."""
    ws = tmp_path_factory.mktemp("pred") / "ws"
    train_specialist(resolve(DEFAULT, FAST, dataset="synthetic_s2", root=SYNTHETIC, workspace=ws))
    export_ensemble(_ctx(ws))
    fit_head(
        _ctx(
            ws,
            f"downstream.root={SYNTHETIC}",
            "downstream.dataset=synthetic_seg",
            f"downstream.bands=[{','.join(BANDS)}]",
            "model.decoder_channels=64",
        )
    )
    return ws


@pytest.fixture(scope="module")
def seg_model(head_ws: Path) -> torch.nn.Module:
    """The fitted segmentation generalist, loaded once for the reference forwards."""
    model, _ = load_generalist(head_ws / "heads" / RUN)
    return model


@pytest.fixture(scope="module")
def scenes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """GeoTIFFs with the head's four bands, cut from a generated large scene.

    ``scene``: 200 x 300; ``square``: 256 x 256 (one tile); ``tall``: 352 x 96 (seven tile rows
    of 64 px, so that finished rows are written in more than one 256-row block); ``small``:
    96 x 96 (four tiles of 64 px).
    """
    root = generate(tmp_path_factory.mktemp("syn"), n=1, size=8, seed=3, large=640)
    idx = [S2_BANDS.index(b) + 1 for b in BANDS]
    out = {}
    with rasterio.open(large_scene_path(root, "s2")) as src:
        for name, window in (
            ("scene", Window(10, 20, 300, 200)),
            ("square", Window(300, 300, 256, 256)),
            ("tall", Window(400, 50, 96, 352)),
            ("small", Window(0, 400, 96, 96)),
        ):
            out[name] = root / f"{name}.tif"
            data = src.read(idx, window=window)
            _write(out[name], data, src.crs, src.window_transform(window), BANDS)
    return out


@pytest.fixture(scope="module")
def scene(scenes: dict[str, Path]) -> Path:
    """The 200 x 300 raster."""
    return scenes["scene"]


def _write(
    path: Path,
    data: np.ndarray,
    crs: object,
    transform: Affine,
    names: list[str] | None = None,
    nodata: float | None = None,
) -> None:
    count, height, width = data.shape
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        count=count,
        height=height,
        width=width,
        dtype=str(data.dtype),
        crs=crs,
        transform=transform,
        nodata=nodata,
    ) as dst:
        dst.write(data)
        if names:
            dst.descriptions = tuple(names)


def _leftovers(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if ".tmp" in p.name] if folder.is_dir() else []


# --------------------------------------------------------------------------- tiling pieces


def test_tile_origins_cover_the_axis_without_reaching_past_it() -> None:
    assert tile_origins(300, 128, 96) == [0, 96, 172]
    assert tile_origins(256, 256, 224) == [0]
    assert tile_origins(100, 256, 224) == [0]
    for size in (257, 480, 481, 1000):
        origins = tile_origins(size, 256, 224)
        assert origins[0] == 0 and origins[-1] + 256 == size
        assert all(b - a <= 224 for a, b in itertools.pairwise(origins))
    assert TileGrid(4096, 4096, 256, 32).n_tiles == 19 * 19


def test_blend_weights_are_a_partition_of_unity() -> None:
    tile, overlap = 64, 16
    ramp = blend_ramp(tile, overlap)
    assert ramp.min() > 0 and ramp.max() == 1
    total = np.zeros(tile + (tile - overlap))
    total[:tile] += ramp
    total[tile - overlap :] += ramp
    np.testing.assert_allclose(total[overlap:-overlap], 1.0, atol=1e-6)


def test_strip_accumulator_slides_without_losing_rows() -> None:
    acc = StripAccumulator(channels=2, rows=6, width=4)
    ones = np.ones((2, 3, 4), np.float32)
    weight = np.full((3, 4), 0.5, np.float32)
    valid = np.ones((3, 4), bool)
    acc.add(ones, weight, valid, y=0, x=0)
    acc.add(2 * ones, weight, valid, y=2, x=0)
    sums, weights, _ = acc.take(2)
    np.testing.assert_allclose(sums, 0.5)
    acc.add(ones, weight, valid, y=4, x=0)
    sums, weights, ok = acc.take(7)
    # row 2 was covered by the first two tiles, row 4 by the second and third
    np.testing.assert_allclose(weights[:, 0], [1.0, 0.5, 1.0, 0.5, 0.5])
    np.testing.assert_allclose(sums[0, :, 0], [1.5, 1.0, 1.5, 0.5, 0.5])
    assert ok.all() and acc.top == 7 and not acc.sums.any()


# ------------------------------------------------------------------------------ end to end


def _read(path: Path) -> np.ndarray:
    with rasterio.open(path) as src:
        return src.read().astype(np.float32)


def _softmax(model: torch.nn.Module, x: np.ndarray) -> np.ndarray:
    with torch.inference_mode():
        return torch.softmax(model(torch.from_numpy(x)[None]), dim=1)[0].numpy()


def test_one_tile_equals_a_direct_forward(
    head_ws: Path, seg_model: torch.nn.Module, scenes: dict[str, Path]
) -> None:
    path = scenes["square"]
    out = predict(_ctx(head_ws), path, output=head_ws / "p" / "one.tif", probabilities=True)
    assert out is not None
    np.testing.assert_allclose(_read(out), _softmax(seg_model, _read(path)), atol=1e-5)


def test_blended_tiles_equal_an_in_memory_reference(
    head_ws: Path, seg_model: torch.nn.Module, scenes: dict[str, Path]
) -> None:
    """Strips, block-aligned flushes and the sliding buffer change nothing."""
    path, tile, overlap = scenes["tall"], 64, 16
    out = predict(
        _ctx(head_ws),
        path,
        output=head_ws / "p" / "tall.tif",
        tile=tile,
        overlap=overlap,
        batch_size=3,
        probabilities=True,
    )
    assert out is not None
    data = _read(path)
    _, height, width = data.shape
    window = blend_window(tile, overlap)
    origins = [
        (y, x)
        for y in tile_origins(height, tile, tile - overlap)
        for x in tile_origins(width, tile, tile - overlap)
    ]
    tiles = np.stack([data[:, y : y + tile, x : x + tile] for y, x in origins])
    with torch.inference_mode():
        probs = torch.softmax(seg_model(torch.from_numpy(tiles)), dim=1).numpy()
    sums = np.zeros((6, height, width), np.float64)
    weights = np.zeros((height, width), np.float64)
    for (y, x), p in zip(origins, probs, strict=True):
        sums[:, y : y + tile, x : x + tile] += p * window
        weights[y : y + tile, x : x + tile] += window
    np.testing.assert_allclose(_read(out), sums / weights, atol=1e-4)


def test_tiled_prediction_is_close_to_a_whole_raster_forward(
    head_ws: Path, seg_model: torch.nn.Module, scene: Path
) -> None:
    """Tiles see less context than the whole raster, so this agreement is approximate.

    The UPerNet decoder's pyramid pooling and group norms use statistics of the whole input,
    so a tile's probabilities differ from the whole raster's by a few hundredths even far from
    tile borders (with this 1-epoch head about 0.02 on average; its argmax, on nearly flat
    probabilities, agrees on about 70 % of the pixels).
    """
    out = predict(
        _ctx(head_ws), scene, output=head_ws / "p" / "probs.tif", tile=128, probabilities=True
    )
    assert out == head_ws / "p" / "probs.tif"
    with rasterio.open(scene) as src, rasterio.open(out) as dst:
        assert (dst.crs, dst.transform, dst.shape) == (src.crs, src.transform, src.shape)
        assert dst.count == 6 and dst.dtypes[0] == "float32"
        assert dst.descriptions[0] == "water"
    probs = _read(out)
    ref = _softmax(seg_model, _read(scene))
    np.testing.assert_allclose(probs.sum(axis=0), 1.0, atol=1e-4)
    inner = (slice(None), slice(16, -16), slice(16, -16))
    assert np.abs(probs[inner] - ref[inner]).mean() < 0.05
    assert (head_ws / "p" / "probs.png").is_file()


def test_class_map_with_nodata_default_output_preview_and_manifest(head_ws: Path) -> None:
    rng = np.random.default_rng(0)
    data = rng.uniform(200, 3000, (4, 128, 192)).astype(np.float32)
    data[:, :64, :64] = np.nan  # a whole tile of NaN: never run
    data[:, 100:110, 100:120] = -9999.0  # the declared nodata value in every band
    data[0, 80:90, 150:170] = np.nan  # one band missing: still predicted
    path = head_ws.parent / "holes.tif"
    transform = Affine(10, 0, 500_000, 0, -10, 4_000_000)
    _write(path, data, "EPSG:32631", transform, BANDS, nodata=-9999.0)
    out = predict(_ctx(head_ws), path, tile=64, overlap=16, batch_size=2)
    assert out == head_ws / "predictions" / f"holes-{RUN}.tif"
    with rasterio.open(out) as dst:
        assert dst.dtypes[0] == "uint8" and dst.nodata == 255 and dst.count == 1
        assert (dst.crs.to_epsg(), dst.transform, dst.shape) == (32631, transform, (128, 192))
        assert dst.colormap(1)[0][:3] != dst.colormap(1)[1][:3]
        classes = dst.read(1)
    assert (classes[:64, :64] == 255).all()
    assert (classes[100:110, 100:120] == 255).all()
    assert (classes[80:90, 150:170] < 6).all()
    assert (classes != 255).sum() == 128 * 192 - 64 * 64 - 10 * 20
    assert classes[classes != 255].max() < 6
    png = out.with_suffix(".png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    last = _ctx(head_ws).workspace.runs("predict")[-1]
    assert last["status"] == "ok" and last["head"] == RUN
    assert last["tiles"] == 11 and last["tiles_skipped"] == 1  # 3 rows x 4 columns
    assert last["outputs"] == [f"predictions/holes-{RUN}.tif", f"predictions/holes-{RUN}.png"]
    assert any(len(v) == 64 for v in last["inputs"].values())  # sha256 of the small raster
    assert not _leftovers(head_ws / "predictions")


def test_failure_leaves_nothing_partial(
    head_ws: Path, scene: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = {"n": 0}
    real = predict_mod.tile_outputs

    def flaky(*args: object, **kwargs: object) -> np.ndarray:
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("device lost")
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(predict_mod, "tile_outputs", flaky)
    target = head_ws / "failed" / "out.tif"
    with pytest.raises(RuntimeError, match="device lost"):
        predict(_ctx(head_ws), scene, output=target, tile=64, batch_size=1)
    assert not target.exists() and not target.with_suffix(".png").exists()
    assert not _leftovers(head_ws / "failed")
    assert _ctx(head_ws).workspace.runs("predict")[-1]["status"] == "failed"


@pytest.fixture(scope="module")
def other_heads(head_ws: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Untrained classification and regression head runs on the fixture's ensemble."""
    from eosfm_cli.io import sha256_file
    from eosfm_cli.models.generalist import HeadConfig, build_generalist
    from eosfm_cli.models.head_file import save_head_run

    ens = head_ws / "ensembles" / "eosfm.safetensors"
    folder = tmp_path_factory.mktemp("heads")
    torch.manual_seed(0)
    for task, classes in (("classification", [f"c{i}" for i in range(6)]), ("regression", [])):
        model = build_generalist(ens, HeadConfig(task, classes, BANDS, decoder_channels=64))
        save_head_run(folder / task, model, ens, sha256_file(ens), {})
    return folder


@pytest.mark.parametrize("task", ["classification", "regression"])
def test_pooled_and_regression_heads(
    head_ws: Path, other_heads: Path, scenes: dict[str, Path], task: str
) -> None:
    path = scenes["small"]
    out = predict(
        _ctx(head_ws),
        path,
        run=str(other_heads / task),
        output=other_heads / f"{task}.tif",
        tile=64,
        overlap=16,
        probabilities=True,
    )
    assert out is not None
    with rasterio.open(out) as dst:
        got = dst.read()
        assert dst.dtypes[0] == "float32" and np.isnan(dst.nodata)
        assert dst.count == (6 if task == "classification" else 1)
    model, _ = load_generalist(other_heads / task)
    first = torch.from_numpy(_read(path)[None, :, :64, :64])
    with torch.inference_mode():
        ref = model(first)[0]
    if task == "classification":
        # The tile's class probabilities are painted over it; only the first tile covers
        # the top-left 32 x 32 pixels.
        np.testing.assert_allclose(got[:, 5, 5], torch.softmax(ref, 0).numpy(), atol=1e-5)
        assert np.allclose(got[:, :32, :32], got[:, :1, :1], atol=1e-5)
    else:
        np.testing.assert_allclose(got[0, :20, :20], ref[0, :20, :20].numpy(), atol=1e-4)


def test_newest_head_run_is_the_default(tmp_path: Path) -> None:
    from eosfm_cli.head_runs import find_head_run

    ctx = _ctx(tmp_path / "ws")
    for i, name in enumerate(("b_old", "a_new")):
        folder = tmp_path / "ws" / "heads" / name
        folder.mkdir(parents=True)
        (folder / "head.json").write_text("{}")
        stamp = 1_700_000_000 + 100 * i
        os.utime(folder / "head.json", (stamp, stamp))
    assert find_head_run(ctx, None).name == "a_new"
    assert find_head_run(ctx, "b_old").name == "b_old"


# ---------------------------------------------------------------------------------- errors


def test_wrong_band_count_names_the_file_and_the_bands(head_ws: Path, tmp_path: Path) -> None:
    path = tmp_path / "three.tif"
    _write(path, np.ones((3, 40, 40), np.uint16), "EPSG:32631", Affine(10, 0, 0, 0, -10, 0))
    with pytest.raises(DataError, match=r"three\.tif.*3 band.*expects 4: B02, B03, B04, B08"):
        predict(_ctx(head_ws), path, output=tmp_path / "o.tif")
    assert not (tmp_path / "o.tif").exists()


def test_band_descriptions_are_checked_and_reordered(tmp_path: Path) -> None:
    path = tmp_path / "named.tif"
    ones = np.ones((4, 8, 8), np.uint16)
    transform = Affine(10, 0, 0, 0, -10, 0)
    _write(path, ones, "EPSG:32631", transform, ["B08", "B02", "B03", "B04"])
    assert open_source(path, BANDS).indexes == [2, 3, 4, 1]
    _write(path, ones, "EPSG:32631", transform, ["B02", "B03", "B04", "B05"])
    with pytest.raises(DataError, match="named B02, B03, B04, B05"):
        open_source(path, BANDS)
    for names in (["a", "b", "c", "d"], None):  # not band names, or no descriptions at all
        _write(path, ones, "EPSG:32631", transform, names)
        with pytest.raises(DataError, match=r"never read by position.*--input-bands"):
            open_source(path, BANDS)
        # Named by the user, in file order: read by those names.
        assert open_source(path, BANDS, ["B08", "B04", "B03", "B02"]).indexes == [4, 3, 2, 1]
        with pytest.raises(DataError, match="--input-bands names 3 band"):
            open_source(path, BANDS, ["B02", "B03", "B04"])
    # --input-bands replaces descriptions that do name bands, too.
    _write(path, ones, "EPSG:32631", transform, ["B08", "B02", "B03", "B04"])
    assert open_source(path, BANDS, BANDS).indexes == [1, 2, 3, 4]


def test_no_head_run_is_a_clear_error(tmp_path: Path, scene: Path) -> None:
    with pytest.raises(WorkspaceError, match="no head run"):
        predict(_ctx(tmp_path / "empty"), scene)
    assert not (tmp_path / "empty" / "predictions").exists()


def test_unknown_run_suggests_the_close_one(head_ws: Path, scene: Path) -> None:
    with pytest.raises(ArtifactError, match="synthetic_seg"):
        predict(_ctx(head_ws), scene, run="synthetic_sge")


def test_bad_tile_options(head_ws: Path, scene: Path) -> None:
    with pytest.raises(ProfileError, match="multiple of 32"):
        predict(_ctx(head_ws), scene, tile=100)
    with pytest.raises(ProfileError, match="overlap"):
        predict(_ctx(head_ws), scene, tile=64, overlap=64)


def test_change_detection_head_is_refused(tmp_path: Path, scene: Path) -> None:
    folder = tmp_path / "ws" / "heads" / "cd"
    folder.mkdir(parents=True)
    meta = {"format": "eosfm-head", "config": {"task": "change_detection", "input_bands": BANDS}}
    (folder / "head.json").write_text(json.dumps(meta))
    with pytest.raises(ArtifactError, match="change_detection head"):
        predict(_ctx(tmp_path / "ws"), scene)


def test_dry_run_writes_nothing(
    head_ws: Path, scene: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ctx = _ctx(head_ws)
    ctx.dry_run = True
    assert predict(ctx, scene, output=head_ws / "dry" / "x.tif") is None
    text = capsys.readouterr().out
    assert "predict" in text and f"heads/{RUN}/head.safetensors" in text and "x.png" in text
    assert not (head_ws / "dry").exists()
