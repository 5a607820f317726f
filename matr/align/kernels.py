"""Triton kernels of the alignment dynamic programmes, the GPU path of :mod:`matr.align`.

One program per pair sweeps the anti-diagonals ``i + j = k`` of its own ``m x n`` block (so a
short pair costs fewer steps), one lane per query position ``j``; a diagonal's cells read their
predecessors from the full tables in global memory, written by the previous diagonals, with a
barrier between diagonals. The tables have the cost's shape ``(B, M, N)`` (interior cells only:
row and column 0 are the boundary, supplied from the indices) and float32; padding cells are never
read or written, and the gradient buffers start at zero, so padding gets a zero gradient.

* soft-DTW (subsequence or full): forward stores ``R``; the backward is Cuturi and Blondel's
  recursion ``E[p] = T[p] + sum_s E[s] exp((R[s] - C[s] - R[p]) / gamma)`` over the successors
  ``s`` of ``p`` inside the block, with the terminal gradient ``T`` (softmax over the end rows, or
  1 at ``(m, n)``) already scaled by the upstream gradient.
* Drop-DTW: forward stores ``D`` and ``R``; the backward is the same recursion over both tables.
* hard alignment: forward stores ``R`` and the chosen predecessors (uint8, ties as on the CPU);
  one lane per pair follows them back from the end row.

The end rows, values and terminal weights (a softmax over ``M`` numbers per pair) are computed
with torch. These functions take any device: the CPU runs them only under Triton's interpreter
(``TRITON_INTERPRET=1``), which the tests use; :mod:`matr.align` calls them for CUDA tensors.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch import Tensor

from matr.align import _tables

#: Finite stand-in for infinity (``matr.align._tables.BIG``), in the kernels and in torch.
BIG = tl.constexpr(_tables.BIG)


def _launch_options(N: int) -> dict:
    """Lanes (a power of two covering the ``N`` query positions) and warps of one program."""
    block = max(16, triton.next_power_of_2(N))
    return {"BLOCK": block, "num_warps": max(1, min(8, block // 64)), "num_stages": 1}


# ---------------------------------------------------------------------------------------------
# Kernels
# ---------------------------------------------------------------------------------------------


@triton.jit
def _pair(target_lengths, query_lengths, M, N, BLOCK: tl.constexpr):
    """This program's pair ``b``, its lengths ``m, n``, the lanes ``j = 1..BLOCK`` and its block's offset."""
    b = tl.program_id(0).to(tl.int64)
    m = tl.load(target_lengths + b).to(tl.int32)
    n = tl.load(query_lengths + b).to(tl.int32)
    return b, m, n, tl.arange(0, BLOCK) + 1, b * M * N


@triton.jit
def _cells(k, j, m, n, base, N):
    """Row ``i``, mask and offset of the cells ``(i, j)`` of diagonal ``i + j = k`` inside the pair's block."""
    i = k - j
    return i, (j <= n) & (i >= 1) & (i <= m), base + (i - 1) * N + (j - 1)


@triton.jit
def _predecessors(R, off, i, j, valid, N, COLUMN: tl.constexpr):
    """``R[i-1, j-1], R[i-1, j], R[i, j-1]`` of the cells ``(i, j)`` (1-based), boundary included:
    ``R[0, 0] = 0``, ``R[0, j] = BIG``, ``R[i, 0] = COLUMN``."""
    diag = tl.load(R + off - N - 1, mask=valid & (i > 1) & (j > 1), other=BIG)
    diag = tl.where(j == 1, tl.where(i == 1, 0.0, COLUMN), diag)
    up = tl.load(R + off - N, mask=valid & (i > 1), other=BIG)
    left = tl.load(R + off - 1, mask=valid & (j > 1), other=COLUMN)
    return diag, up, left


@triton.jit
def _softmin3(a, b, c, gamma):
    """``-gamma * log(exp(-a / gamma) + exp(-b / gamma) + exp(-c / gamma))``, stable."""
    low = tl.minimum(tl.minimum(a, b), c)
    s = tl.exp((low - a) / gamma) + tl.exp((low - b) / gamma) + tl.exp((low - c) / gamma)
    return low - gamma * tl.log(s)


