"""Training-time augmentation: dihedral transforms, random resized crops, detection flips.

Every function draws from torch's global generator, in a fixed order, so a seeded run is
reproducible.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor


def random_dihedral(
    batch: dict[str, Tensor], keys: Sequence[str] = ("image", "image2", "mask")
) -> dict[str, Tensor]:
    """Apply one random dihedral transform per sample to every spatial tensor of a batch.

    The same transform (a rotation by a multiple of 90 degrees, then maybe a horizontal flip)
    applies to a sample's image, its second date and its mask.

    Args:
        batch: the batch; ``image`` is ``[B, C, H, W]`` with ``H == W``.
        keys: the spatial tensors to transform; absent ones and non-spatial ones are skipped.

    Returns:
        A new batch dict (the input is left as is).
    """
    n = batch["image"].shape[0]
    ks = torch.randint(0, 4, (n,)).tolist()
    flips = torch.randint(0, 2, (n,)).tolist()
    out = dict(batch)
    for key in keys:
        t = batch.get(key)
        if t is None or t.dim() < 3:
            continue
        items = []
        for i in range(n):
            y = torch.rot90(t[i], ks[i], dims=(-2, -1))
            items.append(torch.flip(y, dims=(-1,)) if flips[i] else y)
        out[key] = torch.stack(items)
    return out


def random_resized_crop(x: Tensor, min_scale: float) -> Tensor:
    """Crop a random box of each image and resize it back to the image size (bilinear).

    Each box covers a fraction of the image area drawn uniformly in ``[min_scale, 1]``, with an
    aspect ratio drawn log-uniformly in ``[3/4, 4/3]``: scale variety for scene-level tasks
    trained on few samples.

    Args:
        x: ``[B, C, H, W]`` images.
        min_scale: the smallest area fraction.
    """
    n, _, h, w = x.shape
    out = torch.empty_like(x)
    for i in range(n):
        area = h * w * float(torch.empty(1).uniform_(min_scale, 1.0))
        ratio = math.exp(float(torch.empty(1).uniform_(math.log(3 / 4), math.log(4 / 3))))
        ch = max(1, min(h, round(math.sqrt(area / ratio))))
        cw = max(1, min(w, round(math.sqrt(area * ratio))))
        top = int(torch.randint(0, h - ch + 1, (1,)))
        left = int(torch.randint(0, w - cw + 1, (1,)))
        crop = x[i : i + 1, :, top : top + ch, left : left + cw]
        out[i] = F.interpolate(crop, size=(h, w), mode="bilinear", align_corners=False)[0]
    return out


def flip_detection(
    image: Tensor, boxes: Tensor, hflip: bool, vflip: bool, transpose: bool
) -> tuple[Tensor, Tensor]:
    """Apply one of the 8 dihedral transforms to an image ``(C, H, W)`` and its xyxy boxes."""
    boxes = boxes.clone()
    if transpose:
        image = image.transpose(-2, -1)
        boxes = boxes[:, [1, 0, 3, 2]]
    height, width = image.shape[-2:]
    if hflip:
        image = image.flip(-1)
        boxes[:, [0, 2]] = width - boxes[:, [2, 0]]
    if vflip:
        image = image.flip(-2)
        boxes[:, [1, 3]] = height - boxes[:, [3, 1]]
    return image, boxes


def random_detection_flips(
    images: list[Tensor], targets: list[dict[str, Tensor]]
) -> tuple[list[Tensor], list[dict[str, Tensor]]]:
    """Apply one random dihedral transform to each detection image and its boxes.

    Args:
        images: ``(C, H, W)`` images.
        targets: one ``{"boxes": xyxy, ...}`` per image.

    Returns:
        New lists of images and targets (the inputs are left as they are).
    """
    images, targets = list(images), list(targets)
    flips = torch.randint(0, 2, (len(images), 3)).tolist()
    for i, (h, v, t) in enumerate(flips):
        images[i], boxes = flip_detection(images[i], targets[i]["boxes"], h, v, t)
        targets[i] = {**targets[i], "boxes": boxes}
    return images, targets
