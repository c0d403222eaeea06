"""Band plans: which input band feeds each channel of a specialist, decided by name.

A specialist was trained on a list of named bands (``B04, B03, B02``; ``VV, VH, VH``; the 13
Sentinel-2 bands in EuroSAT's order). The input declares its own band names. For each specialist
a :class:`BandPlan` is computed once, before any pixel is read:

1. A channel whose band is present in the input by name **selects** that input band. Repeats
   are allowed, so a ``VV, VH, VH`` specialist reads the input's VH twice.
2. A missing optical band is **substituted** by the present optical band with the nearest centre
   wavelength, if it lies within ``tolerance_nm``; the gap is recorded. Substitutes never cross
   kinds: optical only stands in for optical, SAR for nothing (polarisations are not
   interchangeable), elevation for nothing.
3. Otherwise the channel is **filled** with the specialist's training mean for that channel,
   which becomes exactly 0 after the specialist's own normalisation.
4. A specialist whose band kinds (optical, SAR, elevation) do not occur in the input at all is
   **inactive** for that input: a SAR specialist on optical-only input, an optical specialist on
   SAR-only input.
5. A specialist whose *coverage* (the fraction of its channels fed by a real band, selected or
   substituted) is below ``min_coverage`` is **skipped**.

A plan can be forced: ``force="active"`` runs the specialist despite rules 4 and 5, and
``force="inactive"`` disables it. Because matching is by name and wavelength, the order of the
input bands never matters: a BGR input feeds red to red and blue to blue. (The tolerance is the
only thing that could make red read blue: the closest red and blue bands of the catalog are
147.6 nm apart, far beyond the 60 nm default.)

Computing a plan needs no torch; only :meth:`BandPlan.apply` and :meth:`BandPlan.index_tensor`
import it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Literal

from eosfm_cli.bands import expand_bands, get_band
from eosfm_cli.errors import ArtifactError, BandError
from eosfm_cli.models.channel_source import ChannelSource, source_for
from eosfm_cli.models.spec import SpecialistSpec

if TYPE_CHECKING:
    import torch

PlanStatus = Literal["active", "inactive", "skipped"]
ForceRule = Literal["active", "inactive"]

DEFAULT_TOLERANCE_NM = 60.0
DEFAULT_MIN_COVERAGE = 0.5
FORCE_RULES: tuple[str, ...] = ("active", "inactive")


@dataclass
class BandPlan:
    """How one specialist's input is assembled from the ensemble's input bands.

    Build it with :meth:`BandPlan.build`. A plan is computed once per specialist and input band
    list; it is cheap, needs no pixels and no torch.

    Attributes:
        specialist: the specialist's name.
        backbone: the specialist's timm backbone (for display).
        specialist_bands: the bands the specialist expects, in its order.
        input_bands: the input's canonical band names, in input order.
        channels: one :class:`ChannelSource` per specialist channel.
        status: ``active``, ``inactive`` (no band kind in common, disabled, ablated) or
            ``skipped`` (coverage below the threshold).
        reason: why the plan is not active, or what was overridden when forced.
        coverage: fraction of channels fed by a real band (selected or substituted).
        forced: whether a force rule decided the status.
    """

    specialist: str
    backbone: str
    specialist_bands: list[str]
    input_bands: list[str]
    channels: list[ChannelSource]
    status: PlanStatus
    reason: str | None = None
    coverage: float = 0.0
    forced: bool = False
    _tensors: dict[str, tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    @classmethod
    def build(
        cls,
        spec: SpecialistSpec,
        input_bands: Sequence[str],
        *,
        tolerance_nm: float = DEFAULT_TOLERANCE_NM,
        min_coverage: float = DEFAULT_MIN_COVERAGE,
        force: str | None = None,
    ) -> BandPlan:
        """Compute the plan of one specialist for one input band list.

        Args:
            spec: the specialist (its ``bands`` and ``mean`` are used).
            input_bands: the input's band names, in input order. Aliases and band-set names
                are accepted and canonicalised.
            tolerance_nm: the largest centre-wavelength gap allowed for a substitute.
            min_coverage: the smallest fraction of real channels for the plan to be active.
            force: ``"active"`` to run the specialist whatever the rules say, ``"inactive"``
                to disable it, ``None`` to follow the rules.

        Returns:
            The plan.

        Raises:
            BandError: for an unknown band name, an empty input band list, or an unknown force
                rule.
        """
        if force is not None and force not in FORCE_RULES:
            raise BandError(
                f"unknown force rule {force!r} for specialist {spec.name!r}",
                hint=f"use one of {', '.join(FORCE_RULES)}",
            )
        if tolerance_nm < 0:
            raise BandError(f"tolerance_nm must be >= 0 (got {tolerance_nm})")
        inputs = expand_bands(list(input_bands))
        input_catalog = [get_band(name) for name in inputs]
        wanted = [get_band(name) for name in spec.bands]

        first_index: dict[str, int] = {}
        for i, band in enumerate(input_catalog):
            first_index.setdefault(band.name, i)

        channels = [
            source_for(band, mean, first_index, input_catalog, tolerance_nm)
            for band, mean in zip(wanted, spec.mean, strict=True)
        ]
        real = sum(c.is_real for c in channels)
        coverage = real / len(channels)

        status: PlanStatus = "active"
        reason: str | None = None
        spec_kinds = {b.kind for b in wanted}
        input_kinds = {b.kind for b in input_catalog}
        if not spec_kinds & input_kinds:
            status = "inactive"
            reason = (
                f"{_kinds_text(spec_kinds)} specialist, but the input has only "
                f"{_kinds_text(input_kinds)} bands"
            )
        elif coverage < min_coverage:
            status = "skipped"
            reason = (
                f"only {real}/{len(channels)} channels ({coverage:.0%}) come from real bands, "
                f"below min_coverage {min_coverage:.0%}"
            )

        forced = False
        if force == "inactive":
            status, reason, forced = "inactive", "disabled by a force rule", True
        elif force == "active":
            if status != "active":
                reason = f"forced active despite: {reason}"
            status, forced = "active", True

        return cls(
            specialist=spec.name,
            backbone=spec.backbone,
            specialist_bands=list(spec.bands),
            input_bands=inputs,
            channels=channels,
            status=status,
            reason=reason,
            coverage=coverage,
            forced=forced,
        )

    @property
    def is_active(self) -> bool:
        """Whether the specialist runs on this input."""
        return self.status == "active"

    @property
    def index(self) -> list[int]:
        """Input channel index for each specialist channel; -1 marks a fill."""
        return [c.input_index for c in self.channels]

    @property
    def fill_values(self) -> list[float | None]:
        """Raw fill value for each specialist channel; ``None`` where a real band is read."""
        return [c.fill_value if c.kind == "fill" else None for c in self.channels]

    @property
    def n_fill(self) -> int:
        """Number of filled channels."""
        return sum(c.kind == "fill" for c in self.channels)

    @property
    def n_substitute(self) -> int:
        """Number of substituted channels."""
        return sum(c.kind == "substitute" for c in self.channels)

    @property
    def is_identity(self) -> bool:
        """Whether the input is passed through unchanged (same bands, same order, no fill)."""
        return len(self.channels) == len(self.input_bands) and self.index == list(
            range(len(self.channels))
        )

    def with_status(self, status: PlanStatus, reason: str) -> BandPlan:
        """Return a copy of this plan with another status (used for ablation)."""
        return replace(self, status=status, reason=reason)

    def index_tensor(self, device: torch.device | str | None = None) -> torch.Tensor:
        """Return :attr:`index` as a LongTensor (-1 marks a fill)."""
        import torch

        return torch.tensor(self.index, dtype=torch.long, device=device)

    def gather_tensors(
        self, device: torch.device | str | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """Return the tensors that :meth:`apply` uses, built once per device.

        Returns:
            ``(index, fill_mask, fill_values)``: the gather index with fills pointing at input 0,
            a ``[1, C, 1, 1]`` boolean mask of filled channels and a ``[1, C, 1, 1]`` tensor of
            fill values. The last two are ``None`` when nothing is filled.
        """
        import torch

        key = str(torch.device(device) if device is not None else torch.device("cpu"))
        cached = self._tensors.get(key)
        if cached is not None:
            return cached
        index = torch.tensor([max(i, 0) for i in self.index], dtype=torch.long, device=device)
        mask: torch.Tensor | None = None
        values: torch.Tensor | None = None
        if self.n_fill:
            mask = torch.tensor(
                [c.kind == "fill" for c in self.channels], dtype=torch.bool, device=device
            ).view(1, -1, 1, 1)
            values = torch.tensor(
                [c.fill_value or 0.0 for c in self.channels], dtype=torch.float32, device=device
            ).view(1, -1, 1, 1)
        self._tensors[key] = (index, mask, values)
        return index, mask, values

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        """Assemble the specialist's raw input from the ensemble's input.

        Args:
            x: input of shape ``[B, Cin, H, W]`` whose channels follow :attr:`input_bands`.

        Returns:
            ``[B, Cspec, H, W]``: selected and substituted bands in the specialist's order, and
            fills set to the specialist's training mean. Normalisation is left to the encoder.

        Raises:
            BandError: if ``x`` does not have one channel per input band.
        """
        if x.dim() != 4 or x.shape[1] != len(self.input_bands):
            raise BandError(
                f"input has shape {tuple(x.shape)}, expected [B, {len(self.input_bands)}, H, W] "
                f"for bands {','.join(self.input_bands)}",
                where=f"specialist {self.specialist!r}",
            )
        index, mask, values = self.gather_tensors(x.device)
        return gather_channels(x, index, mask, values, identity=self.is_identity)

    def explain(self) -> str:
        """Return a readable table of this plan, or why the specialist does not run."""
        real = sum(c.is_real for c in self.channels)
        head = (
            f"{self.specialist} ({self.backbone}, {len(self.channels)} bands): {self.status}, "
            f"coverage {self.coverage:.0%} ({real}/{len(self.channels)} real"
            + (f", {self.n_substitute} substituted" if self.n_substitute else "")
            + (f", {self.n_fill} filled" if self.n_fill else "")
            + ")"
        )
        lines = [head]
        if self.reason:
            lines.append(f"  {'note' if self.is_active else 'reason'}: {self.reason}")
        if self.status != "inactive":
            # An inactive plan's table is all fills or beside the point: the reason says it all.
            lines.extend(f"  {c.describe()}" for c in self.channels)
        return "\n".join(lines)


def gather_channels(
    x: torch.Tensor,
    index: torch.Tensor,
    fill_mask: torch.Tensor | None,
    fill_values: torch.Tensor | None,
    *,
    identity: bool = False,
) -> torch.Tensor:
    """Gather input channels and write fill values: the per-batch half of a band plan.

    Args:
        x: ``[B, Cin, H, W]`` input.
        index: LongTensor of input indices, one per output channel (fills may point anywhere).
        fill_mask: ``[1, Cout, 1, 1]`` boolean mask of filled channels, or ``None``.
        fill_values: ``[1, Cout, 1, 1]`` values written where ``fill_mask`` is set, or ``None``.
        identity: skip the gather (the plan is a pass-through).

    Returns:
        The ``[B, Cout, H, W]`` tensor.
    """
    import torch

    out = x if identity else x.index_select(1, index)
    if fill_mask is not None and fill_values is not None:
        out = torch.where(fill_mask, fill_values.to(out.dtype), out)
    return out


def plan_ensemble(
    specs: Sequence[SpecialistSpec],
    input_bands: Sequence[str],
    *,
    tolerance_nm: float = DEFAULT_TOLERANCE_NM,
    min_coverage: float = DEFAULT_MIN_COVERAGE,
    force: Mapping[str, str] | None = None,
    ablate: Sequence[str] = (),
) -> list[BandPlan]:
    """Compute the plan of every specialist of an ensemble.

    Args:
        specs: the specialists, in ensemble order.
        input_bands: the input's band names, in input order.
        tolerance_nm: the largest centre-wavelength gap allowed for a substitute.
        min_coverage: the smallest fraction of real channels for a plan to be active.
        force: specialist name → ``"active"`` or ``"inactive"``.
        ablate: names of specialists to leave out (their plan becomes inactive).

    Returns:
        One plan per specialist, in ensemble order.

    Raises:
        ArtifactError: if ``force`` or ``ablate`` names a specialist the ensemble lacks.
        BandError: for unknown band names or force rules.
    """
    names = [s.name for s in specs]
    for label, requested in (("force", list(force or {})), ("ablate", list(ablate))):
        unknown = [n for n in requested if n not in names]
        if unknown:
            raise ArtifactError(
                f"{label} names specialists the ensemble lacks: {', '.join(unknown)}",
                hint=f"choose from {', '.join(names)}",
            )
    force = force or {}
    plans = []
    for spec in specs:
        plan = BandPlan.build(
            spec,
            input_bands,
            tolerance_nm=tolerance_nm,
            min_coverage=min_coverage,
            force=force.get(spec.name),
        )
        if spec.name in ablate:
            plan = plan.with_status("inactive", "ablated by request")
        plans.append(plan)
    return plans


def active_indices(plans: Sequence[BandPlan], input_bands: Sequence[str]) -> list[int]:
    """Return the indices of the active plans, refusing an input that no specialist can run on.

    Args:
        plans: one plan per specialist, in ensemble order.
        input_bands: the input's canonical band names (for the message).

    Raises:
        BandError: when no plan is active; the message gives each specialist's reason.
    """
    active = [i for i, p in enumerate(plans) if p.is_active]
    if not active:
        reasons = "; ".join(f"{p.specialist}: {p.reason}" for p in plans)
        raise BandError(
            f"no specialist can run on input bands {','.join(input_bands)} ({reasons})",
            hint="check the input band names, lower min_coverage, or force a specialist",
        )
    return active


def _kinds_text(kinds: AbstractSet[str]) -> str:
    order = ("optical", "sar", "elevation")
    labels = {"optical": "optical", "sar": "SAR", "elevation": "elevation"}
    return "+".join(labels[k] for k in order if k in kinds)
