"""Soft-DTW (Cuturi & Blondel, ICML 2017) with an analytic backward pass and its hard (``gamma -> 0``)
alignment path (paper Sec. 3.2, "Dual-stage Sequence Alignment"); the costs are in
:mod:`matr.align.costs`.

Both DPs sweep the ``M + N - 1`` anti-diagonals of the table (storage described in
:mod:`matr.align._tables`), one batched tensor operation per step, keeping only the last three
diagonals of ``R`` alive. The soft DP runs in the scaled, negated domain ``Q = -R / gamma``, where
the soft minimum is a log-sum-exp; it keeps the table of those log-sum-exps ``L`` for its
analytic backward pass, which sweeps the diagonals in reverse. The hard DP keeps the table of
predecessor choices (uint8) for the batched backtracking.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from matr import choices
from matr.align._tables import (
    BIG,
    cell_rows,
    check_inputs,
    cost_table,
    diagonal_range,
    end_slots,
    exp_into_rows,
    logsumexp_into,
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
    "float32 for fp16/bf16/fp32 costs (float64 stays float64); Triton kernels on CUDA, PyTorch on CPU",
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


def _start_diagonal(slab: Tensor, k: int, M: int, N: int, column: float, row: float) -> None:
    """Write the boundary cells of diagonal ``k`` into its rolling slab ``(N + 2, B)``:
    ``R[k, 0]`` (``0`` for ``k = 0``, else ``column``) and ``R[0, k] = row``. Slots of a slab that
    are neither boundary nor computed are never read by the next two diagonals."""
    if k <= M:
        slab[0] = 0.0 if k == 0 else column
    if 1 <= k <= N:
        slab[k] = row


# ---------------------------------------------------------------------------------------------
# Soft-DTW
# ---------------------------------------------------------------------------------------------


def _soft_forward(P: Tensor, M: int, N: int, subsequence: bool) -> Tensor:
    """Table ``L`` of ``logsumexp(Q[i-1, j-1], Q[i-1, j], Q[i, j-1])``, where ``Q = -R / gamma``
    follows ``Q = P + L`` from ``P = -C / gamma`` (tables), one diagonal at a time."""
    B = P.shape[2]
    L = torch.empty_like(P)
    Q = P.new_empty(3, N + 2, B)  # diagonal k lives in slab k % 3
    for k in range(M + N + 1):
        _start_diagonal(Q[k % 3], k, M, N, column=0.0 if subsequence else -BIG, row=-BIG)
        if k < 2:
            continue
        j0, j1 = diagonal_range(k, M, N)
        diag, prev = Q[(k - 2) % 3], Q[(k - 1) % 3]
        lse = logsumexp_into(diag[j0 - 1 : j1], prev[j0 : j1 + 1], prev[j0 - 1 : j1], out=L[k, j0 : j1 + 1])
        torch.add(P[k, j0 : j1 + 1], lse, out=Q[k % 3, j0 : j1 + 1])
    return L


def _soft_value(P: Tensor, L: Tensor, target_lengths: Tensor, query_lengths: Tensor, subsequence: bool) -> Tensor:
    """Scaled value ``-V / gamma`` ``(B,)``: ``logsumexp(Q[1..m, n])`` or ``Q[m, n]``."""
    M = P.shape[0] - P.shape[1] - 1
    if not subsequence:
        k, j, b = target_lengths + query_lengths, query_lengths, torch.arange(P.shape[2], device=P.device)
        return P[k, j, b] + L[k, j, b]
    k, j, b, real = end_slots(target_lengths, query_lengths, M)
    return torch.where(real, P[k, j, b] + L[k, j, b], -BIG).logsumexp(dim=1)


def _soft_backward(
    P: Tensor, L: Tensor, value: Tensor, target_lengths: Tensor, query_lengths: Tensor, subsequence: bool
) -> Tensor:
    """``E = dV/dR`` on the cells, cell-major ``(M * N, B)``, by Cuturi and Blondel's recursion.

    ``E[p] = T[p] + sum_s E[s] * w(s <- p)`` over the successors ``s`` of ``p``, with the softmin
    weight ``w = exp(Q[p] - L[s])`` and the terminal gradient ``T`` (softmax over the end rows, or 1
    at ``(m, n)``), is run in log space: ``H = log E - L`` obeys::

        H[p] = P[p] + logsumexp(H[i+1, j+1], H[i+1, j], H[i, j+1], log T[p] - Q[p])

    where ``log T - Q`` is ``-value`` on the terminal cells and ``-BIG`` elsewhere; then
    ``E = exp(H + L)``. Cells outside a pair's ``m x n`` block only have such cells as successors,
    so their ``H`` stays near ``-BIG`` and their ``E`` is exactly 0 (exponents below
    ``EXP_FLOOR`` are flushed to 0).
    """
    K, W, B = P.shape
    M, N = K - W - 1, W - 2
    batch = torch.arange(B, device=P.device)
    slots = cell_rows(M, N, P.device)
    # log T - Q at the cell (k - n, n) of each diagonal k, (M + N + 1, B).
    end_row = torch.arange(M + N + 1, device=P.device)[:, None] - query_lengths
    terminal = (end_row >= 1) & (end_row <= target_lengths) if subsequence else end_row == target_lengths
    terminal_value = torch.where(terminal, -value, -BIG)
    E = P.new_empty(M * N, B)
    H = torch.full((3, W, B), -BIG, dtype=P.dtype, device=P.device)  # diagonal k in slab k % 3
    for k in range(M + N, 1, -1):
        h = H[k % 3].fill_(-BIG)
        h[query_lengths, batch] = terminal_value[k]
        j0, j1 = diagonal_range(k, M, N)
        succ_diag, succ = H[(k + 2) % 3], H[(k + 1) % 3]
        cells = h[j0 : j1 + 1]
        logsumexp_into(succ_diag[j0 + 1 : j1 + 2], succ[j0 : j1 + 1], succ[j0 + 1 : j1 + 2], cells, out=cells)
        cells += P[k, j0 : j1 + 1]
        exp_into_rows(E, slots[k, j0 : j1 + 1], torch.add(cells, L[k, j0 : j1 + 1]))
    return E


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


class _SoftDTW(torch.autograd.Function):
    """Soft-DTW with the analytic backward pass; saves the tables ``P = -C / gamma`` and ``L``."""

    @staticmethod
    def forward(
        ctx, C: Tensor, target_lengths: Tensor, query_lengths: Tensor, gamma: float, subsequence: bool
    ) -> Tensor:
        _, M, N = C.shape
        P = cost_table(C, target_lengths, query_lengths, scale=-1.0 / gamma)
        L = _soft_forward(P, M, N, subsequence)
        value = _soft_value(P, L, target_lengths, query_lengths, subsequence)
        ctx.save_for_backward(P, L, value, target_lengths, query_lengths)
        ctx.subsequence, ctx.cost_dtype = subsequence, C.dtype
        return value * -gamma

    @staticmethod
    def backward(ctx, grad_value: Tensor):
        P, L, value, target_lengths, query_lengths = ctx.saved_tensors
        E = _soft_backward(P, L, value, target_lengths, query_lengths, ctx.subsequence)
        E *= grad_value.to(E.dtype)  # dV/dC[i-1, j-1] = dV/dR[i, j]
        K, W, _ = P.shape
        return rows_to_batch_major(E, K - W - 1, W - 2, ctx.cost_dtype), None, None, None, None


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
    (Cuturi and Blondel's recursion for ``E = dV/dR``, not autograd through the loop) are
    vectorised over the batch and over the ``M + N - 1`` anti-diagonals; on CUDA (fp32, fp16, bf16)
    they run as Triton kernels (:mod:`matr.align.kernels`), one program per pair. ``dV/dC`` is the
    expected alignment matrix: non-negative, and as ``gamma -> 0`` it tends to the 0/1 path of
    :func:`hard_alignment` (where the optimum is unique).
    """
    tl, ql = check_inputs("soft_dtw", C, target_lengths, query_lengths)
    if not gamma > 0:
        raise ValueError(f"matr.align.soft_dtw: gamma must be > 0, got {gamma}")
    function = _TritonSoftDTW if use_triton(C) else _SoftDTW
    return function.apply(C, tl, ql, float(gamma), bool(subsequence))


