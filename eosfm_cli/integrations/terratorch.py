"""The EoS-FM ensemble as a terratorch backbone named ``eosfm``.

Importing this module (with terratorch installed: ``pip install 'eosfm[terratorch]'``)
registers the backbone in terratorch's backbone registry, so that an ``EncoderDecoderFactory``
config can say::

    backbone: eosfm
    backbone_ensemble: ensembles/eosfm.safetensors   # native file, or a reference .pth list
    backbone_input_bands: [B02, B03, B04, B08]       # the input's bands, in channel order

and any keyword option of :class:`~eosfm_cli.models.ensemble.EosFM` prefixed with
``backbone_``. Band adaptation stays by name: each specialist receives the bands it expects,
from substitutes or fills where the input lacks them. A reference ``.pth`` file is read with
``torch.load(weights_only=True)``, so no code is ever unpickled.

``terratorch fit -c config.yaml`` imports a ``custom_modules`` package from the working
directory: put ``import eosfm_cli.integrations.terratorch`` in ``custom_modules/__init__.py``
(see ``docs/terratorch.md``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from eosfm_cli.models.ensemble import EosFM
from eosfm_cli.models.feature_info import PyramidInfo

#: The backbone's name in terratorch's registry.
NAME = "eosfm"


class EosFMBackbone(nn.Module):
    """An :class:`EosFM` with the interface terratorch's factories read.

    Attributes:
        ensemble: the wrapped ensemble.
        out_channels: channels of each pyramid level (terratorch sizes decoders from it).
        feature_info: timm-style description of the levels (channels, reduction, name).
    """

    def __init__(
        self,
        ensemble: str | Path,
        input_bands: Sequence[str] | str,
        freeze: bool = True,
        **options: Any,
    ) -> None:
        """Load the ensemble.

        Args:
            ensemble: the ensemble file (native ``.safetensors`` or reference ``.pth``).
            input_bands: the input's band names, in channel order.
            freeze: keep the specialists frozen (terratorch's ``freeze_backbone`` also
                calls :meth:`freeze`).
            **options: keyword options of :class:`EosFM` (``ablate``, ``min_coverage``...).
        """
        super().__init__()
        self.ensemble = EosFM.from_file(ensemble, input_bands, freeze=freeze, **options)
        self.out_channels: list[int] = list(self.ensemble.out_channels)
        self.feature_info: PyramidInfo = self.ensemble.feature_info

    def forward(self, x: torch.Tensor, **kwargs: Any) -> list[torch.Tensor]:
        """One feature tensor per pyramid level, finest first (``kwargs`` are ignored)."""
        return self.ensemble(x)

    def freeze(self) -> None:
        """Freeze every weight of the ensemble; its specialists stay in eval mode."""
        self.ensemble.requires_grad_(False)
        self.ensemble.frozen = True
        self.ensemble.specialists.eval()


def eosfm(
    ensemble: str | Path, input_bands: Sequence[str] | str, freeze: bool = True, **options: Any
) -> EosFMBackbone:
    """Build the ``eosfm`` backbone (the constructor terratorch's registry calls).

    Args:
        ensemble: the ensemble file.
        input_bands: the input's band names, in channel order.
        freeze: keep the specialists frozen.
        **options: keyword options of :class:`EosFM`.
    """
    return EosFMBackbone(ensemble, input_bands, freeze=freeze, **options)


def register() -> None:
    """Register :func:`eosfm` in terratorch's backbone registry (idempotent).

    Raises:
        ImportError: when terratorch is not installed.
    """
    try:
        from terratorch.registry import TERRATORCH_BACKBONE_REGISTRY
    except ImportError as err:
        raise ImportError(
            "eosfm_cli.integrations.terratorch needs terratorch: pip install 'eosfm[terratorch]'"
        ) from err
    if NAME not in TERRATORCH_BACKBONE_REGISTRY:
        TERRATORCH_BACKBONE_REGISTRY.register(eosfm)


register()
