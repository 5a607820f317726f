"""Moment-retrieval metrics: temporal IoU, R@k at IoU thresholds, mIoU, and ActivityNet-VRL's IoU/mean.

Inputs, keyed by a unique pair id (never by video id):

* ``predictions``: ``pair_id -> ranked list of spans``, each ``(start, end)`` or ``(start, end, score)``
  in seconds (a list, tuple, array or tensor of shape ``(K, 2)`` or ``(K, 3)``). The list order *is*
  the ranking; scores, when given, must be non-increasing (a list out of score order is rejected
  rather than silently re-sorted) and are otherwise ignored.
* ``ground_truth``: ``pair_id -> window (start, end)`` or a list of windows ``(G, 2)`` in seconds.
  With several windows, a prediction's IoU is the maximum over them.

Conventions:

* IoU is :func:`matr.span_ops.span_iou` on closed intervals, computed in float64. Touching spans
  (``[0, 5]`` and ``[5, 9]``) have IoU 0. A zero-length prediction has IoU 0 against any window of
  positive length (intersection 0); ground-truth windows must have positive length, so a
  zero-length prediction always scores IoU 0.
* Predictions are scored exactly as given: a span reaching outside ``[0, duration]`` is *not*
  clipped by the evaluation (its part outside the video only enlarges the union). Clipping is a
  prediction-side choice; :func:`clip_predictions` does it explicitly.
* IoU is invariant to scaling time, so IoU in seconds equals IoU in feature units (the unit of the
  original ActivityNet-VRL code) for the same spans.
* Comparisons with thresholds use no tolerance. Spans on a common grid (e.g. multiples of the clip
  length) give IoUs that are ratios of integers, which compare exactly with the thresholds.

Metrics (:data:`METRIC_DESCRIPTIONS` says the same for reports), all in percent:

* ``R{k}@{t}`` for ``k`` in (1, 5), ``t`` in (0.3, 0.5, 0.7): percentage of pairs where ANY of the
  top-``k`` predictions has ``iou >= t`` (inclusive, as Moment-DETR and UniVTG count). A pair with
  fewer than ``k`` predictions uses the ones it has.
* ``mIoU``: the mean over pairs of the top-1 prediction's IoU (a true mean IoU).
* ``VRL_IoU_mean``: ActivityNet-VRL's original "IoU/mean" (Feng et al., ECCV 2018), which is NOT a
  mean IoU: the mean of R@1 over thresholds 0.5, 0.6, 0.7, 0.8, 0.9 counting ``iou > t`` (strict).
  The MATR paper's Table 1 appears to report this and the true mIoU under one "mIoU" column.

Nothing is adjusted: the official MATR evaluation script adds constants to its mIoU (+6) and
R@5 (+7); the numbers here are exactly what the predictions earn.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from matr.span_ops import clip_spans, span_iou

IOU_THRESHOLDS: tuple[float, ...] = (0.3, 0.5, 0.7)
RECALL_KS: tuple[int, ...] = (1, 5)
VRL_THRESHOLDS: tuple[float, ...] = (0.5, 0.6, 0.7, 0.8, 0.9)

METRIC_DESCRIPTIONS: dict[str, str] = {
    **{
        f"R{k}@{t}": (
            f"Recall@{k} at IoU {t}: % of pairs where any of the top-{k} predictions has IoU >= {t} "
            "(inclusive, as in Moment-DETR/UniVTG)"
        )
        for k in RECALL_KS
        for t in IOU_THRESHOLDS
    },
    "mIoU": "true mean IoU (%) of the top-1 prediction over pairs",
    "VRL_IoU_mean": (
        "ActivityNet-VRL 'IoU/mean' (Feng et al. 2018), not a mean IoU: mean of R@1 over IoU "
        "thresholds 0.5, 0.6, 0.7, 0.8, 0.9 counting IoU > t (strict), in %"
    ),
    "num_pairs": "number of evaluated pairs",
    "num_missing": "ground-truth pairs with no prediction, counted as misses (0 unless strict=False)",
}
METRIC_KEYS: tuple[str, ...] = tuple(METRIC_DESCRIPTIONS)

_MAX_IDS_IN_ERROR = 10


def temporal_iou(prediction: Sequence[float], windows: Any) -> float:
    """IoU of one span ``(start, end[, score])`` with a window ``(2,)`` or windows ``(G, 2)`` (max over them)."""
    span = _as_prediction_array(np.asarray(prediction, dtype=np.float64).reshape(1, -1), "prediction")
    gt = _as_window_array(windows, "ground truth")
    return float(span_iou(torch.from_numpy(span)[:, None], torch.from_numpy(gt)[None]).max())


def clip_predictions(predictions: Mapping[str, Any], durations: Mapping[str, float]) -> dict[str, np.ndarray]:
    """Clamp every predicted span into ``[0, duration]`` of its pair; scores are kept.

    Returns ``pair_id -> (K, 2 or 3) float64 array``. Evaluation never does this by itself.
    """
    clipped = {}
    for pair_id, ranked in predictions.items():
        if pair_id not in durations:
            raise KeyError(f"no duration for pair id {pair_id!r}")
        spans = _as_prediction_array(ranked, f"predictions[{pair_id!r}]").copy()
        spans[:, :2] = clip_spans(torch.from_numpy(spans[:, :2]), float(durations[pair_id])).numpy()
        clipped[pair_id] = spans
    return clipped


def ranked_ious(
    predictions: Mapping[str, Any], ground_truth: Mapping[str, Any], *, strict: bool = True
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """IoU of every ranked prediction of every ground-truth pair.

    Returns ``(pair_ids, ious (P, K), valid (P, K))`` with pairs in ``ground_truth`` order, ``K`` the
    longest prediction list, and ``valid`` False on padding (where ``ious`` is 0). With
    ``strict=True`` a ground-truth pair without predictions (absent or empty list) is an error;
    with ``strict=False`` it gets no valid prediction and scores as a miss with IoU 0. Predictions
    for pair ids absent from ``ground_truth`` are always an error.
    """
    _check_pair_ids(predictions, ground_truth, strict)
    pair_ids = list(ground_truth)
    spans = [_as_prediction_array(predictions.get(p, np.zeros((0, 2))), f"predictions[{p!r}]") for p in pair_ids]
    windows = [_as_window_array(ground_truth[p], f"ground_truth[{p!r}]") for p in pair_ids]
    pred_tensor, pred_valid = _pad([s[:, :2] for s in spans])
    gt_tensor, gt_valid = _pad(windows)
    iou = span_iou(pred_tensor[:, :, None], gt_tensor[:, None])  # (P, K, G)
    iou = iou.masked_fill(~gt_valid[:, None], 0.0).amax(dim=-1).masked_fill(~pred_valid, 0.0)
    return pair_ids, iou.numpy(), pred_valid.numpy()


def top1_iou_table(
    predictions: Mapping[str, Any], ground_truth: Mapping[str, Any], *, strict: bool = True
) -> dict[str, float]:
    """``pair_id -> IoU of the top-1 prediction`` as a fraction in ``[0, 1]`` (0 for a missing pair)."""
    pair_ids, ious, _ = ranked_ious(predictions, ground_truth, strict=strict)
    return {pair_id: float(row[0]) if row.size else 0.0 for pair_id, row in zip(pair_ids, ious)}


def evaluate(
    predictions: Mapping[str, Any], ground_truth: Mapping[str, Any], *, strict: bool = True
) -> dict[str, float]:
    """All metrics of :data:`METRIC_KEYS` (percent, unadjusted) plus ``num_pairs`` and ``num_missing``."""
    if not ground_truth:
        raise ValueError("ground_truth is empty: there is nothing to evaluate")
    pair_ids, ious, valid = ranked_ious(predictions, ground_truth, strict=strict)
    if ious.shape[1] == 0:
        ious, valid = np.zeros((len(pair_ids), 1)), np.zeros((len(pair_ids), 1), dtype=bool)
    results: dict[str, float] = {}
    for k in RECALL_KS:
        for t in IOU_THRESHOLDS:
            results[f"R{k}@{t}"] = _recall(ious[:, :k], valid[:, :k], t, inclusive=True)
    results["mIoU"] = 100.0 * float(ious[:, 0].mean())
    vrl = [_recall(ious[:, :1], valid[:, :1], t, inclusive=False) for t in VRL_THRESHOLDS]
    results["VRL_IoU_mean"] = float(np.mean(vrl))
    results["num_pairs"] = len(pair_ids)
    results["num_missing"] = int((~valid[:, 0]).sum())
    return results


def _recall(ious: np.ndarray, valid: np.ndarray, threshold: float, *, inclusive: bool) -> float:
    """Percentage of rows ``(P, k)`` where a valid entry reaches ``threshold`` (``>=`` or ``>``)."""
    hit = ious >= threshold if inclusive else ious > threshold
    return 100.0 * float((hit & valid).any(axis=1).mean())


def _check_pair_ids(predictions: Mapping[str, Any], ground_truth: Mapping[str, Any], strict: bool) -> None:
    unknown = [p for p in predictions if p not in ground_truth]
    if unknown:
        raise KeyError(f"predictions for {len(unknown)} pair id(s) absent from ground truth: {_show(unknown)}")
    if strict:
        missing = [p for p in ground_truth if len(predictions.get(p, ())) == 0]
        if missing:
            raise KeyError(
                f"no predictions for {len(missing)} ground-truth pair id(s): {_show(missing)} "
                "(pass strict=False to count them as misses)"
            )


def _show(ids: list[str]) -> str:
    shown = ", ".join(repr(p) for p in ids[:_MAX_IDS_IN_ERROR])
    return shown + (f", ... ({len(ids) - _MAX_IDS_IN_ERROR} more)" if len(ids) > _MAX_IDS_IN_ERROR else "")


def _as_prediction_array(ranked: Any, name: str) -> np.ndarray:
    """A ranked list of spans as a ``(K, 2 or 3)`` float64 array, checked for shape, order and finiteness."""
    array = _to_float64(ranked, name)
    if array.size == 0:
        return np.zeros((0, 2))
    if array.ndim != 2 or array.shape[1] not in (2, 3):
        raise ValueError(
            f"{name}: expected a ranked list of (start, end) or (start, end, score), got shape {array.shape}"
        )
    if not np.isfinite(array).all():
        raise ValueError(f"{name}: spans and scores must be finite")
    if (array[:, 1] < array[:, 0]).any():
        raise ValueError(f"{name}: a span ends before it starts: {array[array[:, 1] < array[:, 0]][0].tolist()}")
    if array.shape[1] == 3 and (np.diff(array[:, 2]) > 0).any():
        raise ValueError(f"{name}: scores are not non-increasing; the list order is the ranking, sort it first")
    return array


def _as_window_array(windows: Any, name: str) -> np.ndarray:
    """A window ``(2,)`` or windows ``(G, 2)`` as a ``(G, 2)`` float64 array of positive-length spans."""
    array = _to_float64(windows, name)
    array = array.reshape(1, -1) if array.ndim == 1 else array
    if array.ndim != 2 or array.shape[1] != 2 or array.shape[0] == 0:
        raise ValueError(f"{name}: expected a window (start, end) or a list of windows, got shape {array.shape}")
    if not np.isfinite(array).all():
        raise ValueError(f"{name}: windows must be finite")
    if (array[:, 1] <= array[:, 0]).any():
        raise ValueError(f"{name}: a ground-truth window must have positive length (end > start)")
    return array


def _to_float64(values: Any, name: str) -> np.ndarray:
    """``values`` (nested sequences, array or tensor) as a float64 array; ragged rows are an error."""
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu()
    try:
        return np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{name}: expected numbers in rows of equal length ({error})") from error


def _pad(arrays: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack ``(K_i, 2)`` arrays into ``(P, max K_i, 2)`` float64 plus a ``(P, max K_i)`` validity mask."""
    width = max((len(a) for a in arrays), default=0)
    padded = np.zeros((len(arrays), width, 2))
    valid = np.zeros((len(arrays), width), dtype=bool)
    for row, array in enumerate(arrays):
        padded[row, : len(array)] = array
        valid[row, : len(array)] = True
    return torch.from_numpy(padded), torch.from_numpy(valid)
