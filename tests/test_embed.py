"""embed: the frozen ensemble's features of a whole scene, as a COG or GeoParquet patches."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import rasterio
import timm
import torch
from rasterio.crs import CRS
from rasterio.transform import from_origin
from rasterio.windows import Window
from typer.testing import CliRunner

from eosfm_cli.cli import app
from eosfm_cli.context import StageContext, resolve
from eosfm_cli.inference.embedding_files import blended_values
from eosfm_cli.inference.embeddings import embed_fn, level_grid, run_level_tiles
from eosfm_cli.inference.raster import open_source
from eosfm_cli.io import sha256_file
from eosfm_cli.models import EosFM
from eosfm_cli.models.native_file import save_ensemble
from eosfm_cli.models.spec import SpecialistSpec
from eosfm_cli.stages.embed import embed

REPO = Path(__file__).resolve().parents[1]
DEFAULT = REPO / "profiles" / "default.yaml"
BANDS = ["B02", "B03", "B04", "B08"]
#: Pinned so the reference forward and the stage's run the same fp32 eager code.
SETS = ["emissions.enabled=false", "ensemble.precision=fp32", "ensemble.compile=false"]
TRANSFORM = from_origin(500_000.0, 6_000_000.0, 10.0, 10.0)
runner = CliRunner()


@pytest.fixture(scope="module")
def ensemble(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A one-specialist convnextv2_atto ensemble on four S2 bands (pyramid 1/4 .. 1/32)."""
    spec = SpecialistSpec(
        name="s2", backbone="convnextv2_atto", bands=BANDS, mean=[1000.0] * 4, std=[400.0] * 4
    )
    torch.manual_seed(0)
    model = timm.create_model("convnextv2_atto", features_only=True, in_chans=4)
    return save_ensemble(
        tmp_path_factory.mktemp("ens") / "e.safetensors", [spec], [model.state_dict()]
    )


def write_scene(
    path: Path, size: tuple[int, int], descriptions: list[str] | None = BANDS, crs: bool = True
) -> Path:
    """A seeded float32 scene of 4 bands, reflectance x 1e4."""
    h, w = size
    data = np.random.default_rng(1).normal(1000, 400, (4, h, w)).astype(np.float32)
    profile = {"driver": "GTiff", "height": h, "width": w, "count": 4, "dtype": "float32"}
    if crs:
        profile.update(crs=CRS.from_epsg(32633), transform=TRANSFORM)
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
        if descriptions:
            dst.descriptions = tuple(descriptions)
    return path


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_scene(tmp_path_factory.mktemp("scene") / "scene.tif", (128, 128))


def ctx(ws: Path) -> StageContext:
    return resolve(DEFAULT, SETS, workspace=ws)


def reference(ens: Path, scene: Path, window: Window, level: int) -> torch.Tensor:
    """EosFM on one window of the scene, fp32, batch of one."""
    model = EosFM.from_file(ens, input_bands=BANDS)
    with rasterio.open(scene) as src:
        x = torch.from_numpy(src.read(window=window, out_dtype="float32"))[None]
    with torch.inference_mode():
        return model(x)[level][0]


class ArraySink:
    """A level grid kept in memory (float32), in place of a GeoTIFF."""

    def __init__(self, channels: int, height: int, width: int) -> None:
        self.height, self.width = height, width
        self.values = np.full((channels, height, width), np.nan, np.float32)

    def write(self, pixels: np.ndarray, window: Window) -> None:
        rows = slice(window.row_off, window.row_off + window.height)
        self.values[:, rows, : window.width] = pixels


