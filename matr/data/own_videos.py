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
Durations come from ``probe(path)`` (default: :func:`matr.features.video.probe_video`'s duration).
Missing files, bad numbers, windows outside the video and zero-length ground-truth windows are
errors naming the CSV line; so is a CSV without rows. Evaluation needs ``gt_start``/``gt_end`` in
every row (:func:`matr.data.records.evaluation_inputs` says so).
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePath

from matr.data.records import PairRecord, clip_to_duration, collect_records, located

REQUIRED: tuple[str, ...] = ("query", "target")
OPTIONAL: tuple[str, ...] = ("gt_start", "gt_end", "query_start", "query_end")


@dataclass(frozen=True)
class OwnVideos:
    """The records of an own-videos CSV and the file of every video id they use."""

    records: list[PairRecord]
    paths: dict[str, Path]


def probe_duration(path: Path) -> float:
    """Duration (s) of a video file, as :func:`matr.features.video.probe_video` reads it."""
    from matr.features.video import probe_video  # decoding stack loaded only when a CSV is read

    return probe_video(path).duration


def read_own_videos(
    csv_path: str | Path,
    split: str = "test",
    probe: Callable[[Path], float] = probe_duration,
    store_durations: Mapping[str, float] | None = None,
) -> OwnVideos:
    """Read the CSV at ``csv_path`` (format in the module docstring).

    ``store_durations`` (video id -> seconds, from the feature store): check each record against them too.
    """
    csv_path = Path(csv_path)
    paths: dict[str, Path] = {}
    durations: dict[Path, float] = {}

    def build(row: dict[str, str | None]) -> PairRecord:
        query, query_file = _video(row["query"], csv_path.parent, paths)
        target, target_file = _video(row["target"], csv_path.parent, paths)
        for file in (query_file, target_file):
            if file not in durations:
                durations[file] = _probe(probe, file)
        return _record(row, query, target, durations[query_file], durations[target_file], split)

    with open(csv_path, encoding="utf-8-sig", newline="") as handle:
        reader = csv.DictReader(handle)
        reader.fieldnames = [name.strip() for name in reader.fieldnames or []]
        missing = [name for name in REQUIRED if name not in reader.fieldnames]
        if missing:
            raise located(
                csv_path, "line 1", f"missing columns {missing}; required {list(REQUIRED)}, optional {list(OPTIONAL)}"
            )
        records = collect_records(csv_path, ((reader.line_num, row) for row in reader), build, store_durations)
    if not records:
        raise located(csv_path, "line 1", "the CSV has a header but no rows: list one pair per row")
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
    pair_id = query + ("" if query_window is None else f"[{query_window[0]:g},{query_window[1]:g}]") + f"->{target}"
    return PairRecord(pair_id, query, target, target_duration, windows, None, split, query_window=query_window)


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
