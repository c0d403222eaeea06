"""Feature pyramids of several specialists as one: check, crop, normalise, concatenate, fuse.

The specialists of an ensemble each return a timm feature pyramid. For them to be read as one
encoder, their levels must have the same reductions; levels computed on a padded input are
cropped back; and the pyramids are merged level by level (optionally normalised per specialist
first, optionally fused by a 1x1 convolution after). The ensemble and the generalist's gated
fusion both merge through :func:`fuse_levels`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Literal

import torch
from torch import nn

from eosfm_cli.errors import ArtifactError

NormalizationType = Literal["batch", "layer"]


def pyramid_shape(
    names: Sequence[str], encoders: Sequence[nn.Module]
) -> tuple[list[list[int]], list[int]]:
    """Each specialist's channels per level, and the reductions they all share.

    Args:
        names: the specialists' names (for messages).
        encoders: their timm ``features_only`` models, in the same order (at least one).

    Returns:
        ``(channels, reductions)``: one channel list per specialist, and the common reductions.

    Raises:
        ArtifactError: when two specialists' pyramids have different reductions.
    """
    channels: list[list[int]] = []
    reductions: list[int] | None = None
    for name, encoder in zip(names, encoders, strict=True):
        info: Any = encoder.feature_info
        channels.append([int(c) for c in info.channels()])
        own = [int(r) for r in info.reduction()]
        if reductions is None:
            reductions = own
        elif own != reductions:
            raise ArtifactError(
                f"specialist {name!r} has pyramid reductions {own}, but "
                f"{names[0]!r} has {reductions}; levels cannot be concatenated",
                hint="give the specialists out_indices with matching reductions, or ablate one",
            )
    assert reductions is not None
    return channels, reductions


def crop_pyramids(
    pyramids: list[list[torch.Tensor]], reductions: Sequence[int], height: int, width: int
) -> list[list[torch.Tensor]]:
    """Crop every level of padded-input pyramids to ``ceil(H / r)`` by ``ceil(W / r)``.

    Args:
        pyramids: per specialist, one tensor per level, computed on a padded input.
        reductions: each level's reduction.
        height: the input's height before padding.
        width: the input's width before padding.
    """
    sizes = [(math.ceil(height / r), math.ceil(width / r)) for r in reductions]
    return [
        [f[..., :h, :w] for f, (h, w) in zip(pyramid, sizes, strict=True)] for pyramid in pyramids
    ]


def feature_norm(kind: NormalizationType, channels: int) -> nn.Module:
    """A parameter-free per-level normaliser: ``BatchNorm2d`` or ``GroupNorm(1, C)``."""
    if kind == "batch":
        return nn.BatchNorm2d(channels, affine=False)
    return nn.GroupNorm(1, channels, affine=False)


def check_merge_options(normalization_type: str, fusion: str, fuse_to_mult: float) -> None:
    """Refuse an unknown normaliser or fusion, or a non-positive fusion multiplier.

    Raises:
        ValueError: naming the bad option.
    """
    if normalization_type not in ("batch", "layer"):
        raise ValueError(
            f"normalization_type must be 'batch' or 'layer', not {normalization_type!r}"
        )
    if fusion not in ("concat", "conv1x1"):
        raise ValueError(f"fusion must be 'concat' or 'conv1x1', not {fusion!r}")
    if fuse_to_mult <= 0:
        raise ValueError(f"fuse_to_mult must be positive, not {fuse_to_mult}")


def merge_layers(
    specialist_channels: Sequence[Sequence[int]],
    normalization_type: NormalizationType | None,
    conv1x1: bool,
    fuse_to_mult: float,
) -> tuple[nn.ModuleList | None, nn.ModuleList | None, list[int]]:
    """The layers that merge pyramids, and the merged pyramid's channels.

    Args:
        specialist_channels: each specialist's channels per level.
        normalization_type: the per-specialist normaliser, or ``None`` for none.
        conv1x1: fuse each concatenated level by a 1x1 convolution.
        fuse_to_mult: that convolution's output channels, as a multiple of the first
            specialist's.

    Returns:
        ``(norms, fusion, out_channels)`` as :func:`fuse_levels` takes them.
    """
    levels = range(len(specialist_channels[0]))
    out = [sum(ch[level] for ch in specialist_channels) for level in levels]
    norms = None
    if normalization_type is not None:
        norms = nn.ModuleList(
            nn.ModuleList(feature_norm(normalization_type, c) for c in channels)
            for channels in specialist_channels
        )
    fusion = None
    if conv1x1:
        fused = [max(1, round(c * fuse_to_mult)) for c in specialist_channels[0]]
        fusion = nn.ModuleList(
            nn.Conv2d(cin, cout, kernel_size=1) for cin, cout in zip(out, fused, strict=True)
        )
        out = fused
    return norms, fusion, out


def fuse_levels(
    features: Sequence[Sequence[torch.Tensor]],
    levels: Sequence[int],
    norms: nn.ModuleList | None = None,
    fusion: nn.ModuleList | None = None,
) -> list[torch.Tensor]:
    """Normalise (if given), concatenate and fuse per-specialist pyramids level by level.

    Args:
        features: per specialist, one tensor per entry of ``levels``.
        levels: the pyramid levels the features are of (indexes ``norms`` and ``fusion``).
        norms: per specialist, one normaliser per pyramid level.
        fusion: one layer per pyramid level applied to the concatenation.

    Returns:
        One tensor per entry of ``levels``.
    """
    out = []
    for j, level in enumerate(levels):
        parts = [pyramid[j] for pyramid in features]
        if norms is not None:
            parts = [
                per_specialist[level](part)  # type: ignore[index]
                for per_specialist, part in zip(norms, parts, strict=True)
            ]
        fused = parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)
        if fusion is not None:
            fused = fusion[level](fused)
        out.append(fused)
    return out
