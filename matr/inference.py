"""Inference on features of any length, and on video files: one query against one target, or a library.

MATR sees at most ``max_target_frames`` target frames and ``max_query_frames`` query frames
(:class:`matr.config.ModelConfig`). Longer inputs are handled here, never truncated: a longer
query is resampled to ``max_query_frames`` frames (:func:`matr.data.dataset.resample_frames`, as
in training), and a longer target is read through overlapping windows. Every frame proposes
``[t_i - d_L c, t_i + d_R c]`` scored by sigmoid(fg_logit_i), as :func:`matr.postprocess.rank_frame_spans`
does for one window; proposals are shifted to video time, clipped to the duration and merged by one
NMS over all windows' candidates (:func:`matr.postprocess.nms_1d`, IoU 0.7 as in the paper).

Choices where the paper is silent (it never meets a video longer than its model):

* Windows of ``W = max_target_frames`` frames at a stride of ``W // 2``; the last window ends at the last frame.
* Every frame's proposal comes from the window in which the frame sits most centrally (nearest
  window centre, the earlier window on a tie). Each proposal is thus made with at least ``W / 4``
  frames of context on both sides (except at the video's ends), and a moment cut by one window's
  edge is proposed by the window that sees it whole.
* Search across videos: NMS within each video, then the best moments of all videos sorted by score
  (a foreground probability, comparable across videos).

File-level functions (:func:`localize_videos`, :func:`search_videos`) decode and encode videos
with :mod:`matr.features`; a library of videos is encoded once into a feature store, so a second
search decodes nothing but the query. Features from one CLIP encoder are meaningless to a model
trained on another's: every weights tag is checked against the checkpoint's and the store's.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import Tensor, nn

from matr.checkpoint import load_model
from matr.data.dataset import collate_pairs, make_item, resample_frames
from matr.evaluate import move_to_device
from matr.features import ClipEncoder, FeatureStore, VideoFeatures, extract_features, load_clip_encoder, video_features
from matr.postprocess import RankedSpan, nms_1d
from matr.provenance import is_random_init
from matr.span_ops import clip_spans, offsets_to_spans

DEFAULT_BATCH_SIZE = 16
VIDEO_SUFFIXES: tuple[str, ...] = (".mp4", ".mkv", ".avi", ".mov", ".webm", ".m4v", ".mpg", ".mpeg", ".ts")


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
    top_k: int = 5,
    nms_threshold: float = 0.7,
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
    nms_threshold: float = 0.7,
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
    of ``batch_size``.
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
    jobs = [
        _Job(v, w, clips[v])
        for v, f in enumerate(features)
        for w in plan_windows(len(f), config.max_target_frames, stride)
    ]
    candidates: list[list[tuple[Tensor, Tensor]]] = [[] for _ in ids]
    for job, found in zip(jobs, _run_windows(model, query, features, jobs, batch_size), strict=True):
        candidates[job.video].append(found)
    hits = []
    for v, video_id in enumerate(ids):
        duration = _duration(library, video_id, len(features[v]), clips[v], durations)
        spans = clip_spans(torch.cat([s for s, _ in candidates[v]]), duration)
        scores = torch.cat([p for _, p in candidates[v]])
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
            with torch.no_grad():
                outputs = model(move_to_device(collate_pairs(items), device))
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


def find_videos(folder: str | os.PathLike) -> dict[str, Path]:
    """Video files under ``folder`` (recursively, skipping hidden folders), keyed by file stem."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"video folder {folder} does not exist")
    videos: dict[str, Path] = {}
    for path in sorted(_walk(folder)):
        if path.suffix.lower() in VIDEO_SUFFIXES:
            if path.stem in videos:
                raise ValueError(
                    f"{path} and {videos[path.stem]} share the file stem {path.stem!r}, "
                    "which must be unique (it is the video id)"
                )
            videos[path.stem] = path
    if not videos:
        raise ValueError(f"no video files ({', '.join(VIDEO_SUFFIXES)}) found under {folder}")
    return videos


