"""Frame-to-frame cost matrices of the alignment losses: ``Et (B, M, d), Eq (B, N, d) -> C (B, M, N)``.

* :func:`cosine_cost` — ``1 - cos``, the paper's cost (Sec. 3.2).
* :func:`contrastive_cost` — ``-log softmax`` over target frames of ``cos / temperature``: not in
  the paper; a remedy for the collapse of soft-DTW on the cosine cost (below).
* :func:`alignment_cost` — one entry point, ``kind`` in :data:`COSTS`.

Why a second cost. ``1 - cos`` is never negative and is 0 for every cell when all frames share
one direction, and then soft-DTW reaches its global minimum, ``-gamma * log(number of paths)``:
an encoder trained with it is rewarded for mapping every frame, of both videos, to the same
vector, which erases the target moment the hard alignment should find
(``benchmarks/study_alignment_collapse.py`` measures this on planted data). The contrastive cost
of a target frame is low only when it is *more* similar to the query frame than the other target
frames are. Identical frames give every cell ``log m`` instead of 0; as each query frame's costs
obey ``sum_i exp(-C[i, j]) = 1``, ``log m`` is the highest its cheapest cell can be, so collapse
is the worst case for the DTW path (at least ``n log m`` before soft-min smoothing), not the best.
"""

from __future__ import annotations

import torch
from torch import Tensor

from matr.align._tables import BIG, dp_dtype

#: Names accepted by :func:`alignment_cost` (and ``ModelConfig.align_cost``).
COSTS = ("cosine", "contrastive")


class _CosineCost(torch.autograd.Function):
    """``1 - cos`` with a hand-written backward pass: two batched matmuls and one fused pass over
    each of ``Et``, ``Eq``, instead of autograd's chain through the norms (several passes over the
    ``(B, M, d)`` tensors, the bulk of the cost at training sizes)."""

    @staticmethod
    def forward(ctx, Et: Tensor, Eq: Tensor, eps: float) -> Tensor:
        norm_t, norm_q = Et.norm(dim=-1), Eq.norm(dim=-1)  # (B, M), (B, N)
        scale = norm_t.clamp(min=eps)[:, :, None] * norm_q.clamp(min=eps)[:, None, :]  # (B, M, N)
        cos = torch.bmm(Et, Eq.transpose(1, 2)) / scale
        ctx.save_for_backward(Et, Eq, norm_t, norm_q, cos)
        ctx.eps = eps
        return 1.0 - cos

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: Tensor):
        # d cos_ij / d Et_i = Eq_j / (|Et_i| |Eq_j|) - cos_ij Et_i / |Et_i|^2 (second term 0 where the
        # norm is clamped), and symmetrically for Eq_j; dL/dcos = -grad.
        Et, Eq, norm_t, norm_q, cos = ctx.saved_tensors
        clamped_t, clamped_q = norm_t.clamp(min=ctx.eps), norm_q.clamp(min=ctx.eps)
        weighted = grad * cos  # (B, M, N)
        coef_t = weighted.sum(2) / clamped_t**2 * (norm_t > ctx.eps)  # (B, M)
        coef_q = weighted.sum(1) / clamped_q**2 * (norm_q > ctx.eps)  # (B, N)
        H = grad / (clamped_t[:, :, None] * clamped_q[:, None, :])
        grad_t = torch.baddbmm(Et * coef_t[:, :, None], H, Eq, alpha=-1.0)
        grad_q = torch.baddbmm(Eq * coef_q[:, :, None], H.transpose(1, 2), Et, alpha=-1.0)
        return grad_t, grad_q, None


def cosine_cost(Et: Tensor, Eq: Tensor, eps: float = 1e-8) -> Tensor:
    """Cosine cost ``C[b, i, j] = 1 - cos(Et[b, i], Eq[b, j])``: ``(B, M, d), (B, N, d) -> (B, M, N)``.

    Norms are clamped at ``eps``: a zero vector has cosine 0 with everything (cost 1), and values and
    gradients stay finite. Computed in the inputs' dtype, with an analytic backward pass.
    """
    return _CosineCost.apply(Et, Eq, float(eps))


def contrastive_cost(Et: Tensor, Eq: Tensor, target_lengths: Tensor, temperature: float = 0.1) -> Tensor:
    """Contrastive cost ``C[b, i, j] = -log softmax_i(cos(Et[b, i], Eq[b, j]) / temperature)``:
    ``(B, M, d), (B, N, d), (B,) -> (B, M, N)``.

    The softmax runs over the real target frames ``i < target_lengths[b]`` of each query frame
    ``j``, so ``C >= 0`` and ``sum_i exp(-C[b, i, j]) = 1``: a cell is cheap only when its target
    frame stands out among the target frames for that query frame. This is the cross-entropy of
    InfoNCE with the target frames as candidates; the choice of axis follows the task (the query
    is matched inside the target). All frames equal gives ``log m`` everywhere.

    ``temperature`` (default 0.1, the usual InfoNCE / TCC value; not from the paper) sets the
    contrast: with cosines in ``[-1, 1]`` a cell costs at most ``2 / temperature + log m``.
    Padded target rows are excluded from the softmax and set to 0; padded query columns are
    computed but unused by the DPs. Embeddings, padding included, must be finite (as for
    :func:`cosine_cost`). Computed in float32 (float64 stays float64).
    """
    if not temperature > 0:
        raise ValueError(f"matr.align.contrastive_cost: temperature must be > 0, got {temperature}")
    M = Et.shape[1]
    rows = torch.arange(M, device=Et.device) < target_lengths.to(Et.device)[:, None]  # (B, M)
    rows = rows[:, :, None]
    logits = (1.0 - cosine_cost(Et, Eq)).to(dp_dtype(Et)) / temperature  # (B, M, N)
    log_p = torch.log_softmax(logits.masked_fill(~rows, -BIG), dim=1)
    return torch.where(rows, -log_p, 0.0)


def alignment_cost(kind: str, Et: Tensor, Eq: Tensor, target_lengths: Tensor, temperature: float = 0.1) -> Tensor:
    """Cost matrix ``C (B, M, N)`` of ``kind`` in :data:`COSTS`: :func:`cosine_cost` (the paper;
    ``target_lengths`` and ``temperature`` unused) or :func:`contrastive_cost`."""
    if kind == "cosine":
        return cosine_cost(Et, Eq)
    if kind == "contrastive":
        return contrastive_cost(Et, Eq, target_lengths, temperature)
    raise ValueError(f"matr.align.alignment_cost: unknown cost {kind!r}; expected one of {COSTS}")
