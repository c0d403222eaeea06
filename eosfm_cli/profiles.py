"""Profiles: the YAML files that describe a workspace and every stage run.

A profile is validated against a pydantic schema in which extra keys are forbidden, so a typo
is an error that names the file, the key path and the closest valid key. A profile may start
with ``include: other.yaml`` (a path relative to it, or a list of paths); the included files are
loaded first and this file's keys are merged over them. Command-line overrides
(``--set trainer.max_epochs=3``) are applied last, with values parsed as YAML scalars.
"""

from __future__ import annotations

import copy
import difflib
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from eosfm_cli.errors import BandError, ProfileError

TaskKind = Literal[
    "classification", "multilabel", "segmentation", "change_detection", "regression", "detection"
]


_NAME_HINT = "use a plain name: letters, digits, '.', '_' or '-', no '/' and no leading '.'"


def name_problem(value: str) -> str | None:
    """Why ``value`` cannot name a workspace artifact (a file or folder), or ``None``.

    Artifact names (ensemble, specialist and head run names) become one path component inside
    the workspace, so they may not hold a path separator, start with a dot (``..``, hidden
    files) or be empty.
    """
    if not value or not value.strip():
        return "an empty name"
    if "/" in value or "\\" in value or "\x00" in value:
        return f"{value!r} is a path, not a name"
    if value.startswith("."):
        return f"{value!r} starts with '.'"
    if len(value) > 200:
        return "a name longer than 200 characters"
    return None


def artifact_name(value: str, where: str) -> str:
    """Check a workspace artifact name given on the command line or in a profile.

    Args:
        value: the name (``--name``, ``--run``, ``ensemble.name``).
        where: the option or key, for the message.

    Returns:
        ``value`` unchanged.

    Raises:
        ProfileError: when the name could escape its folder (``../../etc``) or is empty.
    """
    problem = name_problem(value)
    if problem:
        raise ProfileError(f"not a valid artifact name: {problem}", where=where, hint=_NAME_HINT)
    return value


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
        compile: run frozen specialists through one compiled graph per architecture.
        precision: ``fp32`` or ``bf16`` for the frozen specialists' forward.
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
    compile: bool = False
    precision: Literal["fp32", "bf16"] = "fp32"

    @field_validator("name")
    @classmethod
    def _plain_name(cls, value: str) -> str:
        problem = name_problem(value)
        if problem:
            raise ValueError(f"not a valid artifact name: {problem}; {_NAME_HINT}")
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
    """Lightning Trainer and optimiser settings."""

    max_epochs: int = Field(10, gt=0)
    accelerator: str = "auto"
    devices: int | str = 1
    precision: str = "32-true"
    strategy: str = "auto"
    num_nodes: int = Field(1, gt=0)
    batch_size: int = Field(32, gt=0)
    num_workers: int = Field(0, ge=0)
    lr: float = Field(1e-4, gt=0)
    weight_decay: float = Field(0.05, ge=0)
    compile: bool = False
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


# --------------------------------------------------------------------------------------------
# Loading


def _read_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ProfileError(
            "profile file not found",
            where=str(path),
            hint="pass an existing file with --profile, e.g. profiles/default.yaml",
        )
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        loc = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark is not None else str(path)
        problem = getattr(err, "problem", None) or "invalid YAML"
        raise ProfileError(
            f"YAML syntax error: {problem}", where=loc, hint="fix the YAML"
        ) from None
    except (OSError, UnicodeDecodeError) as err:
        raise ProfileError(
            f"cannot read profile: {err}", where=str(path), hint="pass a readable UTF-8 file"
        ) from None
    except (ValueError, TypeError, OverflowError, RecursionError) as err:
        # PyYAML's constructors raise these for values such as the date 2024-13-01.
        raise ProfileError(
            f"YAML value error: {str(err).splitlines()[0] if str(err) else type(err).__name__}",
            where=str(path),
            hint="fix or quote the value",
        ) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ProfileError(
            "a profile must be a YAML mapping of keys to values",
            where=str(path),
            hint="start the file with keys such as `workspace:` and `trainer:`",
        )
    return data


def deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """Merge ``over`` into a copy of ``base``; nested mappings merge, everything else replaces.

    Args:
        base: the lower-priority mapping.
        over: the higher-priority mapping.

    Returns:
        A new merged mapping.
    """
    out = copy.deepcopy(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def load_raw(path: str | Path, _seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """Load a profile file and resolve its ``include`` chain, without validating it.

    Args:
        path: the profile file.

    Returns:
        The merged mapping.

    Raises:
        ProfileError: on a missing file, a YAML error, or an include cycle.
    """
    p = Path(path).resolve()
    if p in _seen:
        raise ProfileError("include cycle", where=str(p), hint="remove the circular include")
    data = _read_yaml(p)
    includes = data.pop("include", None)
    if includes is None:
        return data
    if isinstance(includes, str):
        includes = [includes]
    if not isinstance(includes, list) or not all(isinstance(i, str) for i in includes):
        raise ProfileError("`include` must be a path or a list of paths", where=f"{p}: include")
    merged: dict[str, Any] = {}
    for inc in includes:
        merged = deep_merge(merged, load_raw(p.parent / inc, (*_seen, p)))
    return deep_merge(merged, data)


def parse_set(expr: str) -> tuple[list[str], Any]:
    """Parse one ``--set KEY=VALUE`` override.

    Args:
        expr: ``a.b.c=value``; the value is parsed as a YAML scalar (or flow list/mapping).

    Returns:
        The key path and the parsed value.

    Raises:
        ProfileError: if the expression has no ``=`` or an empty key.
    """
    if "=" not in expr:
        raise ProfileError(
            f"bad --set {expr!r}: expected KEY=VALUE",
            where="--set",
            hint="write e.g. --set trainer.max_epochs=5",
        )
    key, raw = expr.split("=", 1)
    parts = [k.strip() for k in key.strip().split(".")]
    if not all(parts):
        raise ProfileError(
            f"bad --set {expr!r}: empty key",
            where="--set",
            hint="write e.g. --set trainer.max_epochs=5",
        )
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except (yaml.YAMLError, ValueError, TypeError, OverflowError, RecursionError):
        raise ProfileError(
            f"bad --set {expr!r}: the value is not valid YAML",
            where="--set",
            hint="quote strings that contain ':' or brackets",
        ) from None
    return parts, value


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``--set`` overrides to a raw profile mapping (returns a new mapping)."""
    out = copy.deepcopy(data)
    for expr in overrides:
        parts, value = parse_set(expr)
        node = out
        for i, part in enumerate(parts[:-1]):
            nxt = node.get(part)
            if nxt is None:
                nxt = node[part] = {}
            if not isinstance(nxt, dict):
                raise ProfileError(
                    f"bad --set {expr!r}: {'.'.join(parts[: i + 1])} is not a mapping",
                    where="--set",
                )
            node = nxt
        node[parts[-1]] = value
    return out


def _valid_keys(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """Return the valid keys at a location of the schema, for did-you-mean hints."""
    current: Any = model
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        fields = getattr(current, "model_fields", None)
        if not fields or part not in fields:
            return []
        ann = fields[part].annotation
        current = _model_in(ann)
        if current is None:
            return []
    fields = getattr(current, "model_fields", None)
    return list(fields) if fields else []


def _model_in(annotation: Any) -> type[BaseModel] | None:
    import typing

    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def validate(data: dict[str, Any], source: str) -> Profile:
    """Validate a raw mapping against the schema.

    Args:
        data: the raw profile mapping.
        source: the file (or description) it came from, used in error messages.

    Returns:
        The validated profile.

    Raises:
        ProfileError: one line naming the source, the key path, the problem and a hint.
    """
    try:
        return Profile.model_validate(data)
    except ValidationError as err:
        first = err.errors()[0]
        loc = tuple(first["loc"])
        key = ".".join(str(p) for p in loc)
        kind = first["type"]
        hint: str | None
        if kind == "extra_forbidden":
            valid = _valid_keys(Profile, loc)
            close = difflib.get_close_matches(str(loc[-1]), valid, n=1, cutoff=0.5)
            hint = (
                f"did you mean {'.'.join([*map(str, loc[:-1]), close[0]])!r}?"
                if close
                else f"valid keys here: {', '.join(valid)}"
            )
            message = "unknown key"
        else:
            message = first["msg"]
            if "input" in first and not isinstance(first["input"], dict | list):
                message += f" (got {first['input']!r})"
            hint = "fix the value in the profile or with --set"
        more = len(err.errors()) - 1
        if more:
            message += f" (and {more} more problem{'s' if more > 1 else ''})"
        raise ProfileError(message, where=f"{source}: {key}", hint=hint) from None


def load_profile(
    path: str | Path,
    overrides: list[str] | None = None,
    overlay: str | Path | None = None,
    dataset: dict[str, Any] | None = None,
) -> Profile:
    """Load, merge and validate a profile.

    Args:
        path: the base profile file.
        overrides: ``--set KEY=VALUE`` expressions, applied last.
        overlay: an optional second profile (e.g. ``profiles/datasets/NAME.yaml``) whose own
            keys (not its includes) are merged over the base; its ``dataset`` section replaces
            the base's whole.
        dataset: an experiment's ``dataset`` section (the registry's facts): it replaces the
            base's whole, and the overlay's ``dataset`` keys are merged over it.

    Returns:
        The validated profile.
    """
    data = load_raw(path)
    source = str(path)
    if dataset is not None:  # an experiment replaces the dataset section whole
        data["dataset"] = copy.deepcopy(dataset)
    if overlay is not None:
        over = _read_yaml(Path(overlay))
        over.pop("include", None)
        if "dataset" in over and dataset is None:
            data.pop("dataset", None)
        data = deep_merge(data, over)
        source = f"{path} + {overlay}"
    if overrides:
        data = apply_overrides(data, overrides)
        source += " + --set"
    return validate(data, source)


def dump_yaml(profile: Profile) -> str:
    """Render a profile as YAML."""
    return yaml.safe_dump(profile.to_dict(), sort_keys=False)
