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

from matr import choices
from matr.align._tables import (
    BIG,
    cell_rows,
    check_inputs,
    cost_table,
    diagonal_range,
    dp_dtype,
    exp_into_rows,
    logsumexp_into,
    rows_to_batch_major,
    use_triton,
    valid_cells,
)

choices.declare(
    "Drop-DTW droppable frames",
    "target frames only; every query frame is matched",
    "the query is the moment's whole content; the target frames outside the moment are the outliers",
)
DROP_PERCENTILE = choices.declare(
    "Drop-DTW drop cost percentile",
    0.05,
    "the paper gives no value; a moment's cells are a few percent of the cost matrix, and a high "
    "percentile makes matching unrelated frames cheaper than dropping them",
)


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


def _drop_forward(P: Tensor, drop: Tensor, query_lengths: Tensor) -> tuple[Tensor, Tensor]:
    """Scaled Drop-DTW forward on the cost table ``P = -C / gamma`` ``(K, W, B)`` with ``drop =
    -delta / gamma`` ``(B,)``, in ``Q = -table / gamma``::

        Qd[i, j] = P[i, j] + Ld[i, j],  Ld[i, j] = logsumexp(Qr[i-1, j-1], Qd[i-1, j], Qd[i, j-1])
        Qr[i, j] = logsumexp(Qd[i, j], Qr[i-1, j] + drop)

    Returns the table ``Ld`` and ``Qr[k - n, n]`` for every diagonal ``k`` ``(M + N + 1, B)``."""
    K, W, B = P.shape
    M, N = K - W - 1, W - 2
    Ld = torch.empty_like(P)
    last_column = P.new_full((M + N + 1, B), -BIG)
    # Diagonal k lives in slab k % 3. Boundary: Qr[k, 0] = k * drop (k <= M); Qr[0, k], Qd[0, k] and
    # Qd[k, 0] are -BIG, and those slots are never written by the cells of earlier diagonals.
    Qd = P.new_full((3, W, B), -BIG)
    Qr = P.new_full((3, W, B), -BIG)
    for k in range(M + N + 1):
        qd, qr = Qd[k % 3], Qr[k % 3]
        if k <= M:
            torch.mul(drop, k, out=qr[0])
        if k < 2:
            continue
        j0, j1 = diagonal_range(k, M, N)
        r_prev2, d_prev, r_prev = Qr[(k - 2) % 3], Qd[(k - 1) % 3], Qr[(k - 1) % 3]
        ld = logsumexp_into(r_prev2[j0 - 1 : j1], d_prev[j0 : j1 + 1], d_prev[j0 - 1 : j1], out=Ld[k, j0 : j1 + 1])
        cells = torch.add(P[k, j0 : j1 + 1], ld, out=qd[j0 : j1 + 1])
        logsumexp_into(cells, r_prev[j0 : j1 + 1] + drop, out=qr[j0 : j1 + 1])
        last_column[k] = qr.gather(0, query_lengths[None])[0]
    return Ld, last_column


def _drop_backward(P: Tensor, Ld: Tensor, drop: Tensor, value: Tensor, target_lengths: Tensor, query_lengths: Tensor):
    """``dV/dC`` on the cells, cell-major ``(M * N, B)``, for the scaled value ``value = Qr[m, n]``.

    With ``Gr = dV/dR``, ``Gd = dV/dD`` (softmin weights as in :func:`matr.align.dtw._soft_backward`)
    run in log space as ``Ar = log Gr - Qr`` and ``Ad = log Gd - Ld``::

        Ar[i, j] = logsumexp(-value at (m, n), Ar[i+1, j] + drop, Ad[i+1, j+1])
        Ad[i, j] = P[i, j] + logsumexp(Ar[i, j], Ad[i+1, j], Ad[i, j+1])

    and ``dV/dC = Gd = exp(Ad + Ld)``. Cells outside a pair's block stay near ``-BIG``.
    """
    K, W, B = P.shape
    M, N = K - W - 1, W - 2
    batch = torch.arange(B, device=P.device)
    slots = cell_rows(M, N, P.device)
    end = target_lengths + query_lengths
    E = P.new_empty(M * N, B)
    Ar = P.new_full((3, W, B), -BIG)
    Ad = P.new_full((3, W, B), -BIG)
    for k in range(M + N, 1, -1):
        ar, ad = Ar[k % 3].fill_(-BIG), Ad[k % 3].fill_(-BIG)
        ar[query_lengths, batch] = torch.where(end == k, -value, -BIG)
        j0, j1 = diagonal_range(k, M, N)
        r_next, d_next, d_next2 = Ar[(k + 1) % 3], Ad[(k + 1) % 3], Ad[(k + 2) % 3]
        cells_r = ar[j0 : j1 + 1]
        logsumexp_into(cells_r, r_next[j0 : j1 + 1] + drop, d_next2[j0 + 1 : j1 + 2], out=cells_r)
        cells_d = logsumexp_into(cells_r, d_next[j0 : j1 + 1], d_next[j0 + 1 : j1 + 2], out=ad[j0 : j1 + 1])
        cells_d += P[k, j0 : j1 + 1]
        exp_into_rows(E, slots[k, j0 : j1 + 1], torch.add(cells_d, Ld[k, j0 : j1 + 1]))
    return E


