"""Inference post-processing: 1-D NMS, ranking, clipping, spans from hard alignments."""

from __future__ import annotations

import pytest
import torch

from matr.align import HardAlignment
from matr.postprocess import RankedSpan, alignment_spans, nms_1d, predict_spans


def test_nms_suppresses_overlaps_above_threshold_and_keeps_score_order() -> None:
    spans = torch.tensor([[0.0, 7.2], [0.0, 10.0], [0.0, 6.8], [20.0, 30.0], [0.0, 9.0]])
    scores = torch.tensor([0.7, 0.9, 0.6, 0.5, 0.8])
    # vs [0, 10]: [0, 9] IoU 0.9 and [0, 7.2] IoU 0.72 go; [0, 6.8] IoU 0.68 stays.
    assert nms_1d(spans, scores, 0.7).tolist() == [1, 2, 3]


def test_nms_max_keep_truncates_after_suppression() -> None:
    spans = torch.tensor([[0.0, 10.0], [0.0, 9.9], [20.0, 30.0], [40.0, 50.0]])
    scores = torch.tensor([0.9, 0.8, 0.7, 0.6])
    assert nms_1d(spans, scores, 0.7, max_keep=2).tolist() == [0, 2]


def test_alignment_span_covers_whole_frames_and_is_clipped() -> None:
    spans = alignment_spans(torch.tensor([2, 3]), torch.tensor([4, 9]), 2.0, torch.tensor([30.0, 19.0]))
    assert spans.tolist() == [[4.0, 10.0], [6.0, 19.0]]


def _head_outputs() -> tuple[dict, dict]:
    """Two pairs, M = 4 (pair 1 has 3 real frames), clip length 2 s."""
    logits = torch.tensor([[0.0, 3.0, 2.0, -1.0], [1.0, -2.0, 1.5, 50.0]])
    offsets = torch.tensor(
        [[[0.5, 0.5], [1.5, 1.5], [2.5, 0.5], [0.5, 9.0]], [[0.5, 0.5], [0.5, 0.5], [0.5, 5.0], [0.5, 0.5]]]
    )
    batch = {"target_lengths": torch.tensor([4, 3]), "duration": torch.tensor([8.0, 7.0]), "clip_length": 2.0}
    return {
        "fg_logits": logits,
        "offsets": offsets,
        "A_pre": None,
        "A_post": HardAlignment(torch.zeros(2, 4, 2), torch.tensor([1, 0]), torch.tensor([2, 1])),
    }, batch


def test_top1_is_the_span_of_the_most_confident_real_frame() -> None:
    outputs, batch = _head_outputs()
    ranked = predict_spans(outputs, batch, top_k=5)
    assert ranked[0][0] == RankedSpan(0.0, 6.0, pytest.approx(torch.sigmoid(torch.tensor(3.0)).item()))
    assert ranked[1][0][:2] == (4.0, 7.0), "frame 3 of pair 1 is padding; frame 2 is clipped to 7 s"
    for spans, duration in zip(ranked, (8.0, 7.0)):
        assert [s.score for s in spans] == sorted((s.score for s in spans), reverse=True)
        assert all(0.0 <= s.start <= s.end <= duration for s in spans)
    assert len(ranked[1]) <= 3


def test_nms_threshold_and_top_k_are_applied() -> None:
    outputs, batch = _head_outputs()
    # Pair 0 spans: [0, 2], [0, 6], [0, 6], [6, 8] -> the two [0, 6] coincide.
    assert [s[:2] for s in predict_spans(outputs, batch)[0]] == [(0.0, 6.0), (0.0, 2.0), (6.0, 8.0)]
    assert len(predict_spans(outputs, batch, nms_threshold=1.0)[0]) == 4
    assert len(predict_spans(outputs, batch, top_k=1)[0]) == 1


def test_alignment_source_gives_one_span_with_score_one() -> None:
    outputs, batch = _head_outputs()
    assert predict_spans(outputs, batch, source="A_post") == [[(2.0, 6.0, 1.0)], [(0.0, 4.0, 1.0)]]
    with pytest.raises(ValueError, match="eval mode"):
        predict_spans(outputs, batch, source="A_pre")
    with pytest.raises(ValueError, match="source"):
        predict_spans(outputs, batch, source="decoder")
