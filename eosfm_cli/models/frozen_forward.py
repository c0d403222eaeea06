"""The fast forward of frozen specialists: one shared graph per architecture.

Frozen specialists can run on a fast path (``compile=True`` and/or ``precision="bf16"`` on
:class:`~eosfm_cli.models.ensemble.EosFM`): one functional forward per architecture, compiled
once and shared by every specialist of that architecture (their weights are graph inputs), with
the band fills and input normalisation fused into the same graph. Specialists that differ only
in their input channels share the graph too, their stems zero-padded to the widest input.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import nn

from eosfm_cli.models.specialist import SpecialistInput

Precision = Literal["fp32", "bf16"]


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