class _DropDTW(torch.autograd.Function):
    """Drop-DTW with the analytic backward pass; saves ``P = -C / gamma``, ``Ld`` and the value."""

    @staticmethod
    def forward(ctx, C: Tensor, target_lengths: Tensor, query_lengths: Tensor, delta: Tensor, gamma: float) -> Tensor:
        P = cost_table(C, target_lengths, query_lengths, scale=-1.0 / gamma)
        drop = (-delta / gamma).to(P.dtype)
        Ld, last_column = _drop_forward(P, drop, query_lengths)
        value = last_column[target_lengths + query_lengths, torch.arange(C.shape[0], device=C.device)]
        ctx.save_for_backward(P, Ld, drop, value, target_lengths, query_lengths)
        ctx.cost_dtype = C.dtype
        return value * -gamma

    @staticmethod
    def backward(ctx, grad_value: Tensor):
        P, Ld, drop, value, target_lengths, query_lengths = ctx.saved_tensors
        E = _drop_backward(P, Ld, drop, value, target_lengths, query_lengths)
        E *= grad_value.to(E.dtype)
        K, W, _ = P.shape
        return rows_to_batch_major(E, K - W - 1, W - 2, ctx.cost_dtype), None, None, None, None


class _TritonDropDTW(torch.autograd.Function):
    """The same on CUDA through :mod:`matr.align.kernels`."""

    @staticmethod
    def forward(ctx, C: Tensor, target_lengths: Tensor, query_lengths: Tensor, delta: Tensor, gamma: float) -> Tensor:
        from matr.align import kernels

        value, D, R = kernels.drop_dtw_forward(C, target_lengths, query_lengths, delta, gamma)
        ctx.save_for_backward(C, D, R, target_lengths, query_lengths, delta)
        ctx.gamma = gamma
        return value

    @staticmethod
    def backward(ctx, grad_value: Tensor):
        from matr.align import kernels

        C, D, R, target_lengths, query_lengths, delta = ctx.saved_tensors
        grad = kernels.drop_dtw_backward(C, D, R, target_lengths, query_lengths, delta, ctx.gamma, grad_value)
        return grad.to(C.dtype), None, None, None, None


def drop_dtw(
    C: Tensor,
    target_lengths: Tensor,
    query_lengths: Tensor,
    gamma: float = 0.1,
    drop_cost: float | None = None,
    drop_percentile: float = DROP_PERCENTILE,
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

    Forward and the analytic backward pass (the adjoint recursion over both tables, in log space)
    sweep the ``M + N - 1`` anti-diagonals as :func:`matr.align.soft_dtw` does; on CUDA (fp32,
    fp16, bf16) they run as Triton kernels (:mod:`matr.align.kernels`). Padding is ignored and gets
    zero gradient; the DP runs in float32 (float64 stays float64) and the gradient has ``C``'s dtype.
    """
    tl, ql = check_inputs("drop_dtw", C, target_lengths, query_lengths)
    if not gamma > 0:
        raise ValueError(f"matr.align.drop_dtw: gamma must be > 0, got {gamma}")
    if drop_cost is None:
        delta = percentile_drop_cost(C, tl, ql, drop_percentile)
    else:
        delta = torch.full((C.shape[0],), float(drop_cost), dtype=dp_dtype(C), device=C.device)
    function = _TritonDropDTW if use_triton(C) else _DropDTW
    return function.apply(C, tl, ql, delta, float(gamma))
