"""EosFM: an ensemble of specialist encoders used as one multi-scale feature extractor.

Each specialist is a timm ``features_only`` backbone trained on its own bands and statistics.
:class:`EosFM` takes raw physical values (reflectance x 1e4, SAR backscatter in dB) whose bands
are named by the caller, and for each specialist:

1. assembles that specialist's input by band name (a :class:`~eosfm_cli.models.adaptation.BandPlan`
   computed once at construction: select, substitute or fill);
2. normalises it with the specialist's own training mean and std;
3. runs the backbone and keeps its feature pyramid.

The pyramids of the active specialists are concatenated level by level (optionally normalised
per specialist first, and optionally fused by a 1x1 convolution), so the ensemble looks like a
single timm ``features_only`` encoder with :attr:`EosFM.out_channels` and
:attr:`EosFM.reductions`.

Frozen specialists can run on a fast path (``compile=True`` and/or ``precision="bf16"``): one
functional forward per architecture, compiled once and shared by every specialist of that
architecture (their weights are graph inputs), with the band fills and input normalisation
fused into the same graph. See :class:`FrozenForward`.

Example:
    >>> from eosfm_cli.models import EosFM
    >>> encoder = EosFM.from_file("ensemble.safetensors", input_bands=["B04", "B03", "B02"])
    >>> print(encoder.explain())
    >>> features = encoder(x)  # one tensor per pyramid level
"""

from __future__ import annotations

import copy
import math
import os
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, cast

import torch
import torch.nn.functional as F
from torch import nn

from eosfm_cli.bands import expand_bands
from eosfm_cli.errors import ArtifactError, BandError, DataError
from eosfm_cli.models.adaptation import (
    DEFAULT_MIN_COVERAGE,
    DEFAULT_TOLERANCE_NM,
    BandPlan,
    gather_channels,
    plan_ensemble,
)
from eosfm_cli.models.ensemble_file import (
    detect_format,
    load_reference,
    load_state_dicts,
    read_metadata,
    save_ensemble,
)
from eosfm_cli.models.spec import SpecialistSpec

NormalizationType = Literal["batch", "layer"]
Fusion = Literal["concat", "conv1x1"]
Precision = Literal["fp32", "bf16"]

_PLAN_OPTIONS = ("min_coverage", "tolerance_nm", "force", "ablate")


class SpecialistInput(nn.Module):
    """The per-batch half of a band plan, plus the specialist's input normalisation.

    Gathers the planned input channels, writes the fills (the training mean, so exactly 0 after
    normalisation) and applies ``(x - mean) / std``. All tensors are precomputed buffers, so the
    module moves with the ensemble and costs one gather and two element-wise ops per batch.

    Args:
        plan: the specialist's band plan.
        spec: the specialist (its mean and std).
    """

    index: torch.Tensor
    fill_mask: torch.Tensor | None
    fill_values: torch.Tensor | None
    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, plan: BandPlan, spec: SpecialistSpec) -> None:
        super().__init__()
        index, mask, values = plan.gather_tensors("cpu")
        # Derived from the plan, so kept out of the state dict.
        self.register_buffer("index", index.clone(), persistent=False)
        self.register_buffer("fill_mask", None if mask is None else mask.clone(), False)
        self.register_buffer("fill_values", None if values is None else values.clone(), False)
        # A substitute on another value scale is converted by folding its unit factor into the
        # normalisation: (x * s - mean) / std == (x - mean / s) / (std / s).
        scale = torch.tensor([c.scale for c in plan.channels], dtype=torch.float32)
        mean = torch.tensor(spec.mean, dtype=torch.float32) / scale
        std = torch.tensor(spec.std, dtype=torch.float32) / scale
        self.register_buffer("mean", mean.view(1, -1, 1, 1), False)
        self.register_buffer("std", std.view(1, -1, 1, 1), False)
        self.identity = plan.is_identity

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return the specialist's normalised input ``[B, Cspec, H, W]`` from ``[B, Cin, H, W]``."""
        x = gather_channels(x, self.index, self.fill_mask, self.fill_values, identity=self.identity)
        return (x - self.mean) / self.std


