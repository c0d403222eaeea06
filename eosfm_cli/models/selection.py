"""Encoder selection: one learned gate per specialist, trained jointly with the head.

The reference multiplies features by a constant top-k mask, so its weights get no gradient and
never learn. Here **every gate receives gradient**:

- ``straight_through``: the forward pass uses the hard top-K mask of the gate scores (with
  Gumbel noise while training, so ties and early choices are explored); the backward pass uses
  the gradient of ``sigmoid(score)``: ``w = hard + soft - soft.detach()``. Unselected
  specialists still contribute a gradient through ``<dL/dw, features>``.

  A hard mask from the first step has a chicken-and-egg problem: the head never learns to use
  a specialist that is not selected, so that specialist's gradient says little. Training
  therefore starts with a **soft warm-up** (``warmup = True``: every specialist on, scaled by
  ``2 * sigmoid(score)``), during which the head learns to use all features and the gates learn
  how much each one helps; the hard top-K phase follows.
- ``hard_concrete``: L0 gates (Louizos et al., 2018): a stretched, clipped concrete sample per
  gate, with an expected-L0 sparsity penalty; at evaluation the top-K by ``log_alpha`` are kept.

Either way, the ranking is by the learned score, and :meth:`EncoderGates.selected` gives the K
kept at evaluation.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import Tensor, nn

GateKind = Literal["straight_through", "hard_concrete"]

# Hard-concrete stretch interval and temperature (Louizos et al., 2018).
_GAMMA, _ZETA, _BETA = -0.1, 1.1, 2.0 / 3.0


class EncoderGates(nn.Module):
    """Learned gates over ``n`` specialists.

    Args:
        n: number of specialists.
        k: number kept (``None``: all are kept and the gates are soft weights in ``(0, 2)``).
        kind: ``straight_through`` or ``hard_concrete``.
        noise: scale of the Gumbel exploration noise (straight-through, training only).
    """

    def __init__(
        self, n: int, k: int | None = None, kind: GateKind = "straight_through", noise: float = 0.5
    ) -> None:
        super().__init__()
        if k is not None and not 0 < k <= n:
            raise ValueError(f"k must be in 1..{n}, got {k}")
        self.n, self.k, self.kind, self.noise = n, k, kind, noise
        self.warmup = False
        init = 3.0 if kind == "hard_concrete" else 0.0
        self.scores = nn.Parameter(torch.full((n,), init))

    def _topk_mask(self, scores: Tensor) -> Tensor:
        k = self.k if self.k is not None else self.n
        idx = torch.topk(scores, k).indices
        return torch.zeros_like(scores).scatter(0, idx, 1.0)

    def forward(self) -> Tensor:
        """Return the gate weight of each specialist, shape ``(n,)``."""
        if self.kind == "hard_concrete":
            return self._hard_concrete()
        soft = torch.sigmoid(self.scores)
        if self.k is None or (self.training and self.warmup):
            return 2 * soft
        noisy = self.scores.detach()
        if self.training and self.noise > 0:
            u = torch.rand_like(noisy).clamp(1e-6, 1 - 1e-6)
            noisy = noisy + self.noise * -torch.log(-torch.log(u))
        hard = self._topk_mask(noisy)
        return hard + soft - soft.detach()

    def _hard_concrete(self) -> Tensor:
        log_alpha = self.scores
        if self.training:
            u = torch.rand_like(log_alpha).clamp(1e-6, 1 - 1e-6)
            s = torch.sigmoid((torch.log(u) - torch.log(1 - u) + log_alpha) / _BETA)
        else:
            s = torch.sigmoid(log_alpha)
        z = (s * (_ZETA - _GAMMA) + _GAMMA).clamp(0.0, 1.0)
        if not self.training and self.k is not None:
            z = z * self._topk_mask(log_alpha.detach())
        return z

    def penalty(self) -> Tensor:
        """Sparsity penalty: expected number of open gates (hard-concrete), else 0."""
        if self.kind != "hard_concrete":
            return self.scores.new_zeros(())
        shift = _BETA * math.log(-_GAMMA / _ZETA)
        return torch.sigmoid(self.scores - shift).sum()

    def selected(self) -> list[int]:
        """Indices of the K kept specialists, best first."""
        k = self.k if self.k is not None else self.n
        return torch.topk(self.scores.detach(), k).indices.tolist()

    def ranking(self) -> list[int]:
        """All indices, best score first."""
        return torch.argsort(self.scores.detach(), descending=True).tolist()

    def values(self) -> list[float]:
        """The gate scores, as floats."""
        return [float(v) for v in self.scores.detach()]