def test_a_window_centre_is_exactly_the_ensemble_on_that_window(
    ensemble: Path, tmp_path: Path
) -> None:
    # Tiles of 128 step by 96: level-0 pixels 8..24 of the first tile are covered by it alone
    # with weight exactly 1, so blending gives back its fp32 features bit for bit.
    path = write_scene(tmp_path / "s.tif", (224, 224))
    model = EosFM.from_file(ensemble, input_bands=BANDS)
    source = open_source(path, BANDS)
    grid = level_grid(model.reductions, 0, 224, 224, tile=128, overlap=32)
    sink = ArraySink(40, grid.level_height, grid.level_width)
    run_level_tiles(
        embed_fn(model, 0, torch.device("cpu")),
        source,
        sink,
        blended_values,
        40,
        grid,
        batch_size=1,
    )
    want = reference(ensemble, path, Window(0, 0, 128, 128), 0).numpy()
    np.testing.assert_array_equal(sink.values[:, 8:24, 8:24], want[:, 8:24, 8:24])
    # Elsewhere overlapping tiles are blended: close to either tile's features, not equal.
    assert np.isfinite(sink.values).all()


def test_the_cog_holds_the_ensemble_features_on_the_levels_grid(
    ensemble: Path, tmp_path: Path
) -> None:
    # 576 px at 1/4: a 144-pixel grid, over one 128-pixel COG block, so it gets an overview.
    scene = write_scene(tmp_path / "big.tif", (576, 576))
    out = embed(
        ctx(tmp_path / "ws"),
        scene,
        ensemble=ensemble,
        tile=192,
        overlap=0,
        batch_size=1,
        output=tmp_path / "out" / "e.tif",
    )
    assert out == tmp_path / "out" / "e.tif"
    with rasterio.open(out) as src:
        assert src.count == 40 and (src.height, src.width) == (144, 144)
        assert src.crs == CRS.from_epsg(32633)
        assert src.transform == TRANSFORM @ TRANSFORM.scale(4)
        assert src.descriptions[0] == "s2:0" and src.descriptions[-1] == "s2:39"
        tags = src.tags()
        assert tags["eosfm_ensemble_sha256"] == sha256_file(ensemble)
        assert tags["eosfm_level_reduction"] == "4" and tags["eosfm_reduce"] == "none"
        assert json.loads(tags["eosfm_band_plan"])["active"] == ["s2"]
        # COG layout, as GDAL states it: the ghost header, tiles, overviews, IFDs first.
        assert src.tags(ns="IMAGE_STRUCTURE")["LAYOUT"] == "COG"
        assert src.tags(1, ns="IMAGE_STRUCTURE").get("NBITS") == "16"  # half floats
        assert src.profile["tiled"] and src.block_shapes[0] == (128, 128)
        assert src.overviews(1) == [2]
        offset = src.get_tag_item("BLOCK_OFFSET_0_0", "TIFF", bidx=1)
        overview_offset = src.get_tag_item("BLOCK_OFFSET_0_0", "TIFF", bidx=1, ovr=0)
        assert int(overview_offset) < int(offset)  # the overview's data before full res
        got = src.read(window=Window(48, 0, 48, 48))
    assert b"LAYOUT=IFDS_BEFORE_DATA" in out.read_bytes()[:400]
    # Without blending (overlap 0) a tile's level pixels are its features: exactly the fp32
    # features rounded to half floats.
    want = reference(ensemble, scene, Window(192, 0, 192, 192), 0)
    np.testing.assert_array_equal(got, want.half().float().numpy())
    assert [p.name for p in out.parent.iterdir()] == ["e.tif"]  # no scratch file left


def test_level_one_scales_the_transform(ensemble: Path, scene: Path, tmp_path: Path) -> None:
    out = embed(ctx(tmp_path / "ws"), scene, ensemble=ensemble, level=1, output=tmp_path)
    assert out is not None and out.name == "scene-L1.tif"
    with rasterio.open(out) as src:
        assert (src.count, src.height, src.width) == (80, 16, 16)
        assert src.transform == TRANSFORM @ TRANSFORM.scale(8)


