"""Training-time augmentation of the task modules: dihedral transforms and resized crops."""

from __future__ import annotations

import pytest
import torch

from eosfm_cli.tasks import ClassificationTask, SegmentationTask
from eosfm_cli.tasks.augment import random_resized_crop


def _task(cls: type, **kw: object) -> object:
    return cls(
        task="classification" if cls is ClassificationTask else "segmentation",
        backbone="convnextv2_atto",
        bands=["B02", "B03"],
        mean=[0.0, 0.0],
        std=[1.0, 1.0],
        classes=["a", "b"],
        **kw,
    )


def _values(t: torch.Tensor) -> torch.Tensor:
    return t.flatten().sort().values


def test_resized_crop_keeps_shape_and_value_range() -> None:
    torch.manual_seed(0)
    ramp = torch.arange(32, dtype=torch.float32).repeat(32, 1)
    x = torch.stack([ramp, ramp.T]).expand(4, 2, 32, 32).clone()
    out = random_resized_crop(x, 0.3)
    assert out.shape == x.shape
    assert out.min() >= 0 and out.max() <= 31
    # A crop smaller than the image stretches the ramp: some sample differs from its input.
    assert not torch.equal(out, x)
    constant = torch.full((3, 2, 16, 16), 7.0)
    assert torch.allclose(random_resized_crop(constant, 0.5), constant)


def test_crop_scale_applies_to_scene_tasks_only() -> None:
    torch.manual_seed(0)
    cls = _task(ClassificationTask, crop_scale=0.3)
    ramp = torch.arange(32, dtype=torch.float32).repeat(32, 1)
    image = torch.stack([ramp, ramp]).expand(8, 2, 32, 32).clone()
    out = cls.augment_batch({"image": image, "label": torch.zeros(8, dtype=torch.long)})  # type: ignore[attr-defined]
    # Dihedral transforms only permute a sample's pixels; resized crops change its values.
    assert any(not torch.equal(_values(out["image"][i]), _values(image[i])) for i in range(8))
    seg = _task(SegmentationTask, crop_scale=0.3)
    mask = torch.zeros(8, 32, 32, dtype=torch.long)
    out = seg.augment_batch({"image": image, "mask": mask})  # type: ignore[attr-defined]
    for i in range(8):
        assert torch.equal(
            out["image"][i].flatten().sort().values, image[i].flatten().sort().values
        )


def test_crop_scale_is_a_profile_key(tmp_path: object) -> None:
    from eosfm_cli.context import find_profile
    from eosfm_cli.errors import ProfileError
    from eosfm_cli.profiles import load_profile

    base = find_profile("profiles/default.yaml")
    assert load_profile(base, ["model.crop_scale=0.5"]).model.crop_scale == 0.5
    with pytest.raises(ProfileError, match="crop_scale"):
        load_profile(base, ["model.crop_scale=0"])
