"""One specialist of an ensemble: its timm backbone, and the module that prepares its input.

:func:`build_specialist` creates a specialist's timm ``features_only`` model and loads its
weights strictly, turning every mismatch into an :class:`~eosfm_cli.errors.ArtifactError` that
names the specialist. :class:`SpecialistInput` is the per-batch half of its band plan: gather
the planned channels, write the fills, normalise with the specialist's own statistics.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from eosfm_cli.errors import ArtifactError
from eosfm_cli.models.adaptation import BandPlan, gather_channels
from eosfm_cli.models.projected import ProjectedEncoder
from eosfm_cli.models.spec import SpecialistSpec


class SpecialistInput(nn.Module):
    """The per-batch half of a band plan, plus the specialist's input normalisation.

    Gathers the planned input channels, writes the fills (the training mean, so exactly 0 after
    normalisation) and applies ``(x - mean) / std``. All tensors are precomputed buffers, so the
    module moves with the ensemble and costs one gather and two element-wise ops per batch.

    Args:
        plan: the specialist's band plan.
        spec: the specialist (its mean and std).
    """

    index: torch.Tensor
    fill_mask: torch.Tensor | None
    fill_values: torch.Tensor | None
    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, plan: BandPlan, spec: SpecialistSpec) -> None:
        super().__init__()
        index, mask, values = plan.gather_tensors("cpu")
        # Derived from the plan, so kept out of the state dict.
        self.register_buffer("index", index.clone(), persistent=False)
        self.register_buffer("fill_mask", None if mask is None else mask.clone(), False)
        self.register_buffer("fill_values", None if values is None else values.clone(), False)
        # A substitute on another value scale is converted by folding its unit factor into the
        # normalisation: (x * s - mean) / std == (x - mean / s) / (std / s).
        scale = torch.tensor([c.scale for c in plan.channels], dtype=torch.float32)
        mean = torch.tensor(spec.mean, dtype=torch.float32) / scale
        std = torch.tensor(spec.std, dtype=torch.float32) / scale
        self.register_buffer("mean", mean.view(1, -1, 1, 1), False)
        self.register_buffer("std", std.view(1, -1, 1, 1), False)
        self.identity = plan.is_identity

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return the specialist's normalised input ``[B, Cspec, H, W]`` from ``[B, Cin, H, W]``."""
        x = gather_channels(x, self.index, self.fill_mask, self.fill_values, identity=self.identity)
        return (x - self.mean) / self.std


def build_specialist(
    spec: SpecialistSpec, state_dict: Mapping[str, torch.Tensor] | None
) -> nn.Module:
    """Create a specialist's timm ``features_only`` model and load its weights strictly.

    A specialist with :attr:`~SpecialistSpec.projections` is wrapped in a
    :class:`~eosfm_cli.models.projected.ProjectedEncoder`.

    Args:
        spec: the specialist (backbone, in_chans, out_indices, projections).
        state_dict: its weights (``None`` when the file's weights were not read, which is an
            error for a specialist that is to run).

    Returns:
        The model with the weights loaded, in training mode.

    Raises:
        ArtifactError: when there are no weights, timm does not know the backbone or cannot
            build it with these options, or the weights' keys or shapes do not match the model.
    """
    import timm

    if state_dict is None:
        raise ArtifactError(f"specialist {spec.name!r} is active but has no weights")

    where = f"specialist {spec.name!r} ({spec.backbone}, in_chans={spec.in_chans})"
    options: dict[str, Any] = {
        "pretrained": False,
        "features_only": True,
        "in_chans": spec.in_chans,
    }
    if spec.out_indices is not None:
        options["out_indices"] = tuple(spec.out_indices)
    try:
        model = timm.create_model(spec.backbone, **options)
    except RuntimeError as err:
        raise ArtifactError(
            str(err).split("\n")[0], where, hint="check the timm backbone name"
        ) from None
    except (ValueError, TypeError, IndexError, KeyError, AssertionError) as err:
        raise ArtifactError(
            f"timm cannot build it with features_only and out_indices={spec.out_indices}: {err}",
            where,
        ) from None
    if spec.projections is not None:
        try:
            model = ProjectedEncoder(model, spec.projections)
        except ValueError as err:
            hint = "check the specialist's projections"
            raise ArtifactError(str(err), where, hint=hint) from None

    expected = model.state_dict()
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    mismatched = [
        f"{k} is {tuple(state_dict[k].shape)}, expected {tuple(expected[k].shape)}"
        for k in expected
        if k in state_dict and state_dict[k].shape != expected[k].shape
    ]
    problems = []
    if mismatched:
        problems.append(f"{len(mismatched)} shape mismatches ({'; '.join(mismatched[:3])})")
    if missing:
        problems.append(f"{len(missing)} missing keys ({', '.join(missing[:3])})")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected keys ({', '.join(unexpected[:3])})")
    if problems:
        raise ArtifactError(
            "weights do not match the declared backbone: " + "; ".join(problems),
            where,
            hint="check the backbone and in_chans recorded for this specialist",
        )
    model.load_state_dict(dict(state_dict), strict=True)
    return model
