"""The on-disk feature store: per-video CLIP features and their manifest (filled by :mod:`matr.features.extract`).

Layout (``FeatureStore(root)``)::

    root/features/<video_id>.npy      float16 (M, 512), written to a temp file then os.replace'd
    root/manifest[-<i>-of-<n>].jsonl  one JSON record per stored video, appended after its array
    root/failures[-<i>-of-<n>].jsonl  one JSON record per video that could not be decoded
    root/settings.json                clip length, backbone, weights tag and feature size of every feature
    root/.lock[-<i>-of-<n>]           held by the one process writing that manifest

Shard ``i`` of ``n`` (``torchrun`` ranks, or ``shard=(i, n)``) takes the videos whose id hashes to
``i`` and writes only its own manifest and failure files; readers merge every manifest.

Faults: one writer per manifest (a second gets :class:`~matr.io.BusyError`); every append checks
``settings.json``, so writers with other weights cannot mix a store; an append first repairs a torn
last line (:func:`matr.io.append_jsonl`), so a crash or full disk at any byte loses at most the
record being written, which was never reported as stored. Each record keeps its source file's size
and modification time: extraction re-extracts a video whose file changed; :meth:`FeatureStore.load`
refuses features whose source file changed since (:class:`StaleFeaturesError`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from matr.choices import declare
from matr.io import WriteError, append_jsonl, atomic_open, exclusive_lock, read_jsonl

logger = logging.getLogger(__name__)

_STORED_DTYPE = declare("stored feature precision", "float16", "halves disk and memory; CLIP features lose nothing")
_SETTINGS = "settings.json"


class StaleFeaturesError(ValueError):
    """Stored features whose source video file changed after they were extracted."""


@dataclass(frozen=True)
class VideoFeatures:
    """CLIP features of a video (or clip): ``features`` ``(M, 512)`` float32, ``timestamps`` ``(M,)`` s.

    ``duration`` is that of the sampled span, ``video_duration`` that of the file; ``weights_tag``
    and ``backbone`` say which encoder produced the features.
    """

    features: np.ndarray
    timestamps: np.ndarray
    duration: float
    video_duration: float
    clip_length: float
    weights_tag: str
    backbone: str
    path: str


class FeatureStore:
    """Per-video CLIP features on disk (layout and fault handling in the module docstring).

    Reads merge every shard's manifest; a record counts only once its array exists. The manifest is
    read once and cached; call :meth:`reload` to see what other processes wrote since.
    """

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        self._records: dict[str, dict] | None = None

    def reload(self) -> None:
        """Forget the cached manifest."""
        self._records = None

    def video_ids(self) -> list[str]:
        """Ids of the stored videos, sorted."""
        return sorted(video_id for video_id in self._manifest() if self.has(video_id))

    def has(self, video_id: str) -> bool:
        """Whether the features of ``video_id`` are stored (manifest record and array)."""
        record = self._manifest().get(video_id)
        return record is not None and (self.root / record["file"]).is_file()

    def info(self, video_id: str) -> dict:
        """The manifest record of ``video_id``: path, duration, num_frames, clip_length, backbone, weights_tag, ..."""
        record = self._manifest().get(video_id)
        if record is None:
            raise KeyError(f"video {video_id!r} is not in the feature store {self.root}")
        return dict(record)

    def stale(self, video_id: str, source: str | os.PathLike | None = None) -> str | None:
        """Why the features of ``video_id`` no longer match ``source`` (default: the file they came from), or ``None``.

        ``None`` too when that cannot be told: the file is gone, or the record predates fingerprints.
        """
        stored = self.info(video_id).get("source")
        if stored is None:
            return None
        path = Path(source if source is not None else stored["path"])
        now = source_fingerprint(path)
        if now is None:
            return None
        if now["size"] != stored["size"]:
            return f"{path} changed since its features were extracted ({stored['size']} -> {now['size']} bytes)"
        if now["mtime_ns"] != stored["mtime_ns"]:
            return f"{path} was modified after its features were extracted"
        return None

    def load(self, video_id: str) -> np.ndarray:
        """Features of ``video_id``: ``(M, 512)`` float16, memory-mapped read-only; refuses stale features."""
        record = self.info(video_id)
        reason = self.stale(video_id)
        if reason is not None:
            raise StaleFeaturesError(
                f"feature store {self.root}: {reason}; its stored features are refused "
                "(rerun 'matr extract' on its folder to re-extract them)"
            )
        array = np.load(self.root / record["file"], mmap_mode="r")
        expected = (record["num_frames"], record["feature_dim"])
        if array.shape != expected or array.dtype != _STORED_DTYPE:
            raise ValueError(
                f"{self.root / record['file']} holds {array.dtype} {array.shape}; "
                f"its manifest record says float16 {expected}"
            )
        return array

    @property
    def weights_tag(self) -> str | None:
        """Weights tag of every stored feature (``None`` for an empty store); see :func:`matr.provenance.is_random_init`."""
        return self._shared("weights_tag")

    @property
    def clip_length(self) -> float | None:
        """Seconds per frame ``c`` of every stored video (``None`` for an empty store)."""
        return self._shared("clip_length")

    def failures(self) -> dict[str, dict]:
        """Failure records (video id -> {path, error, shard}) of videos still not stored."""
        records = _records_by_id(sorted(self.root.glob("failures*.jsonl")))
        return {video_id: record for video_id, record in records.items() if not self.has(video_id)}

    def check_settings(self, **settings: object) -> None:
        """Raise ``ValueError`` if the store was made with other ``settings`` (e.g. ``weights_tag=...``)."""
        stored = self._settings_file()
        if stored is not None:
            _compare(self.root, {key: stored.get(key) for key in settings}, settings, "settings.json")
        for video_id, record in self._manifest().items():
            _compare(self.root, {key: record.get(key) for key in settings}, settings, f"video {video_id!r}")

    @contextlib.contextmanager
    def writer(self, shard: tuple[int, int] = (0, 1)) -> Iterator[FeatureStore]:
        """Hold this shard's writer lock for the block (a second writer gets :class:`~matr.io.BusyError`)."""
        lock = self.root / _shard_file(".lock", shard).removesuffix(".jsonl")
        with exclusive_lock(lock, f"feature store {self.root} (shard {shard[0]}/{shard[1]})"):
            self.reload()
            yield self

    def put(self, video_id: str, features: VideoFeatures, shard: tuple[int, int] = (0, 1)) -> None:
        """Store the features of one video: the array atomically, then its manifest record (hold :meth:`writer`)."""
        check_video_id(video_id)
        settings = _settings_of(features)
        self._claim(settings)
        previous = self._manifest().get(video_id)
        relative = f"features/{video_id}.npy" if previous is None else f"features/{video_id}.{_digest(features)}.npy"
        with atomic_open(self.root / relative) as file:
            np.save(file, features.features.astype(_STORED_DTYPE))
        record = {
            "video_id": video_id,
            "path": features.path,
            "file": relative,
            "duration": features.duration,
            "num_frames": int(features.features.shape[0]),
            "source": source_fingerprint(features.path),
            **settings,
        }
        append_jsonl(self.root / _shard_file("manifest", shard), record)
        self._manifest()[video_id] = record
        if previous is not None and previous["file"] != relative:
            with contextlib.suppress(OSError):
                (self.root / previous["file"]).unlink()

    def record_failure(
        self, video_id: str, path: str | os.PathLike, error: str, shard: tuple[int, int] = (0, 1)
    ) -> None:
        """Note that ``video_id`` could not be processed."""
        record = {"video_id": video_id, "path": str(path), "error": error, "shard": list(shard)}
        append_jsonl(self.root / _shard_file("failures", shard), record)

    def _claim(self, settings: dict) -> None:
        """Check ``settings`` against ``settings.json``, creating it (once, atomically) for a new store."""
        stored = self._settings_file()
        if stored is None:
            self.check_settings(**settings)
            stored = _create_once(self.root / _SETTINGS, settings)
        _compare(self.root, {key: stored.get(key) for key in settings}, settings, "settings.json")

    def _settings_file(self) -> dict | None:
        path = self.root / _SETTINGS
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None

    def _shared(self, key: str):
        values = {record[key] for record in self._manifest().values()}
        if len(values) > 1:
            raise ValueError(f"feature store {self.root} mixes {key} values {sorted(values)}")
        return values.pop() if values else None

    def _manifest(self) -> dict[str, dict]:
        if self._records is None:
            self._records = _records_by_id(sorted(self.root.glob("manifest*.jsonl")))
        return self._records


