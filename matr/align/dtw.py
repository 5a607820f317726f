"""Soft-DTW (Cuturi & Blondel, ICML 2017) with an analytic backward pass and its hard (``gamma -> 0``)
alignment path (paper Sec. 3.2, "Dual-stage Sequence Alignment"); the costs are in
:mod:`matr.align.costs`.

Both DPs sweep the ``M + N - 1`` anti-diagonals, one batched tensor operation per step over a
whole diagonal of all pairs, keeping only the last three diagonals of ``R`` alive (rolling slabs).
The soft DP runs in the scaled, negated domain ``Q = -R / gamma``, where the soft minimum is a
log-sum-exp, on cell-major storage (:func:`matr.align._tables.diagonal_cells`); it stores the
softmin weight of each cell's predecessors, so its analytic backward pass, a reverse sweep, is
linear (multiply-adds, no exponential). The hard DP runs in NumPy on the table storage of
:mod:`matr.align._tables` and keeps the table of predecessor choices (uint8) for the batched
backtracking.

On the CPU, soft-DTW runs as compiled loops instead (:mod:`matr.align._cpu_dp`, numba: the same
recursion, a block of pairs at a time, without the torch operator overhead of each diagonal or
the transposed copies); the PyTorch soft DP serves CUDA tensors without Triton, CUDA float64
and other devices.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor

from matr import choices
from matr.align._tables import (
    BIG,
    EXP_FLOOR,
    check_inputs,
    cost_rows,
    cost_table,
    diagonal_cells,
    diagonal_range,
    diagonal_rows,
    dp_dtype,
    end_slots,
    remainder_weight,
    rows_to_batch_major,
    use_triton,
)

choices.declare(
    "soft-DTW boundary",
    "subsequence: the path may start and end at any target row; the whole query is matched",
    "the query is matched to a moment inside the target, so the loss is the soft minimum over target moments",
)
choices.declare(
    "hard-alignment ties",
    "diagonal before up before left; the earliest end row; a free start before a real predecessor",
    "deterministic spans; a tie with the free start gives the shortest span",
)
choices.declare(
    "DP precision",
    "float32 for fp16/bf16/fp32 costs (float64 stays float64); Triton kernels on CUDA, compiled loops "
    "(numba) for soft-DTW and Drop-DTW on CPU, PyTorch otherwise",
    "accumulated costs over m + n cells lose too much in half precision; the two paths agree to float32 rounding",
)


class HardAlignment(NamedTuple):
    """Optimal monotone alignment of each pair.

    ``matrix (B, M, N)``: 1.0 on the cells of the path, 0 elsewhere (padding included).
    ``start (B,)``, ``end (B,)``: inclusive 0-based target frame indices of the contiguous span
    the path covers.
    """

    matrix: Tensor
    start: Tensor
    end: Tensor


# ---------------------------------------------------------------------------------------------
# Soft-DTW
# ---------------------------------------------------------------------------------------------


def _soft_forward(weights: Tensor, end_index: Tensor, M: int, N: int, subsequence: bool) -> Tensor:
    """Soft DP in ``Q = -R / gamma``, one diagonal at a time, on cell-major storage (rows
    ``(i - 1) * N + j - 1``): ``Q[i, j] = P[i, j] + logsumexp(Q[i-1, j-1], Q[i-1, j], Q[i, j-1])``.

    ``weights (2, M * N, B)`` holds ``P = -C / gamma`` in channel 0 on entry; each cell's channels
    are overwritten with the softmin weights of its diagonal and up predecessors (the left one's is
    1 minus their sum), all the backward pass needs. Returns ``Q[k - n, n]`` for every diagonal
    ``k`` ``(M + N + 1, B)`` (``end_index``: the slot ``k - n`` of each, clamped to ``[0, M + 1]``).
    The rolling slabs of ``Q`` are indexed by the target row ``i``: slot 0 is row 0, slot ``k`` of
    diagonal ``k`` is column 0."""
    B = weights.shape[-1]
    last_column = weights.new_full((M + N + 1, B), -BIG)
    # Diagonal k lives in slab k % 3. Slot k (column 0) of diagonal k is never written by the cells
    # of the diagonals before it, nor slot 0 (row 0), so the boundary is written once.
    Q = weights.new_full((3, M + 2, B), 0.0 if subsequence else -BIG)
    Q[:, 0] = -BIG
    Q[0, 0] = 0.0  # R[0, 0]
    L = min(M, N)
    top, total, terms = weights.new_empty(L, B), weights.new_empty(L, B), weights.new_empty(3, L, B)
    for k in range(2, M + N + 1):
        if k == 3:
            Q[0, 0] = -BIG  # R[0, 3]
        i0, i1 = diagonal_rows(k, M, N)
        n = i1 + 1 - i0
        slab, prev = Q[k % 3], Q[(k - 1) % 3]
        diag, up, left = Q[(k - 2) % 3, i0 - 1 : i1], prev[i0 - 1 : i1], prev[i0 : i1 + 1]
        w, m, s, e = diagonal_cells(weights, k, i0, i1, N), top[:n], total[:n], terms[:, :n]
        torch.maximum(torch.maximum(diag, up, out=m), left, out=m)
        q = torch.add(w[0], m, out=slab[i0 : i1 + 1])  # P + max; P is dead after this diagonal
        torch.sub(diag, m, out=e[0])
        torch.sub(up, m, out=e[1])
        torch.sub(left, m, out=e[2])
        e.clamp_(min=EXP_FLOOR).exp_()
        torch.add(e[0], e[1], out=s).add_(e[2])
        torch.div(e[:2], s, out=w)
        q.add_(s.log_())
        torch.gather(slab, 0, end_index[k : k + 1], out=last_column[k : k + 1])
    return last_column


def _soft_value(
    last_column: Tensor, target_lengths: Tensor, query_lengths: Tensor, M: int, subsequence: bool
) -> Tensor:
    """Scaled value ``-V / gamma`` ``(B,)`` from the last-column cells of :func:`_soft_forward`:
    ``logsumexp(Q[1..m, n])`` or ``Q[m, n]``."""
    if not subsequence:
        return last_column[target_lengths + query_lengths, torch.arange(len(query_lengths), device=last_column.device)]
    k, _, b, real = end_slots(target_lengths, query_lengths, M)
    return torch.where(real, last_column[k, b], -BIG).logsumexp(dim=1)


def _terminal(
    last_column: Tensor, value: Tensor, target_lengths: Tensor, query_lengths: Tensor, subsequence: bool
) -> Tensor:
    """``dV/dR`` from the value's own softmin at the last-column cell of each diagonal ``(M + N + 1, B)``:
    the softmax weight of end row ``k - n`` (subsequence), or 1 at ``k = m + n``."""
    end_row = torch.arange(last_column.shape[0], device=value.device)[:, None] - query_lengths
    if not subsequence:
        return (end_row == target_lengths).to(last_column.dtype)
    terminal = (end_row >= 1) & (end_row <= target_lengths)
    return torch.where(terminal, (last_column - value).clamp_(min=EXP_FLOOR).exp_(), 0.0)


def _soft_backward(weights: Tensor, terminal: Tensor, end_index: Tensor, M: int, N: int) -> Tensor:
    """``E = dV/dR`` on the cells, cell-major ``(M * N, B)``, by Cuturi and Blondel's recursion.

    ``E[p] = T[p] + sum_s E[s] * w(s <- p)`` over the successors ``s`` of ``p`` (diagonal
    ``(i+1, j+1)``, below ``(i+1, j)``, right ``(i, j+1)``) with the forward's softmin ``weights``
    and the terminal gradient ``T (M + N + 1, B)`` (:func:`_terminal`): linear, no transcendental
    function, ``weights`` left intact. Cells outside a pair's ``m x n`` block have only such cells
    as successors and a zero ``T``, so their ``E`` is exactly 0.
    """
    B = weights.shape[-1]
    rows = weights.new_empty(M * N, B)
    E = weights.new_empty(3, M + 2, B)  # diagonal k lives in slab k % 3, indexed by i
    left = weights.new_empty(min(M, N), B)
    for k in range(M + N, 1, -1):
        i0, i1 = diagonal_rows(k, M, N)
        e = E[k % 3, i0 : i1 + 1].zero_()
        a, b = max(i0, k + 1 - N), min(i1, M - 1)
        if a <= b:  # diagonal successor (i + 1, j + 1)
            below = E[(k + 2) % 3, a + 1 : b + 2]
            e[a - i0 : b - i0 + 1].addcmul_(below, diagonal_cells(weights[0], k + 2, a + 1, b + 1, N))
        if i0 <= b:  # successor below, (i + 1, j)
            e[: b - i0 + 1].addcmul_(
                E[(k + 1) % 3, i0 + 1 : b + 2], diagonal_cells(weights[1], k + 1, i0 + 1, b + 1, N)
            )
        if a <= i1:  # successor to the right, (i, j + 1): weight 1 - diagonal - up
            w = diagonal_cells(weights, k + 1, a, i1, N)
            e[a - i0 :].addcmul_(E[(k + 1) % 3, a : i1 + 1], remainder_weight(left[: i1 + 1 - a], w[0], w[1]))
        E[k % 3].scatter_add_(0, end_index[k : k + 1], terminal[k : k + 1])
        diagonal_cells(rows, k, i0, i1, N).copy_(e)
    return rows


class _TritonSoftDTW(torch.autograd.Function):
    """Soft-DTW on CUDA through :mod:`matr.align.kernels`; saves ``C`` and the table ``R``."""

    @staticmethod
    def forward(
        ctx, C: Tensor, target_lengths: Tensor, query_lengths: Tensor, gamma: float, subsequence: bool
    ) -> Tensor:
        from matr.align import kernels

        value, R = kernels.soft_dtw_forward(C, target_lengths, query_lengths, gamma, subsequence)
        ctx.save_for_backward(C, R, target_lengths, query_lengths)
        ctx.gamma, ctx.subsequence = gamma, subsequence
        return value

    @staticmethod
    def backward(ctx, grad_value: Tensor):
        from matr.align import kernels

        C, R, target_lengths, query_lengths = ctx.saved_tensors
        E = kernels.soft_dtw_backward(C, R, target_lengths, query_lengths, ctx.gamma, ctx.subsequence, grad_value)
        return E.to(C.dtype), None, None, None, None


class _CompiledSoftDTW(torch.autograd.Function):
    """Soft-DTW on the CPU through the compiled loops of :mod:`matr.align._cpu_dp`, on as many
    threads as torch uses; saves the softmin weights, the last-column cells and the value."""

    @staticmethod
    def forward(
        ctx, C: Tensor, target_lengths: Tensor, query_lengths: Tensor, gamma: float, subsequence: bool
    ) -> Tensor:
        from matr.align import _cpu_dp

        B, M, N = C.shape
        dtype = dp_dtype(C)
        weights = _cpu_dp.empty((_cpu_dp.blocks(B), M, N, 2, _cpu_dp.LANES), dtype)
        last_column, value = torch.empty(B, M, dtype=dtype), torch.empty(B, dtype=dtype)
        order = _cpu_dp.size_order(target_lengths, query_lengths)
        _cpu_dp.run(
            _cpu_dp.soft_forward,
            len(weights),
            C.detach().to(dtype).contiguous().numpy(),
            target_lengths.numpy(),
            query_lengths.numpy(),
            order.numpy(),
            gamma,
            subsequence,
            weights.numpy(),
            last_column.numpy(),
            value.numpy(),
            *_cpu_dp.bit_layout(dtype),
        )
        ctx.save_for_backward(weights, last_column, value, target_lengths, query_lengths, order)
        ctx.subsequence, ctx.shape, ctx.cost_dtype = subsequence, C.shape, C.dtype
        return value * -gamma

    @staticmethod
    def backward(ctx, grad_value: Tensor):
        from matr.align import _cpu_dp

        arrays = ctx.saved_tensors  # weights, last_column, value, target_lengths, query_lengths, order
        grad = _cpu_dp.empty(tuple(ctx.shape), arrays[0].dtype)
        _cpu_dp.run(
            _cpu_dp.soft_backward,
            len(arrays[0]),
            *(x.numpy() for x in arrays),
            grad_value.detach().to(arrays[0].dtype).contiguous().numpy(),
            ctx.subsequence,
            grad.numpy(),
        )
        return grad.to(ctx.cost_dtype), None, None, None, None


class _SoftDTW(torch.autograd.Function):
    """Soft-DTW with the analytic backward pass in PyTorch (CUDA without Triton, CUDA float64, other
    devices); saves the forward's softmin weights ``(3, M * N, B)`` and the last-column cells."""

    @staticmethod
    def forward(
        ctx, C: Tensor, target_lengths: Tensor, query_lengths: Tensor, gamma: float, subsequence: bool
    ) -> Tensor:
        B, M, N = C.shape
        weights = torch.empty(2, M * N, B, dtype=dp_dtype(C), device=C.device)
        cost_rows(C, target_lengths, query_lengths, -1.0 / gamma, out=weights[0])
        end_index = (torch.arange(M + N + 1, device=C.device)[:, None] - query_lengths).clamp_(0, M + 1)
        last_column = _soft_forward(weights, end_index, M, N, subsequence)
        value = _soft_value(last_column, target_lengths, query_lengths, M, subsequence)
        ctx.save_for_backward(weights, last_column, value, end_index, target_lengths, query_lengths)
        ctx.subsequence, ctx.shape, ctx.cost_dtype = subsequence, (M, N), C.dtype
        return value * -gamma

    @staticmethod
    def backward(ctx, grad_value: Tensor):
        weights, last_column, value, end_index, target_lengths, query_lengths = ctx.saved_tensors
        terminal = _terminal(last_column, value, target_lengths, query_lengths, ctx.subsequence)
        terminal *= grad_value.to(terminal.dtype)  # E is linear in T
        E = _soft_backward(weights, terminal, end_index, *ctx.shape)  # dV/dC[i-1, j-1] = dV/dR[i, j]
        return rows_to_batch_major(E, *ctx.shape, ctx.cost_dtype), None, None, None, None


