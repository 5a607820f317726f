import pytest
import torch

from matr import span_ops


def spans(*pairs):
    return torch.tensor(pairs, dtype=torch.float32)


def test_iou_of_hand_computed_spans():
    iou = span_ops.span_iou(spans((0, 4), (2, 6), (0, 1)), spans((2, 6), (2, 6), (1, 2)))
    assert torch.allclose(iou, torch.tensor([2 / 6, 1.0, 0.0]))


def test_zero_length_spans_have_zero_iou():
    assert span_ops.span_iou(spans((3, 3)), spans((3, 3))).item() == 0.0
    assert span_ops.span_iou(spans((3, 3)), spans((0, 6))).item() == 0.0


def test_giou_penalises_distance_between_disjoint_spans():
    near = span_ops.generalized_span_iou(spans((0, 2)), spans((3, 5)))
    far = span_ops.generalized_span_iou(spans((0, 2)), spans((8, 10)))
    assert torch.allclose(near, torch.tensor([-1 / 5]))
    assert far < near


def test_frame_targets_mark_frames_whose_centre_is_inside():
    foreground, offsets = span_ops.frame_targets((2.0, 7.0), num_frames=5, clip_length=2.0)
    assert foreground.tolist() == [0, 1, 1, 1, 0]
    assert torch.allclose(offsets[1], torch.tensor([0.5, 2.0]))


def test_short_window_still_has_one_foreground_frame():
    foreground, _ = span_ops.frame_targets((4.2, 4.8), num_frames=5, clip_length=2.0)
    assert foreground.tolist() == [0, 0, 1, 0, 0]


def test_offsets_round_trip_to_the_window():
    window = (2.0, 7.0)
    foreground, offsets = span_ops.frame_targets(window, num_frames=5, clip_length=2.0)
    predicted = span_ops.offsets_to_spans(offsets, clip_length=2.0)
    assert torch.allclose(predicted[foreground.bool()], torch.tensor([window] * 3))


def test_reversed_window_is_rejected():
    with pytest.raises(ValueError, match="before its start"):
        span_ops.frame_targets((5.0, 1.0), num_frames=4, clip_length=2.0)


def test_clip_spans_to_video_duration():
    clipped = span_ops.clip_spans(spans((-1, 3), (5, 12)), torch.tensor([10.0, 10.0]))
    assert clipped.tolist() == [[0, 3], [5, 10]]
