"""Embedding maps: the frozen ensemble's features at one pyramid level, tile by tile.

**Grid.** Level ``l`` of the pyramid has reduction ``r`` (4, 8, 16, 32 for ConvNeXt): its grid
is ``ceil(H / r)`` by ``ceil(W / r)`` pixels, each covering ``r`` x ``r`` input pixels, so its
transform is the input's scaled by ``r``. Tiles are laid out on that grid
(:class:`LevelGrid`): ``tile / r`` level pixels stepping by ``(tile - overlap) / r``, so every
tile starts on a level pixel and its features fall on the grid without resampling. A tile
past the raster's edge is padded by reflection, as :class:`~eosfm_cli.models.EosFM` pads
non-divisible inputs.

**Blending.** Overlapping tiles' features are blended with predict's squared-sine ramps
(:mod:`~eosfm_cli.inference.tiling`) at the level's scale, and finished rows are written by
:class:`~eosfm_cli.inference.strips.StripWriter` into any sink with ``height``, ``width`` and
``write(pixels, window=...)`` (a GeoTIFF, or the GeoParquet patch table). Where only one tile
covers a level pixel its weight is exactly 1, so the value written is that tile's feature.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from eosfm_cli.inference.pca import PcaBasis
from eosfm_cli.inference.raster import RasterSource
from eosfm_cli.inference.reading import OnInput, Tile, batches, pad_reflect, read_tile
from eosfm_cli.inference.strips import StripWriter
from eosfm_cli.inference.tiling import BoolArray, FloatArray, TileGrid, TileStats, blend_window

if TYPE_CHECKING:
    import torch

    from eosfm_cli.models.ensemble import EosFM

#: A batch ``(B, C, T, T)`` of input tiles to ``(B, K, T / r, T / r)`` level features.
EmbedFn = Callable[["torch.Tensor"], FloatArray]


@dataclass(frozen=True)
class LevelGrid:
    """The tiles of a raster laid out on one pyramid level's grid.

    Attributes:
        height: input rows.
        width: input columns.
        reduction: the level's reduction ``r``.
        tile: tile side in input pixels (a multiple of ``r``).
        overlap: overlap in input pixels (a multiple of ``r``).
    """

    height: int
    width: int
    reduction: int
    tile: int
    overlap: int

    @property
    def level_height(self) -> int:
        """Rows of the level's grid."""
        return math.ceil(self.height / self.reduction)

    @property
    def level_width(self) -> int:
        """Columns of the level's grid."""
        return math.ceil(self.width / self.reduction)

    @property
    def tiles(self) -> TileGrid:
        """The tiles in level pixels."""
        r = self.reduction
        return TileGrid(self.level_height, self.level_width, self.tile // r, self.overlap // r)


def level_channel_names(model: EosFM, level: int) -> list[str]:
    """``<specialist>:<channel>`` for every channel of a level (concatenated in ensemble order)."""
    return [
        f"{name}:{c}"
        for name, chans in zip(model.active_names, model.specialist_channels, strict=True)
        for c in range(chans[level])
    ]


def embed_fn(
    model: EosFM, level: int, device: torch.device, basis: PcaBasis | None = None
) -> EmbedFn:
    """The ensemble's level-``level`` features of a batch (projected onto ``basis`` if given)."""

    def run(batch: torch.Tensor) -> FloatArray:
        return model(batch.to(device))[level].float().cpu().numpy()

    return projected(run, basis)


def projected(fn: EmbedFn, basis: PcaBasis | None) -> EmbedFn:
    """``fn``'s features projected onto ``basis`` (``fn`` itself without one)."""
    if basis is None:
        return fn

    def run(batch: torch.Tensor) -> FloatArray:
        return basis.project(fn(batch))

    return run


def level_valid(valid: BoolArray, r: int, h: int, w: int) -> BoolArray:
    """Level pixels ``(h, w)`` holding data: any of their ``r`` x ``r`` input pixels does."""
    pad = np.zeros((h * r, w * r), np.bool_)
    vh, vw = min(valid.shape[0], h * r), min(valid.shape[1], w * r)
    pad[:vh, :vw] = valid[:vh, :vw]
    return np.asarray(pad.reshape(h, r, w, r).any(axis=(1, 3)), np.bool_)


def level_tiles(
    src: Any,
    source: RasterSource,
    grid: LevelGrid,
    stats: TileStats,
    positions: list[tuple[int, int]],
    on_input: OnInput | None = None,
    on_tiles: Callable[[int], None] | None = None,
) -> Iterator[Tile]:
    """Read the tiles at these ``(row, col)`` grid positions; ``y``/``x`` are level pixels.

    A tile's ``valid`` is its level-pixel mask; a tile without data is counted as skipped.
    """
    r, tiles = grid.reduction, grid.tiles
    for i, j in positions:
        y, x = tiles.rows[i], tiles.cols[j]
        data, valid = read_tile(src, source, y * r, x * r, grid.tile)
        if on_input is not None:
            on_input(data, valid, y * r, x * r)
        h, w = min(tiles.tile, tiles.height - y), min(tiles.tile, tiles.width - x)
        mask = level_valid(valid, r, h, w)
        if not mask.any():
            stats.skipped += 1
            if on_tiles is not None:
                on_tiles(1)
            continue
        yield Tile(data, mask, y, x, i, j)


def run_level_tiles(
    fn: EmbedFn,
    source: RasterSource,
    sink: Any,
    to_pixels: Any,
    channels: int,
    grid: LevelGrid,
    *,
    batch_size: int,
    on_input: OnInput | None = None,
    on_rows: Callable[[FloatArray, int], None] | None = None,
    on_tiles: Callable[[int], None] | None = None,
) -> TileStats:
    """Run ``fn`` over every tile and write the blended level grid into ``sink``.

    Args:
        fn: the per-batch feature function (run under ``torch.inference_mode``).
        source: the input raster.
        sink: ``level_height`` x ``level_width``, with ``write(pixels, window=...)``.
        to_pixels: blended ``(sums, weights, valid)`` rows to ``(pixels, preview rows)``.
        channels: values per level pixel that ``fn`` returns.
        grid: the tiles on the level's grid.
        batch_size: tiles per call of ``fn``.
        on_input: called with every input tile read (input pixel offsets).
        on_rows: called with finished rows' preview values and their first level row.
        on_tiles: called with the number of tiles just finished.

    Returns:
        Tile counts and the time taken.
    """
    import rasterio
    import torch

    tiles = grid.tiles
    window = blend_window(tiles.tile, tiles.overlap)
    writer = StripWriter(sink, channels, tiles.tile, to_pixels, on_rows)
    stats = TileStats()
    t0 = time.perf_counter()
    with rasterio.open(source.path) as src:
        for i in range(len(tiles.rows)):
            row = level_tiles(
                src,
                source,
                grid,
                stats,
                [(i, j) for j in range(len(tiles.cols))],
                on_input,
                on_tiles,
            )
            for items in batches(row, batch_size):
                batch = torch.from_numpy(np.stack([pad_reflect(t.data, grid.tile) for t in items]))
                with torch.inference_mode():
                    out = fn(batch)
                for t, values in zip(items, out, strict=True):
                    h, w = t.valid.shape
                    writer.add(values[:, :h, :w], window[:h, :w], t.valid, t.y, t.x)
                stats.tiles += len(items)
                if on_tiles is not None:
                    on_tiles(len(items))
            writer.row_done(tiles.rows[i + 1] if i + 1 < len(tiles.rows) else None)
    stats.seconds = time.perf_counter() - t0
    return stats


def sample_vectors(
    fn: EmbedFn,
    source: RasterSource,
    grid: LevelGrid,
    *,
    seed: int,
    max_tiles: int = 16,
    max_vectors: int = 50_000,
) -> FloatArray:
    """A seeded sample ``(N, K)`` of the scene's valid feature vectors, for fitting a PCA.

    ``max_tiles`` tiles are drawn without replacement from the grid, run, and at most
    ``max_vectors`` of their valid level pixels kept, all from one generator seeded ``seed``.
    """
    import rasterio
    import torch

    rng = np.random.default_rng(seed)
    tiles = grid.tiles
    every = [(i, j) for i in range(len(tiles.rows)) for j in range(len(tiles.cols))]
    picked = sorted(rng.choice(len(every), size=min(max_tiles, len(every)), replace=False))
    found: list[FloatArray] = []
    with rasterio.open(source.path) as src:
        for t in level_tiles(src, source, grid, TileStats(), [every[k] for k in picked]):
            batch = torch.from_numpy(pad_reflect(t.data, grid.tile)[None])
            with torch.inference_mode():
                feats = fn(batch)[0]
            h, w = t.valid.shape
            found.append(feats[:, :h, :w][:, t.valid].T)
    if not found:
        return np.zeros((0, 0), np.float32)
    vectors = np.concatenate(found).astype(np.float32)
    if len(vectors) > max_vectors:
        vectors = vectors[np.sort(rng.choice(len(vectors), size=max_vectors, replace=False))]
    return vectors


def level_grid(
    reductions: list[int], level: int, height: int, width: int, tile: int, overlap: int
) -> LevelGrid:
    """The tiles of a ``height`` x ``width`` raster on pyramid level ``level``, checked.

    Raises:
        ProfileError: for a level the pyramid does not have, or an overlap that is not a
            multiple of the level's reduction.
    """
    from eosfm_cli.errors import ProfileError

    levels = ", ".join(f"{i} (1/{r})" for i, r in enumerate(reductions))
    if not 0 <= level < len(reductions):
        raise ProfileError(
            f"the ensemble's pyramid has no level {level}",
            where="`level=`",
            hint=f"choose one of its levels: {levels}",
        )
    r = reductions[level]
    if overlap % r:
        raise ProfileError(
            f"overlap {overlap} is not a multiple of level {level}'s reduction {r}",
            where="`overlap=`",
            hint=f"use e.g. {max(r, overlap // r * r)}",
        )
    return LevelGrid(height, width, r, tile, overlap)
