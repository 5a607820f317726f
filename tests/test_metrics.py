"""matr.metrics: hand-computed conventions, and equality with the two evaluators of the field.

The second half re-implements, from their published code, Moment-DETR's ``standalone_eval``
(jayleicn/moment_detr: ``compute_mr_r1`` with ``compute_temporal_iou_batch_cross`` / ``_paired``)
and ActivityNet-VRL's ``get_iou`` / ``get_eval_metric`` (fengyang0317/video_reloc ``utils.py``),
and requires our numbers to equal theirs bit for bit on randomised predictions that include spans
at exact-threshold IoUs, plus every case of issue 12.
"""

import json

import numpy as np
import pytest
import torch

from matr.data.activitynet_vrl import import_activitynet_vrl
from matr.data.records import DECIMALS, evaluation_inputs, round_time
from matr.metrics import (
    GRID_TOLERANCE_S,
    IOU_THRESHOLDS,
    METRIC_DESCRIPTIONS,
    METRIC_KEYS,
    VRL_THRESHOLDS,
    clip_predictions,
    evaluate,
    pair_ious,
    per_pair_scores,
    prediction_map,
    scores,
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


def test_duplicate_prediction_ids_are_an_error_naming_both_items():
    with pytest.raises(ValueError, match=r"run\.jsonl, item 3: pair id 'a' already given by item 1"):
        prediction_map([("a", [(0.0, 1.0)]), ("b", [(0.0, 1.0)]), ("a", [(0.0, 2.0)])], "run.jsonl")


def test_per_pair_scores_average_to_the_metrics():
    rng = np.random.default_rng(3)
    topk, vrl = rng.random((50, 5)), rng.random(50)
    expected = scores(topk, vrl)
    for key, column in per_pair_scores(topk, vrl).items():
        assert column.mean() == pytest.approx(expected[key], abs=1e-9), key


# --- Moment-DETR standalone_eval, re-implemented -------------------------------------------------


def _overlap_iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """standalone_eval's cross IoU ``(N, M)``: overlap / (length_a + length_b - overlap)."""
    overlap = np.clip(np.minimum(a[:, None, 1], b[None, :, 1]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None)
    lengths = (a[:, 1] - a[:, 0])[:, None] + (b[:, 1] - b[:, 0])[None, :]
    return overlap / (lengths - overlap)


def _hull_iou_paired(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """standalone_eval's paired IoU ``(N,)``: overlap over max(ends) - min(starts), 0 where that is 0."""
    overlap = np.maximum(0, np.minimum(a[:, 1], b[:, 1]) - np.maximum(a[:, 0], b[:, 0]))
    extent = np.maximum(a[:, 1], b[:, 1]) - np.minimum(a[:, 0], b[:, 0])
    return np.divide(overlap, extent, out=np.zeros_like(overlap), where=extent != 0)


def _standalone_rank_ious(submission: list[dict], ground_truth: list[dict], rank: int) -> np.ndarray:
    """compute_mr_r1's IoUs, for the prediction at ``rank`` (0 = the top-1; 0.0 past the end of a list)."""
    windows = {row["qid"]: row["relevant_windows"] for row in ground_truth}
    spans, chosen, present = [], [], []
    for row in submission:
        ranked = row["pred_relevant_windows"]
        span = ranked[rank][:2] if rank < len(ranked) else ranked[0][:2]
        best = np.argmax(_overlap_iou_matrix(np.array([span]), np.array(windows[row["qid"]])))
        spans.append(span)
        chosen.append(windows[row["qid"]][best])
        present.append(rank < len(ranked))
    ious = _hull_iou_paired(np.array(spans).astype(float), np.array(chosen).astype(float))
    return np.where(present, ious, 0.0)


def _standalone_metrics(submission: list[dict], ground_truth: list[dict]) -> dict[str, float]:
    """R1 exactly as compute_mr_r1 (before its 2-decimal print); R5 and mIoU from the same IoUs."""
    top1 = _standalone_rank_ious(submission, ground_truth, 0)
    ranks = np.stack([_standalone_rank_ious(submission, ground_truth, r) for r in range(5)], axis=1)
    results = {}
    for threshold in [float(f"{t:.2f}") for t in (0.3, 0.5, 0.7)]:
        results[f"R1@{threshold}"] = np.mean(top1 >= threshold) * 100
        results[f"R5@{threshold}"] = np.mean((ranks >= threshold).any(axis=1)) * 100
    results["mIoU"] = np.mean(top1) * 100
    return results


def _as_standalone(predictions: dict, ground_truth: dict) -> tuple[list[dict], list[dict]]:
    submission = [
        {"qid": q, "pred_relevant_windows": [list(s) + [1.0] for s in spans]} for q, spans in predictions.items()
    ]
    truth = [{"qid": q, "relevant_windows": [list(w) for w in windows]} for q, windows in ground_truth.items()]
    return submission, truth


# --- ActivityNet-VRL get_iou / get_eval_metric, re-implemented -----------------------------------


def _vrl_original(pred: np.ndarray, label: np.ndarray) -> tuple[np.ndarray, np.float32]:
    """``(decisions (5, N), IoU/mean)`` for int32 index spans; the mean accumulated in float32 as tf.metrics.mean."""
    pred, label = pred.astype(np.int32), label.astype(np.int32)
    overlap = np.maximum(np.minimum(pred[:, 1], label[:, 1]) - np.maximum(pred[:, 0], label[:, 0]), 0)
    union = pred[:, 1] - pred[:, 0] + label[:, 1] - label[:, 0] - overlap  # exact in int32
    iou = overlap.astype(np.float64) / union.astype(np.float64)  # tf.divide of int32 is float64 truediv
    decisions = np.stack([(iou > th).astype(np.float32) for th in np.arange(0.1, 1.0, 0.1)][4:])
    mean = np.float32(decisions.sum(dtype=np.float32)) / np.float32(decisions.size)
    return decisions.astype(bool), np.float32(mean)


# --- the randomised set ---------------------------------------------------------------------------


def _exact_threshold_pair(rng: np.random.Generator, threshold: float) -> tuple[list, list]:
    """Spans on a 0.1 s grid whose exact IoU is ``threshold``: overlap ``t N``, extent ``N`` (tenths)."""
    extent = 10 * int(rng.integers(1, 60))
    overlap = round(threshold * extent)
    before = int(rng.integers(0, extent - overlap + 1))  # the rest of the extent: before and after the overlap
    start = int(rng.integers(0, 1500))
    cuts = [start, start + before, start + before + overlap, start + extent]
    first, second = (cuts[0], cuts[2]), (cuts[1], cuts[3])
    if before == 0 or rng.random() < 0.3:  # nested: one span holds the other
        first, second = (cuts[0], cuts[3]), (cuts[1], cuts[2])
        first, second = (first, second) if overlap < extent else (first, first)
    spans = [tuple(round(x * 0.1, 1) for x in span) for span in (first, second)]
    order = rng.permutation(2)
    return [spans[order[0]]], [spans[order[1]]]


def _random_set(seed: int, size: int) -> tuple[dict, dict]:
    rng = np.random.default_rng(seed)
    predictions, ground_truth = {}, {}
    for index in range(size):
        kind = index % 4
        if kind < 2:
            spans, windows = _exact_threshold_pair(rng, float(rng.choice([0.3, 0.5, 0.7])))
            spans += [tuple(sorted(np.round(rng.uniform(0, 160, 2), 1))) for _ in range(rng.integers(0, 6))]
        else:
            decimals = 1 if kind == 2 else 6
            windows = [tuple(sorted(np.round(rng.uniform(0, 150, 2), decimals))) for _ in range(rng.integers(1, 3))]
            spans = [tuple(sorted(np.round(rng.uniform(0, 150, 2), decimals))) for _ in range(rng.integers(1, 8))]
        windows = [w if w[1] > w[0] else (w[0], w[0] + 0.1) for w in windows]
        predictions[f"q{index}"], ground_truth[f"q{index}"] = spans, windows
    return predictions, ground_truth


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_recall_and_miou_equal_standalone_eval_bit_for_bit(seed):
    predictions, ground_truth = _random_set(seed, 600)
    ours = evaluate(predictions, ground_truth)
    theirs = _standalone_metrics(*_as_standalone(predictions, ground_truth))
    for key, value in theirs.items():
        assert ours[key] == value, (key, ours[key], value)
        assert float(f"{ours[key]:.2f}") == float(f"{value:.2f}")  # standalone_eval's printed form


def test_the_randomised_set_holds_exact_threshold_ious_that_rounding_would_flip():
    """Without such pairs, the equality above could not tell the hull from the length-sum union."""
    predictions, ground_truth = _random_set(0, 600)
    single = [q for q in ground_truth if len(ground_truth[q]) == 1]
    hull = np.array([temporal_iou(predictions[q][0], ground_truth[q]) for q in single])
    length_sum = np.array([_length_sum_iou(predictions[q][0], ground_truth[q][0]) for q in single])
    at_threshold = sum(int((np.abs(hull - t) < 1e-9).sum()) for t in IOU_THRESHOLDS)
    flipped = sum(int(((hull >= t) != (length_sum >= t)).sum()) for t in IOU_THRESHOLDS)
    assert at_threshold >= 250 and flipped >= 3


def _length_sum_iou(span, window) -> float:
    """The project's former IoU: overlap / (length_p + length_g - overlap)."""
    overlap = max(0.0, min(span[1], window[1]) - max(span[0], window[0]))
    return overlap / ((span[1] - span[0]) + (window[1] - window[0]) - overlap)


def _random_index_set(seed: int, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(pred, label, step)``: index spans relative to a reference clip, with exact 1/2, 3/5, 7/10, 4/5, 9/10."""
    rng = np.random.default_rng(seed)
    length = rng.integers(20, 300, size)
    label_start = rng.integers(0, length // 2)
    label_len = rng.integers(1, length - label_start + 1)
    label = np.stack([label_start, label_start + label_len], axis=1)
    pred_start = rng.integers(0, length - 1)
    pred = np.stack([pred_start, pred_start + rng.integers(1, length - pred_start + 1)], axis=1)
    for row in range(0, size, 3):  # exact-threshold ratios: label [s, s + 10u), pred [s, s + k u)
        unit, k = int(rng.integers(1, 8)), int(rng.choice([5, 6, 7, 8, 9]))
        label[row], pred[row] = (0, 10 * unit), (0, k * unit)
    n_frames = rng.integers(500, 20000, size)
    step = 16 * rng.uniform(20, 600, size) / n_frames
    return pred, label, step


@pytest.mark.parametrize("rounded", [False, True])
def test_vrl_iou_mean_equals_the_original_on_feature_indices(rounded):
    pred, label, step = _random_index_set(0, 900)
    seconds = (lambda x: round_time(x)) if rounded else float
    ids = [f"p{i}" for i in range(len(pred))]
    predictions = {p: [(seconds(a * s), seconds(b * s))] for p, (a, b), s in zip(ids, pred, step)}
    ground_truth = {p: (seconds(a * s), seconds(b * s)) for p, (a, b), s in zip(ids, label, step)}
    ours = evaluate(predictions, ground_truth, feature_steps=dict(zip(ids, step)))
    decisions, original = _vrl_original(pred, label)
    ious = pair_ious(predictions, ground_truth, feature_steps=dict(zip(ids, step))).vrl
    assert np.array_equal(np.stack([ious > t for t in VRL_THRESHOLDS]), decisions)
    assert ours["VRL_IoU_mean"] == float(np.mean(decisions)) * 100
    assert np.float32(ours["VRL_IoU_mean"] / 100) == original


def test_vrl_thresholds_are_numpy_arange_values():
    assert VRL_THRESHOLDS == tuple(np.arange(0.1, 1.0, 0.1)[4:].tolist())
    assert VRL_THRESHOLDS[2] == 0.7000000000000001
    assert IOU_THRESHOLDS == tuple(float(f"{t:.2f}") for t in IOU_THRESHOLDS)
    assert GRID_TOLERANCE_S == 10.0**-DECIMALS


# --- the cases of issue 12 ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("prediction", "window"), [((30.0, 75.2), (30.0, 52.6)), ((0.0, 0.2), (0.0, 0.1))], ids=["30-75.2", "0-0.2"]
)
def test_an_exact_half_counts_at_0_5_as_standalone_eval_counts_it(prediction, window):
    assert _length_sum_iou(prediction, window) < 0.5  # the old arithmetic: 0.49999999999999994
    results = evaluate({"a": [prediction]}, {"a": window})
    assert temporal_iou(prediction, window) == 0.5
    assert results["R1@0.5"] == 100.0
    assert results["R1@0.5"] == _standalone_metrics(*_as_standalone({"a": [prediction]}, {"a": [window]}))["R1@0.5"]


def test_a_hull_iou_just_below_0_3_misses_although_the_length_sum_reaches_it():
    prediction, window = (0.4, 0.7), (0.0, 1.0)
    assert _length_sum_iou(prediction, window) == 0.3
    assert temporal_iou(prediction, window) == 0.29999999999999993
    assert evaluate({"a": [prediction]}, {"a": window})["R1@0.3"] == 0.0


def test_vrl_counts_on_feature_indices_where_seconds_would_round_up():
    step = 16 * 100.0 / 3000  # 100 s, 3000 frames: seconds per C3D feature
    prediction, window = (0.0, 20 * step), (3 * step, 13 * step)  # [0, 20) vs [3, 13): IoU 10/20
    seconds = pair_ious({"a": [prediction]}, {"a": window}).vrl[0]
    assert seconds == 0.5000000000000001  # in seconds it would pass "> 0.5"
    on_grid = evaluate({"a": [prediction]}, {"a": window}, feature_steps={"a": step})
    assert on_grid["VRL_IoU_mean"] == 0.0
    assert _vrl_original(np.array([[0, 20]]), np.array([[3, 13]]))[1] == 0.0
    assert evaluate({"a": [prediction]}, {"a": window})["VRL_IoU_mean"] == 20.0


def test_an_iou_of_0_7000000000000001_does_not_pass_the_original_0_7_threshold():
    prediction, window = (0.1, 0.8), (0.0, 1.0)
    assert pair_ious({"a": [prediction]}, {"a": window}).vrl[0] == 0.7000000000000001
    assert evaluate({"a": [prediction]}, {"a": window})["VRL_IoU_mean"] == 40.0  # 0.5 and 0.6 only, not 60


def test_off_grid_predictions_are_scored_unrounded_in_feature_units():
    step = 0.5
    exact = evaluate({"a": [(0.0, 5.3)]}, {"a": (0.0, 10.0)}, feature_steps={"a": step})
    assert exact["VRL_IoU_mean"] == 20.0  # IoU 0.53: only "> 0.5"; rounding to [0, 11) would give 0.55


def test_the_activitynet_vrl_importer_gives_the_feature_step_that_evaluation_uses(tmp_path):
    split = [
        {"id": "v1", "label": 7, "location": [0, 100], "groundtruth": [3, 13]},
        {"id": "v2", "label": 7, "location": [0, 100], "groundtruth": [3, 13]},
    ]
    (tmp_path / "val.json").write_text(json.dumps(split))
    (tmp_path / "length.json").write_text(json.dumps({v: {"n_frames": 3000, "n_feat": 187} for v in ("v1", "v2")}))
    records = import_activitynet_vrl(tmp_path / "val.json", tmp_path / "length.json", {"v1": 100.0, "v2": 100.0})
    ground_truth, steps = evaluation_inputs(records, "val.json")
    step = 16 * 100.0 / 3000
    assert steps == {r.pair_id: step for r in records}
    predictions = {r.pair_id: [(0.0, round_time(20 * step))] for r in records}
    assert evaluate(predictions, ground_truth, feature_steps=steps)["VRL_IoU_mean"] == 0.0
