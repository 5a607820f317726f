"""Soft-DTW on the CPU as compiled loops (numba): forward and analytic backward in one pass each.

The pairs are sorted by size and cut into blocks of ``LANES`` pairs; the threads share out the
blocks (:func:`run`), and each block runs the DP row by row (target row ``i``, then query
position ``j``) over the cells within its largest lengths, with the pairs of the block
innermost: the ``LANES`` cells of one ``(i, j)`` are independent, so the compiler vectorises the
loops over them, the exponentials and the logarithm included (:func:`_exp_lanes`,
:func:`_log_lanes`: the library functions are scalar calls, and took two thirds of the time; of
the three terms of a softmin, whose largest is ``exp(0) = 1``, two are computed,
:func:`_exp_of_triples`). A block reads its costs from ``C (B, M, N)`` and writes its gradient
into a ``(B, M, N)`` array directly (no transposed copy), and keeps its softmin weights in its own
contiguous slab of ``weights (blocks, M, N, 2, LANES)``; both arrays are reused from call to call
(:func:`empty`). :mod:`matr.align._cpu_drop` runs Drop-DTW on the same machinery.

Same recursion, boundary, padding rule (cells outside ``m x n`` get a zero cost, so they stay
finite and never reach a real cell) and exponent floor as the PyTorch path of
:mod:`matr.align.dtw`, in the scaled domain ``Q = -R / gamma``: ``Q[i, j] = P[i, j] + top +
log(sum(exp(Q_p - top)))`` over the three predecessors ``Q_p``, ``top`` their maximum, with
``P = -C / gamma``. The DP dtype is the dtype of ``weights`` (float32, or float64 for float64
costs); the exponential and logarithm are accurate to a few units in the last place of either.
"""

from __future__ import annotations

import functools
import math
import os
import sys
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
from numba import njit
from torch import Tensor

from matr.align._tables import BIG, EXP_FLOOR

#: Pairs per block: a few AVX2 vectors of cells per loop, few enough that a two-thread machine
#: still splits a small batch.
LANES = 16


def bit_layout(dtype: torch.dtype) -> tuple[np.dtype, int, int]:
    """The integer type of ``dtype``'s width, its mantissa width and its exponent bias (the
    ``integers, shift, bias`` of :func:`soft_forward`)."""
    return (np.dtype(np.int64), 52, 1023) if dtype == torch.float64 else (np.dtype(np.int32), 23, 127)