def source_fingerprint(path: str | os.PathLike) -> dict[str, Any] | None:
    """``{"path": absolute path, "size": bytes, "mtime_ns": ...}`` of a video file, kept with its features (``None``: no file)."""
    try:
        stat = Path(path).stat()
    except OSError:
        return None
    return {"path": str(Path(path).resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def _settings_of(features: VideoFeatures) -> dict:
    return {
        "clip_length": features.clip_length,
        "backbone": features.backbone,
        "weights_tag": features.weights_tag,
        "feature_dim": int(features.features.shape[1]),
    }


def _compare(root: Path, stored: dict, settings: dict, where: str) -> None:
    if stored != settings:
        raise ValueError(
            f"feature store {root} holds features made with {stored} ({where}), "
            f"but this run uses {settings}; use another store directory or the same settings"
        )


def _create_once(path: Path, settings: dict) -> dict:
    """Write ``settings`` to ``path`` unless it exists (atomically: whole or absent); return what ``path`` holds."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(json.dumps(settings, sort_keys=True) + "\n", encoding="utf-8")
        with contextlib.suppress(FileExistsError):
            os.link(tmp, path)
    except OSError as error:
        raise WriteError(path, error) from error
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()
    return json.loads(path.read_text(encoding="utf-8"))


def _digest(features: VideoFeatures) -> str:
    return hashlib.sha1(np.ascontiguousarray(features.features).tobytes()).hexdigest()[:8]


def check_video_id(video_id: str) -> None:
    """Raise ``ValueError`` unless ``video_id`` can name a file of the store."""
    if not video_id or video_id.startswith(".") or any(char in video_id for char in "/\\\0"):
        raise ValueError(f"video id {video_id!r} cannot name a file (empty, leading '.', or a path separator)")


def _shard_file(kind: str, shard: tuple[int, int]) -> str:
    index, count = shard
    return f"{kind}.jsonl" if count == 1 else f"{kind}-{index}-of-{count}.jsonl"


def _records_by_id(paths: list[Path]) -> dict[str, dict]:
    """Records keyed by ``video_id``, a later line winning (a re-extraction); a torn last line is skipped."""
    records: dict[str, dict] = {}
    for path in paths:
        for record in read_jsonl(path, torn_tail=True):
            if not isinstance(record, dict) or "video_id" not in record:
                raise ValueError(f"{path}: expected JSON objects with a 'video_id' field")
            records[record["video_id"]] = record
    return records
