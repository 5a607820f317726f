"""Training objective of MATR (paper section 3.2, "Prediction Heads" and "Overall Loss").

``L = 1/S sum_i (lambda_fg L_fg + lambda_L1 L_L1 + lambda_IoU L_IoU + lambda_pre L_align^pre
+ lambda_post L_align^post)``, the lambdas coming from ``LossConfig`` (all 1 in the paper).

The choices where the paper is silent are declared below with :func:`matr.choices.declare`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from matr import choices
from matr.config import LossConfig
from matr.span_ops import generalized_span_iou

choices.declare(
    "loss averaging",
    "each term averaged within a pair (real frames for L_fg, foreground frames for the boundary terms), then over pairs",
    "the paper's 1/S sum over samples",
)
choices.declare("smooth-L1", "mean over the two offsets (left, right) of a frame, in frame units", "paper silent")
choices.declare(
    "IoU term",
    "1 - GIoU of the spans [-d_L, d_R] around each foreground frame, in frame units",
    "paper silent on the IoU variant; GIoU keeps a gradient for disjoint spans",
)


def _mean_per_pair(values: Tensor, weights: Tensor) -> Tensor:
    """Mean of ``values`` (B, M) over the frames where ``weights`` (B, M) is 1, then over pairs.

    Pairs with no weighted frame are left out; with none at all the result is a zero that keeps
    the graph.
    """
    count = weights.sum(dim=1)
    per_pair = (values * weights).sum(dim=1) / count.clamp(min=1)
    has_frames = (count > 0).to(values.dtype)
    return (per_pair * has_frames).sum() / has_frames.sum().clamp(min=1)


def foreground_loss(fg_logits: Tensor, foreground: Tensor, target_mask: Tensor) -> Tensor:
    """L_fg: binary cross-entropy with logits (B, M) against 0/1 ``foreground`` (B, M) on real frames."""
    bce = F.binary_cross_entropy_with_logits(fg_logits, foreground.to(fg_logits.dtype), reduction="none")
    return _mean_per_pair(bce, target_mask.to(fg_logits.dtype))


def offsets_as_spans(offsets: Tensor) -> Tensor:
    """Offsets (..., 2) = (d_L, d_R) in frame units -> spans ``[-d_L, d_R]`` around the frame centre."""
    return torch.stack([-offsets[..., 0], offsets[..., 1]], dim=-1)


def boundary_losses(
    pred: Tensor, target: Tensor, foreground: Tensor, target_mask: Tensor, beta: float = 1.0
) -> tuple[Tensor, Tensor]:
    """L_L1 and L_IoU on foreground frames only.

    ``pred``, ``target``: (B, M, 2) offsets in frame units; ``foreground``: (B, M) 0/1;
    ``target_mask``: (B, M) True = real frame. Returns (smooth-L1, 1 - GIoU), scalars.
    """
    weights = (foreground > 0.5) & target_mask
    target = torch.where(weights.unsqueeze(-1), target, pred.detach())  # no NaN/inf from unused frames
    l1 = F.smooth_l1_loss(pred, target, beta=beta, reduction="none").mean(dim=-1)
    giou = 1.0 - generalized_span_iou(offsets_as_spans(pred), offsets_as_spans(target))
    weights = weights.to(pred.dtype)
    return _mean_per_pair(l1, weights), _mean_per_pair(giou, weights)


class MATRLoss(nn.Module):
    """Named loss terms and their weighted total from model outputs and a collated batch."""

    def __init__(self, config: LossConfig | None = None) -> None:
        super().__init__()
        self.config = config or LossConfig()

    def forward(self, outputs: dict, batch: dict) -> dict[str, Tensor]:
        """Returns {"loss", "fg", "l1", "giou"} plus "align_pre" / "align_post" when present."""
        target_mask = batch["target_mask"]
        terms = {"fg": foreground_loss(outputs["fg_logits"], batch["foreground"], target_mask)}
        terms["l1"], terms["giou"] = boundary_losses(
            outputs["offsets"], batch["offsets"], batch["foreground"], target_mask, beta=self.config.smooth_l1_beta
        )
        for name in ("align_pre", "align_post"):
            if outputs.get(name) is not None:
                terms[name] = outputs[name].mean()
        terms["loss"] = sum(getattr(self.config, name) * value for name, value in terms.items())
        return terms
