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
single timm ``features_only`` encoder: :attr:`EosFM.out_channels`, :attr:`EosFM.reductions`
and a timm-style :attr:`EosFM.feature_info` (``.channels()``, ``.reduction()``).

Example:
    >>> from eosfm_cli.models import EosFM
    >>> encoder = EosFM.from_file("ensemble.safetensors", input_bands=["B04", "B03", "B02"])
    >>> print(encoder.explain())
    >>> features = encoder(x)  # one tensor per pyramid level
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, cast

import torch
from torch import nn

from eosfm_cli.bands import expand_bands
from eosfm_cli.models.adaptation import (
    DEFAULT_MIN_COVERAGE,
    DEFAULT_TOLERANCE_NM,
    BandPlan,
    active_indices,
    plan_ensemble,
)
from eosfm_cli.models.ensemble_file import load_active
from eosfm_cli.models.ensemble_input import check_input, pad_to_multiple
from eosfm_cli.models.feature_info import PyramidInfo
from eosfm_cli.models.file_checks import check_entries
from eosfm_cli.models.frozen_forward import FrozenForward, Precision
from eosfm_cli.models.native_file import save_ensemble
from eosfm_cli.models.pyramid import (
    NormalizationType,
    check_merge_options,
    crop_pyramids,
    fuse_levels,
    merge_layers,
    pyramid_shape,
)
from eosfm_cli.models.spec import SpecialistSpec
from eosfm_cli.models.specialist import SpecialistInput, build_specialist

Fusion = Literal["concat", "conv1x1"]

_PLAN_OPTIONS = ("min_coverage", "tolerance_nm", "force", "ablate")


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
    eager fp32 forward. See :class:`~eosfm_cli.models.frozen_forward.FrozenForward` for what
    is shared and cached.

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
        check_merge_options(normalization_type, fusion, fuse_to_mult)
        check_entries(specs, state_dicts)

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
        self.active_indices: list[int] = active_indices(self.plans, self.input_bands)
        self.active_names: list[str] = [self.specs[i].name for i in self.active_indices]
        self.assumptions: list[str] = []
        self.fusion = fusion
        self.normalization_type = normalization_type if normalize_features else None
        self.frozen = freeze
        self.check_nan = check_nan

        encoders = [build_specialist(self.specs[i], state_dicts[i]) for i in self.active_indices]
        self.specialists = nn.ModuleList(encoders)
        self.inputs = nn.ModuleList(
            SpecialistInput(self.plans[i], self.specs[i]) for i in self.active_indices
        )

        self.specialist_channels: list[list[int]]
        self.reductions: list[int]
        self.specialist_channels, self.reductions = pyramid_shape(self.active_names, encoders)
        self._max_reduction = max(self.reductions)
        self.out_channels: list[int]
        self.feature_norms, self.fusion_layers, self.out_channels = merge_layers(
            self.specialist_channels, self.normalization_type, fusion == "conv1x1", fuse_to_mult
        )
        self.feature_info = PyramidInfo(self.out_channels, self.reductions)

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
        plan_options = {k: kwargs[k] for k in _PLAN_OPTIONS if k in kwargs}
        specs, state_dicts, assumptions = load_active(path, input_bands, bands, **plan_options)
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
        dtype = cast(SpecialistInput, self.inputs[0]).mean.dtype
        x = check_input(x, self.input_bands, dtype, self.check_nan)
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
        levels = range(len(self.reductions))
        return fuse_levels(features, levels, self.feature_norms, self.fusion_layers)

    def _pad(self, x: torch.Tensor) -> torch.Tensor:
        return pad_to_multiple(x, self._max_reduction)

    def _run_specialists(
        self, x: torch.Tensor, height: int, width: int
    ) -> list[list[torch.Tensor]]:
        cropped = x.shape[-2] != height or x.shape[-1] != width
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
            pyramids = crop_pyramids(pyramids, self.reductions, height, width)
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