def blocks(B: int) -> int:
    """Number of blocks of ``LANES`` pairs for a batch of ``B``."""
    return -(-B // LANES)


def size_order(target_lengths: Tensor, query_lengths: Tensor) -> Tensor:
    """The pairs by target length, then query length ``(B,)``: blocks of neighbours in this order
    have similar lengths, so each block's DP covers few padding cells."""
    N = int(query_lengths.max()) if len(query_lengths) else 0
    return torch.argsort(target_lengths * (N + 1) + query_lengths, stable=True)


#: Most buffers :func:`empty` keeps for reuse (a call's weights and gradient, and a second call's).
SPARES = 4
_buffers: list[np.ndarray] = []  # flat bytes, reused once no tensor refers to them
_buffers_lock = threading.Lock()


def _forget_buffers() -> None:
    """In a forked child: a fresh lock (the parent's may have been held by another thread) and
    no buffers (the child's copies of the parent's are no concern of its own calls)."""
    global _buffers_lock
    _buffers_lock = threading.Lock()
    _buffers.clear()


os.register_at_fork(after_in_child=_forget_buffers)


def empty(shape: tuple[int, ...], dtype: torch.dtype) -> Tensor:
    """Uninitialised CPU tensor of ``shape`` and ``dtype`` on a buffer that is reused across calls.

    First-touching fresh memory costs page faults, and on the benchmark machine (a VM that reports
    freed memory to its host) their cost varies widely: under load, 86 MB of fresh huge pages took
    from 20 ms to over 400 ms, as much as the whole DP. The buffers (NumPy's, which asks for huge pages)
    are kept; one is handed out again only when no tensor refers to it any more (its reference
    count: the weights once their autograd context is gone, the gradient once it is consumed),
    so a training step's weights and gradient reuse the last step's memory. At most
    :data:`SPARES` unused buffers are kept."""
    item = torch.empty(0, dtype=dtype).numpy().dtype
    size = math.prod(shape) * item.itemsize
    with _buffers_lock:
        # A buffer only _buffers refers to has a count of 2 (the list's and getrefcount's argument).
        unused = [i for i in range(len(_buffers)) if sys.getrefcount(_buffers[i]) == 2]
        fits = [i for i in unused if _buffers[i].nbytes >= size]
        if fits:
            buffer = _buffers[min(fits, key=lambda i: _buffers[i].nbytes)]
        else:
            buffer = np.empty(size, np.uint8)
            _buffers.append(buffer)
            for i in reversed(unused[: max(0, len(unused) - SPARES + 1)]):  # the oldest unused ones
                del _buffers[i]
        return torch.from_numpy(buffer[:size].view(item).reshape(shape))


def run(kernel: Callable[..., None], count: int, *arguments: object) -> None:
    """Run a kernel over ``count`` blocks, split into contiguous runs of blocks, one per thread of torch's
    count (:func:`torch.get_num_threads`), the caller's thread taking the last run. The kernels
    release the GIL; threads that wait sleep (an OpenMP pool would spin and slow the torch
    operations around it on a machine with few cores)."""
    parts = max(1, min(torch.get_num_threads(), count))
    bounds = [count * p // parts for p in range(parts + 1)]
    futures = [_pool(os.getpid()).submit(kernel, bounds[p], bounds[p + 1], *arguments) for p in range(parts - 1)]
    kernel(bounds[-2], bounds[-1], *arguments)
    for future in futures:
        future.result()


@functools.cache
def _pool(process: int) -> ThreadPoolExecutor:
    """The worker threads of :func:`run` in this ``process`` (a forked child gets its own: it
    inherits the parent's pool object but none of its threads)."""
    return ThreadPoolExecutor(max_workers=max(1, (os.cpu_count() or 1) - 1), thread_name_prefix="matr-dp")


#: ``ln 2 = LN2_HIGH + LN2_LOW``; ``k * LN2_HIGH`` is exact for the ``|k| <= 116`` of :func:`_exp_lanes`.
LN2_HIGH = 0.693145751953125
LN2_LOW = math.log(2.0) - LN2_HIGH


@njit(cache=True, inline="always", error_model="numpy")
def _exp_lanes(x, out, bits, shift, bias):
    """``out = exp(x)`` elementwise for ``EXP_FLOOR <= x <= 0`` (1-d, float32 or float64), in
    loops the compiler vectorises: ``x = k ln 2 + f``, ``k`` the nearest integer to ``x / ln 2`` (so
    ``|f| <= ln 2 / 2``), ``exp(x) = 2^k p(f)``
    and ``p`` the degree-13 Taylor polynomial (relative error below 1e-17 before rounding);
    ``2^k`` is built in ``bits`` (int32 for float32, int64 for float64; ``shift``, ``bias``: the
    mantissa width and exponent bias, int64 so the shift is done in 64 bits), read back through
    a view."""
    dt = out.dtype.type
    scale = bits.view(out.dtype)
    for n in range(len(x)):
        k = dt(np.int32(x[n] * dt(1.4426950408889634) - dt(0.5)))
        bits[n] = (np.int32(k) + np.int32(bias)) << shift
        out[n] = k
    for n in range(len(x)):
        k = out[n]
        f = (x[n] - k * dt(LN2_HIGH)) - k * dt(LN2_LOW)
        p = dt(1.0 / 6227020800.0)
        p = p * f + dt(1.0 / 479001600.0)
        p = p * f + dt(1.0 / 39916800.0)
        p = p * f + dt(1.0 / 3628800.0)
        p = p * f + dt(1.0 / 362880.0)
        p = p * f + dt(1.0 / 40320.0)
        p = p * f + dt(1.0 / 5040.0)
        p = p * f + dt(1.0 / 720.0)
        p = p * f + dt(1.0 / 120.0)
        p = p * f + dt(1.0 / 24.0)
        p = p * f + dt(1.0 / 6.0)
        p = p * f + dt(0.5)
        p = p * f + dt(1.0)
        p = p * f + dt(1.0)
        out[n] = p * scale[n]


@njit(cache=True, inline="always", error_model="numpy")
def _exp_of_triples(x, out, bits, shift, bias, pick, picked):
    """``out = exp(x)`` for ``x (3 * L,)`` holding triples ``x[n], x[L + n], x[2 * L + n]`` whose
    largest is 0 (differences to their maximum, as in a log-sum-exp): :func:`_exp_lanes` runs on
    the other two of each triple only (``pick``, ``picked``: scratch ``(2 * L,)``, ``bits`` at
    least ``2 * L``) and the largest gets ``exp(0) = 1``, which :func:`_exp_lanes` returns exactly:
    the same values, bit for bit, for two thirds of the work."""
    one = out.dtype.type(1.0)
    L = len(x) // 3
    for n in range(L):
        a, b, c = x[n], x[L + n], x[2 * L + n]
        pick[n] = max(min(a, b), min(max(a, b), c))  # the middle one
        pick[L + n] = min(min(a, b), c)
    _exp_lanes(pick, picked, bits, shift, bias)
    for n in range(L):
        middle, low = pick[n], pick[L + n]
        for t in range(3):
            v = x[t * L + n]
            out[t * L + n] = picked[n] if v == middle else (picked[L + n] if v == low else one)


@njit(cache=True, inline="always", error_model="numpy")
def _exp_of_pairs(x, out, bits, shift, bias, pick, picked):
    """The same as :func:`_exp_of_triples` for pairs ``x[n], x[L + n]`` (``x (2 * L,)``), one of
    which is 0: one exponential per pair (``pick``, ``picked``, ``bits``: at least ``L``)."""
    one = out.dtype.type(1.0)
    L = len(x) // 2
    for n in range(L):
        pick[n] = min(x[n], x[L + n])
    _exp_lanes(pick[:L], picked[:L], bits[:L], shift, bias)
    for n in range(L):
        for t in range(2):
            out[t * L + n] = picked[n] if x[t * L + n] == pick[n] else one


@njit(cache=True, inline="always", error_model="numpy")
def _log_lanes(t, out):
    """``out = log(t)`` elementwise for ``1 <= t <= 3`` (a sum of three softmin terms, the largest
    1), vectorised: ``t = 2^e s`` with ``0.75 <= s <= 1.5``, ``log t = e ln 2 + 2 atanh(z)``,
    ``z = (s - 1) / (s + 1)``, the series to ``z^23`` (``|z| <= 1 / 5``: error below 1e-17)."""
    dt = out.dtype.type
    for n in range(len(t)):
        high = dt(t[n] > dt(1.5))
        s = t[n] * (dt(1.0) - dt(0.5) * high)
        z = (s - dt(1.0)) / (s + dt(1.0))
        z2 = z * z
        p = dt(1.0 / 23.0)
        p = p * z2 + dt(1.0 / 21.0)
        p = p * z2 + dt(1.0 / 19.0)
        p = p * z2 + dt(1.0 / 17.0)
        p = p * z2 + dt(1.0 / 15.0)
        p = p * z2 + dt(1.0 / 13.0)
        p = p * z2 + dt(1.0 / 11.0)
        p = p * z2 + dt(1.0 / 9.0)
        p = p * z2 + dt(1.0 / 7.0)
        p = p * z2 + dt(1.0 / 5.0)
        p = p * z2 + dt(1.0 / 3.0)
        p = p * z2 + dt(1.0)
        out[n] = high * dt(LN2_HIGH + LN2_LOW) + dt(2.0) * z * p


@njit(cache=True, inline="always", error_model="numpy")
def _block(order, lengths_t, lengths_q, k, count):
    """Pairs ``(LANES,)`` of the ``k``-th of ``count`` blocks (the last one may hold fewer: their
    number is returned) and the block's largest lengths. ``order`` lists the pairs by size, and the
    blocks are taken alternately from its two ends, so that the threads, each given a run of
    consecutive ``k``, get as many large blocks as small ones."""
    block = k // 2 if k % 2 == 0 else count - 1 - k // 2
    b0 = block * LANES
    lanes = min(LANES, len(order) - b0)
    pairs = np.zeros(LANES, np.int64)
    pairs[:lanes] = order[b0 : b0 + lanes]
    return block, pairs, lanes, lengths_t[pairs[:lanes]].max(), lengths_q[pairs[:lanes]].max()


@njit(cache=True, inline="always", error_model="numpy")
def _costs(C, lengths_t, lengths_q, pairs, lanes, i, columns, scale, tile):
    """``tile (N + 1, LANES)``: ``P[i, j] = scale * C[b, i - 1, j - 1]`` in slots ``1..columns`` for
    the block's pairs, 0 on padding."""
    zero = tile.dtype.type(0.0)
    for lane in range(lanes):
        b = pairs[lane]
        real_row = i <= lengths_t[b]
        for j in range(1, columns + 1):
            tile[j, lane] = scale * C[b, i - 1, j - 1] if real_row and j <= lengths_q[b] else zero


@njit(cache=True, inline="always", error_model="numpy")
def _lane_scratch(dtype, integers):
    """Scratch of :func:`_softmin_cell`: ``(bits, args, exps, pick, picked, tops, logs, totals)``."""
    return (
        np.empty(2 * LANES, integers),
        np.empty(3 * LANES, dtype),
        np.empty(3 * LANES, dtype),
        np.empty(2 * LANES, dtype),
        np.empty(2 * LANES, dtype),
        np.empty(LANES, dtype),
        np.empty(LANES, dtype),
        np.empty(LANES, dtype),
    )


@njit(cache=True, inline="always", error_model="numpy")
def _softmin_cell(diag, up, left, j, tile, out, w, floor, scratch, shift, bias):
    """Cell ``j`` of a row, every lane: ``out[j] = tile[j] + logsumexp(diag[j - 1], up[j], left[j - 1])``
    (rows ``(N + 1, LANES)``, scaled domain), each term's exponent floored at ``floor``; ``w (2,
    LANES)`` gets the softmin weights of the diagonal and up terms (the left one's is 1 minus their
    sum). ``scratch``: :func:`_lane_scratch`."""
    bits, args, exps, pick, picked, tops, logs, totals = scratch
    one = out.dtype.type(1.0)
    for lane in range(LANES):
        d, u, lt = diag[j - 1, lane], up[j, lane], left[j - 1, lane]
        top = max(max(d, u), lt)
        tops[lane] = top
        args[lane] = max(d - top, floor)
        args[LANES + lane] = max(u - top, floor)
        args[2 * LANES + lane] = max(lt - top, floor)
    _exp_of_triples(args, exps, bits, shift, bias, pick, picked)
    for lane in range(LANES):
        totals[lane] = exps[lane] + exps[LANES + lane] + exps[2 * LANES + lane]
    _log_lanes(totals, logs)
    for lane in range(LANES):
        out[j, lane] = tile[j, lane] + tops[lane] + logs[lane]
        inverse = one / totals[lane]
        w[0, lane] = exps[lane] * inverse
        w[1, lane] = exps[LANES + lane] * inverse


@njit(nogil=True, cache=True, error_model="numpy")
def soft_forward(
    first, last, C, lengths_t, lengths_q, order, gamma, subsequence, weights, last_column, values, integers, shift, bias
):
    """Forward DP: fills ``weights (blocks, M, N, 2, LANES)`` (softmin weights of the diagonal and
    up predecessors of each cell), ``last_column (B, M)`` (``Q[i, n]``, rows ``i = 1..m``) and
    ``values (B,)`` (``-V / gamma``: ``logsumexp(Q[1..m, n])``, or ``Q[m, n]`` without
    ``subsequence``). ``C (B, M, N)`` may hold anything on padding; ``order (B,)``: the pairs by
    size (:func:`size_order`). Runs the blocks ``first .. last - 1`` (:func:`run`); a block
    computes only the cells within its largest lengths."""
    N = C.shape[2]
    dt = weights.dtype.type
    floor, start = dt(EXP_FLOOR), dt(0.0) if subsequence else dt(-BIG)
    scale = dt(-1.0 / gamma)
    count = weights.shape[0]
    for k in range(first, last):
        block, pairs, lanes, height, width = _block(order, lengths_t, lengths_q, k, count)
        rows = np.empty((2, N + 1, LANES), weights.dtype)  # Q of rows i - 1 and i
        tile = np.zeros((N + 1, LANES), weights.dtype)
        scratch = _lane_scratch(weights.dtype, integers)
        rows[0, 0, :] = 0.0  # R[0, 0]
        rows[0, 1:, :] = -BIG  # R[0, j]
        for i in range(1, height + 1):
            prev, cur = rows[(i - 1) % 2], rows[i % 2]
            _costs(C, lengths_t, lengths_q, pairs, lanes, i, width, scale, tile)
            cur[0, :] = start
            for j in range(1, width + 1):
                _softmin_cell(prev, prev, cur, j, tile, cur, weights[block, i - 1, j - 1], floor, scratch, shift, bias)
            for lane in range(lanes):
                last_column[pairs[lane], i - 1] = cur[lengths_q[pairs[lane]], lane]
        for lane in range(lanes):
            b = pairs[lane]
            m = lengths_t[b]
            if subsequence:
                top = last_column[b, :m].max()
                values[b] = top + math.log(np.exp(last_column[b, :m] - top).sum())
            else:
                values[b] = last_column[b, m - 1]


@njit(nogil=True, cache=True, error_model="numpy")
def soft_backward(
    first, last, weights, last_column, values, lengths_t, lengths_q, order, grad_value, subsequence, grad
):
    """``grad (B, M, N) = grad_value * dV/dC`` by Cuturi and Blondel's recursion on the forward's
    ``weights``: ``E[i, j] = T[i, j] + E[i+1, j+1] w_d(i+1, j+1) + E[i+1, j] w_u(i+1, j) +
    E[i, j+1] (1 - w_d - w_u)(i, j+1)``, with the terminal gradient ``T`` on column ``n``
    (softmax weights of the end rows, or 1 at row ``m``). Exactly 0 on padding; reads only the
    weights the forward wrote. Runs the blocks ``first .. last - 1`` (:func:`run`)."""
    M, N = grad.shape[1:]
    dt = weights.dtype.type
    zero, one, floor = dt(0.0), dt(1.0), dt(EXP_FLOOR)
    count = weights.shape[0]
    for k in range(first, last):
        block, pairs, lanes, height, width = _block(order, lengths_t, lengths_q, k, count)
        rows = np.zeros((2, N + 2, LANES), weights.dtype)  # E of rows i + 1 and i; 0 beyond the width
        terminal = np.empty(LANES, weights.dtype)
        end = np.empty(LANES, np.int64)
        for lane in range(lanes):
            grad[pairs[lane], height:] = zero
        for i in range(height, 0, -1):
            below, cur = rows[(i + 1) % 2], rows[i % 2]
            for lane in range(lanes):
                b = pairs[lane]
                end[lane] = lengths_q[b]
                if subsequence:
                    real = i <= lengths_t[b]
                    t = math.exp(max(last_column[b, i - 1] - values[b], floor)) if real else zero
                else:
                    t = one if i == lengths_t[b] else zero
                terminal[lane] = t * grad_value[b]
            for j in range(width, 0, -1):
                right = weights[block, i - 1, min(j, width - 1)]  # cell (i, j + 1), or any: E there is 0
                for lane in range(lanes):
                    e = terminal[lane] if j == end[lane] else zero
                    e += cur[j + 1, lane] * max(one - right[0, lane] - right[1, lane], zero)
                    cur[j, lane] = e
                if i < height:
                    down = weights[block, i, j - 1]
                    diagonal = weights[block, i, min(j, width - 1)]
                    for lane in range(lanes):
                        cur[j, lane] += below[j, lane] * down[1, lane] + below[j + 1, lane] * diagonal[0, lane]
            for lane in range(lanes):
                for j in range(N):
                    grad[pairs[lane], i - 1, j] = cur[j + 1, lane]
