"""Temporal cycle-consistency loss (after Dwibedi et al., "Temporal Cycle-Consistency Learning",
CVPR 2019), an alternative alignment loss for the paper's Table 5.

Each query frame ``u_i`` takes its *soft nearest neighbour* in the target,
``v~_i = sum_j alpha_ij v_j`` with ``alpha_i = softmax_j(-||u_i - v_j||^2 / tau)``, then cycles
back to the query with ``beta_i = softmax_k(-||v~_i - u_k||^2 / tau)``. The cycle is consistent
when ``beta_i`` peaks at ``i``. We cycle from the query (every query frame should have a partner
in the moment) and not from the target (most target frames have none).
"""

from __future__ import annotations

import torch
from torch import Tensor

from matr import choices
from matr.align._tables import BIG, dp_dtype
from matr.align.costs import cosine_cost

choices.declare(
    "TCC variant",
    "cycle-back regression from the query, lambda = 0.001, L2-normalised embeddings",
    "the TCC paper's best variant; cycling from the query because most target frames have no partner",
)

#: Floor on the cycle-back variance ``sigma^2`` (frames^2) of the regression variant: without it a
#: confident but wrong cycle gives an unbounded loss, and a length-1 query divides by zero.
MIN_VARIANCE = 1e-2


def _masked_log_softmax(logits: Tensor, valid: Tensor) -> Tensor:
    """Log-softmax over the last dim restricted to ``valid`` (broadcastable bool); finite everywhere."""
    return torch.log_softmax(logits.masked_fill(~valid, -BIG), dim=-1)


def tcc_loss(
    Et: Tensor,
    Eq: Tensor,
    target_lengths: Tensor,
    query_lengths: Tensor,
    temperature: float = 0.1,
    *,
    variant: str = "regression",
    variance_weight: float = 1e-3,
) -> Tensor:
    """TCC loss of each pair, averaged over its real query frames: ``(B, M, d), (B, N, d) -> (B,)``.

    Embeddings are L2-normalised first (so ``||u - v||^2 = 2 - 2 cos``, the scale of
    :func:`matr.align.cosine_cost`), and the softmax temperature ``tau`` is ``temperature``
    (default 0.1, as in the TCC paper). Variants, with ``beta_i`` the cycle-back distribution:

    * ``"regression"`` (default; the TCC paper's best, "cycle-back regression"): with
      ``mu_i = sum_k beta_ik k`` and ``sigma_i^2 = sum_k beta_ik (k - mu_i)^2`` (floored at
      ``MIN_VARIANCE``), the loss is ``(i - mu_i)^2 / sigma_i^2 + variance_weight * log(sigma_i)``
      (``variance_weight`` = lambda = 0.001 as in the paper).
    * ``"classification"``: cross-entropy ``-log beta_ii``.

    Padded target frames get no attention, padded query frames are neither candidates nor
    averaged; padding gets zero gradient. Computed in float32 (float64 stays float64).
    """
    if variant not in ("regression", "classification"):
        raise ValueError(f"matr.align.tcc_loss: variant must be 'regression' or 'classification', got {variant!r}")
    if not temperature > 0:
        raise ValueError(f"matr.align.tcc_loss: temperature must be > 0, got {temperature}")
    B, M, _ = Et.shape
    N = Eq.shape[1]
    tl = target_lengths.to(device=Et.device, dtype=torch.long)
    ql = query_lengths.to(device=Et.device, dtype=torch.long)
    target_valid = torch.arange(M, device=Et.device) < tl[:, None]  # (B, M)
    query_valid = torch.arange(N, device=Et.device) < ql[:, None]  # (B, N)
    dtype = dp_dtype(Et)
    v = Et.to(dtype).masked_fill(~target_valid[..., None], 0.0)
    u = Eq.to(dtype).masked_fill(~query_valid[..., None], 0.0)
    # On unit vectors ||a - b||^2 = 2 - 2 cos(a, b); terms constant along a softmax's axis cancel:
    # alpha_i = softmax_j(2 cos(u_i, v_j) / tau), and with v~_i = sum_j alpha_ij v_j,
    # beta_i = softmax_k(2 v~_i . u_k / tau) where v~_i . u_k = sum_j alpha_ij cos(v_j, u_k).
    cos = 1.0 - cosine_cost(v, u)  # (B, M, N); 0 on padding (zero vectors)
    alpha = _masked_log_softmax(2.0 * cos.transpose(1, 2) / temperature, target_valid[:, None, :]).exp()  # (B, N, M)
    log_beta = _masked_log_softmax(2.0 * (alpha @ cos) / temperature, query_valid[:, None, :])  # (B, N, N)

    index = torch.arange(N, device=Et.device, dtype=dtype)
    if variant == "classification":
        per_frame = -log_beta.diagonal(dim1=1, dim2=2)
    else:
        beta = log_beta.exp()
        mu = beta @ index  # (B, N)
        var = (beta * (index[None, None, :] - mu[..., None]) ** 2).sum(-1).clamp(min=MIN_VARIANCE)
        per_frame = (index - mu) ** 2 / var + variance_weight * 0.5 * var.log()
    per_frame = per_frame.masked_fill(~query_valid, 0.0)
    return per_frame.sum(1) / ql.to(dtype)
