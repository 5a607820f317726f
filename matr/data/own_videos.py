"""Pairs from a folder of the user's own videos, listed in a small CSV file.

Columns (header required; only ``query`` and ``target`` are mandatory, optional columns may be
absent or left empty in a row):

* ``query``: the query video file; ``query_start``, ``query_end``: the query clip inside it
  (seconds; both or neither; neither = the whole file).
* ``target``: the target video file; ``gt_start``, ``gt_end``: the ground-truth moment inside it
  (seconds; both or neither; neither = unknown, for inference only).

Paths are relative to the CSV's folder (absolute paths are kept). A video's id is its file stem
(``clips/goal.mp4`` -> ``goal``), as :mod:`matr.features` names videos given as paths; two files
with the same stem are an error. :attr:`OwnVideos.paths` (id -> file) is what feature extraction
takes. ``pair_id`` is ``f"{query}->{target}"``, with ``[start,end]`` after the query when the
query is a clip; a repeated pair id is an error.
Durations come from ``probe(path)`` (default: :func:`matr.video.probe_video`'s duration).
Missing files, bad numbers and windows outside the video are errors naming the CSV line.
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePath

from matr.data.records import PairRecord, clip_to_duration, located
from matr.video import probe_video

REQUIRED: tuple[str, ...] = ("query", "target")
OPTIONAL: tuple[str, ...] = ("gt_start", "gt_end", "query_start", "query_end")


@dataclass(frozen=True)
class OwnVideos:
    """The records of an own-videos CSV and the file of every video id they use."""

    records: list[PairRecord]
    paths: dict[str, Path]


def probe_duration(path: Path) -> float:
    """Duration (s) of a video file, as :func:`matr.video.probe_video` reads it."""
    return probe_video(path).duration


def read_own_videos(
    csv_path: str | Path, split: str = "test", probe: Callable[[Path], float] = probe_duration
) -> OwnVideos:
    """Read the CSV at ``csv_path`` (format in the module docstring)."""
    csv_path = Path(csv_path)
    folder = csv_path.parent
    records: list[PairRecord] = []
    paths: dict[str, Path] = {}
    durations: dict[Path, float] = {}
    first_line: dict[str, int] = {}
    with open(csv_path, encoding="utf-8-sig", newline="") as handle:
        reader = csv.DictReader(handle)
        reader.fieldnames = [name.strip() for name in reader.fieldnames or []]
        missing = [name for name in REQUIRED if name not in reader.fieldnames]
        if missing:
            raise located(
                csv_path, "line 1", f"missing columns {missing}; required {list(REQUIRED)}, optional {list(OPTIONAL)}"
            )
        for row in reader:
            line = reader.line_num
            try:
                query, query_file = _video(row["query"], folder, paths)
                target, target_file = _video(row["target"], folder, paths)
                for file in (query_file, target_file):
                    if file not in durations:
                        durations[file] = _probe(probe, file)
                record = _record(row, query, target, durations[query_file], durations[target_file], split)
            except (ValueError, OSError) as error:
                raise located(csv_path, f"line {line}", str(error)) from error
            if record.pair_id in first_line:
                raise located(
                    csv_path,
                    f"line {line}",
                    f"pair {record.pair_id!r} already listed on line {first_line[record.pair_id]}",
                )
            first_line[record.pair_id] = line
            records.append(record)
    return OwnVideos(records, paths)


def _probe(probe: Callable[[Path], float], file: Path) -> float:
    try:
        return float(probe(file))
    except Exception as error:  # any decoder failure, reported with the CSV line
        raise ValueError(f"cannot read the duration of {file}: {error}") from error


def _video(name: str | None, folder: Path, paths: dict[str, Path]) -> tuple[str, Path]:
    name = (name or "").strip()
    if not name:
        raise ValueError("empty video path")
    file = folder / name
    if not file.is_file():
        raise ValueError(f"video file {name!r} not found (looked for {file})")
    video = PurePath(name).stem
    if video.startswith("."):
        raise ValueError(f"video file {name!r} starts with '.', which cannot name a video id")
    if paths.setdefault(video, file) != file:
        raise ValueError(
            f"{name!r} and {paths[video]} share the file stem {video!r}, which must be unique (it is the video id)"
        )
    return video, file


def _record(
    row: dict[str, str | None], query: str, target: str, query_duration: float, target_duration: float, split: str
) -> PairRecord:
    if not target_duration > 0:
        raise ValueError(f"target {target!r} has duration {target_duration:g} s")
    query_window = _optional_window(row, "query_start", "query_end")
    if query_window is not None:
        query_window = clip_to_duration(query_window, query_duration, "query window")
    gt = _optional_window(row, "gt_start", "gt_end")
    windows = () if gt is None else (clip_to_duration(gt, target_duration, "ground truth"),)
    clip = "" if query_window is None else f"[{query_window[0]:g},{query_window[1]:g}]"
    return PairRecord(
        pair_id=f"{query}{clip}->{target}",
        query_video=query,
        target_video=target,
        duration=target_duration,
        windows=windows,
        action_class=None,
        split=split,
        query_window=query_window,
    )


def _optional_window(row: dict[str, str | None], start_key: str, end_key: str) -> tuple[float, float] | None:
    start, end = (row.get(start_key) or "").strip(), (row.get(end_key) or "").strip()
    if not start and not end:
        return None
    if not start or not end:
        raise ValueError(f"give both {start_key} and {end_key}, or neither")
    try:
        return float(start), float(end)
    except ValueError:
        raise ValueError(f"{start_key}/{end_key} must be numbers (seconds), got {start!r}, {end!r}") from None
