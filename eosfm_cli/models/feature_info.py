"""A feature pyramid's description with the accessors of timm's ``FeatureInfo``.

Decoders written for timm ``features_only`` encoders (segmentation_models_pytorch, torchgeo,
our own heads) read ``encoder.feature_info.channels()`` and ``.reduction()`` instead of running
a dummy forward pass. :class:`PyramidInfo` gives the ensemble the same face.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class PyramidLevel:
    """One level of a feature pyramid.

    Attributes:
        num_chs: channels of the level's feature map.
        reduction: its stride relative to the input.
        module: the level's name (``level0``, ``level1``, ...).
    """

    num_chs: int
    reduction: int
    module: str

    def as_dict(self) -> dict[str, Any]:
        """The level as timm writes it: ``{"num_chs", "reduction", "module"}``."""
        return {"num_chs": self.num_chs, "reduction": self.reduction, "module": self.module}


class PyramidInfo:
    """Channels, reduction and name of each pyramid level, queried like timm's ``FeatureInfo``.

    Args:
        channels: channels per level.
        reductions: stride per level.
        names: a name per level (default ``level<i>``).
    """

    def __init__(
        self, channels: Sequence[int], reductions: Sequence[int], names: Sequence[str] = ()
    ) -> None:
        if len(channels) != len(reductions) or (names and len(names) != len(channels)):
            raise ValueError("channels, reductions and names need one entry per level")
        self.levels = [
            PyramidLevel(int(c), int(r), names[i] if names else f"level{i}")
            for i, (c, r) in enumerate(zip(channels, reductions, strict=True))
        ]
        self.out_indices = tuple(range(len(self.levels)))

    def _get(self, key: str, idx: int | Sequence[int] | None) -> Any:
        if idx is None:
            return [getattr(level, key) for level in self.levels]
        if isinstance(idx, int):
            return getattr(self.levels[idx], key)
        return [getattr(self.levels[i], key) for i in idx]

    def channels(self, idx: int | Sequence[int] | None = None) -> Any:
        """Channels of one level (``idx``), of several, or of all (a list)."""
        return self._get("num_chs", idx)

    def reduction(self, idx: int | Sequence[int] | None = None) -> Any:
        """Stride of one level, of several, or of all (a list)."""
        return self._get("reduction", idx)

    def module_name(self, idx: int | Sequence[int] | None = None) -> Any:
        """Name of one level, of several, or of all (a list)."""
        return self._get("module", idx)

    def get_dicts(self, keys: Sequence[str] | None = None) -> list[dict[str, Any]]:
        """The levels as timm's dicts, optionally restricted to ``keys``."""
        out = [level.as_dict() for level in self.levels]
        return out if keys is None else [{k: d[k] for k in keys} for d in out]

    def __getitem__(self, idx: int) -> dict[str, Any]:
        return self.levels[idx].as_dict()

    def __len__(self) -> int:
        return len(self.levels)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return (level.as_dict() for level in self.levels)

    def __repr__(self) -> str:
        return f"PyramidInfo(channels={self.channels()}, reductions={self.reduction()})"
