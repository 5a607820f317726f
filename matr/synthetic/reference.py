"""Statistics of SportsMoments' annotation files, the reference that :mod:`matr.synthetic.plan` copies.

Reads the CSV files (``query_id, reference_id, reference_segment_start, reference_segment_end,
action_class, reference_duration``) directly: only timings and counts matter here, not the videos.
"""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

import numpy as np

__all__ = ["QUANTILES", "annotation_statistics"]

QUANTILES = (0, 5, 25, 50, 75, 95, 100)


def annotation_statistics(paths: Iterable[str | Path]) -> dict[str, dict[str, float]]:
    """Percentiles (:data:`QUANTILES`) of moment length (s), target duration (s), moment fraction,
    start / duration, pairs per target and pairs per query over the rows of ``paths``; plus counts
    (``pairs``, ``targets``, ``queries``, ``classes``) under ``"counts"``."""
    rows: list[dict[str, str]] = []
    for path in paths:
        with open(path, encoding="utf-8-sig", newline="") as handle:
            rows += list(csv.DictReader(handle))
    if not rows:
        raise ValueError("no annotation rows")
    start = np.array([float(r["reference_segment_start"]) for r in rows])
    end = np.array([float(r["reference_segment_end"]) for r in rows])
    duration = np.array([float(r["reference_duration"]) for r in rows])
    per_target = np.array(list(Counter(r["reference_id"] for r in rows).values()))
    per_query = np.array(list(Counter(r["query_id"] for r in rows).values()))
    columns = {
        "moment seconds": end - start,
        "target seconds": duration,
        "moment fraction": (end - start) / duration,
        "start fraction": start / duration,
        "pairs per target": per_target,
        "pairs per query": per_query,
    }
    stats = {name: {f"p{q}": float(np.percentile(values, q)) for q in QUANTILES} for name, values in columns.items()}
    stats["counts"] = {
        "pairs": float(len(rows)),
        "targets": float(len(per_target)),
        "queries": float(len(per_query)),
        "classes": float(len({r["action_class"] for r in rows})),
    }
    return stats
