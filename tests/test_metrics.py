"""Hand-computed checks of matr.metrics: IoU conventions, R@k, mIoU, VRL IoU/mean, error handling."""

import numpy as np
import pytest
import torch

from matr.metrics import (
    METRIC_DESCRIPTIONS,
    METRIC_KEYS,
    clip_predictions,
    evaluate,
    temporal_iou,
    top1_iou_table,
)

GT = {"a": (0.0, 10.0)}


def test_touching_spans_have_zero_iou():
    assert temporal_iou((0.0, 5.0), (5.0, 9.0)) == 0.0


def test_zero_length_prediction_has_zero_iou_even_inside_the_window():
    assert temporal_iou((3.0, 3.0), (0.0, 10.0)) == 0.0
    results = evaluate({"a": [(3.0, 3.0)]}, GT)
    assert results["R1@0.3"] == 0.0 and results["mIoU"] == 0.0


def test_hand_computed_partial_overlap():
    # [2, 8] and [5, 11]: intersection 3, union 9.
    assert temporal_iou((2.0, 8.0), (5.0, 11.0)) == pytest.approx(1 / 3)


def test_prediction_outside_the_video_is_scored_as_given():
    predictions = {"a": [(-10.0, 10.0)]}
    assert evaluate(predictions, GT)["mIoU"] == pytest.approx(50.0)
    clipped = clip_predictions(predictions, {"a": 10.0})
    assert clipped["a"].tolist() == [[0.0, 10.0]]
    assert evaluate(clipped, GT)["mIoU"] == pytest.approx(100.0)


def test_identical_spans_count_at_every_threshold_inclusive_and_strict():
    results = evaluate({"a": [(0.0, 10.0)]}, GT)
    for key in METRIC_KEYS:
        if key.startswith("R") or key in ("mIoU", "VRL_IoU_mean"):
            assert results[key] == 100.0, key


def test_iou_exactly_at_threshold_counts_for_recall_but_not_for_vrl():
    results = evaluate({"a": [(0.0, 5.0)]}, GT)  # IoU exactly 0.5
    assert results["R1@0.3"] == 100.0
    assert results["R1@0.5"] == 100.0
    assert results["R1@0.7"] == 0.0
    assert results["VRL_IoU_mean"] == 0.0  # 0.5 > 0.5 is false


def test_vrl_iou_mean_is_mean_of_strict_recalls_not_mean_iou():
    gt = {p: (0.0, 20.0) for p in "abcd"}
    predictions = {"a": [(0.0, 20.0)], "b": [(0.0, 17.0)], "c": [(0.0, 11.0)], "d": [(0.0, 4.0)]}
    # IoUs 1.0, 0.85, 0.55, 0.2 -> strict R@1 at 0.5..0.9: 75, 50, 50, 50, 25.
    results = evaluate(predictions, gt)
    assert results["VRL_IoU_mean"] == pytest.approx(50.0)
    assert results["mIoU"] == pytest.approx(65.0)
    assert results["R1@0.5"] == pytest.approx(75.0)
    assert results["R1@0.7"] == pytest.approx(50.0)


def test_recall_at_5_counts_a_hit_anywhere_in_the_top_5_only():
    miss, hit = (20.0, 30.0), (0.0, 10.0)
    predictions = {"a": [miss, miss, hit], "b": [miss] * 5 + [hit]}
    results = evaluate(predictions, {"a": (0.0, 10.0), "b": (0.0, 10.0)})
    assert results["R1@0.5"] == 0.0
    assert results["R5@0.5"] == 50.0
    assert results["mIoU"] == 0.0


def test_pairs_with_fewer_than_k_predictions_use_what_they_have():
    results = evaluate({"a": [(0.0, 10.0)]}, GT)
    assert results["R5@0.7"] == 100.0


def test_multiple_ground_truth_windows_take_the_best_match():
    windows = [(0.0, 10.0), (20.0, 30.0)]
    assert temporal_iou((20.0, 30.0), windows) == 1.0
    assert temporal_iou((18.0, 28.0), windows) == pytest.approx(8 / 12)
    assert evaluate({"a": [(18.0, 28.0)]}, {"a": windows})["mIoU"] == pytest.approx(100 * 8 / 12)


