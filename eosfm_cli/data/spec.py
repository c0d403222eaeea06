"""What one experiment is: the shape of a registry entry, and how its loader is found.

The entries themselves live in :mod:`eosfm_cli.data.registry`. Nothing here imports torch, so
that listing experiments and resolving profiles stay cheap.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from eosfm_cli.errors import DataError

#: Task of an experiment whose task, bands and classes come from the profile (``folder``).
ANY_TASK = "any"


@dataclass(frozen=True)
class ExperimentSpec:
    """One experiment: a dataset seen through one band set, for one task.

    Attributes:
        name: experiment name, also the default specialist name.
        dataset: the dataset family (``eurosat``, ``bigearthnet``...).
        task: task kind.
        bands: canonical band names fed to the specialist, in order.
        classes: class names from the dataset's documentation, in label order (empty for
            regression).
        loss: default loss.
        source: citation / where to download.
        layout: the release layout expected under the root, in one line.
        loader: ``"module:function"`` building a split, or ``None`` when not built yet.
        ignore_index: label value to ignore.
        patch_size: default crop/tile size.
        mean: per-band mean from the literature (by band name), when published.
        std: per-band std from the literature (by band name), when published.
        default_epochs: the paper's epoch budget.
        options: default dataset options.
    """

    name: str
    dataset: str
    task: str
    bands: tuple[str, ...]
    classes: tuple[str, ...]
    loss: str
    source: str
    layout: str
    loader: str | None = None
    ignore_index: int | None = None
    patch_size: int | None = None
    mean: dict[str, float] = field(default_factory=dict)
    std: dict[str, float] = field(default_factory=dict)
    default_epochs: int = 50
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        """Number of classes (0 for regression)."""
        return len(self.classes)

    def crop_size(self, requested: int | None) -> int:
        """The crop or tile size to read: ``requested``, else the experiment's ``patch_size``.

        Raises:
            DataError: when neither names a size.
        """
        size = requested or self.patch_size
        if size is None:
            raise DataError(
                f"the {self.name} loader needs a patch size",
                where=f"dataset {self.name}",
                hint="set `patch_size=`",
            )
        return size

    def load_function(self) -> Callable[..., Any]:
        """Import and return the loader function.

        Raises:
            DataError: when the experiment's loader is not built yet.
        """
        if self.loader is None:
            raise DataError(
                f"the {self.name} loader is not built yet",
                where=f"dataset {self.name}",
                hint="see `eosfm datasets list` for the experiments that can train now",
            )
        module, func = self.loader.split(":")
        return getattr(importlib.import_module(module), func)  # type: ignore[no-any-return]
