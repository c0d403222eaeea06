"""BigEarthNet's labels: the CORINE names of v1 and the 19-class names of v2, as class indices.

v1 metadata files list the 43 CORINE class names of a patch; they map to the 19-class
nomenclature of the registry (Sumbul et al., 2021) through :data:`CLC43_TO_BEN19`. v2 metadata
lists the 19-class names themselves.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from eosfm_cli.data.registry import BEN19_CLASSES
from eosfm_cli.errors import DataError

#: The official 43 -> 19 mapping, from the CORINE names of the v1 metadata files to the
#: 19-class names. ``None``: the class has no counterpart in the 19-class nomenclature (the
#: labels are dropped, as in the official BigEarthNet-19 code).
CLC43_TO_BEN19: dict[str, str | None] = {
    "Continuous urban fabric": "Urban fabric",
    "Discontinuous urban fabric": "Urban fabric",
    "Industrial or commercial units": "Industrial or commercial units",
    "Road and rail networks and associated land": None,
    "Port areas": None,
    "Airports": None,
    "Mineral extraction sites": None,
    "Dump sites": None,
    "Construction sites": None,
    "Green urban areas": None,
    "Sport and leisure facilities": None,
    "Non-irrigated arable land": "Arable land",
    "Permanently irrigated land": "Arable land",
    "Rice fields": "Arable land",
    "Vineyards": "Permanent crops",
    "Fruit trees and berry plantations": "Permanent crops",
    "Olive groves": "Permanent crops",
    "Pastures": "Pastures",
    "Annual crops associated with permanent crops": "Permanent crops",
    "Complex cultivation patterns": "Complex cultivation patterns",
    "Land principally occupied by agriculture, with significant areas of natural vegetation": (
        "Land principally occupied by agriculture, with significant areas of natural vegetation"
    ),
    "Agro-forestry areas": "Agro-forestry areas",
    "Broad-leaved forest": "Broad-leaved forest",
    "Coniferous forest": "Coniferous forest",
    "Mixed forest": "Mixed forest",
    "Natural grassland": "Natural grassland and sparsely vegetated areas",
    "Moors and heathland": "Moors, heathland and sclerophyllous vegetation",
    "Sclerophyllous vegetation": "Moors, heathland and sclerophyllous vegetation",
    "Transitional woodland/shrub": "Transitional woodland, shrub",
    "Beaches, dunes, sands": "Beaches, dunes, sands",
    "Bare rock": None,
    "Sparsely vegetated areas": "Natural grassland and sparsely vegetated areas",
    "Burnt areas": None,
    "Inland marshes": "Inland wetlands",
    "Peatbogs": "Inland wetlands",
    "Salt marshes": "Coastal wetlands",
    "Salines": "Coastal wetlands",
    "Intertidal flats": None,
    "Water courses": "Inland waters",
    "Water bodies": "Inland waters",
    "Coastal lagoons": "Marine waters",
    "Estuaries": "Marine waters",
    "Sea and ocean": "Marine waters",
}

_CLASS_INDEX = {name: i for i, name in enumerate(BEN19_CLASSES)}


def labels_to_multihot(indices: Sequence[int]) -> Tensor:
    """Return the ``float32`` multi-hot vector (19,) of 19-class indices."""
    target = torch.zeros(len(BEN19_CLASSES), dtype=torch.float32)
    if indices:
        target[list(indices)] = 1.0
    return target


def clc43_to_indices(names: Sequence[str], where: str) -> tuple[int, ...]:
    """Map CORINE (43-class) label names to sorted, unique 19-class indices.

    Args:
        names: label names from a v1 ``labels_metadata.json``.
        where: the file, for the error message.

    Raises:
        DataError: on a name that is not one of the 43 classes.
    """
    out = set()
    for name in names:
        if name not in CLC43_TO_BEN19:
            raise DataError(f"unknown BigEarthNet label {name!r}", where=where)
        mapped = CLC43_TO_BEN19[name]
        if mapped is not None:
            out.add(_CLASS_INDEX[mapped])
    return tuple(sorted(out))


def ben19_to_indices(names: Sequence[str], where: str) -> tuple[int, ...]:
    """Map 19-class label names (v2 metadata) to sorted, unique indices.

    Raises:
        DataError: on a name that is not one of the 19 classes.
    """
    out = set()
    for name in names:
        if name not in _CLASS_INDEX:
            raise DataError(f"unknown BigEarthNet-19 label {name!r}", where=where)
        out.add(_CLASS_INDEX[name])
    return tuple(sorted(out))