@triton.jit
def _forward_kernel(
    C,
    R,
    choice,
    target_lengths,
    query_lengths,
    M,
    N,
    gamma,
    COLUMN: tl.constexpr,
    HARD: tl.constexpr,
    BLOCK: tl.constexpr,
):
    """Soft-DTW (``HARD`` false) or hard-min DTW forward; the hard one also stores its choices:
    0 (diagonal) if ``diag <= min(up, left)``, else 1 (up) if ``up <= left``, else 2 (left)."""
    b, m, n, j, base = _pair(target_lengths, query_lengths, M, N, BLOCK)
    for k in range(2, m + n + 1):
        i, valid, off = _cells(k, j, m, n, base, N)
        diag, up, left = _predecessors(R, off, i, j, valid, N, COLUMN)
        cost = tl.load(C + off, mask=valid, other=0.0).to(tl.float32)
        if HARD:
            up_or_left = tl.minimum(up, left)
            tl.store(R + off, cost + tl.minimum(diag, up_or_left), mask=valid)
            code = tl.where(diag <= up_or_left, 0, tl.where(up <= left, 1, 2))
            tl.store(choice + off, code.to(tl.uint8), mask=valid)
        else:
            tl.store(R + off, cost + _softmin3(diag, up, left, gamma), mask=valid)
        tl.debug_barrier()


@triton.jit
def _successor_weight(C, R, r, off, ok, gamma):
    """``exp((R[s] - C[s] - r) / gamma)`` for the successor cells ``s`` at ``off``, 0 where not ``ok``."""
    succ = tl.load(R + off, mask=ok, other=0.0) - tl.load(C + off, mask=ok, other=0.0).to(tl.float32)
    return tl.where(ok, tl.exp((succ - r) / gamma), 0.0)


@triton.jit
def _soft_backward_kernel(C, R, E, terminal, target_lengths, query_lengths, M, N, gamma, BLOCK: tl.constexpr):
    b, m, n, j, base = _pair(target_lengths, query_lengths, M, N, BLOCK)
    for step in range(0, m + n - 1):
        k = m + n - step
        i, valid, off = _cells(k, j, m, n, base, N)
        r = tl.load(R + off, mask=valid, other=0.0)
        down, right = valid & (i < m), valid & (j < n)
        e = tl.load(terminal + b * M + i - 1, mask=valid & (j == n), other=0.0)
        e += tl.load(E + off + N, mask=down, other=0.0) * _successor_weight(C, R, r, off + N, down, gamma)
        e += tl.load(E + off + 1, mask=right, other=0.0) * _successor_weight(C, R, r, off + 1, right, gamma)
        both = down & right
        e += tl.load(E + off + N + 1, mask=both, other=0.0) * _successor_weight(C, R, r, off + N + 1, both, gamma)
        tl.store(E + off, e, mask=valid)
        tl.debug_barrier()


@triton.jit
def _drop_forward_kernel(C, D, R, delta, target_lengths, query_lengths, M, N, gamma, BLOCK: tl.constexpr):
    b, m, n, j, base = _pair(target_lengths, query_lengths, M, N, BLOCK)
    drop = tl.load(delta + b).to(tl.float32)
    for k in range(2, m + n + 1):
        i, valid, off = _cells(k, j, m, n, base, N)
        # R[i-1, j-1] with R[0, 0] = 0, R[i, 0] = i * delta, R[0, j] = BIG; D is BIG on row and column 0.
        diag = tl.load(R + off - N - 1, mask=valid & (i > 1) & (j > 1), other=BIG)
        diag = tl.where(j == 1, (i - 1).to(tl.float32) * drop, diag)
        up = tl.load(D + off - N, mask=valid & (i > 1), other=BIG)
        left = tl.load(D + off - 1, mask=valid & (j > 1), other=BIG)
        r_up = tl.load(R + off - N, mask=valid & (i > 1), other=BIG)
        cost = tl.load(C + off, mask=valid, other=0.0).to(tl.float32)
        d = cost + _softmin3(diag, up, left, gamma)
        low = tl.minimum(d, r_up + drop)
        r = low - gamma * tl.log(tl.exp((low - d) / gamma) + tl.exp((low - r_up - drop) / gamma))
        tl.store(D + off, d, mask=valid)
        tl.store(R + off, r, mask=valid)
        tl.debug_barrier()