def test_no_constant_is_added_to_any_metric():
    results = evaluate({"a": [(20.0, 30.0)] * 5, "b": [(20.0, 30.0)]}, {"a": (0.0, 10.0), "b": (0.0, 10.0)})
    assert all(results[key] == 0.0 for key in METRIC_KEYS if key not in ("num_pairs", "num_missing"))
    # One pair with IoU 0.5 and one with 0.2: the mean is 35, not 41.
    results = evaluate({"a": [(0.0, 5.0)], "b": [(0.0, 2.0)]}, {"a": (0.0, 10.0), "b": (0.0, 10.0)})
    assert results["mIoU"] == pytest.approx(35.0)
    assert results["R5@0.3"] == pytest.approx(50.0)


def test_missing_predictions_raise_naming_the_pair():
    with pytest.raises(KeyError, match="'b'"):
        evaluate({"a": [(0.0, 10.0)]}, {"a": (0.0, 10.0), "b": (0.0, 10.0)})
    with pytest.raises(KeyError, match="'b'"):
        evaluate({"a": [(0.0, 10.0)], "b": []}, {"a": (0.0, 10.0), "b": (0.0, 10.0)})


def test_missing_predictions_count_as_misses_when_not_strict():
    results = evaluate({"a": [(0.0, 10.0)]}, {"a": (0.0, 10.0), "b": (0.0, 10.0)}, strict=False)
    assert results["R1@0.5"] == 50.0 and results["mIoU"] == 50.0
    assert results["num_pairs"] == 2 and results["num_missing"] == 1


def test_predictions_for_unknown_pairs_raise_naming_them():
    with pytest.raises(KeyError, match="'zzz'"):
        evaluate({"a": [(0.0, 10.0)], "zzz": [(0.0, 1.0)]}, GT)


def test_scores_out_of_rank_order_are_rejected():
    with pytest.raises(ValueError, match="non-increasing"):
        evaluate({"a": [(0.0, 1.0, 0.2), (0.0, 10.0, 0.9)]}, GT)


def test_invalid_spans_and_windows_are_rejected():
    with pytest.raises(ValueError, match="ends before it starts"):
        evaluate({"a": [(5.0, 1.0)]}, GT)
    with pytest.raises(ValueError, match="positive length"):
        evaluate({"a": [(0.0, 1.0)]}, {"a": (4.0, 4.0)})
    with pytest.raises(ValueError, match="ranked list"):
        evaluate({"a": (0.0, 10.0)}, GT)


def test_tensor_and_scored_predictions_are_accepted():
    predictions = {"a": torch.tensor([[0.0, 10.0, 0.9], [0.0, 5.0, 0.1]])}
    assert evaluate(predictions, {"a": np.array([0.0, 10.0])})["mIoU"] == pytest.approx(100.0)


def test_result_keys_are_stable_and_every_metric_is_described():
    results = evaluate({"a": [(0.0, 10.0)]}, GT)
    assert tuple(results) == METRIC_KEYS
    assert set(METRIC_DESCRIPTIONS) == set(METRIC_KEYS)
    assert "not a mean IoU" in METRIC_DESCRIPTIONS["VRL_IoU_mean"]
    assert results["num_pairs"] == 1


def test_top1_iou_table_gives_per_pair_fractions():
    table = top1_iou_table({"a": [(0.0, 5.0), (0.0, 10.0)], "b": [(0.0, 10.0)]}, {"a": (0.0, 10.0), "b": (0.0, 10.0)})
    assert table == {"a": pytest.approx(0.5), "b": pytest.approx(1.0)}


def test_empty_ground_truth_is_an_error():
    with pytest.raises(ValueError, match="empty"):
        evaluate({}, {})


def test_ragged_prediction_rows_raise_naming_the_pair():
    with pytest.raises(ValueError, match="predictions\\['a'\\]"):
        evaluate({"a": [(0.0, 10.0, 0.9), (0.0, 5.0)]}, GT)