def test_geoparquet_rows_are_patches_with_geo_metadata(
    ensemble: Path, scene: Path, tmp_path: Path
) -> None:
    c = ctx(tmp_path / "ws")
    cog = embed(c, scene, ensemble=ensemble, tile=64, overlap=0, output=tmp_path / "e.tif")
    out = embed(
        c,
        scene,
        ensemble=ensemble,
        tile=64,
        overlap=0,
        fmt="parquet",
        patch=4,
        output=tmp_path / "e.parquet",
    )
    assert out is not None and cog is not None
    meta = pq.read_metadata(out).metadata
    geo = json.loads(meta[b"geo"])
    assert geo["version"] == "1.1.0" and geo["primary_column"] == "geometry"
    col = geo["columns"]["geometry"]
    assert col["encoding"] == "WKB" and col["geometry_types"] == ["Polygon"]
    assert col["crs"]["id"] == {"authority": "EPSG", "code": 32633}
    assert meta[b"eosfm_ensemble_sha256"].decode() == sha256_file(ensemble)
    table = pq.read_table(out)
    assert table.num_rows == (32 // 4) ** 2
    vector_type = table.schema.field("embedding").type
    assert pa.types.is_list(vector_type) and vector_type.value_type == pa.float32()
    row = table.slice(9, 1).to_pylist()[0]  # patch row 1, column 1
    assert (row["row"], row["col"]) == (1, 1) and len(row["embedding"]) == 40
    x0, y0 = TRANSFORM @ (4 * 4, 4 * 4)  # level pixel 4 = input pixel 16
    assert (row["x"], row["y"]) == (x0 + 80.0, y0 - 80.0)
    ring = np.frombuffer(row["geometry"][13:], "<f8").reshape(5, 2)
    assert row["geometry"][:5] == b"\x01\x03\x00\x00\x00" and (ring[0] == ring[4]).all()
    assert ring[:, 0].min() == x0 and ring[:, 0].max() == x0 + 160.0
    with rasterio.open(cog) as src:
        pooled = src.read(window=Window(4, 4, 4, 4)).mean(axis=(1, 2))
    np.testing.assert_allclose(row["embedding"], pooled, rtol=2e-3, atol=2e-3)


def test_pca_basis_is_saved_and_reused(ensemble: Path, scene: Path, tmp_path: Path) -> None:
    c = ctx(tmp_path / "ws")
    first = embed(c, scene, ensemble=ensemble, reduce="pca:3", output=tmp_path / "a.tif")
    assert first is not None
    basis = tmp_path / "a.pca.safetensors"
    assert basis.is_file() and (tmp_path / "a.png").is_file()
    again = embed(
        c, scene, ensemble=ensemble, reduce="pca:3", basis=basis, output=tmp_path / "b.tif"
    )
    assert again is not None and not (tmp_path / "b.pca.safetensors").exists()
    with rasterio.open(first) as a, rasterio.open(again) as b:
        assert a.count == 3 and a.descriptions == ("pca:1", "pca:2", "pca:3")
        assert a.tags()["eosfm_reduce"] == "pca:3"
        np.testing.assert_array_equal(a.read(), b.read())
    code, output = cli(
        str(scene),
        "--ensemble",
        str(ensemble),
        "-w",
        str(tmp_path / "ws"),
        "--reduce",
        "pca:4",
        "--basis",
        str(basis),
        "--output",
        str(tmp_path / "c.tif"),
    )
    assert code == 2 and "holds 3 components" in output, output


def cosine(values: np.ndarray, row: int, col: int) -> np.ndarray:
    """Every pixel's cosine similarity to pixel ``(row, col)`` of ``(K, H, W)`` values."""
    q = values[:, row, col].astype(np.float64)
    v = values.astype(np.float64)
    return np.einsum("k,khw->hw", q, v) / (np.linalg.norm(q) * np.linalg.norm(v, axis=0))


def test_similar_to_a_map_coordinate_maps_cosine_similarity(
    ensemble: Path, scene: Path, tmp_path: Path
) -> None:
    # The centre of input pixel (row 50, col 70) lies in level pixel (12, 17) at 1/4.
    x, y = TRANSFORM @ (70.5, 50.5)
    out = embed(
        ctx(tmp_path / "ws"),
        scene,
        ensemble=ensemble,
        tile=64,
        overlap=0,
        similar_to=f"{x},{y}",
        output=tmp_path / "e.tif",
    )
    assert out is not None
    sim_path = tmp_path / "e.similarity.tif"
    assert (tmp_path / "e.similarity.png").stat().st_size > 0
    with rasterio.open(out) as emb, rasterio.open(sim_path) as src:
        assert (src.count, src.dtypes[0]) == (1, "float32")
        assert (src.crs, src.transform, src.shape) == (emb.crs, emb.transform, emb.shape)
        assert src.tags()["eosfm_similar_to_level_pixel"] == "12,17"
        assert src.tags()["eosfm_ensemble_sha256"] == sha256_file(ensemble)
        sim = src.read(1)
        values = emb.read()
    assert abs(sim[12, 17] - 1.0) < 1e-5
    assert np.isfinite(sim).all() and sim.min() >= -1.0 and sim.max() <= 1.0
    assert sim.min() < 0.99  # other pixels differ from the query
    np.testing.assert_allclose(sim, cosine(values, 12, 17), atol=1e-5)


def test_similar_to_a_pixel_with_geoparquet_keeps_no_scratch_copy(
    ensemble: Path, scene: Path, tmp_path: Path
) -> None:
    out = embed(
        ctx(tmp_path / "ws"),
        scene,
        ensemble=ensemble,
        tile=64,
        overlap=0,
        fmt="parquet",
        similar_to="px:127,0",  # the last row's first pixel: level pixel (31, 0)
        output=tmp_path / "e.parquet",
    )
    assert out is not None
    with rasterio.open(tmp_path / "e.similarity.tif") as src:
        assert src.shape == (32, 32) and src.transform == TRANSFORM @ TRANSFORM.scale(4)
        sim = src.read(1)
    assert abs(sim[31, 0] - 1.0) < 1e-5 and sim.min() >= -1.0 and sim.max() <= 1.0
    # The reference: the same run's features, straight from the ensemble on that tile.
    want = reference(ensemble, scene, Window(0, 64, 64, 64), 0).numpy()
    np.testing.assert_allclose(sim[16:, :16], cosine(want, 15, 0), atol=1e-5)
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_file()) == [
        "e.parquet",
        "e.similarity.png",
        "e.similarity.tif",
    ]


