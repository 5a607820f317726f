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
    EXP_FLOOR,
    check_inputs,
    cost_rows,
    diagonal_cells,
    diagonal_rows,
    dp_dtype,
    remainder_weight,
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
    dtype = dp_dtype(C)
    position = q * (target_lengths * query_lengths - 1).to(dtype)
    lo = position.floor().long()
    hi = position.ceil().long()
    if C.device.type == "cpu":  # a selection per pair, on the compiled path's threads
        from matr.align import _cpu_dp, _cpu_drop

        pair = torch.empty(B, 2, dtype=dtype)
        arrays = (C.detach().to(dtype).contiguous(), target_lengths.long(), query_lengths.long(), lo)
        _cpu_dp.run(_cpu_drop.order_statistics, B, *(x.contiguous().numpy() for x in arrays), pair.numpy())
        v_lo, v_hi = pair[:, 0], torch.where(hi > lo, pair[:, 1], pair[:, 0])
    else:  # the smallest hi + 1 values of each pair, in order (padding is BIG, so it sorts last)
        valid = valid_cells(target_lengths, query_lengths, M, N).view(B, -1)
        costs = torch.where(valid, C.detach().to(dtype).view(B, -1), BIG)
        values = costs.topk(int(hi.max()) + 1, dim=1, largest=False, sorted=True).values
        v_lo = values.gather(1, lo[:, None])[:, 0]
        v_hi = values.gather(1, hi[:, None])[:, 0]
    return v_lo + (position - lo) * (v_hi - v_lo)


def _drop_forward(weights: Tensor, drop: Tensor, end_index: Tensor, M: int, N: int) -> Tensor:
    """Scaled Drop-DTW forward in ``Q = -table / gamma`` on cell-major storage (as
    :func:`matr.align.dtw._soft_forward`), ``drop = -delta / gamma`` ``(B,)``::

        Qd[i, j] = P[i, j] + logsumexp(Qr[i-1, j-1], Qd[i-1, j], Qd[i, j-1])
        Qr[i, j] = logsumexp(Qd[i, j], Qr[i-1, j] + drop)

    ``weights (3, M * N, B)`` holds ``P = -C / gamma`` in channel 0 on entry; each cell's channels
    are overwritten with the softmin weights of ``Qd``'s diagonal (``Qr``) and up predecessors (the
    left one's is 1 minus their sum) and of the match in ``Qr`` (the drop's is 1 minus it). Returns
    ``Qr[k - n, n]`` for every diagonal ``k`` ``(M + N + 1, B)``."""
    B = weights.shape[-1]
    last_column = weights.new_full((M + N + 1, B), -BIG)
    # Diagonal k lives in slab k % 3, indexed by the row i. Boundary: Qr[k, 0] = k * drop (slot k,
    # k <= M), Qr[0, 0] = 0; Qr[0, k], Qd[0, k] and Qd[k, 0] are -BIG and never overwritten.
    Qd, Qr = weights.new_full((3, M + 2, B), -BIG), weights.new_full((3, M + 2, B), -BIG)
    Qr[0, 0] = 0.0
    L = min(M, N)
    top, total, terms = weights.new_empty(L, B), weights.new_empty(L, B), weights.new_empty(3, L, B)
    for k in range(1, M + N + 1):
        if k == 3:
            Qr[0, 0] = -BIG  # R[0, 3]
        if k <= M:
            torch.mul(drop, k, out=Qr[k % 3, k])
        if k < 2:
            continue
        i0, i1 = diagonal_rows(k, M, N)
        n = i1 + 1 - i0
        d_prev, r_prev = Qd[(k - 1) % 3], Qr[(k - 1) % 3]
        diag, up, left = Qr[(k - 2) % 3, i0 - 1 : i1], d_prev[i0 - 1 : i1], d_prev[i0 : i1 + 1]
        w, m, s, e = diagonal_cells(weights, k, i0, i1, N), top[:n], total[:n], terms[:, :n]
        torch.maximum(torch.maximum(diag, up, out=m), left, out=m)
        qd = torch.add(w[0], m, out=Qd[k % 3, i0 : i1 + 1])  # P + max; P is dead after this diagonal
        torch.sub(diag, m, out=e[0])
        torch.sub(up, m, out=e[1])
        torch.sub(left, m, out=e[2])
        e.clamp_(min=EXP_FLOOR).exp_()
        torch.add(e[0], e[1], out=s).add_(e[2])
        torch.div(e[:2], s, out=w[:2])
        qd.add_(s.log_())
        # Qr = logsumexp(Qd, Qr[i-1, j] + drop); w[2] = the match's weight.
        dropped = torch.add(r_prev[i0 - 1 : i1], drop, out=e[1])
        torch.maximum(qd, dropped, out=m)
        torch.sub(qd, m, out=e[0])
        dropped.sub_(m)
        e[:2].clamp_(min=EXP_FLOOR).exp_()
        torch.add(e[0], e[1], out=s)
        torch.div(e[0], s, out=w[2])
        torch.add(m, s.log_(), out=Qr[k % 3, i0 : i1 + 1])
        torch.gather(Qr[k % 3], 0, end_index[k : k + 1], out=last_column[k : k + 1])
    return last_column


