"""Extraction: decode and encode videos into a :class:`~matr.features.store.FeatureStore`, sharded and resumable.

Shard ``i`` of ``n`` (``torchrun`` ranks, or ``shard=(i, n)``) takes the videos whose id hashes to
``i``; videos already stored are skipped unless their file changed since (then re-extracted), and a
run that needs nothing never takes the store's writer lock.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from matr.features.clip import ClipEncoder, encode_frames
from matr.features.store import FeatureStore, VideoFeatures, check_video_id
from matr.features.video import VideoDecodeError, clip_bounds, iter_frames, probe_video, sample_times

logger = logging.getLogger(__name__)


def video_features(
    path: str | os.PathLike,
    encoder: ClipEncoder,
    clip_length: float = 2.0,
    start: float | None = None,
    end: float | None = None,
    batch_size: int = 64,
    *,
    store: FeatureStore | str | os.PathLike | None = None,
) -> VideoFeatures:
    """Decode one frame per ``clip_length`` window of a video (or of its clip ``[start, end]``) and encode it.

    Frames stream through the encoder ``batch_size`` at a time, so long videos need little memory.
    Raises :class:`~matr.features.video.VideoDecodeError` for unreadable files. With a ``store``, a
    whole video is served from it when it holds fresh features of this encoder, and extracted into
    it otherwise (a lazy encoder is then never built for a cached video); ``timestamps`` are then
    the sample times (the store keeps no frame times).
    """
    if store is not None and start is None and end is None:
        return _cached_features(path, encoder, clip_length, batch_size, store)
    info = probe_video(path)
    clip_start, clip_duration = clip_bounds(info, start or 0.0, end)
    timestamps: list[float] = []

    def frames() -> Iterator[np.ndarray]:
        for timestamp, frame in iter_frames(info, clip_length, start=clip_start, end=end):
            timestamps.append(timestamp)
            yield frame

    features = encode_frames(encoder, frames(), batch_size)
    return VideoFeatures(
        features=features,
        timestamps=np.asarray(timestamps, dtype=np.float64),
        duration=clip_duration,
        video_duration=info.duration,
        clip_length=float(clip_length),
        weights_tag=encoder.weights_tag,
        backbone=encoder.backbone,
        path=str(path),
    )


def cache_id(path: str | os.PathLike) -> str:
    """Id of a single video file cached in a store: its stem and a hash of its absolute path."""
    path = Path(path)
    return f"{path.stem}-{hashlib.sha1(str(path.resolve()).encode('utf-8')).hexdigest()[:8]}"


def _cached_features(
    path: str | os.PathLike,
    encoder: ClipEncoder,
    clip_length: float,
    batch_size: int,
    store: FeatureStore | str | os.PathLike,
) -> VideoFeatures:
    store = store if isinstance(store, FeatureStore) else FeatureStore(store)
    store.check_settings(**_settings_of_encoder(encoder, clip_length))
    video_id = cache_id(path)
    if not store.has(video_id) or store.stale(video_id, path) is not None:
        with store.writer():  # then read back, so that the first call gives what every later call gives
            store.put(video_id, video_features(path, encoder, clip_length, batch_size=batch_size))
    record = store.info(video_id)
    return VideoFeatures(
        features=np.asarray(store.load(video_id), dtype=np.float32),
        timestamps=sample_times(record["duration"], clip_length),
        duration=record["duration"],
        video_duration=record["duration"],
        clip_length=float(clip_length),
        weights_tag=encoder.weights_tag,
        backbone=encoder.backbone,
        path=str(path),
    )


@dataclass
class ExtractionReport:
    """What one :func:`extract_features` run did: ids extracted, re-extracted (source changed), already stored, failed."""

    store: str
    shard: tuple[int, int]
    weights_tag: str
    extracted: list[str] = field(default_factory=list)
    refreshed: dict[str, str] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)

    @property
    def complete(self) -> bool:
        """Whether every video of this shard is now stored."""
        return not self.failed


def resolve_shard(shard: tuple[int, int] | None = None) -> tuple[int, int]:
    """``(i, n)``: ``shard`` itself, else ``torchrun``'s ``RANK``/``WORLD_SIZE``, else ``(0, 1)``."""
    if shard is None:
        if "WORLD_SIZE" not in os.environ:
            return 0, 1
        try:
            shard = int(os.environ.get("RANK", "0")), int(os.environ["WORLD_SIZE"])
        except ValueError as error:
            raise ValueError(f"RANK/WORLD_SIZE must be integers: {error}") from error
    index, count = shard
    if not 0 <= index < count:
        raise ValueError(f"shard must be (i, n) with 0 <= i < n, got {shard}")
    return int(index), int(count)