class EosFM(nn.Module):
    """Ensemble of specialist encoders, adapted to the input's bands by name.

    The ensemble takes raw physical values, ``[B, len(input_bands), H, W]``, and returns one
    feature map per pyramid level, the active specialists' features concatenated channel-wise
    in ensemble order (or fused to fewer channels with ``fusion="conv1x1"``).

    **Spatial size.** When ``H`` or ``W`` is not a multiple of the largest reduction (32 for
    ConvNeXt), the input is padded on the bottom and right to the next multiple — by reflection,
    or by replication when the image is too small to reflect — and each level is cropped back to
    ``ceil(H / r)`` by ``ceil(W / r)``. Every input pixel thus reaches the features, and the output
    sizes are what a divisible input of the same size would give.

    **Frozen specialists.** With ``freeze=True`` (the default) the specialists stay in eval mode
    whatever :meth:`train` is called with, their parameters do not require grad, and they run
    under :func:`torch.inference_mode`. Their features are then cloned into ordinary tensors, so
    a trainable head (or the ``conv1x1`` fusion) can use them in autograd. Call the ensemble
    inside ``torch.inference_mode()`` yourself to skip that copy when nothing downstream trains.

    **Fast frozen forward.** ``compile=True`` (or :meth:`compile_specialists`) compiles the
    frozen specialists with :func:`torch.compile`, one graph per architecture shared by all its
    specialists, and ``precision="bf16"`` runs them in bfloat16 (features come back in the
    input's dtype). Both are opt-in and apply to frozen specialists only; the default is the
    eager fp32 forward. See :class:`FrozenForward` for what is shared and cached.

    Args:
        specs: every specialist of the ensemble, in ensemble order.
        state_dicts: their timm ``features_only`` state dicts, in the same order. An entry may
            be ``None`` for a specialist that turns out inactive for these input bands.
        input_bands: the input's band names (or band-set names), in channel order.
        normalize_features: normalise each specialist's features per level before fusion.
        normalization_type: ``"batch"`` (``BatchNorm2d(C, affine=False)``) or ``"layer"``
            (``GroupNorm(1, C, affine=False)``).
        fusion: ``"concat"`` or ``"conv1x1"`` (concatenate, then a 1x1 convolution per level
            down to ``round(first active specialist's channels * fuse_to_mult)``).
        fuse_to_mult: channel multiplier of the ``conv1x1`` fusion.
        freeze: freeze the specialists (eval mode, no grad, inference mode).
        ablate: names of specialists to leave out.
        min_coverage: smallest fraction of a specialist's channels that must come from real
            input bands for it to run.
        tolerance_nm: largest centre-wavelength gap for substituting a missing optical band.
        force: specialist name → ``"active"`` or ``"inactive"``, overriding the plan rules.
        check_nan: refuse inputs holding NaN (one reduction per batch; disable when the data
            pipeline guarantees finite values).
        compile: compile the frozen specialists' forward (the first batch of each input shape
            pays the compilation; if compilation fails the ensemble warns once and runs eagerly).
        precision: ``"fp32"`` (the module's own dtype) or ``"bf16"`` for the frozen
            specialists' forward (bf16 weights and activations, features returned in the
            input's dtype, about 1% relative error). On a CPU it pays off when compiled; eager
            bf16 is no faster than fp32 there.

    Raises:
        BandError: when no specialist can run on ``input_bands`` (the message gives each
            specialist's reason), or for unknown band names.
        ArtifactError: when weights do not match their declared backbone and ``in_chans``, a
            backbone is unknown to timm, an active specialist has no weights, or the active
            specialists' pyramids have different reductions.
        ValueError: for an unknown ``normalization_type``, ``fusion`` or ``precision``, or
            ``fuse_to_mult <= 0``.
    """

    feature_norms: nn.ModuleList | None
    fusion_layers: nn.ModuleList | None

    def __init__(
        self,
        specs: Sequence[SpecialistSpec],
        state_dicts: Sequence[Mapping[str, torch.Tensor] | None],
        input_bands: Sequence[str] | str,
        *,
        normalize_features: bool = False,
        normalization_type: NormalizationType = "batch",
        fusion: Fusion = "concat",
        fuse_to_mult: float = 1.0,
        freeze: bool = True,
        ablate: Sequence[str] = (),
        min_coverage: float = DEFAULT_MIN_COVERAGE,
        tolerance_nm: float = DEFAULT_TOLERANCE_NM,
        force: Mapping[str, str] | None = None,
        check_nan: bool = True,
        compile: bool = False,
        precision: Precision = "fp32",
    ) -> None:
        super().__init__()
        if precision not in ("fp32", "bf16"):
            raise ValueError(f"precision must be 'fp32' or 'bf16', not {precision!r}")
        if normalization_type not in ("batch", "layer"):
            raise ValueError(
                f"normalization_type must be 'batch' or 'layer', not {normalization_type!r}"
            )
        if fusion not in ("concat", "conv1x1"):
            raise ValueError(f"fusion must be 'concat' or 'conv1x1', not {fusion!r}")
        if fuse_to_mult <= 0:
            raise ValueError(f"fuse_to_mult must be positive, not {fuse_to_mult}")
        if len(specs) != len(state_dicts):
            raise ArtifactError(f"{len(specs)} specialists but {len(state_dicts)} state dicts")
        if not specs:
            raise ArtifactError("an ensemble needs at least one specialist")
        names = [s.name for s in specs]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ArtifactError(
                f"specialist names repeat: {', '.join(repeated)}",
                hint="give every specialist a unique name",
            )

        self.input_bands: list[str] = expand_bands(input_bands)
        self.specs: list[SpecialistSpec] = list(specs)
        self.plans: list[BandPlan] = plan_ensemble(
            self.specs,
            self.input_bands,
            tolerance_nm=tolerance_nm,
            min_coverage=min_coverage,
            force=force,
            ablate=ablate,
        )
        self.active_indices: list[int] = [i for i, p in enumerate(self.plans) if p.is_active]
        if not self.active_indices:
            reasons = "; ".join(f"{p.specialist}: {p.reason}" for p in self.plans)
            raise BandError(
                f"no specialist can run on input bands {','.join(self.input_bands)} ({reasons})",
                hint="check the input band names, lower min_coverage, or force a specialist",
            )
        self.active_names: list[str] = [self.specs[i].name for i in self.active_indices]
        self.assumptions: list[str] = []
        self.fusion = fusion
        self.normalization_type = normalization_type if normalize_features else None
        self.frozen = freeze
        self.check_nan = check_nan

        encoders = []
        for i in self.active_indices:
            state = state_dicts[i]
            if state is None:
                raise ArtifactError(
                    f"specialist {self.specs[i].name!r} is active but has no weights"
                )
            encoders.append(build_specialist(self.specs[i], state))
        self.specialists = nn.ModuleList(encoders)
        self.inputs = nn.ModuleList(
            SpecialistInput(self.plans[i], self.specs[i]) for i in self.active_indices
        )

        self.specialist_channels: list[list[int]] = []
        reductions: list[int] | None = None
        for name, encoder in zip(self.active_names, encoders, strict=True):
            info: Any = encoder.feature_info
            self.specialist_channels.append([int(c) for c in info.channels()])
            own = [int(r) for r in info.reduction()]
            if reductions is None:
                reductions = own
            elif own != reductions:
                raise ArtifactError(
                    f"specialist {name!r} has pyramid reductions {own}, but "
                    f"{self.active_names[0]!r} has {reductions}; levels cannot be concatenated",
                    hint="give the specialists out_indices with matching reductions, or ablate one",
                )
        assert reductions is not None
        self.reductions: list[int] = reductions
        self._max_reduction = max(reductions)
        n_levels = len(reductions)
        concat_channels = [
            sum(ch[level] for ch in self.specialist_channels) for level in range(n_levels)
        ]

        self.feature_norms = None
        if normalize_features:
            self.feature_norms = nn.ModuleList(
                nn.ModuleList(_feature_norm(normalization_type, c) for c in channels)
                for channels in self.specialist_channels
            )

        self.fusion_layers = None
        self.out_channels: list[int] = concat_channels
        if fusion == "conv1x1":
            fused = [max(1, round(c * fuse_to_mult)) for c in self.specialist_channels[0]]
            self.fusion_layers = nn.ModuleList(
                nn.Conv2d(cin, cout, kernel_size=1)
                for cin, cout in zip(concat_channels, fused, strict=True)
            )
            self.out_channels = fused

        if freeze:
            self.specialists.requires_grad_(False)
            self.specialists.eval()

        self.precision: Precision = precision
        self.compiled = False
        self._frozen_forward: FrozenForward | None = None
        if compile:
            self.compile_specialists()
        elif precision != "fp32" and not freeze:
            warnings.warn(
                "precision applies to frozen specialists only; these specialists train, so "
                "they run in the module's dtype (use Lightning's precision for mixed precision)",
                stacklevel=2,
            )

    # ------------------------------------------------------------------------- construction

    @classmethod
    def from_file(
        cls,
        path: str | os.PathLike[str],
        input_bands: Sequence[str] | str,
        bands: Sequence[Sequence[str] | str | None] | None = None,
        **kwargs: Any,
    ) -> EosFM:
        """Build the ensemble from a native ``.safetensors`` file or a reference ``.pth`` list.

        For a native file only the specialists that are active for ``input_bands`` have their
        weights read.

        Args:
            path: the ensemble file; the format is detected from its content.
            input_bands: the input's band names, in channel order.
            bands: band names per specialist, for reference files that do not record them.
            **kwargs: any keyword option of :class:`EosFM`.

        Returns:
            The ensemble; :attr:`assumptions` lists what was inferred while reading the file.

        Raises:
            ArtifactError: for an unreadable, unsafe or malformed file.
            BandError: when no specialist can run on ``input_bands``.
        """
        if detect_format(path) == "native":
            if bands is not None:
                raise ArtifactError(
                    "--bands applies to reference files only; this native ensemble records "
                    "its specialists' bands",
                    str(path),
                    hint="drop --bands",
                )
            specs = read_metadata(path)
            plan_kwargs = {k: kwargs[k] for k in _PLAN_OPTIONS if k in kwargs}
            plans = plan_ensemble(specs, expand_bands(input_bands), **plan_kwargs)
            states = load_state_dicts(path, [i for i, p in enumerate(plans) if p.is_active])
            state_dicts: list[Mapping[str, torch.Tensor] | None] = [
                states.get(i) for i in range(len(specs))
            ]
            assumptions: list[str] = []
        else:
            entries, assumptions = load_reference(path, bands)
            specs = [spec for spec, _ in entries]
            state_dicts = [state for _, state in entries]
        model = cls(specs, state_dicts, input_bands, **kwargs)
        model.assumptions = assumptions
        return model

    def compile_specialists(self) -> EosFM:
        """Compile the frozen specialists' forward, sharing one graph per architecture.

        Compilation is lazy: the first batch of each input shape pays it (tens of seconds on a
        CPU; the graph is then reused by every specialist of the same architecture, also across
        ensembles in the process). Later batches smaller than one already compiled are padded
        up to it, so the last partial batch of a dataset does not trigger a recompilation.

        Has no effect, apart from a warning, on an ensemble whose specialists train
        (``freeze=False``): compile the whole training module for those.

        Returns:
            The ensemble itself.
        """
        if not self.frozen:
            warnings.warn(
                "compile_specialists applies to frozen specialists only; these specialists "
                "train, so they run eagerly (compile the training module instead)",
                stacklevel=2,
            )
            return self
        self.compiled = True
        return self

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the active specialists (only) as a native ensemble file.

        Ablated, inactive and skipped specialists are left out, so the file is a physically
        pruned ensemble. Feature normalisers and fusion layers are not part of the format.

        Args:
            path: destination ``.safetensors`` file.

        Returns:
            The path written.
        """
        specs = [self.specs[i] for i in self.active_indices]
        states = [encoder.state_dict() for encoder in self.specialists]
        return save_ensemble(path, specs, states)

    # ------------------------------------------------------------------------------ running

    def train(self, mode: bool = True) -> EosFM:
        """Set training mode; frozen specialists stay in eval mode."""
        super().train(mode)
        if self.frozen:
            self.specialists.eval()
        return self

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Encode a batch.

        Args:
            x: raw values ``[B, len(input_bands), H, W]`` in :attr:`input_bands` order.

        Returns:
            One tensor per pyramid level, ``[B, out_channels[l], ceil(H / r_l), ceil(W / r_l)]``.

        Raises:
            BandError: if the channel count differs from ``len(input_bands)``.
            DataError: if ``x`` is not 4-D or holds NaN.
        """
        return self.fuse(self.specialist_features(x))

    def specialist_features(self, x: torch.Tensor) -> list[list[torch.Tensor]]:
        """Run every active specialist and return its raw feature pyramid.

        Args:
            x: raw values ``[B, len(input_bands), H, W]``.

        Returns:
            Per active specialist (ensemble order), one tensor per pyramid level, before
            feature normalisation and fusion.
        """
        x = self._check_input(x)
        height, width = x.shape[-2:]
        x = self._pad(x)
        if self.frozen and not torch.is_inference_mode_enabled():
            with torch.inference_mode():
                features = self._run_specialists(x, height, width)
            # Inference tensors cannot enter autograd; ordinary copies can.
            return [[f.clone() for f in pyramid] for pyramid in features]
        return self._run_specialists(x, height, width)

    def fuse(self, features: Sequence[Sequence[torch.Tensor]]) -> list[torch.Tensor]:
        """Normalise (if asked), concatenate and fuse per-specialist pyramids level by level.

        Args:
            features: the output of :meth:`specialist_features`.

        Returns:
            One tensor per pyramid level.
        """
        out = []
        for level in range(len(self.reductions)):
            parts = [pyramid[level] for pyramid in features]
            if self.feature_norms is not None:
                parts = [
                    norms[level](part)  # type: ignore[index]
                    for norms, part in zip(self.feature_norms, parts, strict=True)
                ]
            fused = parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)
            if self.fusion_layers is not None:
                fused = self.fusion_layers[level](fused)
            out.append(fused)
        return out

    def _check_input(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4:
            raise DataError(
                f"input has shape {tuple(x.shape)}, expected [B, C, H, W]",
                hint="add a batch dimension",
            )
        if x.shape[1] != len(self.input_bands):
            raise BandError(
                f"input has {x.shape[1]} channels but {len(self.input_bands)} input bands are "
                f"declared ({','.join(self.input_bands)})",
                hint="declare one band name per input channel, in channel order",
            )
        dtype = cast(SpecialistInput, self.inputs[0]).mean.dtype
        if x.dtype != dtype:
            x = x.to(dtype)
        if self.check_nan and torch.isnan(x).any():
            bad = int(torch.isnan(x).sum())
            raise DataError(
                f"input holds {bad} NaN values",
                hint="fill or mask no-data pixels before encoding",
            )
        return x

    def _pad(self, x: torch.Tensor) -> torch.Tensor:
        r = self._max_reduction
        height, width = x.shape[-2:]
        pad_h, pad_w = -height % r, -width % r
        if not pad_h and not pad_w:
            return x
        mode = "reflect" if pad_h < height and pad_w < width else "replicate"
        return F.pad(x, (0, pad_w, 0, pad_h), mode=mode)

    def _run_specialists(
        self, x: torch.Tensor, height: int, width: int
    ) -> list[list[torch.Tensor]]:
        cropped = x.shape[-2] != height or x.shape[-1] != width
        sizes = [(math.ceil(height / r), math.ceil(width / r)) for r in self.reductions]
        if self.frozen and (self.compiled or self.precision != "fp32"):
            pyramids = self._fast_forward()(
                x, precision=self.precision, compile=self.compiled, on_fallback=self._fallback
            )
        else:
            pyramids = [
                list(encoder(prepare(x)))
                for prepare, encoder in zip(self.inputs, self.specialists, strict=True)
            ]
        if cropped:
            pyramids = [
                [f[..., :h, :w] for f, (h, w) in zip(pyramid, sizes, strict=True)]
                for pyramid in pyramids
            ]
        return pyramids

    def _fast_forward(self) -> FrozenForward:
        if self._frozen_forward is None:
            self._frozen_forward = FrozenForward(
                list(self.specialists), [cast(SpecialistInput, m) for m in self.inputs]
            )
        return self._frozen_forward

    def _fallback(self, error: BaseException) -> None:
        first = str(error).strip().split("\n")[0][:300]
        warnings.warn(
            f"torch.compile failed ({type(error).__name__}: {first}); the specialists run "
            "eagerly from now on",
            RuntimeWarning,
            stacklevel=4,
        )
        self.compiled = False

    # ------------------------------------------------------------------------------ reports

    def explain(self) -> str:
        """Return every specialist's band plan, and what was assumed while loading."""
        n = len(self.specs)
        lines = [
            f"input bands: {','.join(self.input_bands)}",
            f"{len(self.active_indices)} of {n} specialists active: {', '.join(self.active_names)}",
            f"pyramid: channels {self.out_channels}, reductions {self.reductions}",
        ]
        if self.frozen and (self.compiled or self.precision != "fp32"):
            mode = "compiled" if self.compiled else "eager"
            lines.append(f"frozen forward: {mode}, {self.precision}")
            groups = self._fast_forward().describe(self.active_names)
            lines.extend(f"  {line}" for line in groups)
        lines.append("")
        for spec, plan in zip(self.specs, self.plans, strict=True):
            lines.append(plan.explain())
            lines.extend(f"  assumed: {note}" for note in spec.assumed)
        if self.assumptions:
            lines.append("")
            lines.append("assumptions:")
            lines.extend(f"  - {a}" for a in self.assumptions)
        return "\n".join(lines)

    def extra_repr(self) -> str:
        """Summarise the ensemble in ``repr``."""
        return (
            f"input_bands={self.input_bands}, active={self.active_names}, "
            f"out_channels={self.out_channels}, reductions={self.reductions}, "
            f"fusion={self.fusion!r}, frozen={self.frozen}"
            + (f", precision={self.precision!r}" if self.precision != "fp32" else "")
            + (", compiled=True" if self.compiled else "")
        )


def build_specialist(spec: SpecialistSpec, state_dict: Mapping[str, torch.Tensor]) -> nn.Module:
    """Create a specialist's timm ``features_only`` model and load its weights strictly.

    Args:
        spec: the specialist (backbone, in_chans, out_indices).
        state_dict: its weights.

    Returns:
        The model with the weights loaded, in training mode.

    Raises:
        ArtifactError: when timm does not know the backbone or cannot build it with these
            options, or when the weights' keys or shapes do not match the model.
    """
    import timm

    where = f"specialist {spec.name!r} ({spec.backbone}, in_chans={spec.in_chans})"
    options: dict[str, Any] = {
        "pretrained": False,
        "features_only": True,
        "in_chans": spec.in_chans,
    }
    if spec.out_indices is not None:
        options["out_indices"] = tuple(spec.out_indices)
    try:
        model = timm.create_model(spec.backbone, **options)
    except RuntimeError as err:
        raise ArtifactError(
            str(err).split("\n")[0], where, hint="check the timm backbone name"
        ) from None
    except (ValueError, TypeError, IndexError, KeyError, AssertionError) as err:
        raise ArtifactError(
            f"timm cannot build it with features_only and out_indices={spec.out_indices}: {err}",
            where,
        ) from None

    expected = model.state_dict()
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    mismatched = [
        f"{k} is {tuple(state_dict[k].shape)}, expected {tuple(expected[k].shape)}"
        for k in expected
        if k in state_dict and state_dict[k].shape != expected[k].shape
    ]
    problems = []
    if mismatched:
        problems.append(f"{len(mismatched)} shape mismatches ({'; '.join(mismatched[:3])})")
    if missing:
        problems.append(f"{len(missing)} missing keys ({', '.join(missing[:3])})")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected keys ({', '.join(unexpected[:3])})")
    if problems:
        raise ArtifactError(
            "weights do not match the declared backbone: " + "; ".join(problems),
            where,
            hint="check the backbone and in_chans recorded for this specialist",
        )
    model.load_state_dict(dict(state_dict), strict=True)
    return model


def _feature_norm(kind: NormalizationType, channels: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(channels, affine=False)
    return nn.GroupNorm(1, channels, affine=False)


# ------------------------------------------------------------------------ fast frozen forward


def _frozen_specialist_forward(
    template: nn.Module,
    tensors: dict[str, torch.Tensor],
    x: torch.Tensor,
    fill_mask: torch.Tensor,
    fill_values: torch.Tensor,
    mean: torch.Tensor,
    std: torch.Tensor,
    dtype: torch.dtype,
) -> list[torch.Tensor]:
    """One frozen specialist as a pure function of its weights: fill, normalise, encode.

    The same steps as :class:`SpecialistInput` (after its gather, which the caller does: a
    gather by a runtime index compiles to a slow per-pixel loop) followed by the backbone,
    written so that every specialist of an architecture traces to the same graph: the weights
    (``tensors``), the fills and the statistics are inputs, and the backbone ``template`` lives
    on the meta device (it only supplies the structure).

    Returns:
        The feature pyramid, in ``x``'s dtype whatever ``dtype`` it was computed in.
    """
    x = torch.where(fill_mask, fill_values, x)
    x = ((x - mean) / std).to(dtype)
    features = torch.func.functional_call(template, tensors, (x,))
    return [f.to(mean.dtype) for f in features]


_compiled: Callable[..., list[torch.Tensor]] | None = None


def _compiled_forward() -> Callable[..., list[torch.Tensor]]:
    # One compiled function for the process: dynamo keeps one graph per architecture, shape
    # and dtype, whichever ensemble or specialist the weights come from.
    global _compiled
    if _compiled is None:
        _compiled = torch.compile(_frozen_specialist_forward, dynamic=False)
    return _compiled


@dataclass
class _Member:
    """Where a specialist sits in the fast forward."""

    group: int
    template: nn.Module
    width: int
    padded: tuple[str, ...]


class FrozenForward:
    """The fast forward of frozen specialists, shared graph per architecture.

    Specialists whose modules have the same structure form a group that shares one meta-device
    template, so one compiled graph serves them all: their weights are graph inputs, not
    constants. Specialists of a group that differ only in their input channels (a 3-band and a
    13-band ConvNeXt) still share the graph: the narrower stems are zero-padded to the group's
    widest input, and the padded input channels are filled with exact zeros, so the features
    are unchanged (the padding costs a few percent more FLOPs in the stem).

    Derived tensors (padded stems, bf16 copies, padded band-plan buffers) are cached per device
    and dtype, and rebuilt when a weight's storage or version changes. With compilation, a
    batch smaller than one already compiled for the same input shape is zero-padded up to it
    (frozen specialists run in eval mode, so samples do not interact), so the last partial
    batch of a dataset reuses the graph instead of compiling another.

    Args:
        encoders: the frozen specialists, in ensemble order.
        inputs: their input modules (band plan and statistics), in the same order.
    """

    def __init__(self, encoders: Sequence[nn.Module], inputs: Sequence[SpecialistInput]) -> None:
        self.encoders = list(encoders)
        self.inputs = list(inputs)
        self.members = _group_members(self.encoders, [int(i.index.numel()) for i in self.inputs])
        self._cache: dict[int, tuple[tuple[Any, ...], tuple[torch.Tensor | Any, ...]]] = {}
        self._batch_sizes: dict[tuple[Any, ...], set[int]] = {}

    def __call__(
        self,
        x: torch.Tensor,
        *,
        precision: Precision = "fp32",
        compile: bool = False,
        on_fallback: Callable[[BaseException], None] | None = None,
    ) -> list[list[torch.Tensor]]:
        """Run every specialist on ``x`` (padded raw input, the ensemble's dtype).

        Args:
            x: ``[B, Cin, H, W]`` raw input, spatially padded to the pyramid's largest reduction.
            precision: ``"fp32"`` (``x``'s dtype) or ``"bf16"``.
            compile: use the compiled graph.
            on_fallback: called once with the error when compilation fails; the remaining
                specialists then run eagerly (and so does the rest of this batch).

        Returns:
            One feature pyramid per specialist, in ``x``'s dtype.
        """
        dtype = torch.bfloat16 if precision == "bf16" else x.dtype
        batch = x.shape[0]
        if compile:
            x = self._pad_batch(x, dtype)
        out = []
        for i, member in enumerate(self.members):
            tensors, index, *plan = self._prepared(i, x, dtype)
            # Always a fresh tensor (never the caller's), so that every specialist's input is
            # the same kind of tensor and dynamo keeps one graph.
            gathered = x.index_select(1, index)
            args = (member.template, tensors, gathered, *plan, dtype)
            if compile:
                try:
                    features = _compiled_forward()(*args)
                except torch.OutOfMemoryError:
                    raise
                except Exception as error:
                    if on_fallback is not None:
                        on_fallback(error)
                    compile = False
                    features = _frozen_specialist_forward(*args)
            else:
                features = _frozen_specialist_forward(*args)
            if x.shape[0] != batch:
                features = [f[:batch] for f in features]
            out.append(list(features))
        return out

    def describe(self, names: Sequence[str]) -> list[str]:
        """Return one line per shared graph: its specialists and input width."""
        lines = []
        for group in sorted({m.group for m in self.members}):
            members = [(n, m) for n, m in zip(names, self.members, strict=True) if m.group == group]
            width = members[0][1].width
            padded = [n for n, m in members if m.padded]
            note = f"; stems zero-padded: {', '.join(padded)}" if padded else ""
            lines.append(
                f"graph {group}: {', '.join(n for n, _ in members)} ({width} input channels{note})"
            )
        return lines

    def _pad_batch(self, x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        key = (tuple(x.shape[1:]), x.dtype, x.device, dtype)
        seen = self._batch_sizes.setdefault(key, set())
        batch = x.shape[0]
        larger = [b for b in seen if b > batch]
        if batch in seen or not larger:
            seen.add(batch)
            return x
        extra = x.new_zeros((min(larger) - batch, *x.shape[1:]))
        return torch.cat([x, extra])

    def _prepared(self, i: int, x: torch.Tensor, dtype: torch.dtype) -> tuple[Any, ...]:
        encoder, prepare, member = self.encoders[i], self.inputs[i], self.members[i]
        named = [*encoder.named_parameters(), *encoder.named_buffers()]
        sources = [t for _, t in named] + [prepare.index, prepare.mean, prepare.std]
        sources += [t for t in (prepare.fill_mask, prepare.fill_values) if t is not None]
        key = (x.device, x.dtype, dtype, *((t.data_ptr(), t._version) for t in sources))
        cached = self._cache.get(i)
        if cached is not None and cached[0] == key:
            return cached[1]
        with torch.inference_mode(False):  # ordinary tensors, like the weights themselves
            prepared = self._derive(named, prepare, member, x, dtype)
        self._cache[i] = (key, prepared)
        return prepared

    @staticmethod
    def _derive(
        named: Sequence[tuple[str, torch.Tensor]],
        prepare: SpecialistInput,
        member: _Member,
        x: torch.Tensor,
        dtype: torch.dtype,
    ) -> tuple[Any, ...]:
        width, channels = member.width, int(prepare.index.numel())
        tensors = {}
        for name, tensor in named:
            t = tensor.detach()
            if name in member.padded:
                shape = list(t.shape)
                shape[1] = width - shape[1]
                t = torch.cat([t, t.new_zeros(shape)], dim=1)
            if t.is_floating_point():
                t = t.to(dtype)
            tensors[name] = t

        def padded(t: torch.Tensor | None, like: torch.Tensor, pad: float | bool) -> torch.Tensor:
            flat = like if t is None else t.reshape(-1).to(like.dtype)
            return torch.cat([flat, like.new_full((width - channels,), pad)])

        device = x.device
        no_fill = torch.zeros(channels, dtype=torch.bool, device=device)
        zeros = torch.zeros(channels, dtype=x.dtype, device=device)
        view = (1, width, 1, 1)
        return (
            tensors,
            padded(prepare.index, prepare.index, 0),
            padded(prepare.fill_mask, no_fill, True).view(view),
            padded(prepare.fill_values, zeros, 0.0).view(view),
            padded(prepare.mean, zeros, 0.0).view(view),
            padded(prepare.std, zeros, 1.0).view(view),
        )


def _group_members(encoders: Sequence[nn.Module], channels: Sequence[int]) -> list[_Member]:
    """Group specialists by module structure; zero-pad stems within a group when possible."""
    by_structure: dict[tuple[Any, ...], list[int]] = {}
    for i, encoder in enumerate(encoders):
        structure = tuple((n, type(m).__qualname__) for n, m in encoder.named_modules())
        keys = tuple(n for n, _ in (*encoder.named_parameters(), *encoder.named_buffers()))
        by_structure.setdefault((type(encoder).__qualname__, structure, keys), []).append(i)

    members: dict[int, _Member] = {}
    group = 0
    for indices in by_structure.values():
        widest = max(indices, key=lambda i: channels[i])
        width = channels[widest]
        template = _meta_template(encoders[widest])
        reference = _shapes(encoders[widest])
        for i in indices:
            padded = _padded_inputs(encoders[i], reference, channels[i], width, template)
            if padded is None:  # cannot share: its own graph
                members[i] = _Member(-1, _meta_template(encoders[i]), channels[i], ())
            else:
                members[i] = _Member(group, template, width, padded)
        group += 1
    for i in sorted(members):
        if members[i].group < 0:
            members[i].group = group
            group += 1
    return [members[i] for i in range(len(encoders))]


def _meta_template(encoder: nn.Module) -> nn.Module:
    template = copy.deepcopy(encoder).to(device="meta")
    template.requires_grad_(False)
    return template.eval()


def _shapes(encoder: nn.Module) -> dict[str, torch.Size]:
    return {n: t.shape for n, t in (*encoder.named_parameters(), *encoder.named_buffers())}


def _padded_inputs(
    encoder: nn.Module,
    reference: Mapping[str, torch.Size],
    channels: int,
    width: int,
    template: nn.Module,
) -> tuple[str, ...] | None:
    """Names of the weights to zero-pad for ``encoder`` to run as ``template``, or ``None``.

    Only plain convolutions reading the input channels (dim 1 of the weight equals the
    specialist's channel count, and the template's equals ``width``) can be padded.
    """
    padded = []
    for name, shape in _shapes(encoder).items():
        ref = reference[name]
        if shape == ref:
            continue
        if len(shape) != len(ref) or len(shape) < 2 or shape[1] != channels or ref[1] != width:
            return None
        if shape[:1] != ref[:1] or shape[2:] != ref[2:] or not name.endswith(".weight"):
            return None
        owner = template.get_submodule(name.rsplit(".", 1)[0])
        if not isinstance(owner, nn.Conv2d) or owner.groups != 1:
            return None
        padded.append(name)
    return tuple(padded)
