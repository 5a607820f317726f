"""Inference on long targets (overlapping windows) and across a library of videos."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from matr.config import preset
from matr.features import FeatureStore, VideoFeatures
from matr.inference import localize_features, plan_windows, prepare_query, search_features
from matr.model import MATR
from matr.span_ops import span_iou

C = 2.0  # seconds per frame
D = 512


class RunFinder(nn.Module):
    """A stand-in for MATR that localises, inside the frames it is shown, the run of frames matching the query.

    A frame matches when its cosine with the mean query frame exceeds 0.5. Every frame of a visible
    run proposes the whole visible run; its score falls with the frame's distance from the run's
    centre (as a real model is surest in the middle of a moment). It only sees one window, so a run
    cut by the window's edge is proposed cut. It refuses inputs longer than its limits.
    """

    def __init__(self, max_target_frames: int, max_query_frames: int = 64) -> None:
        super().__init__()
        self.config = SimpleNamespace(max_target_frames=max_target_frames, max_query_frames=max_query_frames)
        self.anchor = nn.Parameter(torch.zeros(1))
        self.shown_query_lengths: list[int] = []

    def forward(self, batch: dict, heads_only: bool = False) -> dict:
        target, query = batch["target"], batch["query"]
        assert target.shape[1] <= self.config.max_target_frames and query.shape[1] <= self.config.max_query_frames
        self.shown_query_lengths += batch["query_lengths"].tolist()
        b_size, m = target.shape[:2]
        logits, offsets = torch.full((b_size, m), -10.0), torch.zeros(b_size, m, 2)
        for b in range(b_size):
            n, length = int(batch["query_lengths"][b]), int(batch["target_lengths"][b])
            pooled = query[b, :n].mean(0)
            match = (torch.cosine_similarity(target[b, :length], pooled[None], dim=-1) > 0.5).tolist()
            for first, stop in _runs(match):
                centre = (first + stop) / 2
                for i in range(first, stop):
                    logits[b, i] = 4.0 - abs(i + 0.5 - centre)
                    offsets[b, i] = torch.tensor([i + 0.5 - first, stop - (i + 0.5)])
        return {"fg_logits": logits, "offsets": offsets}


def _runs(flags: list[bool]) -> list[tuple[int, int]]:
    runs, start = [], None
    for i, flag in enumerate([*flags, False]):
        if flag and start is None:
            start = i
        elif not flag and start is not None:
            runs.append((start, i))
            start = None
    return runs


def planted(
    num_frames: int, first: int, stop: int, seed: int = 0, query_frames: int = 5
) -> tuple[np.ndarray, np.ndarray]:
    """Target ``(M, D)`` noise with frames ``[first, stop)`` sharing a pattern; a query ``(N, D)`` of that pattern."""
    rng = np.random.default_rng(seed)
    pattern = 3.0 * rng.standard_normal(D)
    target = rng.standard_normal((num_frames, D)).astype(np.float32)
    target[first:stop] += pattern
    query = (pattern + rng.standard_normal((query_frames, D))).astype(np.float32)
    return query, target


def top1_iou(spans, first: int, stop: int) -> float:
    return float(span_iou(torch.tensor(spans[0][:2]), torch.tensor([first * C, stop * C])))


def test_every_frame_is_owned_by_exactly_one_window_and_the_last_window_ends_at_the_end():
    for num_frames, window in ((40, 16), (41, 16), (17, 16), (100, 7)):
        windows = plan_windows(num_frames, window)
        owned = [i for w in windows for i in range(w.own_first, w.own_stop)]
        assert owned == list(range(num_frames))
        assert all(w.stop - w.first == window and w.first <= w.own_first and w.own_stop <= w.stop for w in windows)
        assert windows[-1].stop == num_frames


def test_a_target_that_fits_is_one_window():
    assert plan_windows(12, 16) == [(0, 12, 0, 12)]


def test_moment_in_the_last_window_of_a_long_target_is_found():
    """M = 40 > W = 16: reading only the first 16 frames would miss frames 33..38 entirely."""
    query, target = planted(40, 33, 39)
    spans = localize_features(RunFinder(max_target_frames=16), query, target, C)
    assert top1_iou(spans, 33, 39) > 0.99


def test_moment_cut_by_a_window_edge_is_proposed_whole_by_the_window_that_sees_it():
    """Frames 13..18 straddle the end (16) of the first window, which sees only 13..15.

    Taking the first window's proposals for those frames would give [26, 32] s (IoU 0.5).
    """
    query, target = planted(40, 13, 19)
    spans = localize_features(RunFinder(max_target_frames=16), query, target, C)
    assert top1_iou(spans, 13, 19) > 0.99


def test_spans_are_in_video_time_and_inside_the_duration():
    query, target = planted(40, 26, 30)
    spans = localize_features(RunFinder(max_target_frames=16), query, target, C, duration=79.0, top_k=3)
    assert top1_iou(spans, 26, 30) > 0.99
    assert all(0.0 <= s.start <= s.end <= 79.0 for s in spans)
    assert [s.score for s in spans] == sorted((s.score for s in spans), reverse=True)


def test_query_longer_than_the_model_limit_is_resampled_not_truncated():
    query, target = planted(20, 4, 9, query_frames=50)
    model = RunFinder(max_target_frames=32, max_query_frames=8)
    spans = localize_features(model, query, target, C)
    assert set(model.shown_query_lengths) == {8}
    assert top1_iou(spans, 4, 9) > 0.99
    assert prepare_query(np.arange(50, dtype=np.float32)[:, None], 8)[:, 0].tolist() == [3, 9, 15, 21, 28, 34, 40, 46]


def test_search_ranks_the_video_holding_the_planted_moment_first():
    rng = np.random.default_rng(11)
    query, holder = planted(30, 20, 25, seed=1)
    library = {f"video{i}": rng.standard_normal((int(rng.integers(10, 40)), D)).astype(np.float32) for i in range(6)}
    library["video3"] = holder
    hits = search_features(RunFinder(max_target_frames=16), query, library, clip_length=C, top_k=3, batch_size=2)
    assert hits[0].video_id == "video3"
    assert span_iou(torch.tensor([hits[0].start, hits[0].end]), torch.tensor([40.0, 50.0])) > 0.99


def test_search_reads_a_feature_store(tmp_path):
    store = FeatureStore(tmp_path / "store")
    query, holder = planted(24, 3, 8, seed=2)
    rng = np.random.default_rng(12)
    for video_id, features in (("a", rng.standard_normal((18, D))), ("b", holder), ("c", rng.standard_normal((9, D)))):
        store.put(
            video_id,
            VideoFeatures(
                features=np.asarray(features, dtype=np.float32),
                timestamps=(np.arange(len(features)) + 0.5) * C,
                duration=len(features) * C - 1.0,
                video_duration=len(features) * C - 1.0,
                clip_length=C,
                weights_tag="random-init(seed=0)",
                backbone="test",
                path=f"{video_id}.mp4",
            ),
        )
    hits = search_features(RunFinder(max_target_frames=16), query, store, top_k=2)
    assert hits[0].video_id == "b"
    assert hits[0].start == pytest.approx(6.0) and hits[0].end == pytest.approx(16.0)


def test_real_model_handles_a_target_longer_than_its_limit():
    torch.manual_seed(0)
    model = MATR(preset("smoke")).eval()
    limit = model.config.max_target_frames
    rng = np.random.default_rng(0)
    target = rng.standard_normal((limit + limit // 2 + 3, D)).astype(np.float32)
    query = rng.standard_normal((6, D)).astype(np.float32)
    duration = len(target) * C
    spans = localize_features(model, query, target, C, top_k=5)
    assert 1 <= len(spans) <= 5
    assert all(0.0 <= s.start <= s.end <= duration for s in spans)
    assert [s.score for s in spans] == sorted((s.score for s in spans), reverse=True)
