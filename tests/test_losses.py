"""Loss terms on hand-computed cases."""

from __future__ import annotations

import math

import pytest
import torch
from conftest import collate_planted

from matr.align import AlignmentLoss, contrastive_cost, soft_dtw
from matr.config import LossConfig, override, preset
from matr.losses import MATRLoss, boundary_losses, foreground_loss
from matr.model import MATR


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


def test_moment_alignment_is_full_soft_dtw_on_the_moment_rows_of_the_whole_targets_cost() -> None:
    gen = torch.Generator().manual_seed(0)
    Et, Eq = (
        torch.randn(3, 9, 8, generator=gen, dtype=torch.float64),
        torch.randn(3, 4, 8, generator=gen, dtype=torch.float64),
    )
    target_lengths, query_lengths = torch.tensor([9, 7, 5]), torch.tensor([4, 3, 2])
    start, length = torch.tensor([2, 0, 3]), torch.tensor([4, 2, 2])
    loss = AlignmentLoss("soft_dtw", gamma=0.1, cost="contrastive")
    values = loss(Et, Eq, target_lengths, query_lengths, moment=(start, length))
    C = contrastive_cost(Et, Eq, target_lengths)  # softmax over every real target frame
    for b in range(3):
        s, m, n = int(start[b]), int(length[b]), int(query_lengths[b])
        rows = C[b : b + 1, s : s + m, :n]
        expected = soft_dtw(rows, torch.tensor([m]), torch.tensor([n]), gamma=0.1, subsequence=False)
        assert float(values[b]) == pytest.approx(float(expected), rel=1e-12)


def test_a_content_free_hub_meets_the_subsequence_loss_but_not_the_moment_one() -> None:
    # Every query frame equals target frame 1, outside the moment (frames 4-6): one target row
    # matches the whole query, so the subsequence loss is near its minimum; the moment loss is not.
    gen = torch.Generator().manual_seed(1)
    Et = torch.randn(1, 10, 16, generator=gen, dtype=torch.float64)
    Eq = Et[:, 1:2].expand(1, 5, 16)
    lengths = (torch.tensor([10]), torch.tensor([5]))
    loss = AlignmentLoss("soft_dtw", gamma=0.1, cost="contrastive")
    hub = float(loss(Et, Eq, *lengths))
    moment = float(loss(Et, Eq, *lengths, moment=(torch.tensor([4]), torch.tensor([3]))))
    assert hub < 0.5
    # The hub row takes each query frame's softmax mass: a moment cell costs about (1 - cos) / 0.1.
    assert moment > 10 * max(hub, 1.0)


def test_moment_alignment_of_the_model_reads_the_batch_foreground_and_trains() -> None:
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    pairs = [(torch.randn(12, 512, generator=gen), torch.randn(4, 512, generator=gen), (3, 6)) for _ in range(2)]
    batch = collate_planted(pairs)
    config = override(preset("smoke"), {"model.align_cost": "contrastive", "model.align_span": "moment"})
    model = MATR(config).train()
    terms = MATRLoss(config.loss)(model(batch), batch)
    terms["loss"].backward()
    assert set(terms) >= {"align_pre", "align_post"} and torch.isfinite(terms["loss"])
    assert model.projection.net[0].weight.grad.abs().sum() > 0
    model.eval()
    with torch.no_grad():
        subsequence = MATR(override(config, {"model.align_span": "subsequence"})).eval()
        subsequence.load_state_dict(model.state_dict())
        a, b = model(batch)["align_post"], subsequence(batch)["align_post"]
    assert not torch.allclose(a, b)
