"""ActivityNet-VRL (Feng et al., "Video Re-localization", ECCV 2018): importer and pair list.

The split files (``train.json``, ``val.json``, ``test.json``) are one JSON array each; entry ``i``
(0-based position in the array) is ``{"id", "label", "location": [a, b), "groundtruth": [s, e)}``
in C3D feature indices: ``location`` is a trimmed window of the whole video ``id``,
``groundtruth`` is the action inside it, relative to ``a``. One index covers 16 video frames, so
with ``length.json``'s ``n_frames`` and the video's duration ``D`` (seconds),
``seconds = index * 16 * D / n_frames``.

What the importer needs: the split file, ``length.json`` and, per video, its duration in seconds
(``durations``: e.g. the ``duration`` field of ActivityNet v1.3's ``activity_net.v1-3.min.json``,
see :func:`load_activitynet_durations`, or the feature store's ``info(video)["duration"]``). A
video missing from ``durations`` falls back to ``D = n_frames / fps`` when ``fps`` is given, else
it is an error naming the video. Ends that land past ``D`` (the last feature may cover frames past
the end) are clipped when within :data:`~matr.data.records.WINDOW_TOLERANCE_S`.

A pair: the query is entry ``q``'s action, ``[a_q + s_q, a_q + e_q)`` of video ``q.id`` (trimmed);
the target is entry ``t``'s ``location`` window of video ``t.id`` (``PairRecord.target_window``),
with ``t``'s ``groundtruth`` as the moment, relative to the window's start. The record's
``feature_step`` is the target's seconds per index, so that ``VRL_IoU_mean`` is computed on
integer feature indices as the original code computes it (:mod:`matr.metrics`).

Pair-list recipe (:func:`vrl_pairs`; defaults ``seed=0``, ``pairs_per_query=1``,
``length_rule="location"``). What matches the paper: one query per entry, 829 (val) / 978 (test)
query entries. What is ours: which target each query gets. The original code
(``input_functions.sample``) drew one target per query at run time, uniformly among the entries
of the same label whose location is long enough, without excluding the query's own entry or
video (a TensorFlow op seed of 6 at evaluation), so there is no canonical list; this one is
regenerated bit-for-bit from the split file, the seed and the durations:

1. Entry ``i`` is the ``i``-th element of the split file. Every entry is a query, in index order.
2. The candidates of query ``q`` are the entries ``t`` of the same split file with the same
   ``label``, from a different video (``t.id != q.id``, so never ``q`` itself: a window of the
   same video may contain the query's own frames), that are long enough, in feature indices:
   ``length_rule="location"``: ``t.location`` length ``>= q.groundtruth`` length (the original
   code's rule; every val/test query has a candidate, so every one of the paper's 829 / 978 queries
   gets a pair);
   ``length_rule="groundtruth"``: ``t.groundtruth`` length ``>= q.groundtruth`` length (the
   longest action of a class then has no candidate: 815 val / 962 test pairs).
3. Candidates are ranked by ``sha256(f"{seed}:{split}:{q}:{t}")`` (hex digest, ascending); the
   first ``pairs_per_query`` are kept (all when there are fewer, or when it is ``None``). Queries
   without a candidate are skipped and counted in a log message.
4. Pair ``f"anet-vrl/{split}/{q}->{t}"`` is written in query order, then rank order.

The selection uses indices only, so it does not depend on the durations; the seconds written do.
Sizes with the defaults: train 7,593, val 829, test 978 pairs. With ``pairs_per_query=None`` the
train split has 452,512 pairs, close to the paper's "~463K" training pairs (section 4), which
suggests that MATR trained on all same-class pairs satisfying the location rule.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from matr import choices
from matr.data.records import PairRecord, TimeWindow, clip_to_duration, located

logger = logging.getLogger(__name__)

choices.declare(
    "ActivityNet-VRL target of each query",
    "the first same-label entry of another video, long enough, ranked by sha256(seed:split:query:target)",
    "the original drew a target at run time (without excluding the query's own entry), so no list exists to reuse",
)

FRAMES_PER_FEATURE = 16
"""Video frames covered by one C3D feature index of ActivityNet-VRL."""

LengthRule = Literal["location", "groundtruth"]
LENGTH_RULES: tuple[str, ...] = ("location", "groundtruth")
SPLIT_SIZES: dict[str, int] = {"train": 160, "val": 20, "test": 20}
_KEYS = ("id", "label", "location", "groundtruth")


@dataclass(frozen=True)
class VrlEntry:
    """One validated entry of a split file, with its times converted to seconds."""

    index: int  # position in the split file's array
    video_id: str
    label: int  # ActivityNet taxonomy nodeId
    location: tuple[int, int]  # feature indices [a, b) of the whole video
    groundtruth: tuple[int, int]  # feature indices [s, e) relative to a
    query_window: TimeWindow  # seconds: the action in the whole video
    target_window: TimeWindow  # seconds: the location window in the whole video
    target_groundtruth: TimeWindow  # seconds: the action relative to target_window[0]
    step: float  # seconds per feature index: FRAMES_PER_FEATURE * duration / n_frames

    @property
    def location_length(self) -> int:
        return self.location[1] - self.location[0]

    @property
    def groundtruth_length(self) -> int:
        return self.groundtruth[1] - self.groundtruth[0]


def read_vrl_entries(
    split_path: str | Path,
    length_path: str | Path,
    durations: Mapping[str, float] | None = None,
    fps: float | None = None,
) -> list[VrlEntry]:
    """Read and validate a split file; errors name the file and the entry (0-based).

    ``durations``: video id -> duration (s). ``fps``: fallback frame rate for videos not in
    ``durations`` (duration ``n_frames / fps``). Raises :class:`~matr.data.records.AnnotationError`
    on malformed entries, windows out of range, video ids missing from ``length.json``, videos
    without a duration and duplicate entries (same video, location and groundtruth).
    """
    if fps is not None and not fps > 0:
        raise ValueError(f"fps must be > 0, got {fps}")
    lengths = _read_json(length_path)
    data = _read_json(split_path)
    if not isinstance(data, list):
        raise located(split_path, "top level", f"expected a JSON array of entries, got {type(data).__name__}")
    entries: list[VrlEntry] = []
    first_seen: dict[tuple, int] = {}
    for index, raw in enumerate(data):
        where = f"entry {index}"
        try:
            entry = _entry(index, raw, lengths, durations or {}, fps, length_path)
        except ValueError as error:
            raise located(split_path, where, str(error)) from error
        key = (entry.video_id, entry.location, entry.groundtruth)
        if key in first_seen:
            raise located(
                split_path, where, f"duplicate of entry {first_seen[key]} (same id, location and groundtruth)"
            )
        first_seen[key] = index
        entries.append(entry)
    return entries


def vrl_pairs(
    entries: list[VrlEntry],
    split: str,
    seed: int = 0,
    pairs_per_query: int | None = 1,
    length_rule: LengthRule = "location",
) -> list[PairRecord]:
    """The deterministic pair list of one split (recipe in the module docstring).

    ``pairs_per_query=None`` keeps every candidate.
    """
    if length_rule not in LENGTH_RULES:
        raise ValueError(f"length_rule must be one of {LENGTH_RULES}, got {length_rule!r}")
    if pairs_per_query is not None and pairs_per_query < 1:
        raise ValueError(f"pairs_per_query must be >= 1 or None, got {pairs_per_query}")
    by_label: dict[int, list[VrlEntry]] = defaultdict(list)
    for entry in entries:
        by_label[entry.label].append(entry)
    records: list[PairRecord] = []
    unmatched = 0
    for query in entries:
        candidates = [
            t
            for t in by_label[query.label]
            if t.video_id != query.video_id and _candidate_length(t, length_rule) >= query.groundtruth_length
        ]
        if not candidates:
            unmatched += 1
            continue
        candidates.sort(key=lambda t: _rank_key(seed, split, query.index, t.index))
        records.extend(_pair(query, target, split) for target in candidates[:pairs_per_query])
    if unmatched:
        logger.info(
            "ActivityNet-VRL %s: %d of %d queries have no candidate target (length_rule=%s)",
            split,
            unmatched,
            len(entries),
            length_rule,
        )
    return records


def import_activitynet_vrl(
    split_path: str | Path,
    length_path: str | Path,
    durations: Mapping[str, float] | None = None,
    fps: float | None = None,
    split: str | None = None,
    seed: int = 0,
    pairs_per_query: int | None = 1,
    length_rule: LengthRule = "location",
) -> list[PairRecord]:
    """Read a split file and build its pair list; ``split`` defaults to the file's stem."""
    entries = read_vrl_entries(split_path, length_path, durations, fps)
    return vrl_pairs(entries, split or Path(split_path).stem, seed, pairs_per_query, length_rule)