@triton.jit
def _drop_backward_kernel(
    C, D, R, GD, GR, delta, upstream, target_lengths, query_lengths, M, N, gamma, BLOCK: tl.constexpr
):
    b, m, n, j, base = _pair(target_lengths, query_lengths, M, N, BLOCK)
    drop = tl.load(delta + b).to(tl.float32)
    g = tl.load(upstream + b).to(tl.float32)
    for step in range(0, m + n - 1):
        k = m + n - step
        i, valid, off = _cells(k, j, m, n, base, N)
        r = tl.load(R + off, mask=valid, other=0.0)
        d = tl.load(D + off, mask=valid, other=0.0)
        down, right = valid & (i < m), valid & (j < n)
        both = down & right
        # dV/dR[i, j]: the end cell, R[i+1, j] (drop of target frame i+1) and D[i+1, j+1] (match).
        r_down = tl.load(R + off + N, mask=down, other=0.0)
        gr = tl.where(valid & (i == m) & (j == n), g, 0.0)
        gr += tl.load(GR + off + N, mask=down, other=0.0) * tl.where(down, tl.exp((r_down - r - drop) / gamma), 0.0)
        gr += tl.load(GD + off + N + 1, mask=both, other=0.0) * _successor_weight(C, D, r, off + N + 1, both, gamma)
        # dV/dD[i, j]: through R[i, j], D[i+1, j] and D[i, j+1].
        gd = gr * tl.where(valid, tl.exp((r - d) / gamma), 0.0)
        gd += tl.load(GD + off + N, mask=down, other=0.0) * _successor_weight(C, D, d, off + N, down, gamma)
        gd += tl.load(GD + off + 1, mask=right, other=0.0) * _successor_weight(C, D, d, off + 1, right, gamma)
        tl.store(GR + off, gr, mask=valid)
        tl.store(GD + off, gd, mask=valid)
        tl.debug_barrier()


@triton.jit
def _backtrack_kernel(choice, matrix, start, end_row, query_lengths, M, N):
    b = tl.program_id(0).to(tl.int64)
    i = tl.load(end_row + b).to(tl.int32)
    j = tl.load(query_lengths + b).to(tl.int32)
    first = i
    steps = i + j - 1
    for _ in range(0, steps):
        active = (i > 0) & (j > 0)
        off = b * M * N + (i - 1) * N + (j - 1)
        tl.store(matrix + off, 1.0, mask=active)
        code = tl.load(choice + off, mask=active, other=0)
        first = tl.where(active, i, first)
        i -= (active & (code != 2)).to(tl.int32)
        j -= (active & (code != 1)).to(tl.int32)
    tl.store(start + b, (first - 1).to(tl.int64))


# ---------------------------------------------------------------------------------------------
# Launchers (inputs checked by the callers in matr.align; lengths are long tensors on C's device)
# ---------------------------------------------------------------------------------------------


def _column(subsequence: bool) -> float:
    return 0.0 if subsequence else _tables.BIG


def _end_values(R: Tensor, target_lengths: Tensor, query_lengths: Tensor) -> Tensor:
    """``R[b, i, n - 1]`` for every row ``i`` ``(B, M)``, BIG on rows ``i >= m``."""
    B, M, _ = R.shape
    column = R.gather(2, (query_lengths - 1).view(B, 1, 1).expand(B, M, 1))[:, :, 0]
    return column.masked_fill(torch.arange(M, device=R.device) >= target_lengths[:, None], _tables.BIG)


def soft_dtw_forward(C: Tensor, target_lengths: Tensor, query_lengths: Tensor, gamma: float, subsequence: bool):
    """Soft-DTW values ``(B,)`` float32 and the table ``R (B, M, N)`` the backward pass needs."""
    B, M, N = C.shape
    C = C.contiguous()
    R = torch.empty(B, M, N, dtype=torch.float32, device=C.device)
    if B:
        _forward_kernel[(B,)](
            C,
            R,
            R,
            target_lengths,
            query_lengths,
            M,
            N,
            gamma,
            COLUMN=_column(subsequence),
            HARD=False,
            **_launch_options(N),
        )
    ends = _end_values(R, target_lengths, query_lengths)
    if subsequence:
        return -gamma * torch.logsumexp(-ends / gamma, dim=1), R
    return ends.gather(1, (target_lengths - 1)[:, None])[:, 0], R


