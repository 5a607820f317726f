"""A table's numbers: every cell with its 95% bootstrap interval, and a verdict on every claimed ordering.

:func:`table_result` evaluates each row's method with each of its seeds (cached, never training;
:mod:`matr.experiments.evaluation`), reads the per-pair IoUs back and hands them to
:mod:`matr.stats`: a cell is ``{"value", "ci": [low, high], "std", "seeds"}`` (the mean over seeds,
their standard deviation, the bootstrap interval over seeds and pairs), and each :class:`Claim` of
the table gets the paired bootstrap of ``a - b`` on the same pairs and a verdict.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from matr import stats
from matr.experiments.evaluation import EVAL_SPLIT, cached_evaluation, method_seeds, predictions
from matr.experiments.profiles import Profile
from matr.experiments.tables import (
    METRIC_COLUMNS,
    PAPER_COLUMNS,
    Claim,
    RowSpec,
    TableSpec,
    get_table,
    paper_claim,
    paper_row,
    paper_rows,
)
from matr.metrics import per_pair_scores


@dataclass(frozen=True)
class RowIoUs:
    """Per-pair IoUs of one row over its seeds: ``topk (S, P, K)`` (0-padded), ``vrl (S, P)``, pairs sorted."""

    pair_ids: list[str]
    topk: np.ndarray
    vrl: np.ndarray


def row_ious(
    profile: Profile,
    workdir: str | os.PathLike,
    row: RowSpec,
    split: str = EVAL_SPLIT,
    *,
    progress: bool | None = None,
) -> RowIoUs:
    """The per-pair IoUs of ``row`` for each seed of its method (each evaluation cached)."""
    per_seed = []
    for seed in method_seeds(profile, row.method):
        folder = cached_evaluation(profile, workdir, row.method, seed, split, queries=row.queries, progress=progress)
        per_seed.append(dict(sorted(predictions(folder, row.source).items())))
    pair_ids = list(per_seed[0])
    if any(list(records) != pair_ids for records in per_seed):
        raise ValueError(f"row {row.label!r}: the seeds of {row.method!r} were evaluated on different pairs")
    width = max(len(r["ious"]) for records in per_seed for r in records.values())
    topk = np.zeros((len(per_seed), len(pair_ids), max(width, 1)))
    for s, records in enumerate(per_seed):
        for p, record in enumerate(records.values()):
            topk[s, p, : len(record["ious"])] = record["ious"]
    vrl = np.array([[r["vrl_iou"] for r in records.values()] for records in per_seed])
    return RowIoUs(pair_ids, topk, vrl)


def table_result(
    profile: Profile, workdir: str | os.PathLike, key: str, split: str = EVAL_SPLIT, *, progress: bool | None = None
) -> dict[str, Any]:
    """Rows ``{"label", <paper_match fields>, "num_pairs", "metrics"}`` and ``"verdicts"`` of table ``key``.

    The rows' variants must have been trained (:func:`matr.experiments.runs.train_variants`); a
    missing checkpoint raises :class:`matr.experiments.evaluation.MissingCheckpoint`.
    """
    spec = get_table(key)
    ious = {row.label: row_ious(profile, workdir, row, split, progress=progress) for row in spec.rows}
    rows = []
    for row in spec.rows:
        cells = stats.metric_cells(ious[row.label].topk, profile.seed, vrl_ious=ious[row.label].vrl)
        rows.append(
            {
                "label": row.label,
                **dict(row.match),
                "num_pairs": len(ious[row.label].pair_ids),
                "metrics": {name: cells[name] for name in METRIC_COLUMNS},
            }
        )
    verdicts = [_verdict(spec, claim, ious, profile.seed) for claim in spec.claims]
    seeds = {row.method: len(method_seeds(profile, row.method)) for row in spec.rows}
    return {"table": key, "split": split, "seeds": seeds, "rows": rows, "verdicts": verdicts}


def _verdict(spec: TableSpec, claim: Claim, ious: Mapping[str, RowIoUs], seed: int) -> dict[str, Any]:
    a, b = ious[claim.a], ious[claim.b]
    if a.pair_ids != b.pair_ids:
        raise ValueError(f"claim {claim.text!r}: rows {claim.a!r} and {claim.b!r} were evaluated on different pairs")
    values_a = per_pair_scores(a.topk, a.vrl)[claim.metric]  # (S, P)
    values_b = per_pair_scores(b.topk, b.vrl)[claim.metric]
    diff, low, high = stats.paired_difference(values_a, values_b, seed)
    return {
        "claim": paper_claim(spec, claim),
        "a": claim.a,
        "b": claim.b,
        "metric": claim.metric,
        "diff": diff,
        "ci": [low, high],
        "verdict": stats.verdict(diff, low, high, claim.sign),
    }


def table_frame(result: Mapping[str, Any]) -> pd.DataFrame:
    """One line per row: label, paper_match fields, our metrics (value, CI, std), then the paper's row (if any)."""
    spec = get_table(result["table"])
    paper = paper_rows(spec.key)
    lines = []
    for row in result["rows"]:
        match = paper_row(row, paper, spec.paper_match) or {}
        line = {"label": row["label"], **{name: row[name] for name in spec.paper_match}}
        for name in METRIC_COLUMNS:
            cell = row["metrics"][name]
            line |= {name: cell["value"], f"{name} low": cell["ci"][0], f"{name} high": cell["ci"][1]}
            line[f"{name} std"] = cell["std"]
        theirs = {f"paper_{n}": match.get(n) for n in PAPER_COLUMNS} if paper else {}
        lines.append(line | {"num_pairs": row["num_pairs"]} | theirs)
    return pd.DataFrame(lines)


def verdict_frame(result: Mapping[str, Any]) -> pd.DataFrame:
    """One line per claimed ordering: the claim, the difference with its interval, the verdict."""
    columns = ["claim", "metric", "diff", "low", "high", "verdict"]
    lines = [{**v, "low": v["ci"][0], "high": v["ci"][1]} for v in result["verdicts"]]
    return pd.DataFrame(lines, columns=columns)[columns] if lines else pd.DataFrame(columns=columns)
