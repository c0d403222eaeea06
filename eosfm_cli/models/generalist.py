"""The generalist in use: the EosFM ensemble, learned encoder gates and a light task head.

A fitted head is stored as a *head run* (:mod:`eosfm_cli.models.head_file`); what it stores is
:meth:`Generalist.trainable_state` and :class:`HeadConfig`.

Detection heads are a Faster R-CNN (:func:`~eosfm_cli.models.heads.faster_rcnn`) over the fused
pyramid: the FPN, RPN and box head train, the specialists stay frozen. They run on whole raw
images (lists of ``[C, H, W]``), so their features are never cached.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from eosfm_cli.errors import ArtifactError
from eosfm_cli.models.heads import (
    DenseHead,
    PooledHead,
    faster_rcnn,
    feature_channels,
    feature_reductions,
)
from eosfm_cli.models.pyramid import fuse_levels
from eosfm_cli.models.selection import EncoderGates

DENSE_TASKS = ("segmentation", "change_detection", "regression")


@dataclass
class HeadConfig:
    """Everything needed to rebuild a generalist around an ensemble file.

    Attributes:
        task: task kind.
        classes: class names (empty for regression).
        input_bands: the downstream input's band names, in channel order.
        head: ``linear`` or ``mlp`` for pooled tasks (dense tasks use UPerNet).
        hidden_dim: MLP width.
        decoder_channels: UPerNet width (FPN width for detection).
        k: number of specialists kept by the gates (``None``: no gates).
        gate: gate kind.
        freeze: specialists frozen.
        ensemble_options: keyword options of :class:`~eosfm_cli.models.ensemble.EosFM`.
    """

    task: str
    classes: list[str]
    input_bands: list[str]
    head: str = "linear"
    hidden_dim: int = 256
    decoder_channels: int = 128
    k: int | None = None
    gate: str = "straight_through"
    freeze: bool = True
    ensemble_options: dict[str, Any] = field(default_factory=dict)

    @property
    def out_dim(self) -> int:
        """Number of head outputs."""
        return 1 if self.task == "regression" else len(self.classes)


class Generalist(nn.Module):
    """EosFM encoder + gates + head.

    Args:
        encoder: the ensemble encoder (an :class:`~eosfm_cli.models.ensemble.EosFM`).
        cfg: the head configuration.
    """

    def __init__(self, encoder: nn.Module, cfg: HeadConfig) -> None:
        super().__init__()
        self.encoder = encoder
        self.cfg = cfg
        self._drop: frozenset[int] = frozenset()
        n = len(encoder.active_indices)  # type: ignore[arg-type]
        self.gates = EncoderGates(n, cfg.k, cfg.gate) if cfg.k else None  # type: ignore[arg-type]
        channels = feature_channels(encoder)
        self.head: nn.Module
        if cfg.task in ("classification", "multilabel"):
            hidden = cfg.hidden_dim if cfg.head == "mlp" else 0
            self.head = PooledHead(channels[-1], cfg.out_dim, hidden)
        elif cfg.task == "change_detection":
            self.head = DenseHead([2 * c for c in channels], cfg.out_dim, cfg.decoder_channels)
        elif cfg.task in DENSE_TASKS:
            self.head = DenseHead(channels, cfg.out_dim, cfg.decoder_channels)
        elif cfg.task == "detection":
            self.head = faster_rcnn(
                self._fused_pyramid,
                channels,
                feature_reductions(encoder),
                cfg.decoder_channels,
                len(cfg.classes),
                len(cfg.input_bands),
            )
        else:
            raise ArtifactError(f"no head for task {cfg.task!r}", where="downstream task")

    @property
    def active_names(self) -> list[str]:
        """Names of the specialists the encoder runs."""
        return list(self.encoder.active_names)  # type: ignore[arg-type]

    @property
    def levels(self) -> list[int]:
        """Pyramid levels the head reads: the deepest for pooled heads, all for dense ones."""
        n = len(feature_channels(self.encoder))
        return [n - 1] if self.cfg.task in ("classification", "multilabel") else list(range(n))

    def _fused_pyramid(self, x: Tensor) -> list[Tensor]:
        """The gated, fused pyramid of a raw batch (the detector's backbone)."""
        return self._gated_fuse(self.specialist_features(x), self._drop)

    @contextlib.contextmanager
    def dropping(self, drop: frozenset[int]) -> Iterator[None]:
        """Zero these specialists' features inside the detector (ablation)."""
        previous, self._drop = self._drop, frozenset(drop)
        try:
            yield
        finally:
            self._drop = previous

    def detect(self, images: list[Tensor]) -> list[dict[str, Tensor]]:
        """Detections of raw images ``[C, H, W]`` (eval mode).

        Returns:
            Per image: xyxy ``boxes`` in pixels, ``scores`` and 0-based ``labels``.
        """
        if self.cfg.task != "detection":
            raise ArtifactError(f"a {self.cfg.task} head does not detect", where="task")
        out = self.head(images)
        return [{**d, "labels": d["labels"] - 1} for d in out]

    def specialist_features(self, x: Tensor) -> list[list[Tensor]]:
        """Per-specialist pyramids of a raw input batch, restricted to :attr:`levels`."""
        feats = self.encoder.specialist_features(x)  # type: ignore[operator]
        levels = self.levels
        return [[pyr[lv] for lv in levels] for pyr in feats]

    def _gated_fuse(
        self, feats: list[list[Tensor]], drop: frozenset[int] = frozenset()
    ) -> list[Tensor]:
        """Gate, normalise, concatenate and fuse features of :attr:`levels`."""
        if self.gates is not None:
            w = self.gates()
            feats = [[f * w[i] for f in pyr] for i, pyr in enumerate(feats)]
        if drop:
            feats = [[f * 0 for f in pyr] if i in drop else pyr for i, pyr in enumerate(feats)]
        norms = getattr(self.encoder, "feature_norms", None)
        fusion = getattr(self.encoder, "fusion_layers", None)
        return fuse_levels(feats, self.levels, norms, fusion)

    def head_forward(
        self,
        feats: list[list[Tensor]],
        size: tuple[int, int],
        feats2: list[list[Tensor]] | None = None,
        drop: frozenset[int] = frozenset(),
    ) -> Tensor:
        """Logits from per-specialist features (cached or fresh).

        Args:
            feats: per active specialist, one tensor per pyramid level.
            size: output size of dense heads.
            feats2: the second date's features (change detection).
            drop: indices of specialists whose features are zeroed (ablation).
        """
        fused = self._gated_fuse(feats, drop)
        if self.cfg.task in ("classification", "multilabel"):
            return self.head(fused[-1])  # type: ignore[no-any-return]
        if self.cfg.task == "change_detection":
            if feats2 is None:
                raise ArtifactError("change detection needs two dates", where="image2")
            fused2 = self._gated_fuse(feats2, drop)
            fused = [torch.cat([a, b], dim=1) for a, b in zip(fused, fused2, strict=True)]
        return self.head(fused, size)  # type: ignore[no-any-return]

    def forward(self, x: Tensor, x2: Tensor | None = None) -> Tensor:
        """Logits of a raw input batch (and its second date for change detection).

        Detection heads give boxes, not logits: use :meth:`detect`.
        """
        if self.cfg.task == "detection":
            raise ArtifactError("a detection head gives boxes: call detect()", where="task")
        size = (int(x.shape[-2]), int(x.shape[-1]))
        feats2 = self.specialist_features(x2) if x2 is not None else None
        return self.head_forward(self.specialist_features(x), size, feats2)

    def trainable_state(self) -> dict[str, Tensor]:
        """The state that a head run stores (everything but frozen specialist weights)."""
        return {
            k: v.detach().cpu().contiguous()
            for k, v in self.state_dict().items()
            if not (self.cfg.freeze and k.startswith("encoder.specialists."))
        }


def build_generalist(ensemble_path: str | Path, cfg: HeadConfig) -> Generalist:
    """Build a fresh generalist around an ensemble file."""
    from eosfm_cli.models.ensemble import EosFM

    encoder = EosFM.from_file(
        ensemble_path, input_bands=cfg.input_bands, freeze=cfg.freeze, **cfg.ensemble_options
    )
    return Generalist(encoder, cfg)
