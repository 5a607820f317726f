"""Inference on features of any length: one query against one target, or a library of videos.

MATR sees at most ``max_target_frames`` target frames and ``max_query_frames`` query frames
(:class:`matr.config.ModelConfig`). Longer inputs are handled here, never truncated: a longer
query is resampled to ``max_query_frames`` frames (:func:`matr.data.dataset.resample_frames`, as
in training), and a longer target is read through overlapping windows. Every frame proposes
``[t_i - d_L c, t_i + d_R c]`` scored by sigmoid(fg_logit_i), as :func:`matr.postprocess.rank_frame_spans`
does for one window; proposals are shifted to video time, clipped to the duration and merged by one
NMS over all windows' candidates (:func:`matr.postprocess.nms_1d`, IoU 0.7 as in the paper).

The choices where the paper is silent (it never meets a video longer than its model) are declared
below with :func:`matr.choices.declare`.

File-level functions (decoding, encoding, feature stores of folders) are in :mod:`matr.inference.videos`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import Tensor, nn

from matr import choices
from matr.data.dataset import collate_pairs, make_item, resample_frames
from matr.postprocess import NMS_THRESHOLD, TOP_K, RankedSpan, nms_1d
from matr.prediction import move_to_device
from matr.span_ops import clip_spans, offsets_to_spans

DEFAULT_BATCH_SIZE = 64
choices.declare(
    "inference windows",
    "W = max_target_frames frames at stride W // 2, the last ending at the last frame",
    "the paper never meets a video longer than its model",
)
choices.declare(
    "window owning a frame",
    "the window whose centre is nearest the frame (the earlier on a tie)",
    "each proposal sees >= W / 4 frames of context on both sides; a moment cut by one window's edge is "
    "proposed by the window that sees it whole",
)
choices.declare(
    "search across videos",
    "NMS within each video, then the best moments of all videos sorted by score",
    "a foreground probability is comparable across videos",
)


class Window(NamedTuple):
    """Target frames ``[first, stop)`` seen by the model; frames ``[own_first, own_stop)`` take their proposals here."""

    first: int
    stop: int
    own_first: int
    own_stop: int


class SearchHit(NamedTuple):
    """One moment found by :func:`search_features`: video id, start and end in seconds, score."""

    video_id: str
    start: float
    end: float
    score: float


@dataclass(frozen=True)
class _Job:
    """One window of one video, waiting for the model."""

    video: int
    window: Window
    clip_length: float


def plan_windows(num_frames: int, window: int, stride: int | None = None) -> list[Window]:
    """Overlapping windows covering ``num_frames`` target frames (module docstring).

    ``window``: frames per window (the model's ``max_target_frames``); ``stride`` defaults to
    ``window // 2``. Every frame is owned by exactly one window; a video of at most ``window``
    frames is a single window.
    """
    if num_frames < 1:
        raise ValueError("cannot localize in a target with no frames")
    if window < 1:
        raise ValueError(f"window must be >= 1 frame, got {window}")
    if num_frames <= window:
        return [Window(0, num_frames, 0, num_frames)]
    stride = max(1, window // 2) if stride is None else stride
    if not 1 <= stride <= window:
        raise ValueError(f"stride must be in [1, window={window}], got {stride}")
    starts = list(range(0, num_frames - window + 1, stride))
    if starts[-1] + window < num_frames:
        starts.append(num_frames - window)
    centres = np.asarray(starts, dtype=np.float64) + window / 2
    frame_centres = np.arange(num_frames, dtype=np.float64) + 0.5
    owner = np.argmin(np.abs(frame_centres[:, None] - centres[None, :]), axis=1)  # first index on ties
    windows = []
    for k, start in enumerate(starts):
        owned = np.flatnonzero(owner == k)
        if owned.size:  # a window owning no frame (a small stride) would only cost time
            windows.append(Window(start, start + window, int(owned[0]), int(owned[-1]) + 1))
    return windows


def prepare_query(query: np.ndarray | Tensor, max_query_frames: int) -> np.ndarray:
    """Query features ``(N, d)`` as float32, resampled to ``max_query_frames`` frames when longer."""
    query = np.asarray(query.detach().cpu() if isinstance(query, Tensor) else query, dtype=np.float32)
    if query.ndim != 2 or len(query) == 0:
        raise ValueError(f"query features must be (N, d) with N >= 1, got shape {query.shape}")
    return resample_frames(query, max_query_frames) if len(query) > max_query_frames else query


def localize_features(
    model: nn.Module,
    query: np.ndarray | Tensor,
    target: np.ndarray | Tensor,
    clip_length: float = 2.0,
    duration: float | None = None,
    top_k: int = TOP_K,
    nms_threshold: float = NMS_THRESHOLD,
    *,
    stride: int | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> list[RankedSpan]:
    """Ranked moments (seconds, best first) of ``query (N, d)`` in ``target (M, d)``.

    ``duration``: the target's length in seconds (default ``M * clip_length``). Targets longer than
    the model's ``max_target_frames`` go through overlapping windows (module docstring).
    """
    hits = search_features(
        model,
        query,
        {"target": target},
        clip_length=clip_length,
        top_k=top_k,
        per_video=top_k,
        nms_threshold=nms_threshold,
        stride=stride,
        batch_size=batch_size,
        durations=None if duration is None else {"target": float(duration)},
    )
    return [RankedSpan(hit.start, hit.end, hit.score) for hit in hits]


def search_features(
    model: nn.Module,
    query: np.ndarray | Tensor,
    library: Any,
    *,
    clip_length: float | None = None,
    top_k: int = 10,
    per_video: int = 3,
    nms_threshold: float = NMS_THRESHOLD,
    video_ids: Sequence[str] | None = None,
    durations: Mapping[str, float] | None = None,
    stride: int | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> list[SearchHit]:
    """The ``top_k`` best moments of ``query (N, d)`` across every video of ``library``.

    ``library``: a :class:`matr.features.FeatureStore` (clip length and duration of every video come
    from its manifest; arrays are memory-mapped and read window by window) or a mapping
    ``video id -> (M, d) features`` (then ``clip_length`` is needed and durations default to
    ``M * clip_length``). ``video_ids`` restricts the search. Each video contributes at most
    ``per_video`` moments (after NMS within the video). Windows of different videos share batches
    of ``batch_size``, grouped by length so that little of a batch is padding.
    """
    if top_k < 1 or per_video < 1:
        raise ValueError(f"top_k and per_video must be >= 1, got {top_k} and {per_video}")
    config = _model_config(model)
    query = prepare_query(query, config.max_query_frames)
    ids = list(video_ids) if video_ids is not None else _library_ids(library)
    if not ids:
        raise ValueError("the video library is empty: there is nothing to search")
    features = [_features(library, video_id) for video_id in ids]
    clips = [_clip_length(library, video_id, clip_length) for video_id in ids]
    jobs = sorted(
        (
            _Job(v, w, clips[v])
            for v, f in enumerate(features)
            for w in plan_windows(len(f), config.max_target_frames, stride)
        ),
        key=lambda job: (job.clip_length, job.window.stop - job.window.first),
    )  # batches of similar lengths: little padding
    candidates: list[dict[int, tuple[Tensor, Tensor]]] = [{} for _ in ids]
    for job, found in zip(jobs, _run_windows(model, query, features, jobs, batch_size), strict=True):
        candidates[job.video][job.window.first] = found
    hits = []
    for v, video_id in enumerate(ids):
        duration = _duration(library, video_id, len(features[v]), clips[v], durations)
        found = [candidates[v][first] for first in sorted(candidates[v])]  # in video order, however batched
        spans = clip_spans(torch.cat([s for s, _ in found]), duration)
        scores = torch.cat([p for _, p in found])
        keep = nms_1d(spans, scores, nms_threshold, max_keep=per_video)
        hits += [
            SearchHit(video_id, float(s), float(e), float(p))
            for (s, e), p in zip(spans[keep].tolist(), scores[keep].tolist(), strict=True)
        ]
    hits.sort(key=lambda hit: (-hit.score, hit.video_id, hit.start))
    return hits[:top_k]


def _run_windows(
    model: nn.Module, query: np.ndarray, features: Sequence[np.ndarray], jobs: Sequence[_Job], batch_size: int
) -> Iterator[tuple[Tensor, Tensor]]:
    """For every job, in order: the owned frames' spans ``(K, 2)`` in video seconds and scores ``(K,)``."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        for chunk in _chunks(jobs, batch_size):
            if len({job.clip_length for job in chunk}) > 1:
                raise ValueError("videos searched together must share one clip length")
            items = [
                make_item(
                    f"window-{i}",
                    query,
                    features[job.video][job.window.first : job.window.stop],
                    None,
                    (job.window.stop - job.window.first) * job.clip_length,
                    job.window.first * job.clip_length,
                    job.clip_length,
                )
                for i, job in enumerate(chunk)
            ]
            with torch.inference_mode(), torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda"):
                outputs = model(move_to_device(collate_pairs(items), device), heads_only=True)
            fg, offsets = outputs["fg_logits"].float().cpu(), outputs["offsets"].float().cpu()
            for b, job in enumerate(chunk):
                yield _owned_candidates(fg[b], offsets[b], job)
    finally:
        model.train(was_training)


def _owned_candidates(fg_logits: Tensor, offsets: Tensor, job: _Job) -> tuple[Tensor, Tensor]:
    """Spans (video seconds) and scores of the frames ``job``'s window owns."""
    window = job.window
    local = slice(window.own_first - window.first, window.own_stop - window.first)
    spans = offsets_to_spans(offsets[: window.stop - window.first], job.clip_length)[local]
    return spans + window.first * job.clip_length, torch.sigmoid(fg_logits[local])


def _chunks(items: Sequence[_Job], size: int) -> Iterator[Sequence[_Job]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _model_config(model: nn.Module) -> Any:
    config = getattr(model, "config", None)
    if config is None or not hasattr(config, "max_target_frames"):
        raise TypeError("model must carry a ModelConfig as .config (max_target_frames, max_query_frames)")
    return config


def _library_ids(library: Any) -> list[str]:
    if isinstance(library, Mapping):
        return list(library)
    return list(library.video_ids())


def _features(library: Any, video_id: str) -> np.ndarray:
    """``(M, d)`` features of a video, as stored (a memory map for a feature store)."""
    features = library[video_id] if isinstance(library, Mapping) else library.load(video_id)
    if isinstance(features, Tensor):
        features = features.detach().cpu().numpy()
    if features.ndim != 2 or len(features) == 0:
        raise ValueError(f"features of video {video_id!r} must be (M, d) with M >= 1, got shape {features.shape}")
    return features


def _clip_length(library: Any, video_id: str, clip_length: float | None) -> float:
    if isinstance(library, Mapping):
        if clip_length is None:
            raise ValueError("clip_length is needed when the library is a mapping of features")
        return float(clip_length)
    stored = float(library.info(video_id)["clip_length"])
    if clip_length is not None and abs(stored - clip_length) > 1e-9:
        raise ValueError(f"video {video_id!r} was stored with clip length {stored:g} s, not {clip_length:g} s")
    return stored


def _duration(
    library: Any, video_id: str, num_frames: int, clip_length: float, durations: Mapping[str, float] | None
) -> float:
    if durations is not None and video_id in durations:
        return float(durations[video_id])
    if not isinstance(library, Mapping):
        return float(library.info(video_id)["duration"])
    return num_frames * clip_length
