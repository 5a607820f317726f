"""One entry point for every annotation file ``matr`` reads: :func:`load_annotations`.

The format is recognised from the file itself, never from a flag:

* ``.csv`` whose header has ``query_id``: a SportsMoments CSV (:func:`read_sportsmoments_csv`);
  whose header has ``query`` and ``target``: a CSV of the user's own videos (:func:`read_own_videos`).
* JSON lines whose first record has ``pair_id``: our :class:`PairRecord` file (:func:`load_pairs`);
  whose first record has ``qid``: SportsMoments JSON lines (:func:`read_sportsmoments_jsonl`, the
  form the synthetic demo dataset writes).

``split``: the split to return. Files that carry no split (SportsMoments CSV, own-videos CSV,
SportsMoments JSON lines without a ``split`` field) label their records with it; records of any
other split are left out, and a file with no record of that split is an error naming the splits
it holds. ``split=None`` returns every record (SportsMoments files then take their file's stem).

``durations``: video id -> seconds, as the feature store has them. Given, every record is checked
against its videos (:func:`~matr.data.records.check_record`: a duration or window that
contradicts the stored video beyond :data:`~matr.data.records.WINDOW_TOLERANCE_S` is an error
naming the file and line). Evaluation takes its ground truth from
:func:`~matr.data.records.evaluation_inputs`, which refuses pairs without ground truth.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Mapping
from pathlib import Path

from matr.data.own_videos import read_own_videos
from matr.data.records import AnnotationError, PairRecord, load_pairs
from matr.data.sportsmoments import read_sportsmoments_csv, read_sportsmoments_jsonl

JSON_SUFFIXES: tuple[str, ...] = (".jsonl", ".json", ".ndjson")


def load_annotations(
    path: str | Path, split: str | None = None, *, durations: Mapping[str, float] | None = None
) -> list[PairRecord]:
    """The pair records of an annotation file in any supported format (module docstring)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"annotation file {path} does not exist")
    suffix = path.suffix.lower()
    if suffix == ".csv":
        records = _read_csv(path, split, durations)
    elif suffix in JSON_SUFFIXES:
        records = _read_json_lines(path, split, durations)
    else:
        raise AnnotationError(
            f"{path}: unknown annotation format {suffix!r}; expected .csv or {', '.join(JSON_SUFFIXES)}"
        )
    return _select_split(path, records, split)


def _read_csv(path: Path, split: str | None, durations: Mapping[str, float] | None) -> list[PairRecord]:
    with open(path, encoding="utf-8-sig", newline="") as handle:
        header = [name.strip() for name in next(csv.reader(handle), [])]
    if "query_id" in header:
        return read_sportsmoments_csv(path, split=split, durations=durations)
    if {"query", "target"} <= set(header):
        return read_own_videos(path, split=split or "test", store_durations=durations).records
    raise AnnotationError(
        f"{path}, line 1: header {header} is neither a SportsMoments CSV (query_id, "
        "reference_id, ...) nor an own-videos CSV (query, target, ...)"
    )


def _read_json_lines(path: Path, split: str | None, durations: Mapping[str, float] | None) -> list[PairRecord]:
    first = _first_record(path)
    if "pair_id" in first:
        return load_pairs(path, durations)
    if "qid" in first:
        return read_sportsmoments_jsonl(path, split=split, durations=durations)
    raise AnnotationError(
        f"{path}: the first record has keys {sorted(first)}; expected 'pair_id' "
        "(matr pair records) or 'qid' (SportsMoments JSON lines)"
    )


def _first_record(path: Path) -> dict:
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                raise AnnotationError(f"{path}, line {number}: invalid JSON: {error.msg}") from error
            if not isinstance(record, dict):
                raise AnnotationError(f"{path}, line {number}: expected a JSON object")
            return record
    raise AnnotationError(f"{path}: the file holds no records")


def _select_split(path: Path, records: list[PairRecord], split: str | None) -> list[PairRecord]:
    if split is None:
        return records
    selected = [record for record in records if record.split == split]
    if not selected:
        found = sorted({record.split for record in records})
        raise AnnotationError(f"{path}: no pairs of split {split!r}; the file holds splits {found}")
    return selected
