"""Models: specialists, the EosFM ensemble encoder, band adaptation, gates and heads.

``from eosfm_cli.models import EosFM`` works as a library import. Torch is imported only when
an attribute that needs it is first used, so ``eosfm_cli.models.spec`` stays light for the CLI.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from eosfm_cli.models.adaptation import BandPlan
    from eosfm_cli.models.channel_source import ChannelSource
    from eosfm_cli.models.ensemble import EosFM
    from eosfm_cli.models.spec import SpecialistSpec

__all__ = ["BandPlan", "ChannelSource", "EosFM", "SpecialistSpec"]

_LAZY = {
    "BandPlan": "eosfm_cli.models.adaptation",
    "ChannelSource": "eosfm_cli.models.channel_source",
    "EosFM": "eosfm_cli.models.ensemble",
    "SpecialistSpec": "eosfm_cli.models.spec",
}


def __getattr__(name: str) -> Any:
    """Import public classes on first use (PEP 562)."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
