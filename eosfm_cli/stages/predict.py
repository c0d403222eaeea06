"""Stage `eosfm predict`: apply a fitted head to a GeoTIFF of any size, tile by tile.

**Tiling.** The raster is cut into ``tile`` x ``tile`` tiles that step by ``tile - overlap``.
The last tile of a row (or column) is shifted back so that it ends on the raster's edge, so
every tile holds real pixels; only a raster smaller than one tile is padded, by reflection.

**Blending.** Each tile's per-pixel output (class probabilities, or the regression value) is
multiplied by a separable weight window that rises from almost 0 to 1 across the ``overlap``
pixels at each side (a squared-sine ramp: two neighbours' ramps sum to exactly 1) and is added
into running sums; the blended value is the weighted sum divided by the summed weights. At the
raster's own edges only one tile covers a pixel, and the division gives back its value.

**Memory.** Tiles are processed one tile row at a time (batched within the row), so only a
strip of ``tile + 256`` rows of running sums is held: finished rows (those no later tile
touches) are written to the output with windowed writes, in whole 256-row blocks, and the strip
slides down. Input tiles are read with windowed reads under a capped GDAL block cache, so
nothing ever scales with the raster's height, and only the strip scales with its width.

**Outputs.** ``predictions/<raster stem>-<run>.tif`` (or ``--output``) in the input's CRS and
transform: a uint8 class map (nodata 255) for segmentation, classification and multi-label heads
(the top class), float32 class probabilities with ``probabilities=True`` (one band per class,
nodata NaN), or one float32 band for regression (nodata NaN). A classification head labels each
tile as a whole; its probabilities are painted over the tile and blended like dense outputs, so
the map changes smoothly between tiles. ``<name>.png`` beside it shows an RGB-like quicklook of
the input next to the colour-coded prediction; both are sampled while the raster is processed,
so no second pass over the files is needed. Both files are written to temporary names and
renamed at the end, so a failed run leaves nothing partial. A detection head writes boxes as
vectors instead (a GeoPackage and its preview; see :mod:`eosfm_cli.stages.predict_boxes`).

**Nodata.** A pixel whose bands all equal the input's nodata value (or are NaN) gets the
output's nodata. Invalid band values are filled with the tile's mean of that band before
inference; a tile without any valid pixel is not run at all.
"""

from __future__ import annotations

import contextlib
import math
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from eosfm_cli.console import Verbosity, console, info
from eosfm_cli.context import StageContext, print_dry_run
from eosfm_cli.errors import ArtifactError, DataError, ProfileError, WorkspaceError
from eosfm_cli.head_runs import find_head_run, select_device
from eosfm_cli.io import fingerprint_file

if TYPE_CHECKING:
    import torch

    from eosfm_cli.models.generalist import Generalist

FloatArray = npt.NDArray[np.float32]
BoolArray = npt.NDArray[np.bool_]

#: Tiles must be a multiple of the encoders' largest reduction.
TILE_MULTIPLE = 32
#: Output GeoTIFF block side; finished rows are written in whole blocks of this many rows.
OUTPUT_BLOCK = 256
#: GDAL block cache during a prediction, in MB: enough for a strip of input blocks.
GDAL_CACHE_MB = 64
#: Longest side of the preview's panels, in pixels.
PREVIEW_SIDE = 512
#: Class-map nodata value.
CLASS_NODATA = 255
#: Centre wavelengths (nm) of the red, green and blue a quicklook looks for.
RGB_TARGETS_NM = (665.0, 560.0, 490.0)
RGB_TOLERANCE_NM = 100.0
DENSE = ("segmentation", "regression")
POOLED = ("classification", "multilabel")


# ------------------------------------------------------------------------------- geometry


def tile_origins(size: int, tile: int, stride: int) -> list[int]:
    """Start offsets of the tiles along one axis.

    Tiles step by ``stride``; the last one is shifted back to end on the edge, so that no
    tile reaches past the raster unless the raster is shorter than one tile.

    Args:
        size: the raster's extent along the axis.
        tile: the tile side.
        stride: the step between tiles (``tile - overlap``).

    Returns:
        The sorted, distinct offsets.
    """
    if size <= tile:
        return [0]
    origins = list(range(0, size - tile + 1, stride))
    if origins[-1] + tile < size:
        origins.append(size - tile)
    return origins


