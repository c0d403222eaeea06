"""The raw input of an ensemble: checked against its declared bands, cast and padded.

An ensemble reads ``[B, len(input_bands), H, W]`` raw values. Before any specialist runs, the
batch is checked (4-D, one channel per declared band, no NaN), cast to the ensemble's dtype, and
padded so that every pyramid level divides evenly; the levels are cropped back afterwards
(:func:`~eosfm_cli.models.pyramid.crop_pyramids`).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from eosfm_cli.errors import BandError, DataError


def check_input(
    x: torch.Tensor, input_bands: Sequence[str], dtype: torch.dtype, check_nan: bool
) -> torch.Tensor:
    """Check a raw batch and return it in ``dtype``.

    Args:
        x: the batch.
        input_bands: the declared band names, one per channel.
        dtype: the ensemble's dtype.
        check_nan: refuse NaN values.

    Raises:
        BandError: if the channel count differs from ``len(input_bands)``.
        DataError: if ``x`` is not 4-D or holds NaN.
    """
    if x.dim() != 4:
        raise DataError(
            f"input has shape {tuple(x.shape)}, expected [B, C, H, W]",
            hint="add a batch dimension",
        )
    if x.shape[1] != len(input_bands):
        raise BandError(
            f"input has {x.shape[1]} channels but {len(input_bands)} input bands are "
            f"declared ({','.join(input_bands)})",
            hint="declare one band name per input channel, in channel order",
        )
    if x.dtype != dtype:
        x = x.to(dtype)
    if check_nan and torch.isnan(x).any():
        bad = int(torch.isnan(x).sum())
        raise DataError(
            f"input holds {bad} NaN values",
            hint="fill or mask no-data pixels before encoding",
        )
    return x


def pad_to_multiple(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Pad ``[B, C, H, W]`` on the bottom and right so that H and W divide by ``multiple``.

    Reflection padding keeps edge statistics; an image too small to reflect is replicated.
    """
    height, width = x.shape[-2:]
    pad_h, pad_w = -height % multiple, -width % multiple
    if not pad_h and not pad_w:
        return x
    mode = "reflect" if pad_h < height and pad_w < width else "replicate"
    return F.pad(x, (0, pad_w, 0, pad_h), mode=mode)
