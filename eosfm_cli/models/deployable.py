"""The generalist as one plain graph: raw physical values in, the head's output out.

:class:`DeployableEncoder` and :class:`DeployableModel` hold the same modules as a fitted
:class:`~eosfm_cli.models.generalist.Generalist` (the specialists, their band plans and
normalisation, the feature normalisers and fusion layers, the head) but run them without what
only training and checking need: no input checks with a data-dependent branch (NaN refusal),
no ``inference_mode`` and clone, no compiled fast path, and the encoder gates, fixed once a head
is fitted, folded into constants. What is left traces into one graph that
:func:`torch.export.export` and the ONNX exporter accept.

The input is ``[B, len(input_bands), H, W]`` raw values in the head's band order. ``H`` and
``W`` should be multiples of :attr:`DeployableEncoder.multiple` (the largest reduction, 32 for
ConvNeXt): other sizes are padded like :class:`~eosfm_cli.models.ensemble.EosFM` pads them, but
an exported graph keeps only the branch it was traced with.

Example:
    >>> model = DeployableModel.from_head_run(Path("heads/seg"))
    >>> probabilities, class_map = model(x)
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import torch
from torch import Tensor, nn

from eosfm_cli.errors import ArtifactError
from eosfm_cli.models.ensemble_input import pad_to_multiple
from eosfm_cli.models.pyramid import crop_pyramids, fuse_levels

if TYPE_CHECKING:
    from eosfm_cli.models.ensemble import EosFM
    from eosfm_cli.models.generalist import Generalist

#: Tasks whose head labels a whole tile (outputs ``[B, K]``).
POOLED_TASKS = ("classification", "multilabel")
#: Tasks whose head labels every pixel (outputs ``[B, K, H, W]``).
DENSE_TASKS = ("segmentation", "regression")


class DeployableEncoder(nn.Module):
    """The frozen ensemble's fused pyramid of raw values, as a traceable module.

    Args:
        encoder: the ensemble (its specialists, band plans and merge layers are shared, not
            copied).
        levels: the pyramid levels to return (default: all).
        gate_weights: one fixed weight per active specialist, multiplied into its features
            before they are merged (a fitted head's encoder gates), or ``None``.
    """

    gate_weights: Tensor | None

    def __init__(
        self,
        encoder: EosFM,
        levels: Sequence[int] | None = None,
        gate_weights: Tensor | None = None,
    ) -> None:
        super().__init__()
        self.inputs = encoder.inputs
        self.specialists = encoder.specialists
        self.feature_norms = encoder.feature_norms
        self.fusion_layers = encoder.fusion_layers
        self.input_bands = list(encoder.input_bands)
        self.active_names = list(encoder.active_names)
        self.reductions = list(encoder.reductions)
        self.levels = list(levels) if levels is not None else list(range(len(self.reductions)))
        self.out_channels = [int(encoder.out_channels[lv]) for lv in self.levels]
        self.multiple = max(self.reductions)
        if gate_weights is not None:
            gate_weights = gate_weights.detach().clone().float()
        self.register_buffer("gate_weights", gate_weights, persistent=False)

    def forward(self, x: Tensor) -> list[Tensor]:
        """Encode raw values ``[B, C, H, W]`` into one tensor per entry of :attr:`levels`."""
        # Left symbolic: under export a traced size stays a dimension, not a constant.
        height, width = x.shape[-2], x.shape[-1]
        padded = pad_to_multiple(x, self.multiple)
        pyramids = [
            list(encoder(prepare(padded)))
            for prepare, encoder in zip(self.inputs, self.specialists, strict=True)
        ]
        if padded.shape[-2] != height or padded.shape[-1] != width:
            pyramids = crop_pyramids(pyramids, self.reductions, height, width)
        feats = [[pyramid[lv] for lv in self.levels] for pyramid in pyramids]
        if self.gate_weights is not None:
            feats = [[f * self.gate_weights[i] for f in pyr] for i, pyr in enumerate(feats)]
        return fuse_levels(feats, self.levels, self.feature_norms, self.fusion_layers)


class DeployableModel(nn.Module):
    """A fitted head over its ensemble: raw values in, probabilities (and class map) out.

    Outputs, by task:

    - segmentation: ``probabilities [B, K, H, W]`` (softmax) and ``classes [B, H, W]``;
    - classification: ``probabilities [B, K]`` (softmax) and ``classes [B]``;
    - multilabel: ``probabilities [B, K]`` (sigmoid per class) and ``classes [B]`` (the top
      class, as ``eosfm predict`` maps it);
    - regression: ``values [B, 1, H, W]``.

    Args:
        model: the fitted generalist, in eval mode (its modules are shared, not copied).

    Raises:
        ArtifactError: for a change-detection or detection head (two dates per pixel, and
            boxes whose post-processing is not a fixed graph, stay PyTorch-only).
    """

    def __init__(self, model: Generalist) -> None:
        super().__init__()
        task = model.cfg.task
        if task not in POOLED_TASKS + DENSE_TASKS:
            raise ArtifactError(
                f"a {task} head cannot be exported as one graph; it runs in PyTorch only",
                where="head task",
                hint="use `eosfm predict --runtime torch` (or `evaluate`) for this head",
            )
        gates = None
        if model.gates is not None:
            # Fixed once fitted: the eval-mode weights the PyTorch path multiplies by.
            with torch.no_grad():
                gates = model.gates.eval()()
        self.encoder = DeployableEncoder(
            cast("EosFM", model.encoder), model.levels, gate_weights=gates
        )
        self.head = model.head
        self.task = task
        self.classes = list(model.cfg.classes)
        self.input_bands = list(model.cfg.input_bands)

    @classmethod
    def from_head_run(cls, folder: Path, ensemble: Path | None = None) -> DeployableModel:
        """Load a head run (and the ensemble file it was fitted on) as a deployable model.

        Args:
            folder: the head-run folder (``head.json``, ``head.safetensors``).
            ensemble: the ensemble file (default: the one recorded in ``head.json``).

        Raises:
            ArtifactError: as :func:`~eosfm_cli.models.head_file.load_generalist` does, or for
                a head that does not export.
        """
        from eosfm_cli.models.head_file import load_generalist

        model, _ = load_generalist(folder, ensemble)
        return cls(model).eval()

    @property
    def output_names(self) -> list[str]:
        """The names of :meth:`forward`'s outputs, in order."""
        return ["values"] if self.task == "regression" else ["probabilities", "classes"]

    def forward(self, x: Tensor) -> tuple[Tensor, ...]:
        """Apply the encoder and head to raw values ``[B, C, H, W]``; see the class outputs."""
        feats = self.encoder(x)
        if self.task in POOLED_TASKS:
            logits = self.head(feats[-1])
        else:
            logits = self.head(feats, (x.shape[-2], x.shape[-1]))
        if self.task == "regression":
            return (logits,)
        probs = torch.sigmoid(logits) if self.task == "multilabel" else torch.softmax(logits, 1)
        return probs, probs.argmax(dim=1)


def deployable_summary(module: DeployableModel | DeployableEncoder) -> dict[str, Any]:
    """What an exported graph's metadata says about its input and outputs.

    Returns:
        ``input_bands``, ``active_specialists``, ``multiple`` (the spatial size must divide by
        it), and ``task``/``classes``/``outputs`` for a head or ``levels``/``channels``/
        ``reductions`` for an encoder.
    """
    encoder = module.encoder if isinstance(module, DeployableModel) else module
    summary: dict[str, Any] = {
        "input_bands": encoder.input_bands,
        "active_specialists": encoder.active_names,
        "multiple": encoder.multiple,
    }
    if isinstance(module, DeployableModel):
        summary.update(task=module.task, classes=module.classes, outputs=module.output_names)
    else:
        summary.update(
            levels=encoder.levels,
            channels=encoder.out_channels,
            reductions=[encoder.reductions[lv] for lv in encoder.levels],
            outputs=[f"level{lv}" for lv in encoder.levels],
        )
    return summary