def _drop_backward(weights: Tensor, terminal: Tensor, end_index: Tensor, M: int, N: int) -> Tensor:
    """``dV/dC`` on the cells, cell-major ``(M * N, B)``, by the adjoint recursion over both tables
    with the forward's softmin weights (linear, as :func:`matr.align.dtw._soft_backward`), ``T`` the
    terminal gradient at ``(m, n)`` ``(M + N + 1, B)``; ``Gr = dV/dR``, ``Gd = dV/dD = dV/dC``::

        Gr[i, j] = T[i, j] + Gr[i+1, j] w_drop(i+1, j) + Gd[i+1, j+1] w_diag(i+1, j+1)
        Gd[i, j] = Gr[i, j] w_match(i, j) + Gd[i+1, j] w_up(i+1, j) + Gd[i, j+1] w_left(i, j+1)

    Cells outside a pair's block only have such cells as successors and a zero ``T``: exactly 0.
    """
    B = weights.shape[-1]
    rows = weights.new_empty(M * N, B)
    Gr, Gd = weights.new_empty(3, M + 2, B), weights.new_empty(3, M + 2, B)  # slab k % 3, by row i
    spare = weights.new_empty(min(M, N), B)
    for k in range(M + N, 1, -1):
        i0, i1 = diagonal_rows(k, M, N)
        gr, gd = Gr[k % 3, i0 : i1 + 1].zero_(), Gd[k % 3, i0 : i1 + 1]
        a, b = max(i0, k + 1 - N), min(i1, M - 1)
        if i0 <= b:  # (i + 1, j): R's drop
            w_drop = remainder_weight(spare[: b + 1 - i0], diagonal_cells(weights[2], k + 1, i0 + 1, b + 1, N))
            gr[: b - i0 + 1].addcmul_(Gr[(k + 1) % 3, i0 + 1 : b + 2], w_drop)
        if a <= b:  # (i + 1, j + 1): D's diagonal predecessor is R
            w_diag = diagonal_cells(weights[0], k + 2, a + 1, b + 1, N)
            gr[a - i0 : b - i0 + 1].addcmul_(Gd[(k + 2) % 3, a + 1 : b + 2], w_diag)
        Gr[k % 3].scatter_add_(0, end_index[k : k + 1], terminal[k : k + 1])
        torch.mul(gr, diagonal_cells(weights[2], k, i0, i1, N), out=gd)
        if i0 <= b:  # (i + 1, j): D's up predecessor
            gd[: b - i0 + 1].addcmul_(
                Gd[(k + 1) % 3, i0 + 1 : b + 2], diagonal_cells(weights[1], k + 1, i0 + 1, b + 1, N)
            )
        if a <= i1:  # (i, j + 1): D's left predecessor
            w = diagonal_cells(weights, k + 1, a, i1, N)
            gd[a - i0 :].addcmul_(Gd[(k + 1) % 3, a : i1 + 1], remainder_weight(spare[: i1 + 1 - a], w[0], w[1]))
        diagonal_cells(rows, k, i0, i1, N).copy_(gd)
    return rows


