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
* :func:`alignment_cost`, :class:`AlignmentLoss` — one entry point over the costs, and over the
  three losses.

The dynamic programmes run in PyTorch on the CPU (the reference) and as Triton kernels on CUDA
(:mod:`matr.align.kernels`, imported only there); the paper-silent choices are declared with
:func:`matr.choices.declare` next to the code that makes them.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from matr.align.costs import COSTS, alignment_cost, contrastive_cost, cosine_cost
from matr.align.drop_dtw import drop_dtw
from matr.align.dtw import HardAlignment, hard_alignment, soft_dtw
from matr.align.tcc import tcc_loss

__all__ = [
    "COSTS",
    "METHODS",
    "AlignmentLoss",
    "HardAlignment",
    "alignment_cost",
    "contrastive_cost",
    "cosine_cost",
    "drop_dtw",
    "hard_alignment",
    "moment_rows",
    "soft_dtw",
    "tcc_loss",
]

METHODS = ("soft_dtw", "drop_dtw", "tcc")


@dataclass(frozen=True)
class AlignmentLoss:
    """An alignment loss, configured once: ``loss(Et, Eq, target_lengths, query_lengths)`` gives each
    pair's loss, ``Et (B, M, d), Eq (B, N, d) -> (B,)``.

    ``method`` (one row of Table 5, :data:`METHODS`):

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
    An unknown ``method`` or ``cost`` raises ``ValueError`` when the loss is built.

    ``moment`` (optional, ``(start, length)``, two (B,) integer tensors): align the query with the
    target frames ``start .. start + length - 1`` only (a ground-truth moment) instead of the best
    part of the whole target. The cost is still computed over the whole target (the contrastive
    cost's softmax keeps every target frame as a candidate); the DP then runs on the moment's rows,
    soft-DTW in full mode, so each of them is aligned with some query frame; TCC cycles through the
    moment's frames.

    Padded frames are excluded by the lengths; for the two DTW losses their embeddings must be
    finite (zeros, say), since they enter the cost before the DP masks them.
    """

    method: str = "soft_dtw"
    gamma: float = 0.1
    cost: str = "cosine"
    temperature: float = 0.1

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"matr.align.AlignmentLoss: unknown method {self.method!r}; expected one of {METHODS}")
        if self.cost not in COSTS:
            raise ValueError(f"matr.align.AlignmentLoss: unknown cost {self.cost!r}; expected one of {COSTS}")

    def __call__(
        self,
        Et: Tensor,
        Eq: Tensor,
        target_lengths: Tensor,
        query_lengths: Tensor,
        moment: tuple[Tensor, Tensor] | None = None,
    ) -> Tensor:
        if self.method == "tcc":
            if moment is not None:
                Et, target_lengths = moment_rows(Et, *moment), moment[1]
            return tcc_loss(Et, Eq, target_lengths, query_lengths, temperature=self.gamma)
        C = alignment_cost(self.cost, Et, Eq, target_lengths, self.temperature)
        if moment is not None:
            C, target_lengths = moment_rows(C, *moment), moment[1]
        if self.method == "drop_dtw":
            return drop_dtw(C, target_lengths, query_lengths, gamma=self.gamma)
        return soft_dtw(C, target_lengths, query_lengths, gamma=self.gamma, subsequence=moment is None)


def moment_rows(X: Tensor, start: Tensor, length: Tensor) -> Tensor:
    """Rows ``start[b] .. start[b] + length[b] - 1`` of each pair, moved to the front:
    ``X (B, M, K), start (B,), length (B,) -> (B, L, K)`` with ``L = max(length)``; rows past a
    pair's length are padding (copies of in-range rows, finite)."""
    rows = start[:, None] + torch.arange(int(length.max()), device=X.device)[None, :]  # (B, L)
    rows = rows.clamp(max=X.shape[1] - 1)
    return torch.gather(X, 1, rows[:, :, None].expand(-1, -1, X.shape[2]))
