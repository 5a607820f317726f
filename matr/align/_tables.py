"""Shared machinery of the alignment dynamic programmes: checks, padding masks, and the two
storages that let one batched tensor operation fill a whole anti-diagonal.

Table storage (hard alignment). A DP table ``R[i, j]`` (``0 <= i <= M`` target, ``0 <= j <= N``
query, 1-based cells, row/column 0 the boundary) is held as ``T[k, j, b] = R_b[k - j, j]`` with
shape ``(M + N + 3, N + 2, B)``: slab ``T[k]`` is the anti-diagonal ``i + j = k``, indexed by the
query position ``j``, with the batch innermost so that a run of consecutive cells of one
diagonal, for all pairs, is one contiguous block. Predecessors of the cells ``j0..j1`` of
diagonal ``k`` are the slices ``T[k-2, j0-1:j1]`` (diagonal), ``T[k-1, j0:j1+1]`` (up,
``(i-1, j)``) and ``T[k-1, j0-1:j1]`` (left, ``(i, j-1)``).

Cell-major storage (soft-DTW, Drop-DTW). Cell ``(i, j)`` is row ``(i - 1) * N + j - 1`` of an
``(M * N, B)`` array (the cost's blocked transpose): the cells of one anti-diagonal, by
increasing ``i``, are rows one stride of ``N - 1`` apart, a strided view
(:func:`diagonal_cells`); a third less memory than the table, which matters as much as the
arithmetic at large batches (fresh memory costs page faults).
"""

from __future__ import annotations

import importlib.util

import torch
from torch import Tensor

#: Finite stand-in for infinity. DP tables never hold ``inf``, so ``inf - inf`` cannot occur;
#: ``exp(-BIG)`` is exactly 0, and ``BIG`` plus any realistic accumulated cost stays finite.
BIG = 1e30


def dp_dtype(x: Tensor) -> torch.dtype:
    """float64 stays float64; every other dtype (fp16, bf16, fp32) is computed in float32."""
    return torch.float64 if x.dtype == torch.float64 else torch.float32


def use_triton(C: Tensor) -> bool:
    """Whether the DPs run as Triton kernels (:mod:`matr.align.kernels`): CUDA tensors of a dtype the
    DP computes in float32, when Triton is installed. float64 and CPU tensors take the torch path."""
    return C.is_cuda and C.dtype != torch.float64 and importlib.util.find_spec("triton") is not None


def check_inputs(where: str, C: Tensor, target_lengths: Tensor, query_lengths: Tensor) -> tuple[Tensor, Tensor]:
    """Validate ``C (B, M, N)`` and the lengths; return the lengths as long tensors on ``C``'s device."""
    if C.dim() != 3:
        raise ValueError(f"matr.align.{where}: cost must have shape (B, M, N), got {tuple(C.shape)}")
    B, M, N = C.shape
    out = []
    for name, lengths, cap in (("target_lengths", target_lengths, M), ("query_lengths", query_lengths, N)):
        if tuple(lengths.shape) != (B,):
            raise ValueError(f"matr.align.{where}: {name} must have shape ({B},), got {tuple(lengths.shape)}")
        lengths = lengths.to(device=C.device, dtype=torch.long).contiguous()  # the kernels index it flat
        low, high = (int(lengths.min()), int(lengths.max())) if B else (1, cap)
        if low < 1 or high > cap:
            raise ValueError(
                f"matr.align.{where}: {name} must lie in [1, {cap}] (the cost's size), got values in [{low}, {high}]"
            )
        out.append(lengths)
    return out[0], out[1]


def valid_cells(target_lengths: Tensor, query_lengths: Tensor, M: int, N: int) -> Tensor:
    """``(B, M, N)`` bool, True on real cells ``i < m, j < n`` of each pair."""
    rows = torch.arange(M, device=target_lengths.device) < target_lengths[:, None]
    cols = torch.arange(N, device=query_lengths.device) < query_lengths[:, None]
    return rows[:, :, None] & cols[:, None, :]


def diagonal_range(k: int, M: int, N: int) -> tuple[int, int]:
    """Query positions ``[j0, j1]`` (inclusive) of the cells ``(i, j)`` of diagonal ``i + j = k``
    with ``1 <= i <= M`` and ``1 <= j <= N``."""
    return max(1, k - M), min(N, k - 1)


def cell_rows(M: int, N: int, device: torch.device) -> Tensor:
    """``(M + N + 3, N + 2)`` long: for each table slot ``(k, j)``, the row ``(i - 1) * N + (j - 1)``
    (``i = k - j``) of its cell in a cell-major ``(M * N, B)`` array, or ``M * N`` off the cells."""
    k = torch.arange(M + N + 3, device=device)[:, None]
    j = torch.arange(N + 2, device=device)[None, :]
    i = k - j
    inside = (j >= 1) & (j <= N) & (i >= 1) & (i <= M)
    return torch.where(inside, (i - 1) * N + (j - 1), M * N)


