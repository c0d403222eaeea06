"""A timm ``features_only`` encoder followed by a 1x1 projection per pyramid level.

A distilled student may be written with the projections it learned to the teacher's channel
counts kept in the file (``eosfm distill --channels teacher``). Its pyramid then has the
teacher's channels, on the teacher's scale, so a head sized for the teacher fits it. The
projections cannot be folded into the backbone's weights, since every ConvNeXt stage ends in a
residual addition; :class:`ProjectedEncoder` runs them after it instead. Its state dict holds
``encoder.<timm key>`` and ``projections.<level>.{weight,bias}``, which is what an ensemble
file stores for such a specialist.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from eosfm_cli.models.feature_info import PyramidInfo


class ProjectedEncoder(nn.Module):
    """An encoder whose level ``i`` goes through a 1x1 convolution to ``channels[i]`` channels.

    Args:
        encoder: a timm ``features_only`` model.
        channels: the output channels of each level, one per level of ``encoder``.

    Raises:
        ValueError: when ``channels`` has not one entry per level.
    """

    def __init__(self, encoder: nn.Module, channels: Sequence[int]) -> None:
        super().__init__()
        info: Any = encoder.feature_info
        own = [int(c) for c in info.channels()]
        if len(own) != len(channels):
            raise ValueError(
                f"{len(channels)} projections for an encoder with {len(own)} feature levels"
            )
        self.encoder = encoder
        self.projections = nn.ModuleList(
            nn.Conv2d(c, int(t), 1) for c, t in zip(own, channels, strict=True)
        )
        reductions = [int(r) for r in info.reduction()]
        self.feature_info = PyramidInfo([int(c) for c in channels], reductions)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The projected pyramid of a normalised batch."""
        feats = self.encoder(x)
        return [p(f) for p, f in zip(self.projections, feats, strict=True)]