def test_int8_cog_dequantizes_within_one_step(ensemble: Path, scene: Path, tmp_path: Path) -> None:
    out = embed(
        ctx(tmp_path / "ws"),
        scene,
        ensemble=ensemble,
        tile=64,
        overlap=0,
        dtype="int8",
        similar_to="px:10,20",
        output=tmp_path / "q.tif",
    )
    assert out is not None
    with rasterio.open(out) as src:
        assert src.dtypes[0] == "int8" and src.nodata == -128 and src.count == 40
        assert src.tags(ns="IMAGE_STRUCTURE")["LAYOUT"] == "COG"
        assert src.tags()["eosfm_dtype"] == "int8"
        scales = np.array(src.scales)[:, None, None]
        offsets = np.array(src.offsets)[:, None, None]
        stored = src.read(window=Window(0, 0, 16, 16))
    assert (scales != 1).all() and stored.min() >= -127 and stored.max() == 127
    dequantized = stored * scales + offsets  # what GDAL's scale/offset readers compute
    want = reference(ensemble, scene, Window(0, 0, 64, 64), 0).numpy()
    # Rounding to the nearest step: off by half a step at most (float32 slack on top).
    steps_off = np.abs(dequantized - want) / scales
    assert steps_off.max() <= 0.5 + 1e-3, steps_off.max()
    with rasterio.open(tmp_path / "q.similarity.tif") as sim:
        assert abs(sim.read(1)[2, 5] - 1.0) < 1e-5