def load_class_split(perm_path: str | Path) -> dict[str, np.ndarray]:
    """The class split of ``perm.npy``: ``{"train": (160,), "val": (20,), "test": (20,)}``.

    Values index the 200 ActivityNet v1.3 leaf classes sorted by name; the split files' ``label``
    is the taxonomy nodeId, so relating the two needs ActivityNet's taxonomy (not bundled).
    """
    perm = np.load(perm_path)
    if perm.ndim != 1 or sorted(perm.tolist()) != list(range(sum(SPLIT_SIZES.values()))):
        raise located(perm_path, "whole file", f"expected a permutation of 0..199, got shape {perm.shape}")
    bounds = np.cumsum([0, *SPLIT_SIZES.values()])
    return {name: perm[lo:hi] for name, lo, hi in zip(SPLIT_SIZES, bounds[:-1], bounds[1:], strict=True)}


def load_activitynet_durations(metadata_path: str | Path) -> dict[str, float]:
    """``video id -> duration`` from ActivityNet's ``activity_net.v1-3.min.json`` (``database``)."""
    data = _read_json(metadata_path)
    database = data.get("database") if isinstance(data, dict) else None
    if not isinstance(database, dict):
        raise located(metadata_path, "top level", 'expected an object with a "database" object')
    durations = {}
    for video_id, info in database.items():
        duration = info.get("duration") if isinstance(info, dict) else None
        if not isinstance(duration, (int, float)) or isinstance(duration, bool) or not duration > 0:
            raise located(metadata_path, f"video {video_id!r}", f"expected a positive duration, got {duration!r}")
        durations[video_id] = float(duration)
    return durations