def _walk(folder: Path) -> Iterable[Path]:
    for entry in folder.iterdir():
        if entry.name.startswith("."):
            continue
        if entry.is_dir():
            yield from _walk(entry)
        elif entry.is_file():
            yield entry


# --- Video files --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Localization:
    """What :func:`localize_videos` found: ranked ``moments`` (seconds) of the query in the target."""

    query: str
    target: str
    query_window: tuple[float, float] | None
    query_frames: int
    target_frames: int
    target_duration: float
    clip_length: float
    weights_tag: str
    moments: list[RankedSpan]

    def to_json(self) -> dict[str, Any]:
        """A JSON-able dict: inputs, weights tag, whether the backbone is random-init, ranked moments."""
        return {
            "query": self.query,
            "query_window": None if self.query_window is None else list(self.query_window),
            "target": self.target,
            "target_duration": self.target_duration,
            "clip_length": self.clip_length,
            "query_frames": self.query_frames,
            "target_frames": self.target_frames,
            "weights_tag": self.weights_tag,
            "random_init_backbone": is_random_init(self.weights_tag),
            "moments": [
                {"rank": rank, "start": m.start, "end": m.end, "score": m.score}
                for rank, m in enumerate(self.moments, start=1)
            ],
        }


@dataclass(frozen=True)
class SearchResult:
    """What :func:`search_videos` found: ``hits`` ranked across the library's videos."""

    query: str
    query_window: tuple[float, float] | None
    store: str
    videos_searched: int
    weights_tag: str
    hits: list[SearchHit]
    failed: dict[str, str]

    def to_json(self) -> dict[str, Any]:
        """A JSON-able dict: inputs, weights tag, whether the backbone is random-init, ranked moments."""
        return {
            "query": self.query,
            "query_window": None if self.query_window is None else list(self.query_window),
            "feature_store": self.store,
            "videos_searched": self.videos_searched,
            "videos_failed": self.failed,
            "weights_tag": self.weights_tag,
            "random_init_backbone": is_random_init(self.weights_tag),
            "moments": [
                {"rank": rank, "video_id": h.video_id, "start": h.start, "end": h.end, "score": h.score}
                for rank, h in enumerate(self.hits, start=1)
            ],
        }


def weights_from_tag(tag: str | None) -> tuple[str, int]:
    """``(weights, seed)`` for :func:`matr.features.load_clip_encoder` that reproduce a weights tag."""
    if tag is None or tag == "openai":
        return "openai", 0
    match = re.fullmatch(r"random-init\(seed=(-?\d+)\)", tag)
    if match:
        return "random", int(match.group(1))
    raise ValueError(
        f"the features were made with weights {tag!r} (a local checkpoint file): pass that file as --weights PATH"
    )


def check_weights_tag(encoder_tag: str, expected: str | None, what: str) -> None:
    """Raise ``ValueError`` unless features of ``encoder_tag`` fit ``what``, made with ``expected``."""
    if expected is not None and encoder_tag != expected:
        raise ValueError(
            f"{what} uses CLIP features with weights {expected!r}, but the query encoder has "
            f"{encoder_tag!r}; features of different weights cannot be compared (use --weights to "
            "pick the same weights)"
        )


def load_for_inference(
    checkpoint: str | os.PathLike, *, weights: str | None = None, seed: int | None = None, device: str | None = None
) -> tuple[nn.Module, ClipEncoder, dict[str, Any]]:
    """The model of ``checkpoint`` and a CLIP encoder whose weights match the checkpoint's training features.

    ``weights`` defaults to those the checkpoint was trained on (its ``run`` record); a random-init
    encoder takes its seed from that record unless ``seed`` is given. Returns the checkpoint's run
    record too (``weights_tag``, ``clip_length``, ...).
    """
    torch_device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    model, data = load_model(checkpoint, torch_device)
    info = dict(data.get("run") or {})
    trained_tag = info.get("weights_tag")
    default_weights, default_seed = weights_from_tag(trained_tag) if weights is None else (weights, 0)
    if weights == "random" and seed is None and trained_tag is not None and trained_tag.startswith("random-init"):
        default_seed = weights_from_tag(trained_tag)[1]
    encoder = load_clip_encoder(default_weights, seed=default_seed if seed is None else seed, device=torch_device)
    check_weights_tag(encoder.weights_tag, trained_tag, f"checkpoint {checkpoint}")
    return model, encoder, info