class _DropDTW(torch.autograd.Function):
    """Drop-DTW with the analytic backward pass in PyTorch (CUDA without Triton, CUDA float64, other
    devices; the reference of the compiled CPU path); saves the forward's softmin weights."""

    @staticmethod
    def forward(ctx, C: Tensor, target_lengths: Tensor, query_lengths: Tensor, delta: Tensor, gamma: float) -> Tensor:
        B, M, N = C.shape
        weights = torch.empty(3, M * N, B, dtype=dp_dtype(C), device=C.device)
        cost_rows(C, target_lengths, query_lengths, -1.0 / gamma, out=weights[0])
        drop = (-delta / gamma).to(weights.dtype)
        end_index = (torch.arange(M + N + 1, device=C.device)[:, None] - query_lengths).clamp_(0, M + 1)
        last_column = _drop_forward(weights, drop, end_index, M, N)
        value = last_column[target_lengths + query_lengths, torch.arange(B, device=C.device)]
        ctx.save_for_backward(weights, end_index, target_lengths, query_lengths)
        ctx.cost_dtype, ctx.shape = C.dtype, (M, N)
        return value * -gamma

    @staticmethod
    def backward(ctx, grad_value: Tensor):
        weights, end_index, target_lengths, query_lengths = ctx.saved_tensors
        M, N = ctx.shape
        end_row = torch.arange(M + N + 1, device=weights.device)[:, None] - query_lengths
        terminal = torch.where(end_row == target_lengths, grad_value.to(weights.dtype), 0.0)
        rows = _drop_backward(weights, terminal, end_index, M, N)
        return rows_to_batch_major(rows, M, N, ctx.cost_dtype), None, None, None, None


class _CompiledDropDTW(torch.autograd.Function):
    """Drop-DTW on the CPU through the compiled loops of :mod:`matr.align._cpu_drop`, on as many
    threads as torch uses; saves the softmin weights ``(blocks, M, N, 3, LANES)``."""

    @staticmethod
    def forward(ctx, C: Tensor, target_lengths: Tensor, query_lengths: Tensor, delta: Tensor, gamma: float) -> Tensor:
        from matr.align import _cpu_dp, _cpu_drop

        B, M, N = C.shape
        dtype = dp_dtype(C)
        weights = _cpu_dp.empty((_cpu_dp.blocks(B), M, N, 3, _cpu_dp.LANES), dtype)
        value = torch.empty(B, dtype=dtype)
        order = _cpu_dp.size_order(target_lengths, query_lengths)
        _cpu_dp.run(
            _cpu_drop.drop_forward,
            len(weights),
            C.detach().to(dtype).contiguous().numpy(),
            target_lengths.numpy(),
            query_lengths.numpy(),
            order.numpy(),
            (-delta / gamma).to(dtype).contiguous().numpy(),
            gamma,
            weights.numpy(),
            value.numpy(),
            *_cpu_dp.bit_layout(dtype),
        )
        ctx.save_for_backward(weights, target_lengths, query_lengths, order)
        ctx.shape, ctx.cost_dtype = C.shape, C.dtype
        return value * -gamma

    @staticmethod
    def backward(ctx, grad_value: Tensor):
        from matr.align import _cpu_dp, _cpu_drop

        arrays = ctx.saved_tensors  # weights, target_lengths, query_lengths, order
        grad = _cpu_dp.empty(tuple(ctx.shape), arrays[0].dtype)
        _cpu_dp.run(
            _cpu_drop.drop_backward,
            len(arrays[0]),
            *(x.numpy() for x in arrays),
            grad_value.detach().to(arrays[0].dtype).contiguous().numpy(),
            grad.numpy(),
        )
        return grad.to(ctx.cost_dtype), None, None, None, None


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
    run on the CPU as compiled loops over blocks of pairs (:mod:`matr.align._cpu_drop`), on CUDA
    (fp32, fp16, bf16) as Triton kernels (:mod:`matr.align.kernels`), and otherwise sweep the
    ``M + N - 1`` anti-diagonals in PyTorch, the reference of both. Padding is ignored and gets
    zero gradient; the DP runs in float32 (float64 stays float64) and the gradient has ``C``'s dtype.
    """
    tl, ql = check_inputs("drop_dtw", C, target_lengths, query_lengths)
    if not gamma > 0:
        raise ValueError(f"matr.align.drop_dtw: gamma must be > 0, got {gamma}")
    if drop_cost is None:
        delta = percentile_drop_cost(C, tl, ql, drop_percentile)
    else:
        delta = torch.full((C.shape[0],), float(drop_cost), dtype=dp_dtype(C), device=C.device)
    if use_triton(C):
        function = _TritonDropDTW
    else:
        function = _CompiledDropDTW if C.device.type == "cpu" else _DropDTW
    return function.apply(C, tl, ql, delta, float(gamma))
