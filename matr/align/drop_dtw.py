"""Soft Drop-DTW (after Dvornik et al., "Drop-DTW: Aligning Common Signal Between Sequences While
Dropping Outliers", NeurIPS 2021), an alternative alignment loss for the paper's Table 5.

Written from the paper's description only. Drop-DTW extends DTW with the option of *dropping*
an element at a fixed drop cost instead of matching it, so outliers do not have to be aligned.
In our setting the whole query must be matched and only target frames may be dropped (the
frames outside the moment); the min is replaced by a smooth min so the loss is differentiable.
"""

from __future__ import annotations

import torch
from torch import Tensor

from matr.align._tables import BIG, cell_rows, check_inputs, dp_dtype, logsumexp, masked_cost, valid_cells


def percentile_drop_cost(C: Tensor, target_lengths: Tensor, query_lengths: Tensor, q: float) -> Tensor:
    """``q``-quantile (linear interpolation, as ``torch.quantile``) of each pair's real costs:
    ``(B, M, N) -> (B,)``, detached (the drop cost is a constant of the loss, not a path for
    gradients)."""
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"matr.align.drop_dtw: drop_percentile must lie in [0, 1], got {q}")
    B, M, N = C.shape
    valid = valid_cells(target_lengths, query_lengths, M, N).view(B, -1)
    values = torch.where(valid, C.detach().to(dp_dtype(C)).view(B, -1), BIG).sort(dim=1).values
    position = q * (target_lengths * query_lengths - 1).to(values.dtype)
    lo = position.floor().long()
    hi = position.ceil().long()
    v_lo = values.gather(1, lo[:, None])[:, 0]
    v_hi = values.gather(1, hi[:, None])[:, 0]
    return v_lo + (position - lo) * (v_hi - v_lo)


def _shift(x: Tensor) -> Tensor:
    """``out[j] = x[j - 1]`` along dim 0, ``-BIG`` in ``out[0]``."""
    return torch.cat((x.new_full((1, x.shape[1]), -BIG), x[:-1]))


def drop_dtw(
    C: Tensor,
    target_lengths: Tensor,
    query_lengths: Tensor,
    gamma: float = 0.1,
    drop_cost: float | None = None,
    drop_percentile: float = 0.05,
) -> Tensor:
    """Soft Drop-DTW cost of each pair, target frames droppable: ``C (B, M, N) -> (B,)``.

    With drop cost ``delta`` and ``softmin_g`` as in :func:`matr.align.soft_dtw`, two tables over
    target prefix ``i`` and query prefix ``j``: ``D[i, j]`` (target frame ``i`` matched to query
    frame ``j``) and ``R[i, j]`` (best of matching or dropping target frame ``i``)::

        R[0, 0] = 0;  R[i, 0] = i * delta;  R[0, j] = D[0, j] = D[i, 0] = inf (j >= 1)
        D[i, j] = C[i-1, j-1] + softmin_g(R[i-1, j-1], D[i-1, j], D[i, j-1])
        R[i, j] = softmin_g(D[i, j], R[i-1, j] + delta)
        value   = R[m, n]

    A query frame may match a run of consecutive target frames (``D[i-1, j]``) and a target frame
    several query frames (``D[i, j-1]``); any target frame, leading and trailing ones included, can
    instead be dropped at cost ``delta``; every query frame is matched. Each dropped target frame
    adds ``delta``, so ``value`` grows with ``m`` (by about ``(m - L) * delta`` for a moment of
    ``L`` frames); that offset carries no gradient.

    ``delta`` is ``drop_cost`` if given, otherwise the ``drop_percentile`` quantile of the pair's
    real costs (as in the Drop-DTW paper, which sets the drop cost from a percentile of the cost
    matrix). Matching a target frame pays off when its cost is below ``delta``. Our default, 0.05,
    is low because a moment's cells are a small part of the matrix: about ``max(L, n)`` of the
    ``m * n`` cells for a moment of ``L`` frames, a few percent for ActivityNet-VRL-like pairs. A
    high percentile (e.g. 0.3) makes matching unrelated frames cheaper than dropping them, and a
    reversed query then scores about as well as the planted one. ``delta`` is a constant of the
    loss (no gradient flows through it).

    Gradients come from autograd through the vectorised anti-diagonal loop (``M + N - 1`` batched
    steps). Padding is ignored and gets zero gradient; the DP runs in float32 (float64 stays).
    """
    tl, ql = check_inputs("drop_dtw", C, target_lengths, query_lengths)
    if not gamma > 0:
        raise ValueError(f"matr.align.drop_dtw: gamma must be > 0, got {gamma}")
    B, M, N = C.shape
    if drop_cost is None:
        delta = percentile_drop_cost(C, tl, ql, drop_percentile)
    else:
        delta = torch.full((B,), float(drop_cost), dtype=dp_dtype(C), device=C.device)
    # -C / gamma per diagonal: costs[k][j] is the cell (k - j, j), 0 off the cells. A gather once and
    # an unbind keep the backward pass to one scatter (indexing each diagonal would allocate a
    # full-size gradient per diagonal).
    rows = masked_cost(C, tl, ql).mul(-1.0 / gamma).permute(1, 2, 0).reshape(M * N, B)
    rows = torch.cat((rows, rows.new_zeros(1, B)))
    index = cell_rows(M, N, C.device)[: M + N + 1, : N + 1].flatten()
    costs = rows.index_select(0, index).view(M + N + 1, N + 1, B).unbind(0)
    drop = -delta / gamma  # (B,)
    j = torch.arange(N + 1, device=C.device)[:, None]  # slot j of a diagonal holds cell (k - j, j)
    neg = torch.full((N + 1, B), -BIG, dtype=rows.dtype, device=C.device)
    first = torch.where(j == 0, 0.0, neg)  # diagonal 0: R[0, 0] = 0
    q_prev2, q_prev, d_prev = neg, first, neg  # -R / gamma on diagonals k-2, k-1; -D / gamma on k-1
    diagonals = [first]
    for k in range(1, M + N + 1):
        i = k - j
        interior = (j >= 1) & (i >= 1) & (i <= M)
        d = torch.where(interior, costs[k] + logsumexp(_shift(q_prev2), d_prev, _shift(d_prev)), -BIG)
        boundary = torch.where((j == 0) & (k <= M), k * drop, neg)
        q = torch.where(interior, logsumexp(d, q_prev + drop), boundary)
        diagonals.append(q)
        q_prev2, q_prev, d_prev = q_prev, q, d
    Q = torch.stack(diagonals)  # (M + N + 1, N + 1, B)
    return -gamma * Q[tl + ql, ql, torch.arange(B, device=C.device)]
