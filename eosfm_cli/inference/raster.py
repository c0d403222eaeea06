"""The input GeoTIFF, checked against the model's bands: which bands to read, in which order.

A raster's band descriptions that all name catalog bands (:mod:`eosfm_cli.bands`) say which
band is which: they are checked against the model's bands, and bands named in another order,
or a product holding more bands than the model's (all 13 Sentinel-2 bands, say), are read by
name. Descriptions that are not all band names say nothing: eosfm never guesses bands by
their position, so such a raster needs ``input_bands`` (``predict --input-bands``), the names
of its bands in file order. The mapping used is always printed.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eosfm_cli.console import info
from eosfm_cli.errors import DataError


@dataclass
class RasterSource:
    """What inference needs to know about the input raster.

    Attributes:
        path: the GeoTIFF.
        height: rows.
        width: columns.
        indexes: 1-based band indexes to read, in the model's band order.
        nodata: the nodata value of each band read (``None``: none declared).
        profile: the rasterio profile (CRS and transform are copied to the output).
    """

    path: Path
    height: int
    width: int
    indexes: list[int]
    nodata: list[float | None]
    profile: dict[str, Any] = field(default_factory=dict)


def open_source(
    path: Path, bands: Sequence[str], input_bands: Sequence[str] | None = None
) -> RasterSource:
    """Check the input raster against the model's bands and describe it.

    Args:
        path: the input GeoTIFF.
        bands: the model's input bands, in channel order.
        input_bands: the names of the raster's bands in file order (``--input-bands``); they
            replace its band descriptions. Required when the descriptions are not all
            catalog band names.

    Raises:
        DataError: when the file is missing or unreadable, has the wrong number of bands, or
            its band descriptions name other bands, or name no bands and ``input_bands`` is
            not given.
        BandError: when ``input_bands`` holds a name that is not a catalog band.
    """
    head = _header(path)
    count, height, width = head["count"], head["height"], head["width"]
    descriptions, nodatavals, profile = head["descriptions"], head["nodatavals"], head["profile"]
    names = _band_names(path, count, descriptions, bands, input_bands)
    indexes = band_indexes(path, count, names, bands)
    mapping = ", ".join(f"{i}→{b}" for i, b in zip(indexes, bands, strict=True))
    info(f"{path.name}: reading band {mapping}")
    return RasterSource(
        path=path,
        height=height,
        width=width,
        indexes=indexes,
        nodata=[None if v is None else float(v) for v in (nodatavals[i - 1] for i in indexes)],
        profile=profile,
    )


def _band_names(
    path: Path,
    count: int,
    descriptions: Sequence[str | None],
    bands: Sequence[str],
    input_bands: Sequence[str] | None,
) -> list[str] | None:
    """The raster's band names: ``input_bands``, else its descriptions when they name bands.

    Returns ``None`` only when the band count is wrong anyway (:func:`band_indexes` says so).
    """
    from eosfm_cli.bands import canonical

    if input_bands is not None:
        given = [canonical(str(b)) for b in input_bands]
        if len(given) != count:
            raise DataError(
                f"--input-bands names {len(given)} band(s), the raster has {count}",
                where=str(path),
                hint=f"name each of its {count} bands, in file order",
            )
        return given
    names = catalog_names(descriptions)
    if names is None and count == len(bands):
        shown = ", ".join(repr(d) if d else "none" for d in descriptions)
        raise DataError(
            f"the raster's band descriptions ({shown}) are not band names, and bands are "
            "never read by position",
            where=str(path),
            hint=f"pass --input-bands naming its bands in file order, e.g. "
            f"--input-bands {','.join(bands)}",
        )
    return names


def band_indexes(
    path: Path, count: int, names: list[str] | None, bands: Sequence[str]
) -> list[int]:
    """The 1-based indexes that read the model's bands from a raster of ``count`` bands.

    Args:
        path: the raster (for messages).
        count: its number of bands.
        names: its bands' catalog names, or ``None`` when its descriptions do not name them.
        bands: the model's input bands, in channel order.

    Raises:
        DataError: when the raster has the wrong number of bands or names other bands.
    """
    expected = ", ".join(bands)
    if count > len(bands) and names is not None and set(bands) <= set(names):
        # A multi-band product (e.g. all 13 S2 bands): read just the model's bands, by name.
        info(f"{path.name}: reading {expected} by name from its {count} bands")
        return _indexes_by_name(names, bands)
    if count != len(bands):
        raise DataError(
            f"the raster has {count} band(s), the head expects {len(bands)}: {expected}",
            where=str(path),
            hint=f"give a GeoTIFF whose bands are {expected}, in that order",
        )
    if names is not None and names != list(bands):
        if sorted(names) != sorted(bands):
            raise DataError(
                f"the raster's bands are named {', '.join(names)}, the head expects {expected}",
                where=str(path),
                hint="give a raster with the head's bands, or fit a head on these bands",
            )
        info(f"{path.name}: bands read by name in the head's order ({expected})")
        return _indexes_by_name(names, bands)
    return list(range(1, count + 1))


def catalog_names(descriptions: Sequence[str | None]) -> list[str] | None:
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


def scene_bands(path: Path, input_bands: Sequence[str] | None = None) -> list[str]:
    """The catalog names of a raster's bands: ``input_bands``, else its band descriptions.

    For a model that takes whatever the raster holds (``embed``), so its bands are the model's.

    Raises:
        DataError: when the file is missing or unreadable, ``input_bands`` names another number
            of bands, or its descriptions are not all band names and ``input_bands`` is not
            given (bands are never read by position).
        BandError: when ``input_bands`` holds a name that is not a catalog band.
    """
    from eosfm_cli.bands import canonical

    head = _header(path)
    count, descriptions = head["count"], head["descriptions"]
    if input_bands is not None:
        given = [canonical(str(b)) for b in input_bands]
        if len(given) != count:
            raise DataError(
                f"--input-bands names {len(given)} band(s), the raster has {count}",
                where=str(path),
                hint=f"name each of its {count} bands, in file order",
            )
        return given
    names = catalog_names(descriptions)
    if names is None:
        shown = ", ".join(repr(d) if d else "none" for d in descriptions)
        raise DataError(
            f"the raster's band descriptions ({shown}) are not band names, and bands are "
            "never read by position",
            where=str(path),
            hint="pass --input-bands naming its bands in file order, e.g. "
            "--input-bands B02,B03,B04,B08",
        )
    return names


def _header(path: Path) -> dict[str, Any]:
    """A raster's band count, size, descriptions, nodata values and profile (no pixels read).

    Raises:
        DataError: when the file is missing or unreadable.
    """
    import rasterio
    from rasterio.errors import NotGeoreferencedWarning, RasterioError

    if not path.is_file():
        raise DataError("raster not found", where=str(path), hint="pass an existing GeoTIFF")
    try:
        with warnings.catch_warnings():
            # A raster without georeferencing is fine: the output copies whatever it has.
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            with rasterio.open(path) as src:
                return {
                    "count": src.count,
                    "height": src.height,
                    "width": src.width,
                    "descriptions": list(src.descriptions),
                    "nodatavals": list(src.nodatavals),
                    "profile": dict(src.profile),
                }
    except (RasterioError, OSError) as err:
        raise DataError(f"cannot read the raster ({err})", where=str(path)) from None