def cost_table(C: Tensor, target_lengths: Tensor, query_lengths: Tensor, scale: float = 1.0) -> Tensor:
    """``scale * C`` in table storage and in the DP dtype, 0 on padding and off the cells:
    ``(B, M, N) -> (M + N + 3, N + 2, B)``, ``out[k, j, b] = scale * C[b, k - j - 1, j - 1]``.

    Not differentiable (for the DPs with a hand-written backward pass). Padding is overwritten,
    so garbage (even NaN) never enters a DP.
    """
    B, M, N = C.shape
    rows = torch.empty(M * N + 1, B, dtype=dp_dtype(C), device=C.device)
    cost_rows(C, target_lengths, query_lengths, scale, out=rows[: M * N])
    rows[M * N] = 0.0
    return rows.index_select(0, cell_rows(M, N, C.device).flatten()).view(M + N + 3, N + 2, B)


def cost_rows(C: Tensor, target_lengths: Tensor, query_lengths: Tensor, scale: float, out: Tensor) -> Tensor:
    """``scale * C`` cell-major, 0 on padding: ``(B, M, N) -> out (M * N, B)`` (contiguous, the DP
    dtype), ``out[i * N + j, b] = scale * C[b, i, j]``. Not differentiable; garbage (even NaN) on
    padding never enters a DP."""
    B, M, N = C.shape
    source = C.detach().contiguous().view(B, M * N).T
    out.copy_(source).mul_(scale)  # a blocked transpose when the dtypes agree; scaled in the DP dtype
    cells = out.view(M, N, B)
    if bool((target_lengths < M).any()):
        cells.masked_fill_(torch.arange(M, device=C.device)[:, None, None] >= target_lengths, 0.0)
    if bool((query_lengths < N).any()):
        cells.masked_fill_(torch.arange(N, device=C.device)[None, :, None] >= query_lengths, 0.0)
    return out


def diagonal_rows(k: int, M: int, N: int) -> tuple[int, int]:
    """Target rows ``[i0, i1]`` (inclusive) of the cells ``(i, j)`` of diagonal ``i + j = k`` with
    ``1 <= i <= M`` and ``1 <= j <= N``."""
    return max(1, k - N), min(M, k - 1)


def diagonal_cells(rows: Tensor, k: int, i0: int, i1: int, N: int) -> Tensor:
    """The cells ``(i, k - i)``, ``i = i0..i1``, of a cell-major ``(..., M * N, B)`` tensor (rows of
    ``B`` contiguous): a strided view ``(..., i1 - i0 + 1, B)``, no copy. Row ``(i - 1) * N + j - 1``
    of cell ``(i, j)`` is ``i * (N - 1) + k - N - 1``: one stride of ``N - 1`` rows."""
    B = rows.shape[-1]
    start = rows.storage_offset() + (i0 * (N - 1) + k - N - 1) * rows.stride(-2)
    size = (*rows.shape[:-2], i1 - i0 + 1, B)
    return rows.as_strided(size, (*rows.stride()[:-2], (N - 1) * rows.stride(-2), rows.stride(-1)), start)


def rows_to_batch_major(rows: Tensor, M: int, N: int, dtype: torch.dtype) -> Tensor:
    """``(M * N, B)`` cell-major values -> contiguous ``(B, M, N)`` of ``dtype`` (a blocked
    transpose when the dtypes agree)."""
    B = rows.shape[1]
    out = torch.empty(B, M, N, dtype=dtype, device=rows.device)
    out.view(B, M * N).copy_(rows.T)
    return out


def end_slots(target_lengths: Tensor, query_lengths: Tensor, M: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Table indices ``(k, j, b)``, each ``(B, M)``, of the last-column cells ``R[i, n]`` for
    ``i = 1..M``, and ``(B, M)`` bool, True where ``i <= m`` (a real end row)."""
    B = target_lengths.shape[0]
    device = target_lengths.device
    rows = torch.arange(1, M + 1, device=device).expand(B, M)
    n = query_lengths[:, None].expand(B, M)
    return rows + n, n, torch.arange(B, device=device)[:, None].expand(B, M), rows <= target_lengths[:, None]


#: Exponents are clamped here: ``exp(-80) ~ 2e-35`` is invisible next to the maximum term
#: (``exp(0) = 1``) even in float64, and it keeps CPUs off their very slow path for arguments
#: whose result is denormal or zero (about 100x slower per element).
EXP_FLOOR = -80.0


def remainder_weight(out: Tensor, *weights: Tensor) -> Tensor:
    """``1 - sum(weights)`` into ``out``, clamped at 0: the softmin weight of the one predecessor
    a DP does not store (rounding could otherwise make it a tiny negative number)."""
    out.copy_(weights[0])
    for weight in weights[1:]:
        out.add_(weight)
    return out.neg_().add_(1.0).clamp_(min=0.0)