def _read_json(path: str | Path) -> Any:
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except json.JSONDecodeError as error:
        raise located(path, f"line {error.lineno} column {error.colno}", f"invalid JSON: {error.msg}") from error


def _entry(
    index: int,
    raw: Any,
    lengths: Mapping[str, Any],
    durations: Mapping[str, float],
    fps: float | None,
    length_path: str | Path,
) -> VrlEntry:
    if not isinstance(raw, dict) or not set(_KEYS) <= set(raw):
        raise ValueError(f"expected an object with keys {list(_KEYS)}, got {raw!r}")
    video_id, label = raw["id"], raw["label"]
    if not isinstance(video_id, str) or not video_id:
        raise ValueError(f"id must be a non-empty string, got {video_id!r}")
    if not _is_int(label):
        raise ValueError(f"label must be an integer, got {label!r}")
    location, groundtruth = _index_pair(raw["location"], "location"), _index_pair(raw["groundtruth"], "groundtruth")
    if video_id not in lengths:
        raise ValueError(f"unknown video id {video_id!r}: not in {Path(length_path).name}")
    n_frames, n_feat = _lengths(lengths[video_id], video_id, length_path)
    if location[1] > n_feat:
        raise ValueError(f"location {list(location)} ends beyond the video's {n_feat} features")
    if groundtruth[1] > location[1] - location[0]:
        raise ValueError(
            f"groundtruth {list(groundtruth)} ends beyond the location window of length {location[1] - location[0]}"
        )
    duration = _duration(video_id, n_frames, durations, fps)
    step = FRAMES_PER_FEATURE * duration / n_frames
    target = clip_to_duration((location[0] * step, location[1] * step), duration, "location")
    query = clip_to_duration(
        ((location[0] + groundtruth[0]) * step, (location[0] + groundtruth[1]) * step), duration, "groundtruth"
    )
    relative = clip_to_duration((groundtruth[0] * step, groundtruth[1] * step), target[1] - target[0], "groundtruth")
    return VrlEntry(index, video_id, int(label), location, groundtruth, query, target, relative, step)


def _index_pair(value: Any, name: str) -> tuple[int, int]:
    if not isinstance(value, list) or len(value) != 2 or not all(_is_int(v) for v in value):
        raise ValueError(f"{name} must be [start, end] feature indices, got {value!r}")
    start, end = value
    if start < 0 or end <= start:
        raise ValueError(f"{name} {value} must satisfy 0 <= start < end (half-open feature indices)")
    return int(start), int(end)


def _lengths(info: Any, video_id: str, length_path: str | Path) -> tuple[int, int]:
    n_frames = info.get("n_frames") if isinstance(info, dict) else None
    n_feat = info.get("n_feat") if isinstance(info, dict) else None
    if not (_is_int(n_frames) and _is_int(n_feat) and n_frames > 0 and n_feat > 0):
        raise ValueError(f"{Path(length_path).name} has no positive n_frames/n_feat for video {video_id!r}: {info!r}")
    return n_frames, n_feat


def _duration(video_id: str, n_frames: int, durations: Mapping[str, float], fps: float | None) -> float:
    if video_id in durations:
        duration = float(durations[video_id])
        if not duration > 0:
            raise ValueError(f"duration of video {video_id!r} must be > 0 s, got {duration}")
        return duration
    if fps is not None:
        return n_frames / fps
    raise ValueError(
        f"no duration for video {video_id!r}: pass durations={{video id: seconds}} "
        "(e.g. load_activitynet_durations) or fps="
    )


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _candidate_length(entry: VrlEntry, rule: LengthRule) -> int:
    return entry.location_length if rule == "location" else entry.groundtruth_length


def _rank_key(seed: int, split: str, query: int, target: int) -> str:
    return hashlib.sha256(f"{seed}:{split}:{query}:{target}".encode()).hexdigest()


def _pair(query: VrlEntry, target: VrlEntry, split: str) -> PairRecord:
    t0, t1 = target.target_window
    return PairRecord(
        pair_id=f"anet-vrl/{split}/{query.index}->{target.index}",
        query_video=query.video_id,
        target_video=target.video_id,
        duration=t1 - t0,
        windows=(target.target_groundtruth,),
        action_class=query.label,
        split=split,
        query_window=query.query_window,
        target_window=target.target_window,
        feature_step=target.step,
    )
