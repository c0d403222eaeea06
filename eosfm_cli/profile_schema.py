"""The profile schema: pydantic models of every profile section, with extra keys forbidden.

Loading a profile (YAML files, ``include:`` chains, ``--set`` overrides and the messages that
name a bad key) is :mod:`eosfm_cli.profiles`; this module only says what a valid profile is.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from eosfm_cli.artifact_names import NAME_HINT, name_problem
from eosfm_cli.errors import BandError

TaskKind = Literal[
    "classification", "multilabel", "segmentation", "change_detection", "regression", "detection"
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class DataConfig(_Strict):
    """Where datasets live on disk.

    Attributes:
        root: the folder holding the selected dataset's files (``--root`` sets it).
        roots: per-dataset folders, for profiles that touch several datasets.
        split_seed: seed of the random train/val/test splits that datasets draw themselves.
    """

    root: str | None = None
    roots: dict[str, str] = Field(default_factory=dict)
    split_seed: int = 0


class DatasetConfig(_Strict):
    """The experiment a specialist is trained on.

    Attributes:
        name: the experiment name in the dataset registry (``eurosat_s2``, ``synthetic_seg``).
        task: the task kind; must agree with the registry.
        bands: band names or sets fed to the specialist, in input order.
        classes: class names (empty for regression).
        loss: ``ce``, ``dice``, ``bce`` or ``mse``.
        ignore_index: label value ignored by losses and metrics.
        patch_size: training crop / tile size in pixels, when the dataset tiles.
        options: dataset-specific options (validated by the dataset).
    """

    name: str
    task: TaskKind
    bands: list[str]
    classes: list[str] = Field(default_factory=list)
    loss: Literal["ce", "dice", "bce", "mse"] = "ce"
    ignore_index: int | None = None
    patch_size: int | None = None
    options: dict[str, Any] = Field(default_factory=dict)

    @field_validator("bands")
    @classmethod
    def _bands_known(cls, value: list[str]) -> list[str]:
        from eosfm_cli.bands import expand_bands

        try:
            return expand_bands(value)
        except BandError as err:
            raise ValueError(err.message + (f" ({err.hint})" if err.hint else "")) from None


class ModelConfig(_Strict):
    """The specialist architecture.

    Attributes:
        backbone: a timm model name; created with ``features_only=True``.
        pretrained: load timm's pretrained weights (needs a network; off by default).
        decoder_channels: UPerNet width for dense tasks (128 in the paper).
        head: downstream head kind for fit-head.
        hidden_dim: width of the MLP head.
        augment: random flips / 90-degree rotations while training.
        drop_path_rate: stochastic depth of the backbone (regularises small datasets).
        label_smoothing: label smoothing of the cross-entropy losses.
        crop_scale: smallest area fraction of random-resized training crops for scene-level
            tasks (1 = off).
    """

    backbone: str = "convnextv2_atto"
    pretrained: bool = False
    decoder_channels: int = Field(128, gt=0)
    head: Literal["linear", "mlp", "upernet", "siamese", "regression"] = "linear"
    hidden_dim: int = Field(256, gt=0)
    augment: bool = True
    drop_path_rate: float = Field(0.0, ge=0, lt=1)
    label_smoothing: float = Field(0.0, ge=0, lt=1)
    crop_scale: float = Field(1.0, gt=0, le=1)


class EnsembleConfig(_Strict):
    """How specialists are combined into the EosFM encoder.

    Attributes:
        name: file stem of the exported ensemble in ``ensembles/``.
        normalize_features: normalise each specialist's features per level.
        normalization_type: ``batch`` (BatchNorm, no affine) or ``layer`` (GroupNorm(1)).
        fusion: ``concat`` or ``conv1x1``.
        fuse_to_mult: with conv1x1, output channels = first specialist's channels x this.
        min_coverage: fraction of a specialist's channels that must come from real bands.
        substitute_tolerance_nm: largest wavelength gap for a nearest-band substitute.
        ablate: names of specialists to leave out.
        max_encoders: K, the number of specialists kept by encoder selection.
        force: per-specialist overrides of the inactive rule (``{name: "active"}``).
        compile: run frozen specialists through one compiled graph per architecture
            (``auto``: when the job encodes enough samples to pay for compiling).
        precision: ``fp32`` or ``bf16`` for the frozen specialists' forward (``auto``: bf16
            where the device runs it natively).
    """

    name: str = "eosfm"
    normalize_features: bool = False
    normalization_type: Literal["batch", "layer"] = "batch"
    fusion: Literal["concat", "conv1x1"] = "concat"
    fuse_to_mult: float = Field(1.0, gt=0)
    min_coverage: float = Field(0.5, ge=0, le=1)
    substitute_tolerance_nm: float = Field(60.0, ge=0)
    ablate: list[str] = Field(default_factory=list)
    max_encoders: int | None = Field(None, gt=0)
    force: dict[str, Literal["active", "inactive"]] = Field(default_factory=dict)
    compile: bool | Literal["auto"] = "auto"
    precision: Literal["auto", "fp32", "bf16"] = "auto"

    @field_validator("name")
    @classmethod
    def _plain_name(cls, value: str) -> str:
        problem = name_problem(value)
        if problem:
            raise ValueError(f"not a valid artifact name: {problem}; {NAME_HINT}")
        return value


class DownstreamConfig(_Strict):
    """The downstream task a head is fitted on.

    Attributes:
        dataset: the experiment name of the downstream dataset.
        root: its folder (``data.roots`` or ``data.root`` are used when empty).
        bands: input band names, when they differ from the dataset's defaults.
        freeze: keep specialists frozen (the EoS-FM setting).
        gate: encoder-selection gate kind.
        sparsity: weight of the gate sparsity penalty.
    """

    dataset: str | None = None
    root: str | None = None
    bands: list[str] | None = None
    freeze: bool = True
    gate: Literal["straight_through", "hard_concrete"] = "straight_through"
    sparsity: float = Field(0.01, ge=0)

    @field_validator("bands")
    @classmethod
    def _bands_known(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        from eosfm_cli.bands import expand_bands

        try:
            return expand_bands(value)
        except BandError as err:
            raise ValueError(err.message + (f" ({err.hint})" if err.hint else "")) from None


class TrainerConfig(_Strict):
    """Lightning Trainer and optimiser settings.

    ``precision`` is any Lightning precision, or ``auto`` (bf16 mixed precision where the
    device runs bf16 natively, else ``32-true``); ``compile`` is ``true``, ``false`` or ``auto``
    (compile runs with enough optimiser steps to pay for it); ``channels_last`` is ``true``,
    ``false`` or ``auto`` (weights and batches in NHWC where that runs faster).
    :mod:`eosfm_cli.hardware` says what ``auto`` becomes.
    """

    max_epochs: int = Field(10, gt=0)
    accelerator: str = "auto"
    devices: int | str = 1
    precision: str = "auto"
    strategy: str = "auto"
    num_nodes: int = Field(1, gt=0)
    batch_size: int = Field(32, gt=0)
    num_workers: int = Field(0, ge=0)
    lr: float = Field(1e-4, gt=0)
    weight_decay: float = Field(0.05, ge=0)
    compile: bool | Literal["auto"] = "auto"
    channels_last: bool | Literal["auto"] = "auto"
    limit_train_batches: float | int | None = None
    log_every_n_steps: int = Field(10, gt=0)
    ema_decay: float | None = Field(None, gt=0, lt=1)


class EmissionsConfig(_Strict):
    """CodeCarbon tracking."""

    enabled: bool = True
    country_iso_code: str = Field("FRA", min_length=3, max_length=3)
    online: bool = False


class CacheConfig(_Strict):
    """Frozen-feature cache."""

    enabled: bool = True
    max_gb: float = Field(4.0, ge=0)


class Profile(_Strict):
    """A whole resolved profile."""

    workspace: str = "workspace"
    seed: int = 42
    data: DataConfig = Field(default_factory=DataConfig)
    dataset: DatasetConfig | None = None
    specialists: list[str] = Field(default_factory=list)
    model: ModelConfig = Field(default_factory=ModelConfig)
    ensemble: EnsembleConfig = Field(default_factory=EnsembleConfig)
    downstream: DownstreamConfig = Field(default_factory=DownstreamConfig)
    trainer: TrainerConfig = Field(default_factory=TrainerConfig)
    emissions: EmissionsConfig = Field(default_factory=EmissionsConfig)
    cache: CacheConfig = Field(default_factory=CacheConfig)

    def to_dict(self) -> dict[str, Any]:
        """Return the profile as plain JSON-serialisable data."""
        return self.model_dump(mode="json")