# ---------------------------------------------------------------------------------------------
# Hard alignment
# ---------------------------------------------------------------------------------------------

_DIAG, _UP, _LEFT = 0, 1, 2


def _hard_forward(Ct: Tensor, query_lengths: Tensor, M: int, N: int, subsequence: bool) -> tuple[Tensor, Tensor]:
    """Hard-min DP on the cost table ``Ct``. Returns the table of chosen predecessors (uint8:
    ``_DIAG``, ``_UP``, ``_LEFT``; ties go to the lowest code) and ``R[k - n, n]`` for every
    diagonal ``k`` ``(M + N + 1, B)``, the last-column cell of each pair."""
    W, B = N + 2, Ct.shape[2]
    choice = torch.empty(Ct.shape, dtype=torch.uint8, device=Ct.device)
    last_column = Ct.new_full((M + N + 1, B), BIG)
    R = Ct.new_empty(3, W, B)  # diagonal k lives in slab k % 3
    for k in range(M + N + 1):
        _start_diagonal(R[k % 3], k, M, N, column=0.0 if subsequence else BIG, row=BIG)
        if k < 2:
            continue
        j0, j1 = diagonal_range(k, M, N)
        diag, up, left = R[(k - 2) % 3, j0 - 1 : j1], R[(k - 1) % 3, j0 : j1 + 1], R[(k - 1) % 3, j0 - 1 : j1]
        up_or_left = torch.minimum(up, left)
        torch.add(Ct[k, j0 : j1 + 1], torch.minimum(diag, up_or_left), out=R[k % 3, j0 : j1 + 1])
        # 0 if diag <= min(up, left), else 1 if up <= left, else 2.
        code = choice[k, j0 : j1 + 1]
        code.copy_(torch.gt(up, left)).add_(1).mul_(torch.gt(diag, up_or_left))
        last_column[k] = R[k % 3].gather(0, query_lengths[None])[0]
    return choice, last_column


