"""Reading specialists out of Lightning checkpoints (ours, terratorch-style, or any folder).

- :func:`load_checkpoint_file` loads a checkpoint with ``weights_only=True``: plain data only.
- :func:`find_run_checkpoints` walks a folder as the reference ``utils.py export`` does: for each
  run, the newest ``version_N``, then its best checkpoint (else the last one).
- :func:`specialist_from_checkpoint` extracts the encoder weights (our ``encoder.`` prefix, or
  ``model.encoder.`` from terratorch) and works out backbone, in_chans, bands and statistics from
  the hyper-parameters, or from the weight shapes when those are absent.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from eosfm_cli.errors import ArtifactError
from eosfm_cli.models.spec import SpecialistSpec

ENCODER_PREFIXES = ("encoder.", "model.encoder.")
# Backbones tried, in order, when a checkpoint does not name its own.
CANDIDATE_BACKBONES = (
    "convnextv2_atto",
    "convnextv2_femto",
    "convnextv2_pico",
    "convnextv2_nano",
    "convnextv2_tiny",
    "convnext_atto",
    "convnext_tiny",
    "resnet18",
    "resnet34",
    "resnet50",
    "efficientnet_b0",
)
# in_chans → (bands, assumption) when a checkpoint records no band names (DESIGN.md).
INFERRED_BANDS: dict[int, tuple[str, str]] = {
    3: ("S2_RGB", "3 channels assumed to be B04,B03,B02"),
    13: ("S2_ALL", "13 channels assumed to be the EuroSAT S2 order (B8A last)"),
    2: ("S1", "2 channels assumed to be VV,VH"),
}


def load_checkpoint_file(path: str | Path) -> dict[str, Any]:
    """Load a Lightning checkpoint safely (``weights_only=True``).

    Raises:
        ArtifactError: when the file is missing, truncated, or holds anything but plain data
            (a pickle that would run code is refused, never executed).
    """
    path = Path(path)
    if not path.is_file():
        raise ArtifactError("checkpoint not found", where=str(path))
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types for bad files
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ArtifactError(
            f"cannot load checkpoint safely ({first[:160]})",
            where=str(path),
            hint="the file is truncated, not a checkpoint, or contains code; re-create it",
        ) from None
    if not isinstance(ckpt, dict):
        raise ArtifactError("not a Lightning checkpoint (no dict)", where=str(path))
    return ckpt


def _version(path: Path) -> int:
    m = re.fullmatch(r"version_(\d+)", path.name)
    return int(m.group(1)) if m else -1


def _pick(ckpts: Sequence[Path]) -> Path:
    """Best checkpoint of a folder: ``best*`` or a monitored one, else ``last``, else newest."""
    named = sorted(ckpts, key=lambda p: p.stat().st_mtime)
    for p in named:
        if p.stem.startswith("best"):
            return p
    monitored = [p for p in named if not p.stem.startswith("last")]
    if monitored:
        return monitored[-1]
    return named[-1]


def find_run_checkpoints(folder: str | Path) -> list[Path]:
    """Find one checkpoint per training run under a folder, recursively.

    A run is a folder holding ``version_N`` sub-folders (the newest N wins) or holding
    ``*.ckpt`` files directly (or under ``checkpoints/``).

    Raises:
        ArtifactError: when the folder is missing or holds no checkpoint.
    """
    root = Path(folder)
    if not root.is_dir():
        raise ArtifactError(
            "encoders folder not found",
            where=str(root),
            hint="pass a folder that holds Lightning runs",
        )
    by_dir: dict[Path, list[Path]] = {}
    for ckpt in sorted(root.rglob("*.ckpt")):
        if ckpt.name.startswith("."):
            continue
        owner = ckpt.parent.parent if ckpt.parent.name == "checkpoints" else ckpt.parent
        by_dir.setdefault(owner, []).append(ckpt)
    runs: dict[Path, tuple[int, Path]] = {}
    for owner, ckpts in by_dir.items():
        version = _version(owner)
        run = owner.parent if version >= 0 else owner
        if run not in runs or version > runs[run][0]:
            runs[run] = (version, _pick(ckpts))
    if not runs:
        raise ArtifactError(
            "no Lightning checkpoint (*.ckpt) found",
            where=str(root),
            hint="point `encoders_folder=` at the folder of your training runs",
        )
    return [runs[r][1] for r in sorted(runs)]


def encoder_weights(state: Mapping[str, torch.Tensor], where: str) -> dict[str, torch.Tensor]:
    """The encoder's tensors with plain timm keys (prefix ``encoder.`` or ``model.encoder.``)."""
    for prefix in ENCODER_PREFIXES:
        out = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
        if out:
            return out
    raise ArtifactError(
        "no encoder weights in checkpoint",
        where=where,
        hint=f"expected keys starting with {' or '.join(ENCODER_PREFIXES)}",
    )