def shard_of(video_id: str, num_shards: int) -> int:
    """The shard (``0 .. num_shards - 1``) that owns ``video_id``: a stable hash of the id."""
    return int.from_bytes(hashlib.sha1(video_id.encode("utf-8")).digest()[:8], "big") % num_shards


def extract_features(
    videos: Mapping[str, str | os.PathLike] | Sequence[str | os.PathLike],
    store: FeatureStore | str | os.PathLike,
    encoder: ClipEncoder,
    clip_length: float = 2.0,
    *,
    shard: tuple[int, int] | None = None,
    batch_size: int = 64,
    progress: bool = True,
) -> ExtractionReport:
    """Extract CLIP features of every video of this shard into ``store``, resuming where it stopped.

    ``videos`` maps video ids to files (a list of files uses their stems as ids). Videos already in
    the store are skipped unless their file changed since (then re-extracted, listed in
    ``refreshed``); a store made with another clip length, backbone or weights tag is an error, and
    so is a second writer of the same shard. A file that cannot be decoded is recorded (report and
    failures file) and skipped; any other exception stops the run, and rerunning resumes it.
    """
    store = store if isinstance(store, FeatureStore) else FeatureStore(store)
    store.reload()
    shard = resolve_shard(shard)
    store.check_settings(**_settings_of_encoder(encoder, clip_length))
    mine = {video_id: path for video_id, path in _video_map(videos).items() if shard_of(video_id, shard[1]) == shard[0]}
    report = ExtractionReport(store=str(store.root), shard=shard, weights_tag=encoder.weights_tag)
    if _pending(store, mine):  # a store that needs nothing is never locked, so a read-only one serves reads
        with store.writer(shard):
            _extract_pending(store, mine, encoder, clip_length, shard, batch_size, progress, report)
    report.skipped = [
        video_id for video_id in mine if video_id not in report.extracted and video_id not in report.failed
    ]
    logger.info(
        "feature store %s, shard %d/%d: %d extracted (%d re-extracted), %d already stored, %d failed",
        store.root,
        shard[0] + 1,
        shard[1],
        len(report.extracted),
        len(report.refreshed),
        len(report.skipped),
        len(report.failed),
    )
    for video_id, error in report.failed.items():
        logger.warning("failed %s: %s", video_id, error)
    return report


def _pending(store: FeatureStore, videos: dict[str, Path]) -> dict[str, str | None]:
    """The videos that need extracting: id -> why its stored features are stale (``None``: not stored yet)."""
    pending: dict[str, str | None] = {}
    for video_id, path in videos.items():
        reason = store.stale(video_id, path) if store.has(video_id) else None
        if reason is not None or not store.has(video_id):
            pending[video_id] = reason
    return pending


def _extract_pending(
    store: FeatureStore,
    videos: dict[str, Path],
    encoder: ClipEncoder,
    clip_length: float,
    shard: tuple[int, int],
    batch_size: int,
    progress: bool,
    report: ExtractionReport,
) -> None:
    """Extract what :func:`_pending` lists (the caller holds the shard's writer lock), filling ``report``."""
    pending = _pending(store, videos)
    bar = tqdm(pending.items(), desc=f"CLIP features {shard[0] + 1}/{shard[1]}", unit="video", disable=not progress)
    for video_id, reason in bar:
        try:
            features = video_features(videos[video_id], encoder, clip_length, batch_size=batch_size)
        except VideoDecodeError as error:
            report.failed[video_id] = str(error)
            store.record_failure(video_id, videos[video_id], str(error), shard)
            bar.set_postfix(failed=len(report.failed))
            continue
        store.put(video_id, features, shard)
        report.extracted.append(video_id)
        if reason is not None:
            report.refreshed[video_id] = reason
            logger.warning("re-extracted %s: %s", video_id, reason)


def _settings_of_encoder(encoder: ClipEncoder, clip_length: float) -> dict:
    return {
        "clip_length": float(clip_length),
        "backbone": encoder.backbone,
        "weights_tag": encoder.weights_tag,
        "feature_dim": encoder.feature_dim,
    }


def _video_map(videos: Mapping[str, str | os.PathLike] | Sequence[str | os.PathLike]) -> dict[str, Path]:
    """Video id -> path; a sequence of paths is keyed by file stem, which must then be unique."""
    if isinstance(videos, Mapping):
        mapping = {str(video_id): Path(path) for video_id, path in videos.items()}
    else:
        paths = [Path(path) for path in videos]
        mapping = {path.stem: path for path in paths}
        if len(mapping) != len(paths):
            stems = [path.stem for path in paths]
            duplicates = sorted({stem for stem in stems if stems.count(stem) > 1})
            raise ValueError(f"video file stems must be unique to serve as ids; repeated: {duplicates}")
    for video_id in mapping:
        check_video_id(video_id)
    return mapping
