"""The one internal record of a query-target pair, and its JSON-lines file format.

Every importer (ActivityNet-VRL, SportsMoments, a folder of the user's own videos, the demo
dataset) produces :class:`PairRecord` objects; datasets, training and evaluation consume them.

Times are seconds. A record's ground-truth ``windows`` are relative to the start of the *target
clip*: the whole target video when ``target_window`` is ``None``, else the sub-window
``target_window = (t0, t1)`` of the target video (then ``duration == t1 - t0``).

File format (``save_pairs`` / ``load_pairs``): one JSON object per line, keys sorted, every field
present (``null`` when absent), times rounded to :data:`DECIMALS` decimal places (1 µs) and
written in Python's shortest round-trip form, ASCII only, ``\\n`` line ends. Records round their
times on construction, so ``load_pairs(save_pairs(records))`` returns equal records and saving
the same records twice gives identical bytes. ``feature_step`` is kept unrounded (it converts
times back to feature indices); files written before it existed lack the key and read as ``null``.

Annotations are checked against the videos they name: given the feature store's durations
(``durations``: video id -> seconds), every reader (and :func:`check_against_store` for records
already read) reports a record whose duration or windows contradict its videos, with the same
tolerance as the importers (:data:`WINDOW_TOLERANCE_S`). :func:`evaluation_inputs` gives what
:func:`matr.metrics.evaluate` needs and refuses records without ground truth.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from matr import choices
from matr.io import write_text

logger = logging.getLogger(__name__)

DECIMALS = 6
"""Decimal places (seconds) kept in every time of a record."""

WINDOW_TOLERANCE_S = choices.declare(
    "tolerance of annotation windows and durations (s)",
    1.0,
    "annotation tools and index conversions overrun a video's end by a fraction of a second; more is an error",
)
"""How far (seconds) an imported window may reach past its video's end before it is an error.