def localize_videos(
    model: nn.Module,
    encoder: ClipEncoder,
    query: str | os.PathLike,
    target: str | os.PathLike,
    *,
    clip_length: float = 2.0,
    query_start: float | None = None,
    query_end: float | None = None,
    top_k: int = 5,
    nms_threshold: float = 0.7,
) -> Localization:
    """Decode and encode two video files, then rank the moments of ``query`` (or its clip) in ``target``."""
    query_features = video_features(query, encoder, clip_length, start=query_start, end=query_end)
    target_features = video_features(target, encoder, clip_length)
    moments = localize_features(
        model,
        query_features.features,
        target_features.features,
        clip_length,
        target_features.duration,
        top_k,
        nms_threshold,
    )
    return Localization(
        str(query),
        str(target),
        _window(query_start, query_end, query_features),
        len(query_features.features),
        len(target_features.features),
        target_features.duration,
        clip_length,
        encoder.weights_tag,
        moments,
    )


def is_feature_store(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a feature store folder (it holds a ``manifest*.jsonl``)."""
    return Path(path).is_dir() and any(Path(path).glob("manifest*.jsonl"))


def library_store(path: str | os.PathLike, store: str | os.PathLike | None = None) -> Path:
    """Where the features of a library live: ``path`` if it is a store, else ``store`` or ``path/.matr-features``."""
    path = Path(path)
    return path if is_feature_store(path) else Path(store) if store is not None else path / ".matr-features"


def open_library(
    path: str | os.PathLike,
    encoder: ClipEncoder,
    *,
    store: str | os.PathLike | None = None,
    clip_length: float = 2.0,
    progress: bool = False,
) -> tuple[FeatureStore, dict[str, str]]:
    """The feature store of a library: ``path`` itself if it is a store, else the store of the videos under ``path``.

    A folder of videos is encoded into ``store`` (default ``path/.matr-features``); videos already
    stored are skipped, so only new videos are decoded. Returns the store and the videos that could
    not be decoded. The store's weights tag must be the encoder's.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"video library {path} does not exist")
    root = library_store(path, store)
    features = FeatureStore(root)
    check_weights_tag(encoder.weights_tag, features.weights_tag, f"feature store {root}")
    failed: dict[str, str] = {}
    if root != path:
        failed = extract_features(
            find_videos(path), features, encoder, clip_length, shard=(0, 1), progress=progress
        ).failed
    if not features.video_ids():
        raise ValueError(f"feature store {root} holds no features")
    return features, failed


def search_videos(
    model: nn.Module,
    encoder: ClipEncoder,
    query: str | os.PathLike,
    library: str | os.PathLike,
    *,
    store: str | os.PathLike | None = None,
    clip_length: float = 2.0,
    query_start: float | None = None,
    query_end: float | None = None,
    top_k: int = 10,
    per_video: int = 3,
    nms_threshold: float = 0.7,
    progress: bool = False,
) -> SearchResult:
    """Rank the moments of a query video across a library (a folder of videos or a feature store)."""
    features, failed = open_library(library, encoder, store=store, clip_length=clip_length, progress=progress)
    if features.clip_length != clip_length:
        raise ValueError(
            f"feature store {features.root} samples a frame every {features.clip_length:g} s, but the "
            f"model was trained with {clip_length:g} s"
        )
    query_features = video_features(query, encoder, clip_length, start=query_start, end=query_end)
    hits = search_features(
        model, query_features.features, features, top_k=top_k, per_video=per_video, nms_threshold=nms_threshold
    )
    return SearchResult(
        str(query),
        _window(query_start, query_end, query_features),
        str(features.root),
        len(features.video_ids()),
        encoder.weights_tag,
        hits,
        failed,
    )


def _window(start: float | None, end: float | None, features: VideoFeatures) -> tuple[float, float] | None:
    if start is None and end is None:
        return None
    first = start or 0.0
    return first, first + features.duration
