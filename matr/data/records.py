"""The one internal record of a query-target pair, and its JSON-lines file format.

Every importer (ActivityNet-VRL, SportsMoments, a folder of the user's own videos, the demo
dataset) produces :class:`PairRecord` objects; datasets, training and evaluation consume them.

Times are seconds. A record's ground-truth ``windows`` are relative to the start of the *target
clip*: the whole target video when ``target_window`` is ``None``, else the sub-window
``target_window = (t0, t1)`` of the target video (then ``duration == t1 - t0``).

File format (``save_pairs`` / ``load_pairs``): one JSON object per line, keys sorted, every field
present (``null`` when absent), floats rounded to :data:`DECIMALS` decimal places (1 µs) and
written in Python's shortest round-trip form, ASCII only, ``\\n`` line ends. Records round their
floats on construction, so ``load_pairs(save_pairs(records))`` returns equal records and saving
the same records twice gives identical bytes.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from matr.io import write_text

DECIMALS = 6
"""Decimal places (seconds) kept in every time of a record."""

WINDOW_TOLERANCE_S = 1.0
"""How far (seconds) an imported window may reach past its video's end before it is an error.

Annotation tools and frame/feature-index conversions place ends a fraction of a second past the
duration (ActivityNet-VRL's last C3D feature covers up to 16 frames beyond the last full one).
Importers clip such ends to the duration; anything further out is reported as an error.
"""

_EPS = 10.0 ** -(DECIMALS - 1)
Window = tuple[float, float]


class AnnotationError(ValueError):
    """An annotation file is malformed; the message names the file and the line, row or entry."""


def located(path: str | Path, where: str, message: str) -> AnnotationError:
    """An :class:`AnnotationError` reading ``"{path}, {where}: {message}"``."""
    return AnnotationError(f"{path}, {where}: {message}")


def round_time(value: float) -> float:
    """``value`` rounded to :data:`DECIMALS` places, as a float (never ``-0.0``)."""
    return round(float(value), DECIMALS) + 0.0


def clip_to_duration(window: Sequence[float], duration: float, what: str = "window") -> Window:
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
    """

    pair_id: str
    query_video: str
    target_video: str
    duration: float
    windows: tuple[Window, ...]
    action_class: str | int | None
    split: str
    query_window: Window | None = None
    target_window: Window | None = None

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "duration", round_time(self.duration))
        set_(self, "windows", tuple(_window(w) for w in self.windows))
        if self.query_window is not None:
            set_(self, "query_window", _window(self.query_window))
        if self.target_window is not None:
            set_(self, "target_window", _window(self.target_window))
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
        for start, end in self.windows:
            if not end >= start:
                raise ValueError(f"window end {end:g} is before its start {start:g}")
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
        unknown, missing = sorted(set(data) - names), sorted(names - set(data))
        if unknown or missing:
            raise ValueError(f"unknown keys {unknown}, missing keys {missing}; expected {sorted(names)}")
        return cls(**data)


def _window(window: Sequence[float]) -> Window:
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


def load_pairs(path: str | Path) -> list[PairRecord]:
    """Read a pair list written by :func:`save_pairs`; errors name the file and line."""
    records: list[PairRecord] = []
    first_line: dict[str, int] = {}
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = PairRecord.from_json(json.loads(line))
            except (ValueError, TypeError) as error:
                raise located(path, f"line {number}", str(error)) from error
            if record.pair_id in first_line:
                raise located(
                    path,
                    f"line {number}",
                    f"pair_id {record.pair_id!r} already used on line {first_line[record.pair_id]}",
                )
            first_line[record.pair_id] = number
            records.append(record)
    return records
