"""SportsMoments (Kumar et al., ICCV 2025) importer, in both forms its README describes.

* CSV (the released ``val.csv`` / ``test.csv``): ``query_id, reference_id,
  reference_segment_start, reference_segment_end, action_class, reference_duration``, seconds.
  Ids are clip file names ``{youtube_id}__{class_id}_{idx}.mp4``.
* JSON lines (the form the original training code reads): ``qid`` (the query clip), ``vid`` (the
  reference clip), ``duration`` and ``relevant_windows`` ``[[start, end], ...]``; optional
  ``query`` (a caption), ``relevant_clip_ids`` and ``saliency_scores`` are ignored. Our extension,
  used by the demo dataset: optional ``action_class`` (str or int) and ``split``.

Both forms give the same records for the same row:

* Video ids are clip names without the ``.mp4`` extension (the JSON-lines form's ``qid``/``vid``),
  which is also how the feature store names a video file. The query is the whole query clip;
  the target is the whole reference clip (``duration`` = ``reference_duration``).
* ``pair_id`` is ``f"{query}->{target}"``. A query appears in many rows, but a (query, target)
  pair once: rows repeating an earlier row exactly (the released val/test files have 22 / 42
  such rows) are dropped with a warning; a repeated pair with other values is an error naming
  both lines.
* ``action_class`` is the class name from ``id_class_mapping.json`` (``class_names``; by default
  the file of that name next to the annotation file, when present), else the integer id. In the
  JSON-lines form without ``action_class`` the id is read from the ``{youtube_id}__{class}_{idx}``
  pattern of ``qid`` when it matches, else it stays ``None``.
* ``split``: the row's ``split`` field (JSON lines), else the ``split`` argument, else the file's
  stem (``val.csv`` -> ``val``).
* Windows must satisfy ``0 <= start <= end``; an end up to
  :data:`~matr.data.records.WINDOW_TOLERANCE_S` past the duration is clipped, further is an error.
  With ``known_videos`` given, ids outside it are errors. Ground-truth windows must have positive
  length.
* With ``durations`` (video id -> seconds, from the feature store) given, a row whose duration or
  windows contradict its videos is an error (:func:`~matr.data.records.check_record`).
* A file without rows is an error. Errors name the file and line.
"""

from __future__ import annotations

import csv
import json
import logging
import re
from collections.abc import Callable, Collection, Iterator, Mapping
from pathlib import Path
from typing import Any, TypedDict, Unpack

from matr.data.records import PairRecord, clip_to_duration, collect_records, located

CSV_FIELDS: tuple[str, ...] = (
    "query_id",
    "reference_id",
    "reference_segment_start",
    "reference_segment_end",
    "action_class",
    "reference_duration",
)
JSONL_REQUIRED: tuple[str, ...] = ("qid", "vid", "duration", "relevant_windows")
JSONL_OPTIONAL: tuple[str, ...] = ("query", "relevant_clip_ids", "saliency_scores", "action_class", "split")
CLASS_MAPPING_FILE = "id_class_mapping.json"
logger = logging.getLogger(__name__)
_CLIP_ID = re.compile(r"^(?P<video>.+)__(?P<cls>\d+)_(?P<idx>\d+)$")


def load_class_names(path: str | Path) -> dict[int, str]:
    """``id_class_mapping.json`` as ``{class id: name}``."""
    with open(path, encoding="utf-8") as handle:
        data = json.load(handle)
    if not isinstance(data, dict):
        raise located(path, "top level", "expected an object {class id: name}")
    try:
        return {int(key): str(name) for key, name in data.items()}
    except ValueError as error:
        raise located(path, "top level", f"class ids must be integers: {error}") from error


class ReadOptions(TypedDict, total=False):
    """Options of both readers: ``split``, ``class_names``, ``known_videos``, ``durations`` (module docstring)."""

    split: str | None
    class_names: Mapping[int, str] | None
    known_videos: Collection[str] | None
    durations: Mapping[str, float] | None


def read_sportsmoments_csv(path: str | Path, **options: Unpack[ReadOptions]) -> list[PairRecord]:
    """Records of a SportsMoments CSV file (see the module docstring for the rules)."""
    with open(path, encoding="utf-8-sig", newline="") as handle:
        reader = csv.DictReader(handle)
        missing = [name for name in CSV_FIELDS if name not in (reader.fieldnames or [])]
        if missing:
            raise located(path, "line 1", f"missing columns {missing}; expected {list(CSV_FIELDS)}")
        return _read(path, ((reader.line_num, row) for row in reader), _csv_record, options)


def read_sportsmoments_jsonl(path: str | Path, **options: Unpack[ReadOptions]) -> list[PairRecord]:
    """Records of a SportsMoments JSON-lines file (see the module docstring for the rules)."""
    with open(path, encoding="utf-8") as handle:
        return _read(path, _json_lines(path, handle), _jsonl_record, options)