def blend_ramp(tile: int, overlap: int) -> FloatArray:
    """One axis of the blending window: a squared-sine ramp over ``overlap`` pixels at each end.

    The ramp of one tile and the mirrored ramp of its neighbour sum to 1 in their overlap, and
    no weight is 0, so a pixel that one tile alone covers keeps that tile's value.

    Args:
        tile: the tile side.
        overlap: the overlap between neighbouring tiles.

    Returns:
        Weights of shape ``(tile,)`` in ``(0, 1]``.
    """
    ramp = np.ones(tile, np.float32)
    if overlap > 0:
        n = min(overlap, tile // 2)
        rise = np.sin(0.5 * np.pi * (np.arange(n, dtype=np.float64) + 0.5) / overlap) ** 2
        ramp[:n] = rise
        ramp[tile - n :] = np.minimum(ramp[tile - n :], rise[::-1])
    return ramp


def blend_window(tile: int, overlap: int) -> FloatArray:
    """The separable 2-D blending window, shape ``(tile, tile)``."""
    ramp = blend_ramp(tile, overlap)
    return np.outer(ramp, ramp).astype(np.float32)


@dataclass(frozen=True)
class TileGrid:
    """The tiles covering a raster.

    Attributes:
        height: raster rows.
        width: raster columns.
        tile: tile side.
        overlap: overlap between neighbouring tiles.
    """

    height: int
    width: int
    tile: int
    overlap: int

    @property
    def rows(self) -> list[int]:
        """Row offsets of the tile rows."""
        return tile_origins(self.height, self.tile, self.tile - self.overlap)

    @property
    def cols(self) -> list[int]:
        """Column offsets of the tiles in a row."""
        return tile_origins(self.width, self.tile, self.tile - self.overlap)

    @property
    def n_tiles(self) -> int:
        """Number of tiles."""
        return len(self.rows) * len(self.cols)


# ---------------------------------------------------------------------------- accumulation


class StripAccumulator:
    """Running weighted sums of the raster rows that tiles still touch.

    Rows ``top .. top + rows`` of the raster live in the buffer. :meth:`add` adds one tile's
    weighted output; :meth:`take` hands over finished rows and slides the strip down.

    Args:
        channels: values per pixel (classes, or 1).
        rows: rows the strip holds (a tile plus one output block).
        width: raster columns.
    """

    def __init__(self, channels: int, rows: int, width: int) -> None:
        self.sums: FloatArray = np.zeros((channels, rows, width), np.float32)
        self.weights: FloatArray = np.zeros((rows, width), np.float32)
        self.valid: BoolArray = np.zeros((rows, width), np.bool_)
        self.top = 0

    def add(self, values: FloatArray, weight: FloatArray, valid: BoolArray, y: int, x: int) -> None:
        """Add one tile's output.

        Args:
            values: ``(C, h, w)`` per-pixel values, or ``(C, 1, 1)`` for a whole-tile value.
            weight: ``(h, w)`` blending weights.
            valid: ``(h, w)`` input validity.
            y: raster row of the tile's first row.
            x: raster column of the tile's first column.
        """
        h, w = valid.shape
        r = y - self.top
        if r < 0 or r + h > self.weights.shape[0]:
            raise RuntimeError(f"tile rows {y}..{y + h} fall outside the strip at {self.top}")
        sums = self.sums[:, r : r + h, x : x + w]
        sums += values * weight
        self.weights[r : r + h, x : x + w] += weight
        self.valid[r : r + h, x : x + w] |= valid

    def take(self, stop: int) -> tuple[FloatArray, FloatArray, BoolArray]:
        """Hand over raster rows ``top .. stop`` and slide the strip down to ``stop``.

        Returns:
            Copies of the sums ``(C, n, W)``, weights ``(n, W)`` and validity ``(n, W)``.
        """
        n = stop - self.top
        out = (self.sums[:, :n].copy(), self.weights[:n].copy(), self.valid[:n].copy())
        for arr in (self.sums, self.weights, self.valid):
            _shift_rows(arr, n)
        self.top = stop
        return out


def _shift_rows(arr: npt.NDArray[Any], n: int) -> None:
    """Move rows ``n..`` of ``arr`` (axis -2) to the top and zero the rest, without a copy."""
    rows = arr.shape[-2]
    if n <= 0:
        return
    # Chunks of at most n rows never overlap their destination, so no temporary is made.
    for start in range(0, rows - n, n):
        stop = min(start + n, rows - n)
        arr[..., start:stop, :] = arr[..., start + n : stop + n, :]
    arr[..., max(rows - n, 0) :, :] = 0


# ----------------------------------------------------------------------------- the raster


@dataclass
class RasterSource:
    """What predict needs to know about the input raster.

    Attributes:
        path: the GeoTIFF.
        height: rows.
        width: columns.
        indexes: 1-based band indexes to read, in the head's band order.
        nodata: the nodata value of each band read (``None``: none declared).
        profile: the rasterio profile (CRS and transform are copied to the output).
    """

    path: Path
    height: int
    width: int
    indexes: list[int]
    nodata: list[float | None]
    profile: dict[str, Any] = field(default_factory=dict)


def open_source(path: Path, bands: Sequence[str]) -> RasterSource:
    """Check the input raster against the head's bands and describe it.

    Band descriptions that all name catalog bands are checked against ``bands``; when they
    name the same bands in another order, the bands are read by name.

    Args:
        path: the input GeoTIFF.
        bands: the head's input bands, in channel order.

    Raises:
        DataError: when the file is missing or unreadable, has the wrong number of bands, or
            its band descriptions name other bands.
    """
    import rasterio
    from rasterio.errors import NotGeoreferencedWarning, RasterioError

    if not path.is_file():
        raise DataError("raster not found", where=str(path), hint="pass an existing GeoTIFF")
    try:
        with warnings.catch_warnings():
            # A raster without georeferencing is fine: the output copies whatever it has.
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            src = rasterio.open(path)
        with src:
            count, height, width = src.count, src.height, src.width
            descriptions = list(src.descriptions)
            nodatavals = list(src.nodatavals)
            profile = dict(src.profile)
    except (RasterioError, OSError) as err:
        raise DataError(f"cannot read the raster ({err})", where=str(path)) from None
    expected = ", ".join(bands)
    # Descriptions that all name catalog bands say which band is which; others say nothing.
    names = _catalog_names(descriptions)
    indexes = list(range(1, count + 1))
    if count > len(bands) and names is not None and set(bands) <= set(names):
        # A multi-band product (e.g. all 13 S2 bands): read just the head's bands, by name.
        indexes = _indexes_by_name(names, bands)
        info(f"{path.name}: reading {expected} by name from its {count} bands")
    elif count != len(bands):
        raise DataError(
            f"the raster has {count} band(s), the head expects {len(bands)}: {expected}",
            where=str(path),
            hint=f"give a GeoTIFF whose bands are {expected}, in that order",
        )
    elif names is not None and names != list(bands):
        if sorted(names) != sorted(bands):
            raise DataError(
                f"the raster's bands are named {', '.join(names)}, the head expects {expected}",
                where=str(path),
                hint="give a raster with the head's bands, or fit a head on these bands",
            )
        indexes = _indexes_by_name(names, bands)
        info(f"{path.name}: bands read by name in the head's order ({expected})")
    return RasterSource(
        path=path,
        height=height,
        width=width,
        indexes=indexes,
        nodata=[None if v is None else float(v) for v in (nodatavals[i - 1] for i in indexes)],
        profile=profile,
    )


def _catalog_names(descriptions: Sequence[str | None]) -> list[str] | None:
    """Canonical band names from band descriptions, or ``None`` unless all are catalog bands."""
    from eosfm_cli.bands import canonical
    from eosfm_cli.errors import BandError

    if not descriptions or not all(descriptions):
        return None
    try:
        return [canonical(str(d)) for d in descriptions]
    except BandError:
        return None


def _indexes_by_name(names: Sequence[str], bands: Sequence[str]) -> list[int]:
    """1-based indexes that read ``bands`` from a raster whose bands are ``names``."""
    free = list(enumerate(names, start=1))
    out: list[int] = []
    for band in bands:
        pos = next(i for i, (_, n) in enumerate(free) if n == band)
        out.append(free.pop(pos)[0])
    return out


def fill_invalid(tile: FloatArray, nodata: Sequence[float | None]) -> tuple[FloatArray, BoolArray]:
    """Fill a tile's invalid values and say which pixels hold data.

    Args:
        tile: ``(C, h, w)`` raw values.
        nodata: each band's nodata value, or ``None``.

    Returns:
        The filled tile (in place) and the ``(h, w)`` mask of pixels with at least one valid
        band.
    """
    bad = np.isnan(tile)
    for c, value in enumerate(nodata):
        if value is not None and not math.isnan(value):
            bad[c] |= tile[c] == np.float32(value)
    valid: BoolArray = np.logical_not(bad.all(axis=0))
    if bad.any():
        for c in range(tile.shape[0]):
            if bad[c].any():
                good = tile[c][~bad[c]]
                tile[c][bad[c]] = good.mean() if good.size else 0.0
    return tile, valid


def pad_reflect(tile: FloatArray, size: int) -> FloatArray:
    """Pad a ``(C, h, w)`` tile to ``(C, size, size)`` by reflection at the bottom and right."""
    _, h, w = tile.shape
    if h == size and w == size:
        return tile
    return np.pad(tile, ((0, 0), (0, size - h), (0, size - w)), mode="reflect")


# ------------------------------------------------------------------------------ quicklook


@dataclass
class Quicklook:
    """Every ``step``-th pixel of the input's RGB-like bands and of the prediction.

    Filled while tiles are read and rows are written, so the preview costs no extra pass.

    Attributes:
        step: sampling step in pixels.
        rgb_channels: channels (in the head's band order) shown as red, green and blue.
        rgb: ``(3, ph, pw)`` sampled input values (NaN: not sampled or nodata).
        pred: ``(ph, pw)`` sampled class index or value (NaN: nodata).
    """

    step: int
    rgb_channels: list[int]
    rgb: FloatArray
    pred: FloatArray

    @classmethod
    def create(cls, height: int, width: int, bands: Sequence[str]) -> Quicklook:
        """An empty quicklook for a raster of this size and these bands."""
        step = max(1, math.ceil(max(height, width) / PREVIEW_SIDE))
        ph, pw = math.ceil(height / step), math.ceil(width / step)
        return cls(
            step=step,
            rgb_channels=rgb_channels(bands),
            rgb=np.full((3, ph, pw), np.nan, np.float32),
            pred=np.full((ph, pw), np.nan, np.float32),
        )

    def _samples(self, start: int, length: int) -> tuple[slice, slice]:
        """Sample positions inside ``start .. start + length``: (in the block, in the preview)."""
        first = -(-start // self.step)
        last = (start + length - 1) // self.step
        if last < first:
            return slice(0, 0), slice(0, 0)
        return (
            slice(first * self.step - start, last * self.step - start + 1, self.step),
            slice(first, last + 1),
        )

    def add_input(self, tile: FloatArray, valid: BoolArray, y: int, x: int) -> None:
        """Sample a ``(C, h, w)`` input tile at raster offset ``(y, x)``."""
        (ty, py), (tx, px) = self._samples(y, tile.shape[1]), self._samples(x, tile.shape[2])
        values = tile[self.rgb_channels][:, ty, tx]
        values[:, ~valid[ty, tx]] = np.nan
        self.rgb[:, py, px] = values

    def add_prediction(self, rows: FloatArray, y: int) -> None:
        """Sample finished ``(n, W)`` prediction rows starting at raster row ``y``."""
        ty, py = self._samples(y, rows.shape[0])
        self.pred[py, :] = rows[ty, :: self.step]


def rgb_channels(bands: Sequence[str]) -> list[int]:
    """Channels nearest to red, green and blue; the first channel three times otherwise."""
    from eosfm_cli.bands import get_band
    from eosfm_cli.errors import BandError

    centres: list[float | None] = []
    for b in bands:
        try:
            centres.append(get_band(b).center_nm)
        except BandError:  # an uncatalogued band just cannot be shown as a colour
            centres.append(None)
    picked: list[int] = []
    for target in RGB_TARGETS_NM:
        cands = [(abs(c - target), i) for i, c in enumerate(centres) if c is not None]
        best = min(cands, default=None)
        if best is None or best[0] > RGB_TOLERANCE_NM:
            return [0, 0, 0]
        picked.append(best[1])
    return picked if len(set(picked)) == 3 else [0, 0, 0]


def _stretch(rgb: FloatArray) -> FloatArray:
    """Per-channel 2-98 % stretch to ``[0, 1]``, RGBA with nodata transparent."""
    out = np.zeros((*rgb.shape[1:], 4), np.float32)
    ok = ~np.isnan(rgb).any(axis=0)
    for c in range(3):
        vals = rgb[c][ok]
        if vals.size:
            lo, hi = np.percentile(vals, [2, 98])
            out[..., c] = np.clip((rgb[c] - lo) / max(float(hi - lo), 1e-6), 0, 1)
    out[..., 3] = ok
    return np.nan_to_num(out)


def write_preview(path: Path, look: Quicklook, task: str, classes: Sequence[str]) -> None:
    """Save the quicklook PNG: the input on the left, the prediction on the right."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch

    fig, axes = plt.subplots(1, 2, figsize=(10, 5.4), dpi=100)
    try:
        axes[0].imshow(_stretch(look.rgb), interpolation="nearest")
        axes[0].set_title("input")
        pred = np.ma.masked_invalid(look.pred)
        if task == "regression":
            im = axes[1].imshow(pred, cmap="viridis", interpolation="nearest")
            fig.colorbar(im, ax=axes[1], fraction=0.046, pad=0.04)
        else:
            colours = class_colours(len(classes))
            cmap = ListedColormap(colours)
            axes[1].imshow(
                pred, cmap=cmap, vmin=-0.5, vmax=len(classes) - 0.5, interpolation="nearest"
            )
            axes[1].legend(
                handles=[Patch(color=c, label=n) for c, n in zip(colours, classes, strict=True)],
                loc="upper left",
                bbox_to_anchor=(1.02, 1.0),
                fontsize="small",
                frameon=False,
            )
        axes[1].set_title("prediction")
        for ax in axes:
            ax.set_axis_off()
        fig.tight_layout()
        fig.savefig(path, format="png", bbox_inches="tight")
    finally:
        plt.close(fig)


def class_colours(n: int) -> list[tuple[float, float, float]]:
    """``n`` distinct colours (tab10, tab20, then a hue wheel)."""
    import matplotlib

    if n <= 10:
        cmap, scale = matplotlib.colormaps["tab10"], None
    elif n <= 20:
        cmap, scale = matplotlib.colormaps["tab20"], None
    else:
        cmap, scale = matplotlib.colormaps["hsv"], float(n)
    out: list[tuple[float, float, float]] = []
    for i in range(n):
        r, g, b, _ = cmap(i / scale if scale else i)
        out.append((float(r), float(g), float(b)))
    return out


def default_output(ctx: StageContext, raster: Path, folder: Path) -> Path:
    """``predictions/<raster stem>-<run>.tif`` in the workspace."""
    return ctx.workspace.path("predictions", f"{raster.stem}-{folder.name}.tif")


# -------------------------------------------------------------------------------- running


@dataclass
class OutputSpec:
    """How the blended values become output pixels.

    Attributes:
        kind: ``classes``, ``probabilities`` or ``regression``.
        channels: values accumulated per pixel.
        count: output bands.
        dtype: output dtype.
        nodata: output nodata.
        names: output band descriptions.
    """

    kind: str
    channels: int
    count: int
    dtype: str
    nodata: float
    names: list[str]

    @classmethod
    def for_head(cls, task: str, classes: Sequence[str], probabilities: bool) -> OutputSpec:
        """The output of a head of this task."""
        k = len(classes)
        if task == "regression":
            return cls("regression", 1, 1, "float32", float("nan"), list(classes) or ["value"])
        if probabilities:
            return cls("probabilities", k, k, "float32", float("nan"), list(classes))
        if k > CLASS_NODATA:
            return cls("classes", k, 1, "uint16", 65535.0, ["class"])
        return cls("classes", k, 1, "uint8", float(CLASS_NODATA), ["class"])

    def pixels(
        self, sums: FloatArray, weights: FloatArray, valid: BoolArray
    ) -> tuple[npt.NDArray[Any], FloatArray]:
        """Finished rows as output pixels ``(count, n, W)``, and what the preview shows."""
        ok = valid & (weights > 0)
        if self.kind == "classes":
            cls_map = sums.argmax(axis=0).astype(self.dtype)
            cls_map[~ok] = int(self.nodata)
            look = cls_map.astype(np.float32)
            look[~ok] = np.nan
            return cls_map[None], look
        values = sums / np.where(ok, weights, 1.0)[None]
        values[:, ~ok] = np.nan
        look = values[0] if self.kind == "regression" else values.argmax(axis=0).astype(np.float32)
        if self.kind != "regression":
            look[~ok] = np.nan
        return values.astype(np.float32), look


def output_profile(source: RasterSource, spec: OutputSpec) -> dict[str, Any]:
    """A tiled, compressed GeoTIFF profile with the input's grid."""
    return {
        "driver": "GTiff",
        "height": source.height,
        "width": source.width,
        "count": spec.count,
        "dtype": spec.dtype,
        "nodata": spec.nodata,
        "crs": source.profile.get("crs"),
        "transform": source.profile.get("transform"),
        "tiled": True,
        "blockxsize": OUTPUT_BLOCK,
        "blockysize": OUTPUT_BLOCK,
        "compress": "deflate",
        "predictor": 3 if spec.dtype == "float32" else 2,
        "BIGTIFF": "IF_SAFER",
    }


def tile_outputs(model: Generalist, batch: torch.Tensor, task: str) -> FloatArray:
    """Per-pixel (dense) or per-tile (pooled) outputs of a batch, as probabilities or values."""
    import torch

    logits = model(batch).float()
    if task in ("segmentation", "classification"):
        out = torch.softmax(logits, dim=1)
    elif task == "multilabel":
        out = torch.sigmoid(logits)
    else:
        out = logits
    if out.ndim == 2:
        out = out[:, :, None, None]
    arr: FloatArray = out.cpu().numpy().astype(np.float32, copy=False)
    return arr


@dataclass
class PredictStats:
    """Counts of one prediction."""

    tiles: int = 0
    skipped: int = 0
    seconds: float = 0.0


def read_tile(
    src: Any,
    source: RasterSource,
    look: Quicklook,
    y: int,
    x: int,
    tile: int,
    stats: PredictStats,
    on_tiles: Callable[[int], None] | None = None,
) -> tuple[FloatArray, BoolArray] | None:
    """Read the tile at ``(y, x)``, fill its invalid values and sample it into the preview.

    Args:
        src: the input raster, open.
        source: its description.
        look: the preview being sampled.
        y: the tile's row offset.
        x: the tile's column offset.
        tile: tile side (the tile is cut at the raster's edge).
        stats: counts; a tile without any valid pixel is counted as skipped.
        on_tiles: called with 1 for a skipped tile.

    Returns:
        The ``(C, h, w)`` filled tile and its valid-pixel mask, or ``None`` for a tile with no
        valid pixel.

    Raises:
        DataError: when the window cannot be read.
    """
    from rasterio.errors import RasterioError
    from rasterio.windows import Window

    h, w = min(tile, source.height - y), min(tile, source.width - x)
    try:
        data = src.read(source.indexes, window=Window(x, y, w, h), out_dtype="float32")
    except (RasterioError, OSError) as err:
        raise DataError(
            f"cannot read rows {y}..{y + h}, columns {x}..{x + w} ({err})",
            where=str(source.path),
        ) from None
    data, valid = fill_invalid(data, source.nodata)
    look.add_input(data, valid, y, x)
    if not valid.any():
        stats.skipped += 1
        if on_tiles is not None:
            on_tiles(1)
        return None
    return data, valid


def run_tiles(
    model: Generalist,
    source: RasterSource,
    dst: Any,
    spec: OutputSpec,
    look: Quicklook,
    *,
    tile: int,
    overlap: int,
    batch_size: int,
    device: torch.device,
    on_tiles: Callable[[int], None] | None = None,
) -> PredictStats:
    """Predict the raster tile by tile into an open output dataset.

    Args:
        model: the generalist, in eval mode, on ``device``.
        source: the input raster.
        dst: the output rasterio dataset, open for writing.
        spec: the output kind.
        look: the preview being sampled.
        tile: tile side.
        overlap: overlap between tiles.
        batch_size: tiles per forward pass.
        device: where the model runs.
        on_tiles: called with the number of tiles just finished.

    Returns:
        Tile counts and the time taken.
    """
    import rasterio
    import torch
    from rasterio.windows import Window

    grid = TileGrid(source.height, source.width, tile, overlap)
    rows, cols = grid.rows, grid.cols
    window = blend_window(tile, overlap)
    acc = StripAccumulator(spec.channels, tile + OUTPUT_BLOCK, source.width)
    stats = PredictStats()
    t0 = time.perf_counter()
    task = model.cfg.task

    def flush(stop: int) -> None:
        if stop <= acc.top:
            return
        top = acc.top
        sums, weights, valid = acc.take(stop)
        pixels, preview_rows = spec.pixels(sums, weights, valid)
        dst.write(pixels, window=Window(0, top, source.width, stop - top))
        look.add_prediction(preview_rows, top)

    def run_batch(items: list[tuple[FloatArray, BoolArray, int]], y: int) -> None:
        batch = torch.from_numpy(np.stack([pad_reflect(t, tile) for t, _, _ in items]))
        with torch.inference_mode():
            out = tile_outputs(model, batch.to(device), task)
        for (_, valid, x), values in zip(items, out, strict=True):
            h, w = valid.shape
            # A pooled head's (K, 1, 1) output is painted over the whole tile.
            vals = values if values.shape[-2:] == (1, 1) else values[:, :h, :w]
            acc.add(vals, window[:h, :w], valid, y, x)
        stats.tiles += len(items)
        if on_tiles is not None:
            on_tiles(len(items))

    with rasterio.open(source.path) as src:
        for i, y in enumerate(rows):
            pending: list[tuple[FloatArray, BoolArray, int]] = []
            for x in cols:
                got = read_tile(src, source, look, y, x, tile, stats, on_tiles)
                if got is None:
                    continue  # nothing to predict: its pixels stay nodata
                data, valid = got
                pending.append((data, valid, x))
                if len(pending) == batch_size:
                    run_batch(pending, y)
                    pending = []
            if pending:
                run_batch(pending, y)
            # Rows above the next tile row are final; write them in whole output blocks.
            if i == len(rows) - 1:
                flush(source.height)
            else:
                flush(rows[i + 1] // OUTPUT_BLOCK * OUTPUT_BLOCK)
    stats.seconds = time.perf_counter() - t0
    return stats


def predict(
    ctx: StageContext,
    raster: Path,
    run: str | None = None,
    output: Path | None = None,
    *,
    tile: int = 256,
    overlap: int = 32,
    batch_size: int = 8,
    probabilities: bool = False,
    ensemble: Path | None = None,
) -> Path | None:
    """Run the `predict` stage: apply a head run to a GeoTIFF of any size.

    Args:
        ctx: the resolved profile and workspace.
        raster: the input GeoTIFF; its bands are the head's input bands, in order.
        run: the head run under ``heads/`` (or a head-run folder); default: the newest.
        output: the output GeoTIFF, or a folder for the default name (default
            ``predictions/<raster stem>-<run>.tif``); the preview is written beside it as
            ``<name>.png``.
        tile: tile side in pixels, a multiple of 32.
        overlap: pixels shared by neighbouring tiles, blended.
        batch_size: tiles per forward pass.
        probabilities: write per-class probabilities (float32) instead of a class map.
        ensemble: the ensemble file (default: the one recorded in the head run).

    Returns:
        The output path, or ``None`` for a dry run.

    Raises:
        ProfileError: for a bad tile size, overlap or batch size.
        ArtifactError: when the head run is missing or is a change-detection head.
        WorkspaceError: when the workspace has no head run.
        DataError: when the raster is missing, unreadable or has other bands than the head.
    """
    raster = Path(raster)
    if ctx.dry_run:
        suffix = ".tif"
        try:
            head_dir = find_head_run(ctx, run)
            run_s = str(ctx.workspace.relative(head_dir))
            from eosfm_cli.models.head_file import read_head_meta

            if (read_head_meta(head_dir).get("config") or {}).get("task") == "detection":
                suffix = ".gpkg"
        except (ArtifactError, WorkspaceError):
            run_s = f"heads/{run or '<newest>'}"
        out_s = str(output) if output else f"predictions/{raster.stem}-{Path(run_s).name}{suffix}"
        print_dry_run(
            ctx,
            "predict",
            [str(raster), f"{run_s}/head.json", f"{run_s}/head.safetensors", "the head's ensemble"],
            [out_s, str(Path(out_s).with_suffix(".png")), "manifest.json"],
        )
        return None
    _check_options(tile, overlap, batch_size)
    folder = find_head_run(ctx, run)
    from eosfm_cli.models.head_file import read_head_meta

    meta = read_head_meta(folder)
    cfg = meta.get("config") or {}
    task, classes = str(cfg.get("task")), [str(c) for c in cfg.get("classes") or []]
    bands = [str(b) for b in cfg.get("input_bands") or []]
    if task == "change_detection":
        raise ArtifactError(
            "predict cannot apply a change_detection head: it needs two dates per pixel",
            where=str(folder / "head.json"),
            hint="use `eosfm evaluate` for change detection, or pass a single-date head",
        )
    if task not in (*DENSE, *POOLED, "detection") or not bands:
        raise ArtifactError(
            f"predict cannot apply this head (task {task!r}, input bands {bands or 'missing'})",
            where=str(folder / "head.json"),
            hint=f"fit a {', '.join((*DENSE, *POOLED, 'detection'))} head with `eosfm fit-head`",
        )
    source = open_source(raster, bands)
    out_path = Path(output) if output is not None else default_output(ctx, raster, folder)
    if out_path.is_dir():
        out_path = out_path / default_output(ctx, raster, folder).name
    if task == "detection":
        from eosfm_cli.stages.predict_boxes import vector_output

        if probabilities:
            raise ProfileError(
                "a detection head writes scored boxes, not class probabilities",
                where="--probabilities",
                hint="drop --probabilities; every box carries its score",
            )
        out_path = vector_output(out_path)
    preview_path = out_path.with_suffix(".png")

    from eosfm_cli.models.head_file import load_generalist

    with ctx.workspace.stage_run(
        "predict", ctx.profile.to_dict(), wait=ctx.wait, emissions=ctx.profile.emissions
    ) as record:
        model, meta = load_generalist(folder, ensemble)
        device = select_device(ctx)
        model.to(device)
        grid = TileGrid(source.height, source.width, tile, overlap)
        info(
            f"predict {raster.name} ({source.width}x{source.height}, {len(bands)} bands) with "
            f"head {folder.name} ({task}): {grid.n_tiles} tiles of {tile} px, overlap {overlap}"
        )
        if task == "detection":
            from eosfm_cli.stages.predict_boxes import write_detections

            found, stats = write_detections(
                model, source, out_path, preview_path, grid, batch_size, device, classes
            )
            kind = "boxes"
            record.extra["detections"] = len(found)
        else:
            spec = OutputSpec.for_head(task, classes, probabilities)
            look = Quicklook.create(source.height, source.width, bands)
            stats = _write_outputs(
                model, source, spec, look, out_path, preview_path, grid, batch_size, device, classes
            )
            kind = spec.kind
        record.inputs = {
            ctx.workspace.relative(raster): fingerprint_file(raster),
            ctx.workspace.relative(folder / "head.safetensors"): fingerprint_file(
                folder / "head.safetensors"
            ),
            # load_generalist checked that this file's sha256 is the recorded one.
            ctx.workspace.relative(ensemble or str(meta.get("ensemble", ""))): str(
                meta.get("ensemble_sha256", "")
            ),
        }
        record.outputs = [ctx.workspace.relative(out_path), ctx.workspace.relative(preview_path)]
        rate = stats.tiles / stats.seconds if stats.seconds > 0 else 0.0
        record.extra.update(
            head=folder.name,
            task=task,
            output=kind,
            tile=tile,
            overlap=overlap,
            batch_size=batch_size,
            tiles=stats.tiles,
            tiles_skipped=stats.skipped,
            tiles_per_second=round(rate, 3),
            size=[source.height, source.width],
        )
    info(
        f"wrote {ctx.workspace.relative(out_path)} and {preview_path.name}: {stats.tiles} tiles "
        f"in {stats.seconds:.1f} s ({rate:.2f} tiles/s)"
        + (f", {stats.skipped} empty tiles skipped" if stats.skipped else "")
    )
    return out_path


def _check_options(tile: int, overlap: int, batch_size: int) -> None:
    if tile < TILE_MULTIPLE or tile % TILE_MULTIPLE:
        raise ProfileError(
            f"tile must be a positive multiple of {TILE_MULTIPLE} (got {tile})",
            where="--tile",
            hint=f"use e.g. {max(TILE_MULTIPLE, round(tile / TILE_MULTIPLE) * TILE_MULTIPLE)}",
        )
    if not 0 <= overlap < tile:
        raise ProfileError(
            f"overlap must be between 0 and the tile size {tile} (got {overlap})",
            where="--overlap",
            hint=f"use e.g. {tile // 8}",
        )
    if batch_size < 1:
        raise ProfileError(f"batch size must be at least 1 (got {batch_size})", "--batch-size")


def _write_outputs(
    model: Generalist,
    source: RasterSource,
    spec: OutputSpec,
    look: Quicklook,
    out_path: Path,
    preview_path: Path,
    grid: TileGrid,
    batch_size: int,
    device: torch.device,
    classes: Sequence[str],
) -> PredictStats:
    """Write the GeoTIFF and its preview under temporary names; rename both on success."""
    import rasterio
    from rasterio.errors import NotGeoreferencedWarning
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from eosfm_cli.io import atomic_path

    progress = Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
        disable=Verbosity.quiet,
    )
    with contextlib.ExitStack() as stack:
        tmp_tif = stack.enter_context(atomic_path(out_path))
        tmp_png = stack.enter_context(atomic_path(preview_path))
        stack.enter_context(rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_MB))
        stack.enter_context(warnings.catch_warnings())
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        stack.enter_context(progress)
        bar = progress.add_task("tiles", total=grid.n_tiles)
        with rasterio.open(tmp_tif, "w", **output_profile(source, spec)) as dst:
            dst.descriptions = tuple(spec.names)
            dst.update_tags(eosfm_head=model.cfg.task, classes=",".join(classes))
            if spec.kind == "classes" and spec.dtype == "uint8" and classes:
                colours = class_colours(len(classes))
                dst.write_colormap(
                    1, {i: tuple(round(255 * v) for v in c) for i, c in enumerate(colours)}
                )
            stats = run_tiles(
                model,
                source,
                dst,
                spec,
                look,
                tile=grid.tile,
                overlap=grid.overlap,
                batch_size=batch_size,
                device=device,
                on_tiles=lambda n: progress.advance(bar, n),
            )
        progress.update(bar, completed=grid.n_tiles)
        write_preview(tmp_png, look, model.cfg.task, classes)
    return stats
