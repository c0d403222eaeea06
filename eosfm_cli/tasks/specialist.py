"""The specialist network: a normaliser, a timm encoder and a task head, trained from scratch.

The input is raw physical values; the module normalises it with its own per-band statistics
(``normalizer``), so a checkpoint is self-contained. The encoder is a timm feature pyramid
under the ``encoder.`` prefix of the state dict.

An image whose sides are not a multiple of the encoder's deepest reduction (32 for ConvNeXt)
is padded up to one and its pyramid cropped back, as the ensemble does
(:func:`~eosfm_cli.models.ensemble_input.pad_to_multiple`): chips smaller than the network's
reach (16 x 16 px, say) train instead of failing inside a convolution, and a specialist sees
the same features in training as inside the ensemble.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

from eosfm_cli.errors import ProfileError
from eosfm_cli.models.ensemble_input import pad_to_multiple
from eosfm_cli.models.heads import InputNorm, create_encoder, feature_channels, feature_reductions
from eosfm_cli.models.pyramid import crop_pyramids
from eosfm_cli.tasks.augment import random_dihedral, random_resized_crop
from eosfm_cli.tasks.base import EOTask


class SpecialistTask(EOTask):
    """The network half of a specialist task: its constructor, encoder, head and augmentation.

    A concrete specialist task lists this class (or a subclass) before its objective, and
    defines :meth:`build_head` and :meth:`forward`.

    Args:
        task: the task kind.
        backbone: timm model name.
        bands: canonical band names fed to the model, in order.
        mean: per-band mean of the raw input.
        std: per-band std of the raw input.
        classes: class names.
        loss: ``ce``, ``dice``, ``bce`` or ``mse``.
        ignore_index: label value to ignore.
        lr: AdamW learning rate.
        weight_decay: AdamW weight decay.
        max_epochs: cosine schedule length.
        pretrained: load timm weights.
        decoder_channels: UPerNet width.
        hidden_dim: MLP width of pooled heads (0: linear).
        freeze_encoder: freeze the encoder (linear probing).
        dataset: experiment name, recorded in the hyper-parameters.
        augment: random flips and 90-degree rotations of training batches (the same transform
            for the image, its second date and its mask).
        drop_path_rate: stochastic depth of the backbone.
        label_smoothing: label smoothing of cross-entropy.
        crop_scale: smallest area fraction of the random-resized crops applied to training
            images of scene-level tasks (classification, multi-label); 1 turns them off.
    """

    def __init__(
        self,
        task: str,
        backbone: str,
        bands: Sequence[str],
        mean: Sequence[float],
        std: Sequence[float],
        classes: Sequence[str] = (),
        loss: str = "ce",
        ignore_index: int | None = None,
        lr: float = 1e-4,
        weight_decay: float = 0.05,
        max_epochs: int = 10,
        pretrained: bool = False,
        decoder_channels: int = 128,
        hidden_dim: int = 0,
        freeze_encoder: bool = False,
        dataset: str | None = None,
        augment: bool = True,
        drop_path_rate: float = 0.0,
        label_smoothing: float = 0.0,
        crop_scale: float = 1.0,
    ) -> None:
        super().__init__()

    def configure_models(self, network: nn.Module | None) -> None:
        """Build the normaliser, the encoder and the head; freeze the encoder if asked."""
        self.build_network()
        if self.hparams["freeze_encoder"]:
            for p in self.encoder.parameters():
                p.requires_grad = False

    def build_network(self) -> None:
        """Build the normaliser, the encoder and the head (this order fixes the random draws)."""
        self.build_encoder()
        self.head = self.build_head(feature_channels(self.encoder))

    def build_encoder(self) -> None:
        """Build the normaliser and the timm encoder."""
        hp = self.hparams
        self.in_chans = len(hp["bands"])
        self.normalizer = InputNorm(hp["mean"], hp["std"])
        self.encoder = create_encoder(
            hp["backbone"],
            self.in_chans,
            hp["pretrained"],
            drop_path_rate=hp.get("drop_path_rate", 0.0),
        )
        self.reductions = feature_reductions(self.encoder)

    def build_head(self, channels: list[int]) -> nn.Module:
        """Return the task head for a pyramid with these channels."""
        raise TypeError(f"{type(self).__name__} must override build_head")

    def encode(self, x: Tensor) -> list[Tensor]:
        """Normalise raw input and return the feature pyramid (padded input, cropped levels)."""
        height, width = int(x.shape[-2]), int(x.shape[-1])
        padded = pad_to_multiple(self.normalizer(x), max(self.reductions))
        feats = list(self.encoder(padded))
        if padded.shape[-2:] == x.shape[-2:]:
            return feats
        return crop_pyramids([feats], self.reductions, height, width)[0]

    def encoder_state_dict(self) -> dict[str, Tensor]:
        """The encoder's weights with plain timm keys."""
        return {k: v.detach().cpu() for k, v in self.encoder.state_dict().items()}

    def augment_batch(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        """One random dihedral transform per sample, then resized crops of scene-level tasks."""
        out = random_dihedral(batch)
        scale = float(self.hparams.get("crop_scale", 1.0))
        if scale < 1.0 and "mask" not in batch and "image2" not in batch:
            out["image"] = random_resized_crop(out["image"], scale)
        return out


def check_backbone(backbone: str, where: str) -> None:
    """Refuse a backbone timm does not know, before anything is written.

    Raises:
        ProfileError: naming the key and the closest timm names.
    """
    import difflib

    import timm

    if timm.is_model(backbone):
        return
    close = difflib.get_close_matches(backbone, timm.list_models(), n=3, cutoff=0.6)
    raise ProfileError(
        f"unknown timm backbone {backbone!r}",
        where=where,
        hint=f"did you mean {', '.join(close)}?" if close else "see timm.list_models()",
    )
