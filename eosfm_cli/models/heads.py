"""Encoders, input normalisation and task heads shared by specialists and downstream heads.

- :func:`create_encoder` builds any timm model as a feature pyramid (``features_only=True``).
- :class:`InputNorm` normalises raw physical values with per-channel statistics.
- :class:`UPerNet` is the dense decoder of the paper (PPM on the deepest level + FPN), 128
  channels by default, followed by a 3x3 conv and a 1x1 conv to the outputs.
- :class:`PooledHead` is the classification / multi-label head (global pooling + linear or MLP).
- :func:`faster_rcnn` is the detection head: torchvision's Faster R-CNN over any feature
  pyramid (a specialist's, or the ensemble's fused one) through an FPN.

Decoder convolutions use GroupNorm so that they behave the same with any batch size, including
the 1x1 pooled branch of the PPM and per-rank batches under DDP.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def create_encoder(
    backbone: str,
    in_chans: int,
    pretrained: bool = False,
    out_indices: Sequence[int] | None = None,
    drop_path_rate: float = 0.0,
) -> nn.Module:
    """Create a timm feature-pyramid encoder.

    Args:
        backbone: timm model name (``convnextv2_atto``).
        in_chans: number of input channels.
        pretrained: load timm's pretrained weights (needs network access).
        out_indices: feature levels to return (timm's default when ``None``).
        drop_path_rate: stochastic depth (only passed when non-zero).

    Returns:
        The encoder; ``encoder.feature_info`` gives channels and reductions.
    """
    import timm

    kwargs: dict[str, Any] = {
        "features_only": True,
        "in_chans": in_chans,
        "pretrained": pretrained,
    }
    if out_indices is not None:
        kwargs["out_indices"] = tuple(out_indices)
    if drop_path_rate:
        kwargs["drop_path_rate"] = drop_path_rate
    return timm.create_model(backbone, **kwargs)


def feature_channels(encoder: nn.Module) -> list[int]:
    """Channels per pyramid level, from timm's ``feature_info``."""
    return list(encoder.feature_info.channels())  # type: ignore[union-attr, operator]


def feature_reductions(encoder: nn.Module) -> list[int]:
    """Stride per pyramid level, from timm's ``feature_info``."""
    return list(encoder.feature_info.reduction())  # type: ignore[union-attr, operator]


class InputNorm(nn.Module):
    """``(x - mean) / std`` per channel, with the statistics stored as buffers.

    Args:
        mean: per-channel mean (raw units).
        std: per-channel standard deviation (raw units, > 0).
    """

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        self.mean: Tensor
        self.std: Tensor
        self.register_buffer("mean", torch.tensor(list(mean), dtype=torch.float32).view(-1, 1, 1))
        self.register_buffer("std", torch.tensor(list(std), dtype=torch.float32).view(-1, 1, 1))

    def forward(self, x: Tensor) -> Tensor:
        """Normalise a batch ``(B, C, H, W)``."""
        return (x - self.mean) / self.std


def _gn(channels: int) -> nn.GroupNorm:
    # At least 4 channels per group, so a 1x1 map (the PPM's pooled branch) still has a
    # variance to normalise with, whatever the batch size.
    groups = next((g for g in (32, 16, 8, 4, 2) if channels % g == 0 and channels // g >= 4), 1)
    return nn.GroupNorm(groups, channels)


class ConvNormAct(nn.Sequential):
    """Conv → GroupNorm → ReLU."""

    def __init__(self, cin: int, cout: int, kernel: int = 3) -> None:
        super().__init__(
            nn.Conv2d(cin, cout, kernel, padding=kernel // 2, bias=False),
            _gn(cout),
            nn.ReLU(inplace=True),
        )


class UPerNet(nn.Module):
    """UPerNet decoder: pyramid pooling on the deepest level, then a top-down FPN.

    Args:
        in_channels: channels of each pyramid level, shallow to deep.
        channels: decoder width.
        pool_scales: PPM output sizes.
    """

    def __init__(
        self,
        in_channels: Sequence[int],
        channels: int = 128,
        pool_scales: Sequence[int] = (1, 2, 3, 6),
    ) -> None:
        super().__init__()
        self.in_channels = list(in_channels)
        self.channels = channels
        deep = self.in_channels[-1]
        self.ppm = nn.ModuleList(
            nn.Sequential(nn.AdaptiveAvgPool2d(s), ConvNormAct(deep, channels, 1))
            for s in pool_scales
        )
        self.bottleneck = ConvNormAct(deep + len(pool_scales) * channels, channels, 3)
        self.lateral = nn.ModuleList(ConvNormAct(c, channels, 1) for c in self.in_channels[:-1])
        self.fpn = nn.ModuleList(ConvNormAct(channels, channels, 3) for _ in self.in_channels[:-1])
        self.fuse = ConvNormAct(len(self.in_channels) * channels, channels, 3)

    def forward(self, feats: Sequence[Tensor]) -> Tensor:
        """Decode a pyramid into one map at the stride of its shallowest level."""
        deep = feats[-1]
        size = deep.shape[-2:]
        pooled = [deep] + [
            F.interpolate(branch(deep), size=size, mode="bilinear", align_corners=False)
            for branch in self.ppm
        ]
        top = self.bottleneck(torch.cat(pooled, dim=1))
        laterals = [lat(f) for lat, f in zip(self.lateral, feats[:-1], strict=True)] + [top]
        for i in range(len(laterals) - 1, 0, -1):
            laterals[i - 1] = laterals[i - 1] + F.interpolate(
                laterals[i],
                size=laterals[i - 1].shape[-2:],
                mode="bilinear",
                align_corners=False,
            )
        outs = [conv(lat) for conv, lat in zip(self.fpn, laterals[:-1], strict=True)] + [top]
        target = outs[0].shape[-2:]
        outs = [outs[0]] + [
            F.interpolate(o, size=target, mode="bilinear", align_corners=False) for o in outs[1:]
        ]
        return self.fuse(torch.cat(outs, dim=1))  # type: ignore[no-any-return]


class DenseHead(nn.Module):
    """UPerNet + 3x3 conv + 1x1 conv to ``out_channels``, upsampled to the input size.

    Args:
        in_channels: pyramid channels.
        out_channels: classes (segmentation) or 1 (regression).
        channels: decoder width.
    """

    def __init__(self, in_channels: Sequence[int], out_channels: int, channels: int = 128) -> None:
        super().__init__()
        self.decoder = UPerNet(in_channels, channels)
        self.conv = ConvNormAct(channels, channels, 3)
        self.out = nn.Conv2d(channels, out_channels, 1)

    def forward(self, feats: Sequence[Tensor], size: tuple[int, int]) -> Tensor:
        """Return logits of shape ``(B, out_channels, *size)``."""
        y = self.out(self.conv(self.decoder(feats)))
        return F.interpolate(y, size=size, mode="bilinear", align_corners=False)


class PooledHead(nn.Module):
    """Global average pooling of one pyramid level, then a linear layer or a small MLP.

    Args:
        in_channels: channels of the pooled level.
        out_channels: number of outputs.
        hidden: MLP width; ``0`` for a linear head.
        dropout: dropout before the last layer.
    """

    def __init__(
        self, in_channels: int, out_channels: int, hidden: int = 0, dropout: float = 0.0
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        if hidden:
            layers += [nn.Linear(in_channels, hidden), nn.GELU()]
            in_channels = hidden
        if dropout:
            layers.append(nn.Dropout(dropout))
        layers.append(nn.Linear(in_channels, out_channels))
        self.net = nn.Sequential(*layers)

    def forward(self, feat: Tensor) -> Tensor:
        """Map a feature map ``(B, C, H, W)`` (or pooled ``(B, C)``) to logits."""
        if feat.dim() == 4:
            feat = feat.mean(dim=(2, 3))
        return self.net(feat)  # type: ignore[no-any-return]


class PyramidFPN(nn.Module):
    """A feature pyramid through an FPN, as a torchvision detection backbone.

    The encoder is reached through ``pyramid`` (a callable, not a sub-module), so its weights
    stay where their owner keeps them (a specialist's ``encoder.`` prefix, the ensemble's
    specialists) and are not repeated under the detector.

    Args:
        pyramid: maps a batch to the feature levels.
        in_channels: channels of the levels kept.
        out_channels: FPN width (torchvision reads ``out_channels``).
        levels: indices of the levels fed to the FPN.
    """

    def __init__(
        self,
        pyramid: Callable[[Tensor], list[Tensor]],
        in_channels: Sequence[int],
        out_channels: int,
        levels: Sequence[int],
    ) -> None:
        from torchvision.ops import FeaturePyramidNetwork
        from torchvision.ops.feature_pyramid_network import LastLevelMaxPool

        super().__init__()
        self.pyramid = pyramid
        self.levels = list(levels)
        self.fpn = FeaturePyramidNetwork(
            list(in_channels), out_channels, extra_blocks=LastLevelMaxPool()
        )
        self.out_channels = out_channels

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        """FPN maps ``"0"``.. (one per kept level, shallow to deep) plus ``"pool"``."""
        feats = self.pyramid(x)
        named = OrderedDict((str(j), feats[i]) for j, i in enumerate(self.levels))
        return self.fpn(named)  # type: ignore[no-any-return]


def unresized_transform(channels: int, size: int) -> nn.Module:
    """Return torchvision's detection transform with normalisation and resizing turned off.

    The caller normalises before the detector (a specialist with its own statistics; the
    ensemble per specialist, from raw values), so mean 0 / std 1 here; the images keep their
    size (``min_size`` / ``max_size`` only record DIOR's 800 px), so boxes stay in pixels of the
    input and no resampling blurs small objects. Batching (zero padding to a multiple of 32) is
    kept.
    """
    from torchvision.models.detection.transform import GeneralizedRCNNTransform

    class UnresizedTransform(GeneralizedRCNNTransform):
        def resize(
            self, image: Tensor, target: dict[str, Tensor] | None = None
        ) -> tuple[Tensor, dict[str, Tensor] | None]:
            return image, target

    return UnresizedTransform(size, size, [0.0] * channels, [1.0] * channels)


def faster_rcnn(
    pyramid: Callable[[Tensor], list[Tensor]],
    channels: Sequence[int],
    reductions: Sequence[int],
    width: int,
    num_classes: int,
    in_chans: int,
) -> nn.Module:
    """A Faster R-CNN over a feature pyramid, never pretrained.

    Levels of stride 4 and coarser feed a ``FeaturePyramidNetwork`` of ``width`` channels plus
    a max-pooled extra level; each level has anchors of 4 and 8 times its stride at aspect
    ratios 0.5, 1 and 2 (16 to 512 px for a stride 4..64 pyramid). The detector's class 0 is
    background, so it has ``num_classes + 1`` outputs.

    Args:
        pyramid: maps an input batch to its feature levels.
        channels: channels per level.
        reductions: stride per level.
        width: FPN channels.
        num_classes: object classes (background excluded).
        in_chans: input channels (for the batching transform).
    """
    from torchvision.models.detection import FasterRCNN
    from torchvision.models.detection.anchor_utils import AnchorGenerator
    from torchvision.ops import MultiScaleRoIAlign

    # A stride-2 level (ResNet stems) would quadruple the anchors for little gain.
    levels = [i for i, r in enumerate(reductions) if r >= 4] or [len(reductions) - 1]
    strides = [reductions[i] for i in levels]
    strides.append(2 * strides[-1])  # the FPN's max-pooled extra level
    backbone = PyramidFPN(pyramid, [channels[i] for i in levels], width, levels)
    anchors = AnchorGenerator(
        sizes=tuple((4 * s, 8 * s) for s in strides),
        aspect_ratios=((0.5, 1.0, 2.0),) * len(strides),
    )
    detector = FasterRCNN(
        backbone,
        num_classes=num_classes + 1,
        rpn_anchor_generator=anchors,
        box_roi_pool=MultiScaleRoIAlign([str(j) for j in range(len(levels))], 7, 2),
    )
    detector.transform = unresized_transform(in_chans, 800)
    return detector
