"""Run a model over a dataset, score its predictions and write them with provenance.

Predictions are keyed by the unique ``pair_id`` of every query-target pair (never by video id, so
pairs that share a target stay distinct) and hold ranked spans in seconds with scores. Metrics are
exactly those of :mod:`matr.metrics`, with no adjustment.

Files written by :func:`write_evaluation` into one folder:

* ``predictions.jsonl``: ``{"pair_id", "source", "spans": [[start, end, score], ...], "ious": [...],
  "vrl_iou": x}`` per pair and source: the IoU of each ranked span with the ground truth and the
  top-1's ActivityNet-VRL IoU, which :mod:`matr.stats` resamples;
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
from matr.postprocess import NMS_THRESHOLD, TOP_K, RankedSpan, Source, predict_spans
from matr.progress import bar_options

Predictions = dict[str, list[RankedSpan]]


@dataclass
class EvalResult:
    """Predictions per source (``heads``, ``A_pre``, ``A_post``) and the ground truth they are scored on.

    ``feature_steps``: seconds per feature index of pairs annotated on a feature grid
    (:func:`matr.data.records.evaluation_inputs`), for ActivityNet-VRL's IoU/mean.
    """

    predictions: dict[str, Predictions] = field(default_factory=dict)
    ground_truth: dict[str, tuple[float, float]] = field(default_factory=dict)
    durations: dict[str, float] = field(default_factory=dict)
    feature_steps: dict[str, float] = field(default_factory=dict)

    def metrics(self) -> dict[str, dict[str, float]]:
        """Metrics of every source (see :data:`matr.metrics.METRIC_DESCRIPTIONS`)."""
        return {
            source: metrics.evaluate(preds, self.ground_truth, feature_steps=self.feature_steps)
            for source, preds in self.predictions.items()
        }


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
    top_k: int = TOP_K,
    nms_threshold: float = NMS_THRESHOLD,
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
        for batch in tqdm(batches, desc="predict", leave=False, **bar_options(progress)):
            batch = move_to_device(batch, device)
            outputs = model(batch, heads_only="A_pre" not in sources)
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


def prediction_records(result: EvalResult) -> list[dict[str, Any]]:
    """JSON-able records ``{"pair_id", "source", "spans", "ious", "vrl_iou"}`` sorted by source then pair id.

    ``ious``: the IoU of each ranked span with the ground truth; ``vrl_iou``: the top-1 span's
    ActivityNet-VRL IoU (:func:`matr.metrics.pair_ious`).
    """
    records = []
    for source in sorted(result.predictions):
        predictions = dict(sorted(result.predictions[source].items()))
        truth = {p: result.ground_truth[p] for p in predictions}
        ious = metrics.pair_ious(predictions, truth, strict=False, feature_steps=result.feature_steps)
        records += [
            {
                "pair_id": pair_id,
                "source": source,
                "spans": [[s.start, s.end, s.score] for s in predictions[pair_id]],
                "ious": [float(iou) for iou in topk[: len(predictions[pair_id])]],
                "vrl_iou": float(vrl),
            }
            for pair_id, topk, vrl in zip(ious.pair_ids, ious.topk, ious.vrl, strict=True)
        ]
    return records


def write_evaluation(out_dir: str | os.PathLike, result: EvalResult, provenance: Mapping[str, Any]) -> dict:
    """Write ``predictions.jsonl`` and ``metrics.json`` (atomically) into ``out_dir``; return the metrics."""
    out_dir = Path(out_dir)
    scores = result.metrics()
    write_jsonl(out_dir / "predictions.jsonl", prediction_records(result))
    write_json(
        out_dir / "metrics.json",
        {
            "metrics": scores,
            "descriptions": metrics.METRIC_DESCRIPTIONS,
            "provenance": dict(provenance),
        },
    )
    return scores
