"""SpecialistSpec: what a specialist encoder is, independent of where its weights live.

The same record is written as ``specialists/<name>/specialist.json`` by train-specialist, stored
per specialist in an ensemble file's metadata, and read back by the EosFM encoder.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from eosfm_cli.errors import ArtifactError

REQUIRED_KEYS = ("name", "backbone", "bands", "mean", "std")


@dataclass
class SpecialistSpec:
    """Metadata of one specialist encoder.

    Attributes:
        name: unique name inside an ensemble.
        backbone: timm model name (created with ``features_only=True``).
        bands: canonical band names, in input order (repeats allowed: ``VV, VH, VH``).
        mean: per-channel mean used to normalise the input (raw physical units).
        std: per-channel std used to normalise the input.
        dataset: the experiment it was trained on.
        task: the task it was trained for.
        classes: class names of that task.
        metrics: its validation (and test) metrics.
        versions: package versions it was built with.
        out_indices: the timm feature levels kept (``None``: timm's default).
        projections: output channels of a 1x1 projection after each level (``None``: the
            backbone's own channels). A distilled student written with the teacher's channels
            has them; its weights then hold ``encoder.*`` and ``projections.*`` keys
            (:class:`~eosfm_cli.models.projected.ProjectedEncoder`).
        source: where it came from (``workspace``, ``reference``, ``checkpoint``...).
        assumed: notes on anything inferred rather than recorded (e.g. band names).

    The number of input channels, :attr:`in_chans`, is ``len(bands)``: derived, never stored
    on the object, but still written to (and checked when read from) the JSON record.
    """

    name: str
    backbone: str
    bands: list[str]
    mean: list[float]
    std: list[float]
    dataset: str | None = None
    task: str | None = None
    classes: list[str] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)
    out_indices: list[int] | None = None
    projections: list[int] | None = None
    source: str = "workspace"
    assumed: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        problems = []
        if self.in_chans <= 0:
            problems.append(f"in_chans must be positive (got {self.in_chans})")
        for key in ("mean", "std"):
            n = len(getattr(self, key))
            if n != self.in_chans:
                problems.append(f"{key} has {n} entries for in_chans={self.in_chans}")
        if any(s <= 0 for s in self.std):
            problems.append("std must be positive")
        if self.projections is not None and (
            not self.projections or any(int(c) <= 0 for c in self.projections)
        ):
            problems.append(f"projections must be positive channel counts (got {self.projections})")
        if problems:
            raise ArtifactError(
                "; ".join(problems),
                where=f"specialist {self.name!r}",
                hint="fix or re-export the specialist's metadata",
            )

    @property
    def in_chans(self) -> int:
        """Number of input channels: one per band."""
        return len(self.bands)

    def to_dict(self) -> dict[str, Any]:
        """Return the spec as JSON-serialisable data, ``in_chans`` included.

        The keys keep the order of the original record (``in_chans`` after ``backbone``), so
        that ``specialist.json`` and ensemble metadata are byte-for-byte what they were when
        ``in_chans`` was a stored field. ``projections`` is written only when set, so the
        records of every other specialist stay as they were.
        """
        data = asdict(self)
        if data["projections"] is None:
            del data["projections"]
        head = {key: data.pop(key) for key in ("name", "backbone")}
        return {**head, "in_chans": self.in_chans, **data}

    def to_json(self) -> str:
        """Return the spec as a JSON string."""
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "specialist") -> SpecialistSpec:
        """Build a spec from a mapping, ignoring unknown keys.

        An ``in_chans`` key, which every eosfm-written record carries, must agree with the
        number of bands; a record without one takes ``len(bands)``.

        Raises:
            ArtifactError: when a required key is missing or has the wrong type, or
                ``in_chans`` disagrees with the bands.
        """
        if not isinstance(data, dict):
            raise ArtifactError("specialist metadata is not a JSON object", where=where)
        missing = [k for k in REQUIRED_KEYS if k not in data]
        if missing:
            raise ArtifactError(
                f"specialist metadata lacks {', '.join(missing)}",
                where=where,
                hint="re-export the specialist",
            )
        known = {f for f in cls.__dataclass_fields__}
        try:
            kwargs = {k: v for k, v in data.items() if k in known}
            kwargs["bands"] = [str(b) for b in kwargs["bands"]]
            declared = int(data["in_chans"]) if "in_chans" in data else None
            kwargs["mean"] = [float(v) for v in kwargs["mean"]]
            kwargs["std"] = [float(v) for v in kwargs["std"]]
            if kwargs.get("projections") is not None:
                kwargs["projections"] = [int(c) for c in kwargs["projections"]]
        except (TypeError, ValueError) as err:
            raise ArtifactError(f"malformed specialist metadata: {err}", where=where) from None
        n = len(kwargs["bands"])
        if declared is not None and declared != n:
            raise ArtifactError(
                f"bands has {n} entries for in_chans={declared}",
                where=where,
                hint="fix or re-export the specialist's metadata",
            )
        try:
            return cls(**kwargs)
        except TypeError as err:
            raise ArtifactError(f"malformed specialist metadata: {err}", where=where) from None
