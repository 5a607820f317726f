"""Sequence alignment for MATR (paper Sec. 3.2, "Dual-stage Sequence Alignment", and Table 5).

Notation: a batch of ``B`` pairs, a target video of ``M`` frames and a query video of ``N``
frames; embeddings ``Et (B, M, d)`` and ``Eq (B, N, d)``; a cost matrix ``C (B, M, N)`` whose
entry ``C[b, i, j]`` is the cost of matching target frame ``i`` with query frame ``j``
(:func:`cosine_cost`, ``1 - cos`` as in the paper, or :func:`contrastive_cost`, see
:mod:`matr.align.costs`).

Padding: pair ``b`` has ``m = target_lengths[b]`` real target frames and ``n =
query_lengths[b]`` real query frames (``1 <= m <= M``, ``1 <= n <= N``); frames beyond are
padding. Padding is ignored whatever it holds (even NaN), never changes a result, and gets a
zero gradient.

* :func:`soft_dtw` — subsequence soft-DTW value (the paper's alignment loss), analytic backward.
* :func:`hard_alignment` — the optimal path (``gamma -> 0``) and the target span it covers,
  which selects the encoder features passed to the decoder.
* :func:`drop_dtw`, :func:`tcc_loss` — the alternatives of Table 5.
* :func:`alignment_cost`, :func:`alignment_loss` — one entry point over the costs, and over the
  three losses.

The dynamic programmes run in PyTorch on the CPU (the reference) and as Triton kernels on CUDA
(:mod:`matr.align.kernels`, imported only there); the paper-silent choices are declared with
:func:`matr.choices.declare` next to the code that makes them.
"""

from __future__ import annotations

from torch import Tensor

from matr.align.costs import COSTS, alignment_cost, contrastive_cost, cosine_cost
from matr.align.drop_dtw import drop_dtw
from matr.align.dtw import HardAlignment, hard_alignment, soft_dtw
from matr.align.tcc import tcc_loss

__all__ = [
    "COSTS",
    "HardAlignment",
    "alignment_cost",
    "alignment_loss",
    "contrastive_cost",
    "cosine_cost",
    "drop_dtw",
    "hard_alignment",
    "soft_dtw",
    "tcc_loss",
]

METHODS = ("soft_dtw", "drop_dtw", "tcc")


def alignment_loss(
    method: str,
    Et: Tensor,
    Eq: Tensor,
    target_lengths: Tensor,
    query_lengths: Tensor,
    *,
    gamma: float = 0.1,
    cost: str = "cosine",
    temperature: float = 0.1,
) -> Tensor:
    """Alignment loss of each pair: ``Et (B, M, d), Eq (B, N, d) -> (B,)``.

    ``method``:

    * ``"soft_dtw"`` — :func:`soft_dtw` (subsequence) on the ``cost`` matrix, smoothing ``gamma``;
    * ``"drop_dtw"`` — :func:`drop_dtw` on the ``cost`` matrix, smoothing ``gamma``, drop cost the
      0.05 quantile of each pair's costs;
    * ``"tcc"`` — :func:`tcc_loss` (cycle-back regression), softmax temperature ``gamma``; TCC
      has no cost matrix, so ``cost`` and ``temperature`` do not apply.

    ``cost`` is ``"cosine"`` (``1 - cos``, the paper) or ``"contrastive"`` (:func:`contrastive_cost`
    with ``temperature``); see :func:`alignment_cost`.

    ``gamma`` plays the same role in all three (the temperature of a soft minimum / softmax), so
    one config value serves every row of Table 5; 0.1 is also TCC's own default temperature.
    The losses are raw per-pair values (not normalised by length), as the paper writes them.

    Padded frames are excluded by the lengths; for the two DTW losses their embeddings must be
    finite (zeros, say), since they enter the cost before the DP masks them.
    """
    if method == "tcc":
        return tcc_loss(Et, Eq, target_lengths, query_lengths, temperature=gamma)
    if method not in ("soft_dtw", "drop_dtw"):
        raise ValueError(f"matr.align.alignment_loss: unknown method {method!r}; expected one of {METHODS}")
    C = alignment_cost(cost, Et, Eq, target_lengths, temperature)
    dp = soft_dtw if method == "soft_dtw" else drop_dtw
    return dp(C, target_lengths, query_lengths, gamma=gamma)