def test_a_failed_run_leaves_no_file(
    ensemble: Path, scene: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import eosfm_cli.stages.embed as stage

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("interrupted half-way")

    monkeypatch.setattr(stage, "run_level_tiles", broken)
    out = tmp_path / "out"
    out.mkdir()
    for fmt, name in (("cog", "e.tif"), ("parquet", "e.parquet")):
        with pytest.raises(RuntimeError):
            embed(ctx(tmp_path / "ws"), scene, ensemble=ensemble, fmt=fmt, output=out / name)
    assert not list(out.iterdir())


def cli(*args: str) -> tuple[int, str]:
    sets = [arg for s in SETS for arg in ("--set", s)]
    res = runner.invoke(app, ["embed", *args, *sets])
    return res.exit_code, res.output


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (["--level", "7"], "no level 7"),
        (["--format", "parquet", "--patch", "5"], "does not divide"),
        (["--reduce", "pca:x"], "--reduce"),
        (["--basis", "b.safetensors"], "--reduce pca:D"),
        (["--input-bands", "B02,B03,B04"], "--input-bands names 3"),
        (["--input-bands", "B02,B03,B04,NOPE"], "NOPE"),
        (["--similar-to", "0,0"], "outside the 128 x 128 pixel scene"),
        (["--similar-to", "px:3,128"], "COL < 128"),
        (["--similar-to", "north"], "px:ROW,COL"),
        (["--format", "parquet", "--dtype", "int8"], "--format cog"),
    ],
)
def test_user_errors_are_one_line_exit_2(
    ensemble: Path, scene: Path, tmp_path: Path, extra: list[str], needle: str
) -> None:
    code, output = cli(str(scene), "--ensemble", str(ensemble), "-w", str(tmp_path), *extra)
    assert code == 2, output
    lines = [ln for ln in output.splitlines() if ln.strip() and not ln.startswith(" ")]
    assert lines[-1].startswith("error: ") and needle in lines[-1], output
    assert "Traceback" not in output
    assert not list(tmp_path.rglob("*.tif"))


def test_unnamed_bands_need_input_bands_and_no_crs_is_noted(ensemble: Path, tmp_path: Path) -> None:
    plain = write_scene(tmp_path / "plain.tif", (64, 64), descriptions=None, crs=False)
    code, output = cli(str(plain), "--ensemble", str(ensemble), "-w", str(tmp_path / "ws"))
    assert code == 2 and "never read by position" in output
    code, output = cli(
        str(plain),
        "--ensemble",
        str(ensemble),
        "-w",
        str(tmp_path / "ws"),
        "--input-bands",
        ",".join(BANDS),
    )
    assert code == 0, output
    assert "no CRS" in output
    with rasterio.open(tmp_path / "ws" / "embeddings" / "plain-L0.tif") as src:
        assert src.crs is None and src.count == 40


def test_dry_run_writes_nothing(ensemble: Path, scene: Path, tmp_path: Path) -> None:
    code, output = cli(
        str(scene),
        "--ensemble",
        str(ensemble),
        "-w",
        str(tmp_path),
        "--dry-run",
        "--reduce",
        "pca:4",
    )
    assert code == 0, output
    assert "scene-L0.tif (about" in output and "scene-L0.pca.safetensors" in output
    assert not (tmp_path / "embeddings").exists()


@pytest.mark.slow  # the ONNX export of the ensemble takes about a minute here
def test_onnxruntime_embeddings_match_torch(ensemble: Path, tmp_path: Path) -> None:
    """``--runtime onnxruntime`` runs a cached features export; its COG equals PyTorch's."""
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    scene = write_scene(tmp_path / "s.tif", (192, 192))
    ws = tmp_path / "ws"
    outs = {}
    for runtime in ("torch", "onnxruntime"):
        outs[runtime] = embed(
            ctx(ws),
            scene,
            ensemble=ensemble,
            tile=96,
            overlap=0,
            batch_size=2,
            runtime=runtime,
            output=tmp_path / f"{runtime}.tif",
        )
    exports = list((ws / "cache" / "exports").glob("*-features-*.onnx"))
    assert len(exports) == 1
    with rasterio.open(outs["torch"]) as a, rasterio.open(outs["onnxruntime"]) as b:
        want, got = a.read().astype(np.float32), b.read().astype(np.float32)
    # both rounded to half floats: equal within one half-float step of the values
    np.testing.assert_allclose(got, want, rtol=2e-3, atol=1e-3)
