"""Distilling a frozen ensemble into one student encoder.

The student is a timm ``features_only`` backbone behind its own input normaliser. At each pyramid
level a learned 1x1 projection maps its features to the teacher's channel count. The loss is
``cosine_weight * (1 - cos) + l1_weight * smooth_l1`` between the projection and the teacher's
concatenated features, per pixel, averaged over pixels and levels. The teacher's features are
standardised per channel first, with statistics measured on the first training batches, so
that no specialist dominates the loss by its scale. Random band dropout replaces a seeded
fraction of the student's input bands by their training mean (zero after normalisation), so the
student stays usable on band subsets, as the ensemble is. The teacher always sees every band.

The teacher is held outside the module's parameters and state dict: checkpoints hold the
student and its projections only. A batch may carry the teacher's per-specialist pyramids
(``features``, from the feature cache); the teacher then only fuses them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import lightning.pytorch as pl
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from eosfm_cli.models.heads import InputNorm, create_encoder, feature_channels, feature_reductions
from eosfm_cli.tasks.base import warmup_cosine

#: Batches whose teacher features set the per-channel standardisation.
STAT_BATCHES = 4


class DistillTask(pl.LightningModule):
    """Train a student to reproduce a frozen teacher's feature pyramid.

    Args:
        teacher: the frozen ensemble (any module returning one tensor per level).
        teacher_channels: its channels per level.
        backbone: the student's timm model name.
        bands: the student's input bands (the teacher's input, in the same order).
        mean: per-band mean of the training data (raw units).
        std: per-band standard deviation.
        lr: AdamW learning rate.
        weight_decay: AdamW weight decay.
        max_epochs: epochs of the schedule.
        band_dropout: probability that a sample's band is replaced by its mean.
        cosine_weight: weight of the cosine term.
        l1_weight: weight of the smooth-L1 term.
        normalize_targets: standardise the teacher's features per channel.
    """

    monitor: ClassVar[str] = "val/loss"
    monitor_mode: ClassVar[str] = "min"

    def __init__(
        self,
        teacher: nn.Module,
        teacher_channels: Sequence[int],
        backbone: str,
        bands: Sequence[str],
        mean: Sequence[float],
        std: Sequence[float],
        lr: float = 1e-3,
        weight_decay: float = 0.05,
        max_epochs: int = 10,
        band_dropout: float = 0.2,
        cosine_weight: float = 1.0,
        l1_weight: float = 1.0,
        normalize_targets: bool = True,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["teacher"])
        # Kept out of the module tree: not trained, not saved, not moved by Lightning.
        self.__dict__["teacher"] = teacher.eval().requires_grad_(False)
        self.norm = InputNorm(mean, std)
        self.student = create_encoder(backbone, len(bands))
        self.student_channels = feature_channels(self.student)
        self.reductions = feature_reductions(self.student)
        if len(self.student_channels) != len(teacher_channels):
            raise ValueError(
                f"student {backbone} has {len(self.student_channels)} feature levels, the teacher "
                f"{len(teacher_channels)}: choose a student with as many levels"
            )
        self.projections = nn.ModuleList(
            nn.Conv2d(c, t, 1) for c, t in zip(self.student_channels, teacher_channels, strict=True)
        )
        for level, t in enumerate(teacher_channels):
            self.register_buffer(f"target_mean_{level}", torch.zeros(t))
            self.register_buffer(f"target_std_{level}", torch.ones(t))
        self.stat_batches: Tensor
        self.register_buffer("stat_batches", torch.zeros((), dtype=torch.long))
        self.epoch_losses: list[float] = []
        self._epoch_sum = 0.0
        self._epoch_n = 0

    @property
    def teacher(self) -> Any:
        """The frozen teacher (an :class:`~eosfm_cli.models.EosFM` when features are cached)."""
        return self.__dict__["teacher"]

    def on_fit_start(self) -> None:
        """Put the teacher on the student's device."""
        self.teacher.to(self.device)

    def student_features(self, x: Tensor) -> list[Tensor]:
        """The student's own feature pyramid of a raw batch."""
        return list(self.student(self.norm(x)))

    def forward(self, x: Tensor) -> list[Tensor]:
        """The student's projected pyramid (the teacher's channel counts) of a raw batch."""
        return [p(f) for p, f in zip(self.projections, self.student_features(x), strict=True)]

    @torch.no_grad()
    def targets(self, x: Tensor, cached: list[list[Tensor]] | None = None) -> list[Tensor]:
        """The teacher's pyramid of a raw batch, standardised per channel.

        Args:
            x: the raw batch (every band: the teacher never sees band dropout).
            cached: the teacher's per-specialist pyramids of ``x`` from the feature cache;
                only fused here (``None``: the teacher runs on ``x``).
        """
        fused = self.teacher(x) if cached is None else self.teacher.fuse(cached)
        feats = [f.float() for f in fused]
        if not self.hparams["normalize_targets"]:
            return feats
        if self.training and int(self.stat_batches) < STAT_BATCHES:
            self._update_statistics(feats)
        return [
            (f - self._stat("mean", i).view(1, -1, 1, 1)) / self._stat("std", i).view(1, -1, 1, 1)
            for i, f in enumerate(feats)
        ]

    def _stat(self, kind: str, level: int) -> Tensor:
        return getattr(self, f"target_{kind}_{level}")  # type: ignore[no-any-return]

    def _update_statistics(self, feats: list[Tensor]) -> None:
        """Running per-channel mean and std over the first :data:`STAT_BATCHES` batches."""
        n = int(self.stat_batches)
        for i, f in enumerate(feats):
            mean = f.mean((0, 2, 3))
            std = f.std((0, 2, 3)).clamp_min(1e-6)
            m, s = self._stat("mean", i), self._stat("std", i)
            m.mul_(n / (n + 1)).add_(mean / (n + 1))
            s.mul_(n / (n + 1)).add_(std / (n + 1))
        self.stat_batches.add_(1)

    def drop_bands(self, x: Tensor) -> Tensor:
        """Replace each sample's bands by their mean with probability ``band_dropout``."""
        p = float(self.hparams["band_dropout"])
        if not self.training or p <= 0:
            return x
        keep = torch.rand(x.shape[0], x.shape[1], 1, 1, device=x.device) >= p
        # Never drop every band of a sample.
        keep[~keep.flatten(1).any(1)] = True
        return torch.where(keep, x, self.norm.mean.to(x.dtype))

    def level_losses(self, pred: list[Tensor], target: list[Tensor]) -> list[Tensor]:
        """The loss of each level."""
        cw, lw = float(self.hparams["cosine_weight"]), float(self.hparams["l1_weight"])
        out = []
        for p, t in zip(pred, target, strict=True):
            if p.shape[-2:] != t.shape[-2:]:
                p = F.interpolate(p, size=t.shape[-2:], mode="bilinear", align_corners=False)
            p = p.float()
            cos = F.cosine_similarity(p, t, dim=1).mean()
            out.append(cw * (1 - cos) + lw * F.smooth_l1_loss(p, t))
        return out

    def feature_cosine(self, x: Tensor, cached: list[list[Tensor]] | None = None) -> list[float]:
        """Mean per-pixel cosine between the student's projection and the teacher, per level."""
        target, pred = self.targets(x, cached), self(x)
        return [
            float(F.cosine_similarity(p.float(), t, dim=1).mean())
            for p, t in zip(pred, target, strict=True)
        ]

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> Tensor:
        """One step on a batch of raw images."""
        x = batch["image"].float()
        target = self.targets(x, batch.get("features"))
        losses = self.level_losses(self(self.drop_bands(x)), target)
        loss = torch.stack(losses).mean()
        self.log("train/loss", loss, prog_bar=True, batch_size=x.shape[0])
        self._epoch_sum += float(loss.detach()) * x.shape[0]
        self._epoch_n += x.shape[0]
        return loss

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        """Validation loss (no band dropout)."""
        x = batch["image"].float()
        target = self.targets(x, batch.get("features"))
        loss = torch.stack(self.level_losses(self(x), target)).mean()
        self.log("val/loss", loss, prog_bar=True, batch_size=x.shape[0])

    def teacher_scale_state(self) -> dict[str, Tensor]:
        """The student and its projections, as a ``ProjectedEncoder``'s state dict.

        The projections learned standardised targets; the teacher's per-channel mean and std
        are folded into them (``W' = s W``, ``b' = s b + m``), so the encoder's pyramid is on
        the teacher's own scale and channels.

        Returns:
            ``encoder.*`` (the student's timm weights) and ``projections.<level>.*`` keys.
        """
        state = {f"encoder.{k}": v.detach().clone() for k, v in self.student.state_dict().items()}
        for level, proj in enumerate(self.projections):
            assert isinstance(proj, nn.Conv2d) and proj.bias is not None
            m, s = self._stat("mean", level).detach(), self._stat("std", level).detach()
            state[f"projections.{level}.weight"] = proj.weight.detach() * s.view(-1, 1, 1, 1)
            state[f"projections.{level}.bias"] = proj.bias.detach() * s + m
        return state

    def on_train_epoch_end(self) -> None:
        """Record the epoch's mean training loss."""
        if self._epoch_n:
            self.epoch_losses.append(self._epoch_sum / self._epoch_n)
        self._epoch_sum, self._epoch_n = 0.0, 0

    def configure_optimizers(self) -> Any:
        """AdamW with warm-up and cosine decay, as the specialists."""
        opt = torch.optim.AdamW(
            self.parameters(),
            lr=float(self.hparams["lr"]),
            weight_decay=float(self.hparams["weight_decay"]),
        )
        return {"optimizer": opt, "lr_scheduler": warmup_cosine(opt, self.hparams["max_epochs"])}
