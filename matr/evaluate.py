"""Run a model over a dataset, score its predictions and write them with provenance.

Predictions are keyed by the unique ``pair_id`` of every query-target pair (never by video id, so
pairs that share a target stay distinct) and hold ranked spans in seconds with scores. Metrics are
exactly those of :mod:`matr.metrics`, with no adjustment.

Files written by :func:`write_evaluation` into one folder:

* ``predictions.jsonl``: ``{"pair_id", "source", "spans": [[start, end, score], ...]}`` per pair;
* ``metrics.json``: ``{"metrics": {source: {...}}, "descriptions": {...}, "provenance": {...}}``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from matr import metrics
from matr.io import write_json, write_jsonl
from matr.postprocess import RankedSpan, Source, predict_spans

Predictions = dict[str, list[RankedSpan]]


@dataclass
class EvalResult:
    """Predictions per source (``heads``, ``A_pre``, ``A_post``) and the ground truth they are scored on."""

    predictions: dict[str, Predictions] = field(default_factory=dict)
    ground_truth: dict[str, tuple[float, float]] = field(default_factory=dict)
    durations: dict[str, float] = field(default_factory=dict)

    def metrics(self) -> dict[str, dict[str, float]]:
        """Metrics of every source (see :data:`matr.metrics.METRIC_DESCRIPTIONS`)."""
        return {source: metrics.evaluate(preds, self.ground_truth) for source, preds in self.predictions.items()}


def move_to_device(batch: Mapping[str, Any], device: torch.device) -> dict[str, Any]:
    """A copy of a collated batch with every tensor on ``device``."""
    return {k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()}


@torch.no_grad()
def predict(
    model: nn.Module,
    batches: Iterable[Mapping[str, Any]],
    *,
    device: torch.device | str = "cpu",
    sources: Sequence[Source] = ("heads",),
    top_k: int = 5,
    nms_threshold: float = 0.7,
    progress: bool | None = None,
) -> EvalResult:
    """Ranked moments for every pair of ``batches`` (collated, see ``matr.data``), in eval mode.

    ``sources``: ``"heads"`` (the prediction heads with NMS), ``"A_pre"`` / ``"A_post"`` (the span of
    a hard alignment matrix, paper Table 4). A repeated ``pair_id`` raises ``ValueError``.
    """
    device = torch.device(device)
    was_training = model.training
    model.eval()
    result = EvalResult(predictions={source: {} for source in sources})
    try:
        for batch in tqdm(batches, desc="predict", disable=_disable(progress), leave=False):
            batch = move_to_device(batch, device)
            outputs = model(batch)
            _record_ground_truth(result, batch)
            for source in sources:
                spans = predict_spans(outputs, batch, top_k=top_k, nms_threshold=nms_threshold, source=source)
                result.predictions[source].update(zip(batch["pair_id"], spans))
    finally:
        model.train(was_training)
    return result


def _record_ground_truth(result: EvalResult, batch: Mapping[str, Any]) -> None:
    windows, durations = batch["window"].tolist(), batch["duration"].tolist()
    for pair_id, window, duration in zip(batch["pair_id"], windows, durations):
        if pair_id in result.ground_truth:
            raise ValueError(f"pair_id {pair_id!r} appears twice in the evaluation data; pair ids must be unique")
        result.ground_truth[pair_id] = (window[0], window[1])
        result.durations[pair_id] = duration


def prediction_records(predictions: Mapping[str, Predictions]) -> list[dict[str, Any]]:
    """JSON-able records ``{"pair_id", "source", "spans"}`` sorted by source then pair id."""
    return [
        {"pair_id": pair_id, "source": source, "spans": [[s.start, s.end, s.score] for s in spans]}
        for source in sorted(predictions)
        for pair_id, spans in sorted(predictions[source].items())
    ]


def write_evaluation(out_dir: str | os.PathLike, result: EvalResult, provenance: Mapping[str, Any]) -> dict:
    """Write ``predictions.jsonl`` and ``metrics.json`` (atomically) into ``out_dir``; return the metrics."""
    out_dir = Path(out_dir)
    scores = result.metrics()
    write_jsonl(out_dir / "predictions.jsonl", prediction_records(result.predictions))
    write_json(
        out_dir / "metrics.json",
        {
            "metrics": scores,
            "descriptions": metrics.METRIC_DESCRIPTIONS,
            "provenance": dict(provenance),
        },
    )
    return scores


def _disable(progress: bool | None) -> bool | None:
    """tqdm's ``disable``: ``None`` lets tqdm hide the bar when not writing to a terminal."""
    return None if progress is None else not progress
