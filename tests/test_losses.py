"""Loss terms on hand-computed cases."""

from __future__ import annotations

import math

import pytest
import torch

from matr.config import LossConfig
from matr.losses import MATRLoss, boundary_losses, foreground_loss


def test_foreground_bce_on_known_logits_ignores_padding() -> None:
    logits = torch.tensor([[0.0, math.log(3.0), 100.0]])  # p = 0.5, 0.75, garbage
    foreground = torch.tensor([[1.0, 0.0, 0.0]])
    mask = torch.tensor([[True, True, False]])
    expected = (math.log(2.0) + math.log(4.0)) / 2  # -log 0.5 and -log(1 - 0.75)
    assert float(foreground_loss(logits, foreground, mask)) == pytest.approx(expected, rel=1e-6)


def test_foreground_bce_averages_within_pairs_then_over_pairs() -> None:
    logits = torch.tensor([[0.0, 0.0, 0.0, 0.0], [math.log(3.0), 0.0, 0.0, 0.0]])
    foreground = torch.zeros(2, 4)
    mask = torch.tensor([[True, True, True, True], [True, False, False, False]])
    expected = (math.log(2.0) + math.log(4.0)) / 2  # pair 0: log 2 each; pair 1: one frame, log 4
    assert float(foreground_loss(logits, foreground, mask)) == pytest.approx(expected, rel=1e-6)


def test_boundary_losses_on_known_spans() -> None:
    pred = torch.tensor([[[1.0, 1.0], [0.0, 1.0]]])
    target = torch.tensor([[[1.0, 3.0], [-2.0, 3.0]]])  # frame 1: window [2, 3] right of the centre
    l1, giou = boundary_losses(pred, target, torch.ones(1, 2), torch.ones(1, 2, dtype=torch.bool))
    # Frame 0: [-1, 1] vs [-1, 3]: IoU 2/4, hull 4 -> GIoU 0.5; smooth-L1 (0 + 1.5) / 2 = 0.75.
    # Frame 1: [0, 1] vs [2, 3]: IoU 0, union 2, hull 3 -> GIoU -1/3; smooth-L1 (1.5 + 1.5) / 2.
    assert float(l1) == pytest.approx((0.75 + 1.5) / 2, rel=1e-6)
    assert float(giou) == pytest.approx(((1 - 0.5) + (1 + 1 / 3)) / 2, rel=1e-6)


def test_only_foreground_frames_reach_the_boundary_loss() -> None:
    pred = torch.tensor([[[1.0, 1.0], [2.0, 2.0], [0.5, 4.0]]], requires_grad=True)
    target = torch.tensor([[[1.0, 3.0], [0.0, 0.0], [-9.0, -9.0]]])
    foreground = torch.tensor([[1.0, 0.0, 0.0]])
    mask = torch.tensor([[True, True, False]])
    l1, giou = boundary_losses(pred, target, foreground, mask)
    (l1 + giou).backward()
    assert float(l1.detach()) == pytest.approx(0.75) and float(giou.detach()) == pytest.approx(0.5)
    assert pred.grad[0, 0].abs().sum() > 0
    assert torch.equal(pred.grad[0, 1:], torch.zeros(2, 2)), "background and padded frames get no gradient"


def _outputs_and_batch() -> tuple[dict, dict]:
    outputs = {
        "fg_logits": torch.zeros(2, 3),
        "offsets": torch.ones(2, 3, 2),
        "align_pre": torch.tensor([1.0, 3.0]),
        "align_post": None,
    }
    batch = {
        "foreground": torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]),
        "offsets": torch.ones(2, 3, 2),
        "target_mask": torch.ones(2, 3, dtype=torch.bool),
    }
    return outputs, batch


def test_total_is_the_weighted_sum_and_disabled_terms_are_absent() -> None:
    outputs, batch = _outputs_and_batch()
    terms = MATRLoss(LossConfig(fg=2.0, align_pre=0.5))(outputs, batch)
    assert set(terms) == {"loss", "fg", "l1", "giou", "align_pre"}
    assert float(terms["align_pre"]) == pytest.approx(2.0), "alignment losses are averaged over the batch"
    assert float(terms["l1"]) == 0.0 and float(terms["giou"]) == pytest.approx(0.0, abs=1e-6)
    assert float(terms["loss"]) == pytest.approx(2.0 * math.log(2.0) + 0.5 * 2.0, rel=1e-6)


def test_default_weights_are_the_papers_ones() -> None:
    outputs, batch = _outputs_and_batch()
    outputs["align_post"] = torch.tensor([0.5, 0.5])
    terms = MATRLoss()(outputs, batch)
    parts = sum(float(terms[k]) for k in ("fg", "l1", "giou", "align_pre", "align_post"))
    assert float(terms["loss"]) == pytest.approx(parts, rel=1e-6)
