"""Inference on video files: decode and encode with :mod:`matr.features`, then :mod:`matr.inference.windows`.

File-level functions (:func:`localize_videos`, :func:`search_videos`) decode and encode videos
with :mod:`matr.features`; a library of videos is encoded once into a feature store, so a second
search decodes nothing but the query. Features from one CLIP encoder are meaningless to a model
trained on another's: every weights tag is checked against the checkpoint's and the store's.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from matr.checkpoint import load_model
from matr.device import resolve_device
from matr.features import ClipEncoder, FeatureStore, VideoFeatures, extract_features, load_clip_encoder, video_features
from matr.inference.windows import SearchHit, localize_features, search_features
from matr.postprocess import NMS_THRESHOLD, TOP_K, RankedSpan
from matr.provenance import is_random_init

VIDEO_SUFFIXES: tuple[str, ...] = (".mp4", ".mkv", ".avi", ".mov", ".webm", ".m4v", ".mpg", ".mpeg", ".ts")


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


def _inputs_json(query: str, query_window: tuple[float, float] | None, weights_tag: str) -> dict[str, Any]:
    """The query, its window, the weights tag and whether the backbone is random-init, JSON-able."""
    return {
        "query": query,
        "query_window": None if query_window is None else list(query_window),
        "weights_tag": weights_tag,
        "random_init_backbone": is_random_init(weights_tag),
    }


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
            **_inputs_json(self.query, self.query_window, self.weights_tag),
            "target": self.target,
            "target_duration": self.target_duration,
            "clip_length": self.clip_length,
            "query_frames": self.query_frames,
            "target_frames": self.target_frames,
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
            **_inputs_json(self.query, self.query_window, self.weights_tag),
            "feature_store": self.store,
            "videos_searched": self.videos_searched,
            "videos_failed": self.failed,
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
    torch_device = resolve_device(device)
    model, data = load_model(checkpoint, torch_device)
    info = dict(data.get("run") or {})
    trained_tag = info.get("weights_tag")
    default_weights, default_seed = weights_from_tag(trained_tag) if weights is None else (weights, 0)
    if weights == "random" and seed is None and trained_tag is not None and trained_tag.startswith("random-init"):
        default_seed = weights_from_tag(trained_tag)[1]
    encoder = load_clip_encoder(
        default_weights, seed=default_seed if seed is None else seed, device=torch_device, lazy=True
    )
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
    top_k: int = TOP_K,
    nms_threshold: float = NMS_THRESHOLD,
    store: str | os.PathLike | None = None,
) -> Localization:
    """Decode and encode two video files, then rank the moments of ``query`` (or its clip) in ``target``."""
    query_features = video_features(query, encoder, clip_length, start=query_start, end=query_end, store=store)
    target_features = video_features(target, encoder, clip_length, store=store)
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
    nms_threshold: float = NMS_THRESHOLD,
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
