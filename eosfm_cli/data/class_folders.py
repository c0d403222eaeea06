"""Class-folder releases (EuroSAT, FireRisk) that hold only some of their class folders.

Users cut such a release down for a quick run by deleting class folders. torchvision's
``ImageFolder`` (under torchgeo's classes) then numbers the remaining folders from 0, so a
label would silently mean another class. Here the full class list is kept: labels are
renumbered to the ids of the registry's classes, and the classes with no folder are named in
one warning per dataset and set of missing classes.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from eosfm_cli.console import warn
from eosfm_cli.errors import DataError

_WARNED: set[tuple[str, tuple[str, ...]]] = set()


def present_classes(folder: Path, classes: Sequence[str], dataset: str) -> list[str]:
    """The classes whose folder exists under ``folder``; warn once about the others.

    Args:
        folder: the folder that holds one sub-folder per class.
        classes: the dataset's full class list.
        dataset: the dataset's name (for messages).

    Returns:
        The classes with a folder, in the order of ``classes``.

    Raises:
        DataError: when no class folder exists at all.
    """
    present = [c for c in classes if (folder / c).is_dir()]
    missing = tuple(c for c in classes if c not in present)
    if not present:
        raise DataError(
            f"{dataset}: none of the {len(classes)} class folders is here",
            where=str(folder),
            hint=f"expected one folder per class ({', '.join(classes)})",
        )
    if missing and (dataset, missing) not in _WARNED:
        _WARNED.add((dataset, missing))
        warn(
            f"{dataset}: no folder for {len(missing)} of {len(classes)} classes "
            f"({', '.join(missing)}) under {folder}; training on the others, with labels "
            "numbered as in the full class list"
        )
    return present


def label_ids(
    found: Sequence[str], classes: Sequence[str], dataset: str, folder: Path
) -> list[int]:
    """The full-list id of each class a folder reader found, in the reader's order.

    Args:
        found: the classes the reader numbered ``0..n-1`` (``ImageFolder.classes``).
        classes: the dataset's full class list.
        dataset: the dataset's name (for messages).
        folder: the folder the reader read (for messages).

    Raises:
        DataError: when the reader found a folder that is not one of the classes (an extra
            folder would otherwise take a class's id).
    """
    extra = [c for c in found if c not in classes]
    if extra:
        raise DataError(
            f"unexpected folders among the {dataset} classes: {', '.join(extra)}",
            where=str(folder),
            hint=f"keep only the class folders {', '.join(classes)}",
        )
    return [list(classes).index(c) for c in found]