def detect_in_chans(weights: Mapping[str, torch.Tensor], where: str) -> int:
    """in_chans from the first 4-D convolution weight."""
    for value in weights.values():
        if value.dim() == 4:
            return int(value.shape[1])
    raise ArtifactError("cannot infer in_chans: no convolution weight", where=where)


def detect_backbone(weights: Mapping[str, torch.Tensor], in_chans: int, where: str) -> str:
    """Find the timm backbone whose ``features_only`` state dict matches keys and shapes."""
    import timm

    wanted = {k: tuple(v.shape) for k, v in weights.items()}
    for name in CANDIDATE_BACKBONES:
        try:
            model = timm.create_model(name, features_only=True, in_chans=in_chans, pretrained=False)
        except Exception:  # an unknown name is simply not a match
            continue
        have = {k: tuple(v.shape) for k, v in model.state_dict().items()}
        if have == wanted:
            return name
    raise ArtifactError(
        "cannot identify the backbone from the weights",
        where=where,
        hint="train with eosfm (it records the backbone) or name it in the hyper-parameters",
    )


def checkpoint_run_name(path: Path) -> str:
    """The run a checkpoint belongs to: ``<run>/version_N/checkpoints/x.ckpt`` → ``run``."""
    owner = path.parent.parent if path.parent.name == "checkpoints" else path.parent
    return owner.parent.name if _version(owner) >= 0 else owner.name


def specialist_from_checkpoint(
    path: str | Path, name: str | None = None, bands: Sequence[str] | None = None
) -> tuple[SpecialistSpec, dict[str, torch.Tensor]]:
    """Extract one specialist from a Lightning checkpoint.

    Args:
        path: the ``.ckpt`` file.
        name: specialist name (default: the run folder's name).
        bands: band names, for checkpoints that do not record them.

    Returns:
        The spec and the encoder state dict.
    """
    from eosfm_cli.bands import expand_bands

    path = Path(path)
    where = str(path)
    ckpt = load_checkpoint_file(path)
    state = ckpt.get("state_dict")
    if not isinstance(state, dict):
        raise ArtifactError("checkpoint has no state_dict", where=where)
    weights = encoder_weights(state, where)
    hp = ckpt.get("hyper_parameters") or {}
    model_args = hp.get("model_args") or {}
    assumed: list[str] = []
    backbone = hp.get("backbone") or model_args.get("backbone")
    if isinstance(backbone, str) and backbone.startswith("timm_"):
        backbone = backbone[len("timm_") :]
    in_chans = detect_in_chans(weights, where)
    declared = len(hp["bands"]) if hp.get("bands") else model_args.get("backbone_in_chans")
    if declared and int(declared) != in_chans:
        raise ArtifactError(
            f"hyper-parameters declare {declared} input channels, the weights have {in_chans}",
            where=where,
        )
    if not isinstance(backbone, str):
        backbone = detect_backbone(weights, in_chans, where)
        assumed.append(f"backbone {backbone} detected from weight shapes")
    if bands is not None:
        band_list = expand_bands(list(bands))
    elif hp.get("bands"):
        band_list = [str(b) for b in hp["bands"]]
    elif in_chans in INFERRED_BANDS:
        set_name, note = INFERRED_BANDS[in_chans]
        band_list = expand_bands(set_name)
        assumed.append(note)
    else:
        raise ArtifactError(
            f"{in_chans}-channel checkpoint records no band names",
            where=where,
            hint="pass its band names with `bands=`",
        )
    if len(band_list) != in_chans:
        raise ArtifactError(
            f"{len(band_list)} band names for {in_chans} channels",
            where=where,
            hint="give one band name per input channel",
        )
    if "normalizer.mean" in state and "normalizer.std" in state:
        mean = [float(v) for v in state["normalizer.mean"].flatten()]
        std = [float(v) for v in state["normalizer.std"].flatten()]
    else:
        mean, std = [0.0] * in_chans, [1.0] * in_chans
        assumed.append("no input statistics: identity normalisation")
    run_name = name or checkpoint_run_name(path)
    spec = SpecialistSpec(
        name=run_name,
        backbone=backbone,
        bands=band_list,
        mean=mean,
        std=std,
        dataset=hp.get("dataset"),
        task=hp.get("task"),
        classes=[str(c) for c in hp.get("classes", [])],
        source="checkpoint",
        assumed=assumed,
    )
    return spec, weights