Annotation tools and frame/feature-index conversions place ends a fraction of a second past the
duration (ActivityNet-VRL's last C3D feature covers up to 16 frames beyond the last full one).
Importers clip such ends to the duration; anything further out is reported as an error.
"""

_EPS = 10.0 ** -(DECIMALS - 1)
TimeWindow = tuple[float, float]  # (start, end) in seconds


class AnnotationError(ValueError):
    """An annotation file is malformed; the message names the file and the line, row or entry."""


def located(path: str | Path, where: str, message: str) -> AnnotationError:
    """An :class:`AnnotationError` reading ``"{path}, {where}: {message}"``."""
    return AnnotationError(f"{path}, {where}: {message}")


def round_time(value: float) -> float:
    """``value`` rounded to :data:`DECIMALS` places, as a float (never ``-0.0``)."""
    return round(float(value), DECIMALS) + 0.0


def clip_to_duration(window: Sequence[float], duration: float, what: str = "window") -> TimeWindow:
    """Validate ``window = (start, end)`` against ``[0, duration]`` and clip a small overrun.

    Raises ``ValueError`` when the end is before the start, the start is negative, or the end lies
    more than :data:`WINDOW_TOLERANCE_S` past ``duration``; an end within the tolerance is clipped
    to ``duration`` (and the start with it).
    """
    start, end = float(window[0]), float(window[1])
    if not end >= start:
        raise ValueError(f"{what} end {end:g} is before its start {start:g}")
    if start < 0:
        raise ValueError(f"{what} start {start:g} is negative")
    if end > duration + WINDOW_TOLERANCE_S:
        raise ValueError(
            f"{what} end {end:g} s is beyond the duration {duration:g} s (tolerance {WINDOW_TOLERANCE_S:g} s)"
        )
    return min(start, duration), min(end, duration)


@dataclass(frozen=True)
class PairRecord:
    """One query-target pair.

    ``pair_id``: unique within a pair list (everything downstream keys by it, never by video id).
    ``query_video`` / ``query_window``: the query is ``query_window = (start, end)`` seconds of
    that video, or the whole video when ``None``.
    ``target_video`` / ``target_window``: the target clip is ``(t0, t1)`` seconds of that video,
    or the whole video when ``None``. ``duration``: the target clip's length in seconds.
    ``windows``: ground-truth moments ``((start, end), ...)`` relative to the target clip start;
    empty when unknown (inference on the user's own videos).
    ``action_class``: class name or id (``None`` when unknown). ``split``: ``train``/``val``/...
    ``feature_step``: seconds per index of the feature grid the annotation was made on
    (ActivityNet-VRL: one C3D feature, 16 frames), ``None`` for annotations in seconds;
    :mod:`matr.metrics` computes ``VRL_IoU_mean`` on that grid, as the original code does.
    """

    pair_id: str
    query_video: str
    target_video: str
    duration: float
    windows: tuple[TimeWindow, ...]
    action_class: str | int | None
    split: str
    query_window: TimeWindow | None = None
    target_window: TimeWindow | None = None
    feature_step: float | None = None

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "duration", round_time(self.duration))
        set_(self, "windows", tuple(_window(w) for w in self.windows))
        if self.query_window is not None:
            set_(self, "query_window", _window(self.query_window))
        if self.target_window is not None:
            set_(self, "target_window", _window(self.target_window))
        if self.feature_step is not None:
            set_(self, "feature_step", float(self.feature_step))
        self._validate()

    def _validate(self) -> None:
        for name in ("pair_id", "query_video", "target_video", "split"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value:
                raise ValueError(f"{name} must be a non-empty string, got {value!r}")
        if isinstance(self.action_class, bool) or not isinstance(self.action_class, (str, int, type(None))):
            raise ValueError(f"action_class must be a str, an int or None, got {self.action_class!r}")
        if not self.duration > 0:
            raise ValueError(f"duration must be > 0 s, got {self.duration:g}")
        for name in ("query_window", "target_window"):
            window = getattr(self, name)
            if window is not None and not (0 <= window[0] < window[1]):
                raise ValueError(f"{name} {list(window)} must satisfy 0 <= start < end")
        if self.target_window is not None:
            length = self.target_window[1] - self.target_window[0]
            if abs(length - self.duration) > _EPS:
                raise ValueError(f"duration {self.duration:g} s differs from the target_window's length {length:g} s")
        if self.feature_step is not None and not 0 < self.feature_step < float("inf"):
            raise ValueError(f"feature_step must be a positive number of seconds, got {self.feature_step}")
        for start, end in self.windows:
            if not end >= start:
                raise ValueError(f"window end {end:g} is before its start {start:g}")
            if end == start:
                raise ValueError(f"a ground-truth window must have positive length, got [{start:g}, {end:g}]")
            if start < 0 or end > self.duration + _EPS:
                raise ValueError(f"window [{start:g}, {end:g}] lies outside the target clip [0, {self.duration:g}]")

    def to_json(self) -> dict[str, Any]:
        """The record as a JSON-able dict (tuples become lists)."""
        data = dataclasses.asdict(self)
        data["windows"] = [list(w) for w in self.windows]
        for name in ("query_window", "target_window"):
            if data[name] is not None:
                data[name] = list(data[name])
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PairRecord:
        """Inverse of :meth:`to_json`; unknown or missing keys raise ``ValueError``."""
        if not isinstance(data, dict):
            raise ValueError(f"expected a JSON object, got {type(data).__name__}")
        names = {f.name for f in dataclasses.fields(cls)}
        data = {"feature_step": None, **data}
        unknown, missing = sorted(set(data) - names), sorted(names - set(data))
        if unknown or missing:
            raise ValueError(f"unknown keys {unknown}, missing keys {missing}; expected {sorted(names)}")
        return cls(**data)


def _window(window: Sequence[float]) -> TimeWindow:
    if isinstance(window, (str, bytes)) or len(window) != 2:
        raise ValueError(f"a window must be [start, end], got {window!r}")
    return round_time(window[0]), round_time(window[1])


def check_unique_ids(records: Iterable[PairRecord]) -> None:
    """Raise ``ValueError`` naming the first ``pair_id`` that occurs twice."""
    seen: set[str] = set()
    for record in records:
        if record.pair_id in seen:
            raise ValueError(f"pair_id {record.pair_id!r} occurs more than once")
        seen.add(record.pair_id)


def dumps_record(record: PairRecord) -> str:
    """One JSON line (without the newline) in the canonical, reproducible form."""
    return json.dumps(record.to_json(), sort_keys=True, ensure_ascii=True, allow_nan=False)


def save_pairs(records: Iterable[PairRecord], path: str | Path) -> Path:
    """Write ``records`` as JSON lines to ``path`` atomically, in the given order; returns ``path``."""
    records = list(records)
    check_unique_ids(records)
    write_text(path, "".join(dumps_record(r) + "\n" for r in records))
    return Path(path)


def load_pairs(path: str | Path, durations: Mapping[str, float] | None = None) -> list[PairRecord]:
    """Read a pair list written by :func:`save_pairs`; errors name the file and line.

    ``durations`` (video id -> seconds, from the feature store): check each record (:func:`check_record`).
    """
    with open(path, encoding="utf-8") as handle:
        rows = ((number, line) for number, line in enumerate(handle, start=1) if line.strip())
        return collect_records(path, rows, lambda line: PairRecord.from_json(json.loads(line)), durations)


def collect_records(
    path: str | Path,
    rows: Iterable[tuple[int, Any]],
    build: Callable[[Any], PairRecord],
    durations: Mapping[str, float] | None = None,
    *,
    drop_exact_repeats: bool = False,
) -> list[PairRecord]:
    """The records ``build(row)`` of numbered ``rows`` ``(line, row)``, checked; errors name ``path`` and the line.

    Each record is checked against ``durations`` (:func:`check_record`). A pair id seen on an
    earlier line is an error naming both lines; with ``drop_exact_repeats``, a row giving a record
    equal to the earlier one is dropped instead (a warning counts them).
    """
    kept: dict[str, tuple[int, PairRecord]] = {}
    dropped: list[int] = []
    for line, row in rows:
        try:
            record = build(row)
            check_record(record, durations or {})
        except (ValueError, TypeError, KeyError, OSError) as error:
            raise located(path, f"line {line}", str(error)) from error
        if record.pair_id in kept:
            first_line, first = kept[record.pair_id]
            if not (drop_exact_repeats and first == record):
                detail = "with different values" if drop_exact_repeats else "(pair ids must be unique)"
                raise located(path, f"line {line}", f"pair {record.pair_id!r} repeats line {first_line} {detail}")
            dropped.append(line)
            continue
        kept[record.pair_id] = (line, record)
    if dropped:
        shown = ", ".join(map(str, dropped[:5])) + (", ..." if len(dropped) > 5 else "")
        logger.warning("%s: dropped %d rows repeating an earlier row exactly (lines %s)", path, len(dropped), shown)
    return [record for _, record in kept.values()]


def check_record(record: PairRecord, durations: Mapping[str, float]) -> None:
    """Raise ``ValueError`` when ``record`` contradicts its videos' ``durations`` (seconds; from the store).

    Checked, with :data:`WINDOW_TOLERANCE_S`: a whole-video target's ``duration`` equals the target
    video's; a ``target_window`` or ``query_window`` ends within its video. (The ground-truth
    windows lie inside ``duration`` by construction.) Videos absent from ``durations`` are not checked.
    """
    target = durations.get(record.target_video)
    if target is not None:
        if record.target_window is None and abs(record.duration - target) > WINDOW_TOLERANCE_S:
            raise ValueError(
                f"duration {record.duration:g} s, but target video {record.target_video!r} is {target:g} s long "
                f"in the feature store (tolerance {WINDOW_TOLERANCE_S:g} s)"
            )
        if record.target_window is not None:
            _check_within(record.target_window, target, f"target_window of video {record.target_video!r}")
    query = durations.get(record.query_video)
    if query is not None and record.query_window is not None:
        _check_within(record.query_window, query, f"query_window of video {record.query_video!r}")


def check_against_store(records: Iterable[PairRecord], store_durations: Mapping[str, float], source: str) -> None:
    """:func:`check_record` on every record; the error names ``source`` (the annotation file) and the record.

    Records are numbered from 1 in the order given (for a file read whole, its order of records).
    """
    for number, record in enumerate(records, start=1):
        try:
            check_record(record, store_durations)
        except ValueError as error:
            raise located(source, f"record {number} (pair {record.pair_id!r})", str(error)) from error


def evaluation_inputs(
    records: Iterable[PairRecord], source: str
) -> tuple[dict[str, tuple[TimeWindow, ...]], dict[str, float]]:
    """``(ground_truth, feature_steps)`` for :func:`matr.metrics.evaluate`, in float64 seconds.

    Raises :class:`AnnotationError` naming ``source`` when a record has no ground-truth window
    (e.g. an own-videos CSV without ``gt_start``/``gt_end``) or a pair id repeats.
    """
    records = list(records)
    check_unique_ids(records)
    without = [r.pair_id for r in records if not r.windows]
    if without:
        raise AnnotationError(
            f"{source}: evaluation needs a ground-truth window for every pair, and {len(without)} of "
            f"{len(records)} pairs have none (first: {without[0]!r}); in an own-videos CSV give the "
            "columns gt_start and gt_end"
        )
    steps = {r.pair_id: r.feature_step for r in records if r.feature_step is not None}
    return {r.pair_id: r.windows for r in records}, steps


def _check_within(window: TimeWindow, duration: float, what: str) -> None:
    if window[1] > duration + WINDOW_TOLERANCE_S:
        raise ValueError(
            f"{what} ends at {window[1]:g} s, beyond the video's {duration:g} s in the feature store "
            f"(tolerance {WINDOW_TOLERANCE_S:g} s)"
        )
