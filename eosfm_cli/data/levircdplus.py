"""LEVIR-CD+ (Shen et al., 2021): building change detection from pairs of RGB images (50 cm).

Release layout, as torchgeo's :class:`~torchgeo.datasets.LEVIRCDPlus` reads it::

    <root>/LEVIR-CD+/{train,test}/A/<name>.png       first date, 3 bands uint8 (R, G, B)
    <root>/LEVIR-CD+/{train,test}/B/<name>.png       second date, same size
    <root>/LEVIR-CD+/{train,test}/label/<name>.png   1 band uint8: 0 no change, 255 change

Images are 1024x1024 px (985 pairs: 637 train, 348 test). torchgeo lists the pairs
(``download=False``, ``checksum=False``) after this module has checked the folders, so a missing
or partial root is a :class:`DataError`, never a download. torchgeo then reads each PNG whole;
this loader reads windows instead (GDAL decodes a PNG window without keeping the rest), through
:class:`~eosfm_cli.data.change_pairs.WindowedChangePairs`: ``options["crops_per_image"]`` (16)
random ``patch_size`` (256) crops per training pair, drawn once from ``request.seed``, and a grid
of tiles covering every validation and test pair. Any non-zero label is change (1), as torchgeo
clamps it.

The release has no validation split: ``options["val_fraction"]`` (0.1) of the training pairs,
drawn with ``request.seed``, validate and never train.
"""

from __future__ import annotations

from pathlib import Path

from torch import Tensor
from torch.utils.data import Dataset

from eosfm_cli.data.base import DatasetRequest, band_indices, require_dir
from eosfm_cli.data.change_pairs import ChangeScene, WindowedChangePairs
from eosfm_cli.data.holdout import split_keys
from eosfm_cli.data.options import fraction_option, int_option
from eosfm_cli.data.registry import get_experiment
from eosfm_cli.data.windows import raster_shape
from eosfm_cli.errors import DataError

#: The registry's entry: classes, layout and default options come from it.
SPEC = get_experiment("levircdplus")

FILE_BANDS: tuple[str, ...] = ("R", "G", "B")
DIRECTORY = "LEVIR-CD+"
FOLDERS = ("A", "B", "label")


def check_layout(root: Path) -> None:
    """Check the folders torchgeo needs, so that it never tries to download.

    Raises:
        DataError: naming the first missing folder.
    """
    require_dir(root, SPEC.layout)
    for split in ("train", "test"):
        for folder in FOLDERS:
            require_dir(root / DIRECTORY / split / folder, SPEC.layout)


def list_pairs(root: Path, split: str) -> list[dict[str, str]]:
    """List torchgeo's ``image1``/``image2``/``mask`` files of a release split.

    Raises:
        DataError: when the second image or the label of a pair is missing.
    """
    from torchgeo.datasets import LEVIRCDPlus

    files: list[dict[str, str]] = LEVIRCDPlus(
        root=str(root), split=split, download=False, checksum=False
    ).files
    for pair in files:
        for key in ("image2", "mask"):
            if not Path(pair[key]).is_file():
                raise DataError(
                    f"LEVIR-CD+ pair {Path(pair['image1']).name} is incomplete",
                    where=pair[key],
                    hint="every A/<name>.png needs B/<name>.png and label/<name>.png; "
                    + SPEC.layout,
                )
    return files


def build(request: DatasetRequest) -> Dataset[dict[str, Tensor]]:
    """Build one LEVIR-CD+ split.

    Args:
        request: the dataset request; ``request.bands`` among R, G, B. ``options``:
            ``crops_per_image`` (16), ``val_fraction`` (0.1).

    Returns:
        A dataset of ``{"image", "image2": float32 (C, P, P) 8-bit DNs, "mask": int64 (P, P)}``.

    Raises:
        DataError: when a folder or file is missing, or the split holds no pair.
        BandError: when a requested band is not R, G or B.
    """
    where = f"dataset {request.name or 'levircdplus'}"
    bands = [i + 1 for i in band_indices(request.bands, FILE_BANDS, where)]
    if request.classes and tuple(request.classes) != SPEC.classes:
        raise DataError(
            "LEVIR-CD+ has the classes 'no change' and 'change'; the request differs",
            where=where,
            hint="use the classes no change, change",
        )
    root = Path(request.root)
    check_layout(root)
    options = request.options
    crops = int_option(options, "crops_per_image", SPEC.options["crops_per_image"])
    val_fraction = fraction_option(options, "val_fraction", SPEC.options["val_fraction"])

    if request.split == "test":
        files = list_pairs(root, "test")
    else:
        train = list_pairs(root, "train")
        names = [Path(f["image1"]).name for f in train]
        val = set(split_keys(names, request.seed, {"val": val_fraction}, sort_key=str)["val"])
        keep = request.split == "val"
        files = [f for f in train if (Path(f["image1"]).name in val) == keep]
    if not files:
        raise DataError(
            f"the LEVIR-CD+ {request.split} split is empty",
            where=str(root / DIRECTORY),
            hint=f"expected {SPEC.layout}",
        )
    scenes = []
    for pair in files:
        first, second = Path(pair["image1"]), Path(pair["image2"])
        _, height, width = raster_shape(first, SPEC.layout)
        scenes.append(
            ChangeScene(
                name=first.stem,
                date1=tuple((first, b) for b in bands),
                date2=tuple((second, b) for b in bands),
                mask=Path(pair["mask"]),
                height=height,
                width=width,
            )
        )
    return WindowedChangePairs(
        scenes,
        split=request.split,
        patch_size=SPEC.crop_size(request.patch_size),
        crops_per_image=crops,
        seed=request.seed,
        layout=SPEC.layout,
    )