def _read(path: str | Path, rows: Iterator[tuple[int, Any]], build: Callable, options: ReadOptions) -> list[PairRecord]:
    names = _class_names(path, options.get("class_names"))
    split = options.get("split") or Path(path).stem
    known = options.get("known_videos")
    records = collect_records(
        path, rows, lambda row: build(row, split, names, known), options.get("durations"), drop_exact_repeats=True
    )
    if not records:
        raise located(path, "line 1", "the file holds no rows (a header alone, or nothing)")
    return records


def _json_lines(path: str | Path, handle: Any) -> Iterator[tuple[int, Any]]:
    for number, line in enumerate(handle, start=1):
        if not line.strip():
            continue
        try:
            yield number, json.loads(line)
        except json.JSONDecodeError as error:
            raise located(path, f"line {number}", f"invalid JSON: {error.msg}") from error


def _csv_record(
    row: dict[str, str], split: str, names: Mapping[int, str] | None, known: Collection[str] | None
) -> PairRecord:
    query, target = _video_id(row["query_id"], known), _video_id(row["reference_id"], known)
    class_id = _integer(row["action_class"], "action_class")
    for video in (query, target):
        _check_class_in_id(video, class_id)
    duration = _number(row["reference_duration"], "reference_duration")
    window = (
        _number(row["reference_segment_start"], "reference_segment_start"),
        _number(row["reference_segment_end"], "reference_segment_end"),
    )
    return _record(query, target, duration, [window], _class_label(class_id, names), split)


def _jsonl_record(row: Any, split: str, names: Mapping[int, str] | None, known: Collection[str] | None) -> PairRecord:
    if not isinstance(row, dict):
        raise ValueError(f"expected a JSON object, got {type(row).__name__}")
    missing = [key for key in JSONL_REQUIRED if key not in row]
    if missing:
        raise ValueError(f"missing keys {missing}; required {list(JSONL_REQUIRED)}")
    unknown = sorted(set(row) - set(JSONL_REQUIRED) - set(JSONL_OPTIONAL))
    if unknown:
        logger.warning("ignoring unknown keys %s (known: %s)", unknown, [*JSONL_REQUIRED, *JSONL_OPTIONAL])
    query, target = _video_id(str(row["qid"]), known), _video_id(str(row["vid"]), known)
    windows = row["relevant_windows"]
    if not isinstance(windows, list) or not windows:
        raise ValueError(f"relevant_windows must be a non-empty list of [start, end], got {windows!r}")
    action_class = row["action_class"] if "action_class" in row else _class_from_id(query, names)
    return _record(
        query, target, _number(row["duration"], "duration"), windows, action_class, str(row.get("split", split))
    )


def _record(query: str, target: str, duration: float, windows: list[Any], action_class: Any, split: str) -> PairRecord:
    if not duration > 0:
        raise ValueError(f"duration must be > 0 s, got {duration:g}")
    clipped = []
    for window in windows:
        if not isinstance(window, (list, tuple)) or len(window) != 2:
            raise ValueError(f"a window must be [start, end], got {window!r}")
        clipped.append(clip_to_duration([_number(v, "window time") for v in window], duration))
    return PairRecord(
        pair_id=f"{query}->{target}",
        query_video=query,
        target_video=target,
        duration=duration,
        windows=tuple(clipped),
        action_class=action_class,
        split=split,
    )


def _class_names(path: str | Path, class_names: Mapping[int, str] | None) -> Mapping[int, str] | None:
    if class_names is not None:
        return class_names
    sibling = Path(path).with_name(CLASS_MAPPING_FILE)
    return load_class_names(sibling) if sibling.is_file() else None


def _class_label(class_id: int, names: Mapping[int, str] | None) -> str | int:
    if names is None:
        return class_id
    if class_id not in names:
        raise ValueError(f"unknown action_class {class_id}; {CLASS_MAPPING_FILE} has {sorted(names)}")
    return names[class_id]


def _class_from_id(video: str, names: Mapping[int, str] | None) -> str | int | None:
    match = _CLIP_ID.match(video)
    return None if match is None else _class_label(int(match["cls"]), names)


def _check_class_in_id(video: str, class_id: int) -> None:
    match = _CLIP_ID.match(video)
    if match is not None and int(match["cls"]) != class_id:
        raise ValueError(f"id {video!r} names class {match['cls']} but action_class is {class_id}")


def _video_id(name: str, known: Collection[str] | None) -> str:
    name = name.strip()
    video = name[: -len(".mp4")] if name.lower().endswith(".mp4") else name
    if not video:
        raise ValueError(f"empty video id {name!r}")
    if known is not None and video not in known:
        raise ValueError(f"unknown video id {video!r}")
    return video


def _number(value: Any, name: str) -> float:
    if isinstance(value, bool):
        raise ValueError(f"{name} must be a number, got {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {value!r}") from None
    if number != number or number in (float("inf"), float("-inf")):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return number


def _integer(value: str, name: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be an integer, got {value!r}") from None