def soft_dtw_backward(
    C: Tensor, R: Tensor, target_lengths: Tensor, query_lengths: Tensor, gamma: float, subsequence: bool, grad: Tensor
) -> Tensor:
    """``grad[b] * dV_b / dC`` ``(B, M, N)`` float32, zero on padding."""
    B, M, N = C.shape
    ends = _end_values(R, target_lengths, query_lengths)
    if subsequence:
        terminal = torch.softmax(-ends / gamma, dim=1)
    else:
        terminal = torch.zeros_like(ends).scatter_(1, (target_lengths - 1)[:, None], 1.0)
    terminal = (terminal * grad.float()[:, None]).contiguous()
    E = torch.zeros(B, M, N, dtype=torch.float32, device=C.device)
    if B:
        _soft_backward_kernel[(B,)](
            C.contiguous(), R, E, terminal, target_lengths, query_lengths, M, N, gamma, **_launch_options(N)
        )
    return E


def drop_dtw_forward(C: Tensor, target_lengths: Tensor, query_lengths: Tensor, delta: Tensor, gamma: float):
    """Drop-DTW values ``(B,)`` float32 and the tables ``D, R (B, M, N)``."""
    B, M, N = C.shape
    D = torch.empty(B, M, N, dtype=torch.float32, device=C.device)
    R = torch.empty_like(D)
    if B:
        options = _launch_options(N)
        delta = delta.float().contiguous()
        _drop_forward_kernel[(B,)](C.contiguous(), D, R, delta, target_lengths, query_lengths, M, N, gamma, **options)
    batch = torch.arange(B, device=C.device)
    return R[batch, target_lengths - 1, query_lengths - 1], D, R


def drop_dtw_backward(
    C: Tensor,
    D: Tensor,
    R: Tensor,
    target_lengths: Tensor,
    query_lengths: Tensor,
    delta: Tensor,
    gamma: float,
    grad: Tensor,
) -> Tensor:
    """``grad[b] * dV_b / dC`` ``(B, M, N)`` float32, zero on padding (``delta`` held constant)."""
    B, M, N = C.shape
    GD = torch.zeros(B, M, N, dtype=torch.float32, device=C.device)
    GR = torch.zeros_like(GD)
    if B:
        C, delta, upstream = C.contiguous(), delta.float().contiguous(), grad.float().contiguous()
        lengths = (target_lengths, query_lengths)
        _drop_backward_kernel[(B,)](C, D, R, GD, GR, delta, upstream, *lengths, M, N, gamma, **_launch_options(N))
    return GD


def hard_alignment(C: Tensor, target_lengths: Tensor, query_lengths: Tensor, subsequence: bool):
    """``(matrix (B, M, N) float32, start (B,), end (B,))`` of the optimal path, as on the CPU."""
    B, M, N = C.shape
    R = torch.empty(B, M, N, dtype=torch.float32, device=C.device)
    choice = torch.empty(B, M, N, dtype=torch.uint8, device=C.device)
    matrix = torch.zeros(B, M, N, dtype=torch.float32, device=C.device)
    start = torch.empty(B, dtype=torch.long, device=C.device)
    if not B:
        return matrix, start, start.clone()
    options = _launch_options(N)
    _forward_kernel[(B,)](
        C.contiguous(),
        R,
        choice,
        target_lengths,
        query_lengths,
        M,
        N,
        1.0,
        COLUMN=_column(subsequence),
        HARD=True,
        **options,
    )
    end_row = _end_values(R, target_lengths, query_lengths).argmin(dim=1) + 1 if subsequence else target_lengths
    end_row = end_row.contiguous()
    _backtrack_kernel[(B,)](choice, matrix, start, end_row, query_lengths, M, N, num_warps=1, num_stages=1)
    return matrix, start, end_row - 1