def soft_dtw(
    C: Tensor, target_lengths: Tensor, query_lengths: Tensor, gamma: float = 0.1, subsequence: bool = True
) -> Tensor:
    """Soft-DTW value of each pair: ``C (B, M, N) -> (B,)``, differentiable w.r.t. ``C``.

    For one pair with lengths ``m = target_lengths[b]``, ``n = query_lengths[b]`` and
    ``softmin_g(a) = -g * log(sum(exp(-a / g)))``::

        R[0, 0] = 0;  R[0, j] = inf (j >= 1);  R[i, 0] = 0 if subsequence else inf (i >= 1)
        R[i, j] = C[i-1, j-1] + softmin_g(R[i-1, j-1], R[i-1, j], R[i, j-1])
        value   = softmin_g(R[1..m, n]) if subsequence else R[m, n]

    The target axis ``M`` is the one the query may match a part of: in subsequence mode the path
    may start and end at any target row, so the value is a soft minimum over target moments of
    their DTW cost against the whole query. ``inf`` is represented by the finite ``BIG``.

    ``gamma`` defaults to 0.1: the paper does not report its value; with cosine costs in ``[0, 2]``
    and a few dozen frames, 0.1 keeps the soft minimum close to the hard one (a gap of at most
    ``gamma * log 3`` per step) while spreading the gradient over near-optimal paths.

    Padding: entries of ``C`` outside ``[:m, :n]`` are ignored (any value, even NaN) and get a
    zero gradient. The DP runs in float32 for fp16/bf16/fp32 input (float64 stays float64) and the
    value has that dtype; the gradient has ``C``'s dtype. Forward and the analytic backward pass
    (Cuturi and Blondel's recursion for ``E = dV/dR``, not autograd through the loop) run on the
    CPU as compiled loops over blocks of pairs (:mod:`matr.align._cpu_dp`), on CUDA (fp32, fp16,
    bf16) as Triton kernels (:mod:`matr.align.kernels`), one program per pair. ``dV/dC`` is the
    expected alignment matrix: non-negative, and as ``gamma -> 0`` it tends to the 0/1 path of
    :func:`hard_alignment` (where the optimum is unique).
    """
    tl, ql = check_inputs("soft_dtw", C, target_lengths, query_lengths)
    if not gamma > 0:
        raise ValueError(f"matr.align.soft_dtw: gamma must be > 0, got {gamma}")
    if use_triton(C):
        function = _TritonSoftDTW
    else:
        function = _CompiledSoftDTW if C.device.type == "cpu" else _SoftDTW
    return function.apply(C, tl, ql, float(gamma), bool(subsequence))


