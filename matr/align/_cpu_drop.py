"""Drop-DTW on the CPU as compiled loops (numba): forward and analytic backward in one pass each.

The same scheme as soft-DTW's :mod:`matr.align._cpu_dp` (blocks of ``LANES`` pairs sorted by
size, shared out by :func:`matr.align._cpu_dp.run`; row by row, the pairs innermost; the
vectorised exponential and logarithm), on the two tables of :mod:`matr.align.drop_dtw` in the
scaled domain ``Q = -table / gamma``, ``P = -C / gamma``, ``drop = -delta / gamma``::

    Qd[i, j] = P[i, j] + logsumexp(Qr[i-1, j-1], Qd[i-1, j], Qd[i, j-1])
    Qr[i, j] = logsumexp(Qd[i, j], Qr[i-1, j] + drop)

with ``Qr[0, 0] = 0``, ``Qr[i, 0] = i * drop`` and ``-BIG`` on the other boundary cells. Same
padding rule (zero cost outside ``m x n``) and exponent floor as the PyTorch DP, which stays the
reference: the two agree to float rounding (their exponential and logarithm differ in the last
places). A cell keeps three softmin weights in ``weights (blocks, M, N, 3,
LANES)``: ``Qd``'s diagonal (``Qr``) and up predecessors (the left one's is 1 minus their sum),
and the match in ``Qr`` (the drop's is 1 minus it).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from matr.align._cpu_dp import LANES, _block, _costs, _exp_of_pairs, _lane_scratch, _log_lanes, _softmin_cell
from matr.align._tables import BIG, EXP_FLOOR


@njit(nogil=True, cache=True, error_model="numpy")
def drop_forward(first, last, C, lengths_t, lengths_q, order, drop, gamma, weights, values, integers, shift, bias):
    """Forward DP: fills ``weights (blocks, M, N, 3, LANES)`` and ``values (B,)`` (``Qr[m, n]``,
    that is ``-V / gamma``). ``C (B, M, N)`` may hold anything on padding; ``drop (B,)``: ``-delta /
    gamma``; ``order (B,)``: the pairs by size (:func:`matr.align._cpu_dp.size_order`);
    ``integers, shift, bias``: :func:`matr.align._cpu_dp.bit_layout`. Runs the blocks ``first ..
    last - 1``; a block computes only the cells within its largest lengths."""
    N = C.shape[2]
    dt = weights.dtype.type
    floor, low = dt(EXP_FLOOR), dt(-BIG)
    scale = dt(-1.0 / gamma)
    count = weights.shape[0]
    for k in range(first, last):
        block, pairs, lanes, height, width = _block(order, lengths_t, lengths_q, k, count)
        matched = np.empty((2, N + 1, LANES), weights.dtype)  # Qd of rows i - 1 and i
        kept = np.empty((2, N + 1, LANES), weights.dtype)  # Qr of rows i - 1 and i
        tile = np.zeros((N + 1, LANES), weights.dtype)
        drops = np.zeros(LANES, weights.dtype)
        scratch = _lane_scratch(weights.dtype, integers)
        bits, args, exps, pick, picked, tops, logs, totals = scratch
        for lane in range(lanes):
            drops[lane] = drop[pairs[lane]]
        matched[0] = low
        kept[0, 0, :] = 0.0
        kept[0, 1:, :] = low
        for i in range(1, height + 1):
            d_prev, d_cur, r_prev, r_cur = matched[(i - 1) % 2], matched[i % 2], kept[(i - 1) % 2], kept[i % 2]
            _costs(C, lengths_t, lengths_q, pairs, lanes, i, width, scale, tile)
            d_cur[0, :] = low
            for lane in range(LANES):
                r_cur[0, lane] = drops[lane] * dt(i)
            for j in range(1, width + 1):
                w = weights[block, i - 1, j - 1]
                _softmin_cell(r_prev, d_prev, d_cur, j, tile, d_cur, w, floor, scratch, shift, bias)
                for lane in range(LANES):
                    q = d_cur[j, lane]
                    dropped = r_prev[j, lane] + drops[lane]
                    top = max(q, dropped)
                    tops[lane] = top
                    args[lane] = max(q - top, floor)
                    args[LANES + lane] = max(dropped - top, floor)
                _exp_of_pairs(args[: 2 * LANES], exps[: 2 * LANES], bits, shift, bias, pick, picked)
                for lane in range(LANES):
                    totals[lane] = exps[lane] + exps[LANES + lane]
                _log_lanes(totals, logs)
                for lane in range(LANES):
                    r_cur[j, lane] = tops[lane] + logs[lane]
                    w[2, lane] = exps[lane] / totals[lane]
            for lane in range(lanes):
                b = pairs[lane]
                if i == lengths_t[b]:
                    values[b] = r_cur[lengths_q[b], lane]


@njit(nogil=True, cache=True, error_model="numpy")
def drop_backward(first, last, weights, lengths_t, lengths_q, order, grad_value, grad):
    """``grad (B, M, N) = grad_value * dV/dC`` by the adjoint recursion over both tables with the
    forward's ``weights`` (``Gr = dV/dR``, ``Gd = dV/dD = dV/dC``, the terminal ``grad_value`` at
    ``(m, n)``)::

        Gr[i, j] = Gr[i+1, j] w_drop(i+1, j) + Gd[i+1, j+1] w_diag(i+1, j+1) + T[i, j]
        Gd[i, j] = Gr[i, j] w_match(i, j) + Gd[i+1, j] w_up(i+1, j) + Gd[i, j+1] w_left(i, j+1)

    Exactly 0 on padding; reads only the weights the forward wrote. Runs the blocks ``first ..
    last - 1`` (:func:`matr.align._cpu_dp.run`)."""
    N = grad.shape[2]
    dt = weights.dtype.type
    zero, one = dt(0.0), dt(1.0)
    count = weights.shape[0]
    for k in range(first, last):
        block, pairs, lanes, height, width = _block(order, lengths_t, lengths_q, k, count)
        matched = np.zeros((2, N + 2, LANES), weights.dtype)  # Gd of rows i + 1 and i; 0 beyond the width
        kept = np.zeros((2, N + 2, LANES), weights.dtype)  # Gr of rows i + 1 and i
        terminal = np.zeros(LANES, weights.dtype)
        end_row = np.zeros(LANES, np.int64)  # 0 (never reached) on the block's empty lanes
        end_column = np.zeros(LANES, np.int64)
        for lane in range(lanes):
            b = pairs[lane]
            grad[b, height:] = zero
            terminal[lane], end_row[lane], end_column[lane] = grad_value[b], lengths_t[b], lengths_q[b]
        for i in range(height, 0, -1):
            d_below, d_cur, r_below, r_cur = matched[(i + 1) % 2], matched[i % 2], kept[(i + 1) % 2], kept[i % 2]
            below = min(i, height - 1)  # row i + 1's weights; at i = height its G are 0, any finite row does
            for j in range(width, 0, -1):
                here = weights[block, i - 1, j - 1]
                right = weights[block, i - 1, min(j, width - 1)]  # cell (i, j + 1), or any: Gd there is 0
                down = weights[block, below, j - 1]
                diagonal = weights[block, below, min(j, width - 1)]
                for lane in range(LANES):
                    r = r_below[j, lane] * max(one - down[2, lane], zero)
                    r += d_below[j + 1, lane] * diagonal[0, lane]
                    r += terminal[lane] if i == end_row[lane] and j == end_column[lane] else zero
                    r_cur[j, lane] = r
                    g = r * here[2, lane]
                    g += d_below[j, lane] * down[1, lane]
                    g += d_cur[j + 1, lane] * max(one - (right[0, lane] + right[1, lane]), zero)
                    d_cur[j, lane] = g
            for lane in range(lanes):
                for j in range(N):
                    grad[pairs[lane], i - 1, j] = d_cur[j + 1, lane]


@njit(nogil=True, cache=True, error_model="numpy")
def order_statistics(first, last, C, lengths_t, lengths_q, rank, out):
    """``out (B, 2)``: the ``rank``-th and ``rank + 1``-th smallest (0-based; the ``rank``-th again
    where there is no other) of each pair's real costs ``C[b, :m, :n]``, by a partial sort of a copy,
    for the pairs ``first .. last - 1`` (:func:`matr.align._cpu_dp.run`). The same values as a full
    sort's, as a selection is exact."""
    for b in range(first, last):
        m, n = lengths_t[b], lengths_q[b]
        costs = np.empty(m * n, C.dtype)
        for i in range(m):
            costs[i * n : (i + 1) * n] = C[b, i, :n]
        k = rank[b]
        part = np.partition(costs, k)
        out[b, 0] = part[k]
        out[b, 1] = part[k + 1 :].min() if k + 1 < m * n else part[k]