def _backtrack(
    choice: Tensor, end_row: Tensor, query_lengths: Tensor, M: int, N: int, dtype: torch.dtype
) -> HardAlignment:
    """Follow the stored choices from ``(end_row, n)`` until row or column 0, all pairs at once
    (at most ``max(end_row + n) - 1`` batched steps; a pair that has left the table stays put)."""
    _, W, B = choice.shape
    batch = torch.arange(B, device=choice.device)
    flat_choice = choice.view(-1)
    i, j, start = end_row.clone(), query_lengths.clone(), end_row.clone()
    outside = B * M * N  # a dummy cell for pairs that have finished
    visited = []
    for _ in range(int((end_row + query_lengths).max()) - 1):
        active = (i > 0) & (j > 0)
        visited.append(torch.where(active, (batch * M + i - 1) * N + j - 1, outside))
        start = torch.where(active, i, start)
        c = flat_choice[((i + j) * W + j) * B + batch]
        i = i - (active & (c != _LEFT)).long()
        j = j - (active & (c != _UP)).long()
    matrix = torch.zeros(B * M * N + 1, dtype=dtype, device=choice.device)
    matrix[torch.cat(visited)] = 1.0
    return HardAlignment(matrix[:-1].view(B, M, N), start - 1, end_row - 1)


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
    with torch.no_grad():
        Ct = cost_table(C, tl, ql)
        choice, last_column = _hard_forward(Ct, ql, M, N, subsequence)
        if subsequence:
            rows = torch.arange(1, M + 1, device=C.device)
            ends = last_column[rows[:, None] + ql[None, :], torch.arange(len(ql), device=C.device)].T  # (B, M)
            end_row = torch.where(rows <= tl[:, None], ends, BIG).argmin(dim=1) + 1  # first minimum: earliest
        else:
            end_row = tl
        return _backtrack(choice, end_row, ql, M, N, Ct.dtype)