# ---------------------------------------------------------------------------------------------
# Hard alignment
# ---------------------------------------------------------------------------------------------

_DIAG, _UP, _LEFT, _STAY = 0, 1, 2, 3


def _start_diagonal(slab: np.ndarray, k: int, M: int, N: int, column: float, row: float) -> None:
    """Write the boundary cells of diagonal ``k`` into its rolling slab ``(N + 2, B)`` (indexed by
    ``j``): ``R[k, 0]`` (``0`` for ``k = 0``, else ``column``) and ``R[0, k] = row``. Slots of a slab
    that are neither boundary nor computed are never read by the next two diagonals."""
    if k <= M:
        slab[0] = 0.0 if k == 0 else column
    if 1 <= k <= N:
        slab[k] = row


def _hard_forward(
    Ct: np.ndarray, query_lengths: np.ndarray, M: int, N: int, subsequence: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Hard-min DP on the cost table ``Ct`` (NumPy: no gradient, and a few times less overhead per
    operation than torch at the small sizes of inference and training). Returns the table of
    chosen predecessors (uint8: ``_DIAG``, ``_UP``, ``_LEFT``; ties go to the lowest code) and
    ``R[k - n, n]`` for every diagonal ``k`` ``(M + N + 1, B)``, the last-column cell of each pair."""
    W, B = N + 2, Ct.shape[2]
    batch = np.arange(B)
    choice = np.empty(Ct.shape, dtype=np.uint8)
    last_column = np.full((M + N + 1, B), BIG, dtype=Ct.dtype)
    R = np.empty((3, W, B), dtype=Ct.dtype)  # diagonal k lives in slab k % 3
    for k in range(M + N + 1):
        _start_diagonal(R[k % 3], k, M, N, column=0.0 if subsequence else BIG, row=BIG)
        if k < 2:
            continue
        j0, j1 = diagonal_range(k, M, N)
        diag, up, left = R[(k - 2) % 3, j0 - 1 : j1], R[(k - 1) % 3, j0 : j1 + 1], R[(k - 1) % 3, j0 - 1 : j1]
        up_or_left = np.minimum(up, left)
        np.add(Ct[k, j0 : j1 + 1], np.minimum(diag, up_or_left), out=R[k % 3, j0 : j1 + 1])
        # 0 if diag <= min(up, left), else 1 if up <= left, else 2.
        code = choice[k, j0 : j1 + 1]
        np.greater(up, left, out=code)
        code += 1
        code *= diag > up_or_left
        last_column[k] = R[k % 3][query_lengths, batch]
    return choice, last_column


def _backtrack(
    choice: np.ndarray, end_row: np.ndarray, query_lengths: np.ndarray, M: int, N: int
) -> tuple[np.ndarray, np.ndarray]:
    """Follow the stored choices from ``(end_row, n)`` to row or column 0, all pairs at once, as
    flat positions in the choice table: each step moves by the offset of the chosen predecessor;
    the boundary slots hold ``_STAY`` (offset 0), so a pair that has left the table stays put.
    Returns the flat indices of the visited cells in ``(B, M, N)`` and the first row of each path
    (1-based)."""
    K, W, B = choice.shape
    choice[:, 0] = _STAY  # column 0
    edge = np.arange(min(K, W))
    choice[edge, edge] = _STAY  # row 0 (the DP never writes either)
    offsets = np.array([(2 * W + 1) * B, W * B, (W + 1) * B, 0])  # _DIAG, _UP, _LEFT, _STAY
    flat_choice = choice.reshape(-1)
    position = ((end_row + query_lengths) * W + query_lengths) * B + np.arange(B)
    steps = int((end_row + query_lengths).max()) - 1
    visited = np.empty((steps, B), dtype=np.int64)
    for step in range(steps):
        visited[step] = position
        position = position - offsets[flat_choice[position]]
    k, j, b = visited // (W * B), visited // B % W, visited % B
    i = k - j
    real = (i >= 1) & (j >= 1)
    start = np.where(real, i, M + 1).min(axis=0)
    return ((b * M + i - 1) * N + j - 1)[real], start


def hard_alignment(C: Tensor, target_lengths: Tensor, query_lengths: Tensor, subsequence: bool = True) -> HardAlignment:
    """Optimal monotone alignment path, the ``gamma -> 0`` limit of :func:`soft_dtw`.

    Same recursion and boundary as :func:`soft_dtw` with a hard ``min``; in subsequence mode the
    path ends at row ``argmin R[1..m, n]``, otherwise at ``(m, n)``, and is traced back to row or
    column 0 with batched index operations.

    Tie-breaking (deterministic): among predecessors, diagonal ``(i-1, j-1)`` before up
    ``(i-1, j)`` before left ``(i, j-1)``; among end rows, the earliest. In subsequence mode a tie
    between the free start ``R[i-1, 0] = 0`` and a real predecessor therefore goes to the free
    start, which gives the shortest span.

    Returns :class:`HardAlignment` ``(matrix (B, M, N), start (B,), end (B,))``; ``matrix`` has
    the DP dtype (float32, or float64 for float64 input). Padding is ignored; no gradient flows.
    On CUDA (fp32, fp16, bf16) a Triton kernel runs the same float32 additions and comparisons, so
    the path is the same as on the CPU.
    """
    tl, ql = check_inputs("hard_alignment", C, target_lengths, query_lengths)
    _, M, N = C.shape
    if use_triton(C):
        from matr.align import kernels

        with torch.no_grad():
            return HardAlignment(*kernels.hard_alignment(C.detach(), tl, ql, subsequence))
    with torch.no_grad():  # on the CPU in NumPy (CUDA float64, or CUDA without Triton, round-trips)
        Ct = cost_table(C, tl, ql).cpu().numpy()
        lengths, n = tl.cpu().numpy(), ql.cpu().numpy()
        choice, last_column = _hard_forward(Ct, n, M, N, subsequence)
        if subsequence:
            rows = np.arange(1, M + 1)
            ends = last_column[rows[:, None] + n, np.arange(len(n))].T  # (B, M)
            end_row = np.where(rows <= lengths[:, None], ends, BIG).argmin(axis=1) + 1  # first minimum: earliest
        else:
            end_row = lengths
        visited, start = _backtrack(choice, end_row, n, M, N)
    matrix = torch.zeros(len(n) * M * N, dtype=dp_dtype(C))
    matrix[torch.from_numpy(visited)] = 1.0
    spans = (torch.from_numpy(start - 1).to(C.device), torch.from_numpy(end_row - 1).to(C.device))
    return HardAlignment(matrix.view(len(n), M, N).to(C.device), *spans)
