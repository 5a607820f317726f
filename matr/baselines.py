"""Training-free baselines of Feng et al. ("Video Re-localization", ECCV 2018): Random and Video Match.

They are the first two rows of the MATR paper's Table 1 and run on any dataset of features. Both
return predictions in the format :mod:`matr.metrics` evaluates: ``pair_id -> ranked list of
(start, end, score)`` in seconds, best first.

Conventions (seconds throughout; frame ``i`` covers ``[i * c, (i + 1) * c)``, see :mod:`matr.span_ops`):

* **Random**: each of the ``top_k`` spans of a pair has its two endpoints drawn independently and
  uniformly in ``[0, duration]`` and sorted (so its expected length is a third of the video). The
  generator of a pair is seeded from ``(seed, sha256(pair_id))``: a pair's spans do not depend on
  which other pairs are evaluated or in what order. Scores only encode the rank
  (``1, (k-1)/k, ...``). Simulated on the ActivityNet-VRL test windows (each entry's own window as
  the target, ground truth a third of it on average), this recipe scores about 6.9 VRL IoU/mean and
  16.0 R@1 (IoU > 0.5), close to the 7.3 / 16.2 Feng et al. report; a uniform length followed by a
  uniform start scores clearly higher there (about 9.5 / 20.6), so it is not what they ran.
* **Video Match**: frame features are L2-normalised; the query is mean-pooled into one vector. Every
  window of ``w`` consecutive target frames, for ``w`` in ``round(s * N)`` for the scales ``s`` of
  :class:`VideoMatchConfig` (default 0.5x to 2x the query length, clamped to ``[1, M]``), at every
  ``stride``-th start, is mean-pooled and scored by its cosine similarity with the pooled query. The
  window of frames ``i .. i + w - 1`` is the span ``[i * c, (i + w) * c]``, clipped to the duration
  when one is given (the last frame may be partial). Candidates are ranked by score (ties: shorter
  window, then earlier start), and greedy 1-D NMS (:func:`matr.postprocess.nms_1d`) keeps the
  ``top_k`` best whose IoU with every kept span is at most ``nms_threshold``.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from matr.postprocess import TOP_K, nms_1d
from matr.span_ops import clip_spans

RankedSpans = list[tuple[float, float, float]]


@dataclass(frozen=True)
class VideoMatchConfig:
    """Hyper-parameters of the Video Match baseline (window sizes are multiples of the query length N)."""

    window_scales: tuple[float, ...] = (0.5, 0.75, 1.0, 1.25, 1.5, 2.0)
    stride: int = 1
    top_k: int = TOP_K
    nms_threshold: float = 0.5


class FeaturePair(NamedTuple):
    """One pair for Video Match: target ``(M, d)`` and query ``(N, d)`` features, target duration in seconds."""

    pair_id: str
    target: Tensor
    query: Tensor
    duration: float | None = None


def random_spans(duration: float, top_k: int, rng: np.random.Generator) -> RankedSpans:
    """``top_k`` random spans in ``[0, duration]``: two uniform endpoints each, sorted."""
    if not duration > 0:
        raise ValueError(f"duration must be positive, got {duration}")
    if top_k < 1:
        raise ValueError(f"top_k must be at least 1, got {top_k}")
    endpoints = np.sort(rng.uniform(0.0, duration, size=(top_k, 2)), axis=1)
    return [(float(s), float(e), 1.0 - rank / top_k) for rank, (s, e) in enumerate(endpoints)]


def random_baseline(durations: Mapping[str, float], *, top_k: int = TOP_K, seed: int = 0) -> dict[str, RankedSpans]:
    """Random baseline for every ``pair_id -> target duration (s)``: ``top_k`` random spans each, seeded per pair."""
    if seed < 0:
        raise ValueError(f"seed must be non-negative, got {seed}")
    return {
        pair_id: random_spans(float(duration), top_k, np.random.default_rng([seed, _stable_hash(pair_id)]))
        for pair_id, duration in durations.items()
    }


def random_baseline_batch(batch: Mapping[str, Any], *, top_k: int = TOP_K, seed: int = 0) -> dict[str, RankedSpans]:
    """:func:`random_baseline` on a collated batch (uses its ``"pair_id"`` and ``"duration"`` (B,))."""
    durations = dict(zip(batch["pair_id"], torch.as_tensor(batch["duration"]).tolist(), strict=True))
    return random_baseline(durations, top_k=top_k, seed=seed)


def window_sizes(num_query_frames: int, num_target_frames: int, scales: Iterable[float]) -> list[int]:
    """Distinct window lengths ``round(s * N)`` (half up) clamped to ``[1, M]``, ascending."""
    sizes = {min(max(math.floor(s * num_query_frames + 0.5), 1), num_target_frames) for s in scales}
    return sorted(sizes)


def video_match(
    target: Tensor,
    query: Tensor,
    clip_length: float,
    config: VideoMatchConfig | None = None,
    duration: float | None = None,
) -> RankedSpans:
    """Video Match for one pair: target ``(M, d)``, query ``(N, d)`` -> up to ``top_k`` ranked spans (s).

    Features of any float dtype are scored in float32."""
    config = config or VideoMatchConfig()
    if target.ndim != 2 or query.ndim != 2 or target.shape[1] != query.shape[1]:
        raise ValueError(f"expected target (M, d) and query (N, d), got {tuple(target.shape)} and {tuple(query.shape)}")
    if len(target) == 0 or len(query) == 0:
        raise ValueError("video_match needs at least one target frame and one query frame")
    spans, scores = _window_scores(target.float(), query.float(), clip_length, config)
    keep = nms_1d(spans, scores, config.nms_threshold, max_keep=config.top_k)
    spans, scores = spans[keep], scores[keep]
    if duration is not None:
        spans = clip_spans(spans, duration)
    return [(s, e, score) for (s, e), score in zip(spans.tolist(), scores.tolist())]


def video_match_pairs(
    pairs: Iterable[FeaturePair], clip_length: float, config: VideoMatchConfig | None = None
) -> dict[str, RankedSpans]:
    """:func:`video_match` over pairs -> ``pair_id -> ranked spans``; a repeated pair id is an error."""
    predictions: dict[str, RankedSpans] = {}
    for pair in pairs:
        if pair.pair_id in predictions:
            raise ValueError(f"pair id {pair.pair_id!r} appears twice")
        predictions[pair.pair_id] = video_match(pair.target, pair.query, clip_length, config, pair.duration)
    return predictions


def video_match_batch(batch: Mapping[str, Any], config: VideoMatchConfig | None = None) -> dict[str, RankedSpans]:
    """:func:`video_match` on a collated batch: padded ``"target"`` (B, M, d) and ``"query"`` (B, N, d)."""
    pairs = (
        FeaturePair(pair_id, batch["target"][b, :m], batch["query"][b, :n], float(duration))
        for b, (pair_id, m, n, duration) in enumerate(
            zip(
                batch["pair_id"],
                batch["target_lengths"].tolist(),
                batch["query_lengths"].tolist(),
                batch["duration"].tolist(),
                strict=True,
            )
        )
    )
    return video_match_pairs(pairs, float(batch["clip_length"]), config)


def _window_scores(
    target: Tensor, query: Tensor, clip_length: float, config: VideoMatchConfig
) -> tuple[Tensor, Tensor]:
    """Every candidate window as spans ``(W, 2)`` in seconds with cosine scores ``(W,)``, float64."""
    frames = F.normalize(target.double(), dim=-1)  # (M, d)
    pooled_query = F.normalize(query.double(), dim=-1).mean(dim=0)  # (d,)
    prefix = F.pad(frames.cumsum(dim=0), (0, 0, 1, 0))  # (M + 1, d), prefix[i] = sum of frames < i
    spans, scores = [], []
    for size in window_sizes(len(query), len(target), config.window_scales):
        starts = torch.arange(0, len(target) - size + 1, config.stride, device=target.device)
        pooled = (prefix[starts + size] - prefix[starts]) / size  # (W, d)
        scores.append(F.cosine_similarity(pooled, pooled_query[None], dim=-1))
        spans.append(torch.stack([starts, starts + size], dim=-1).double() * clip_length)
    return torch.cat(spans), torch.cat(scores)


def _stable_hash(text: str) -> int:
    """A process-independent 64-bit hash of ``text`` (Python's ``hash`` is salted per process)."""
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "little")
