"""Behaviour of the training-free baselines (Random, Video Match) and their fit with matr.metrics."""

import pytest
import torch

from matr.baselines import (
    FeaturePair,
    VideoMatchConfig,
    random_baseline,
    random_baseline_batch,
    video_match,
    video_match_batch,
    video_match_pairs,
    window_sizes,
)
from matr.metrics import evaluate
from matr.span_ops import span_iou

CLIP = 2.0


def _planted(seed: int, num_frames: int = 40, start: int = 10, end: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    """Random target ``(M, 512)`` and a query copying its frames ``start .. end - 1``."""
    target = torch.randn(num_frames, 512, generator=torch.Generator().manual_seed(seed))
    return target, target[start:end].clone()


def test_random_baseline_is_deterministic_for_a_seed():
    durations = {"a": 30.0, "b": 12.5}
    assert random_baseline(durations, seed=3) == random_baseline(durations, seed=3)
    assert random_baseline(durations, seed=3) != random_baseline(durations, seed=4)


def test_random_spans_are_ordered_and_inside_the_video():
    predictions = random_baseline({f"p{i}": 5.0 + i for i in range(50)}, top_k=5, seed=0)
    for pair_id, spans in predictions.items():
        assert len(spans) == 5
        duration = 5.0 + int(pair_id[1:])
        assert all(0.0 <= s <= e <= duration for s, e, _ in spans)


def test_random_spans_of_a_pair_do_not_depend_on_the_other_pairs():
    alone = random_baseline({"b": 20.0}, seed=1)
    together = random_baseline({"a": 10.0, "b": 20.0, "c": 5.0}, seed=1)
    assert alone["b"] == together["b"]


def test_random_baseline_batch_reads_pair_ids_and_durations():
    batch = {"pair_id": ["x", "y"], "duration": torch.tensor([8.0, 16.0])}
    assert random_baseline_batch(batch, seed=2) == random_baseline({"x": 8.0, "y": 16.0}, seed=2)


def test_random_baseline_plugs_into_the_metrics():
    durations = {f"p{i}": 30.0 for i in range(20)}
    results = evaluate(random_baseline(durations, seed=0), {p: (10.0, 20.0) for p in durations})
    assert results["num_pairs"] == 20
    assert 0.0 <= results["R1@0.5"] <= results["R5@0.5"] <= 100.0


def test_window_sizes_span_half_to_twice_the_query_clamped_to_the_target():
    scales = VideoMatchConfig().window_scales
    assert window_sizes(6, 40, scales) == [3, 5, 6, 8, 9, 12]
    assert window_sizes(6, 10, scales) == [3, 5, 6, 8, 9, 10]
    assert window_sizes(1, 40, scales) == [1, 2]


def test_planted_query_is_recovered():
    target, query = _planted(seed=0)
    top_start, top_end, top_score = video_match(target, query, CLIP)[0]
    assert (top_start, top_end) == (10 * CLIP, 16 * CLIP)
    assert top_score == pytest.approx(1.0)


def test_video_match_ranks_by_score_and_suppresses_overlaps():
    target, query = _planted(seed=1)
    config = VideoMatchConfig(top_k=5, nms_threshold=0.5)
    ranked = video_match(target, query, CLIP, config)
    scores = [score for _, _, score in ranked]
    assert len(ranked) == 5 and scores == sorted(scores, reverse=True)
    spans = torch.tensor([(s, e) for s, e, _ in ranked])
    overlaps = span_iou(spans[:, None], spans[None]).fill_diagonal_(0)
    assert bool((overlaps <= 0.5).all())


def test_video_match_clips_spans_to_the_duration():
    target, query = _planted(seed=2, num_frames=20, start=14, end=20)
    top_start, top_end, _ = video_match(target, query, CLIP, duration=39.0)[0]
    assert (top_start, top_end) == (28.0, 39.0)


def test_video_match_rejects_mismatched_feature_sizes():
    with pytest.raises(ValueError, match="expected target"):
        video_match(torch.randn(10, 512), torch.randn(3, 256), CLIP)


def test_video_match_pairs_rejects_repeated_pair_ids():
    target, query = _planted(seed=3)
    with pytest.raises(ValueError, match="twice"):
        video_match_pairs([FeaturePair("a", target, query), FeaturePair("a", target, query)], CLIP)


def test_video_match_batch_ignores_padding_and_scores_full_recall_on_planted_data():
    pairs = [_planted(seed=4, num_frames=40, start=10, end=16), _planted(seed=5, num_frames=30, start=3, end=7)]
    target = torch.zeros(2, 40, 512)
    query = torch.zeros(2, 6, 512)
    for b, (t, q) in enumerate(pairs):
        target[b, : len(t)], query[b, : len(q)] = t, q
    batch = {
        "pair_id": ["p0", "p1"],
        "target": target,
        "query": query,
        "target_lengths": torch.tensor([40, 30]),
        "query_lengths": torch.tensor([6, 4]),
        "duration": torch.tensor([80.0, 60.0]),
        "clip_length": CLIP,
    }
    predictions = video_match_batch(batch)
    assert predictions["p1"] == video_match(pairs[1][0], pairs[1][1], CLIP, duration=60.0)
    results = evaluate(predictions, {"p0": (20.0, 32.0), "p1": (6.0, 14.0)})
    assert results["R1@0.5"] == 100.0 and results["mIoU"] == pytest.approx(100.0)
