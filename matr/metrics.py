"""Moment-retrieval metrics: R@k at IoU thresholds, mIoU, and ActivityNet-VRL's "IoU/mean".

Inputs, keyed by a unique pair id (never by video id):

* ``predictions``: ``pair_id -> ranked list of spans``, each ``(start, end)`` or ``(start, end, score)``
  in seconds (a list, tuple, array or tensor of shape ``(K, 2)`` or ``(K, 3)``). The list order *is*
  the ranking; scores, when given, must be non-increasing (a list out of score order is rejected
  rather than silently re-sorted) and are otherwise ignored.
* ``ground_truth``: ``pair_id -> window (start, end)`` or a list of windows ``(G, 2)`` in seconds,
  each of positive length.
* ``feature_steps`` (optional): ``pair_id -> seconds per feature index`` for pairs annotated on a
  feature grid (ActivityNet-VRL: one C3D feature = 16 frames, :attr:`PairRecord.feature_step`).

Two conventions, each that of the evaluator the field compares against, so that on the same
predictions our numbers equal theirs bit for bit (tests re-implement both and compare):

1. **R@k and mIoU: Moment-DETR's** ``standalone_eval`` (jayleicn/moment_detr,
   ``compute_mr_r1``). IoU is computed in float64 seconds as ``inter / (max(ends) - min(starts))``
   (the *hull* of the two spans, equal to the union whenever they overlap; 0 when they do not),
   ``inter = max(0, min(ends) - max(starts))``. With several ground-truth windows, a prediction is
   compared with the window of highest ``inter / (len_p + len_g - inter)`` (first on ties), as
   ``standalone_eval`` picks it. A prediction hits at threshold ``t`` when ``iou >= t`` (inclusive),
   with ``t`` the nearest double to ``0.3`` / ``0.5`` / ``0.7`` (``standalone_eval`` uses
   ``float(f"{t:.2f}")``, the same values). ``R{k}@{t}`` = ``mean(hit) * 100`` over pairs, a hit
   when ANY of the top-``k`` predictions hits (``standalone_eval`` has R1 only; R5 applies its IoU
   to every rank). ``mIoU`` = ``mean(iou of the top-1) * 100``, a true mean IoU. ``standalone_eval``
   rounds its printed R1 to 2 decimals; we keep the full value.
2. **VRL_IoU_mean: ActivityNet-VRL's** ``get_eval_metric`` / ``get_iou`` (fengyang0317/video_reloc,
   ``utils.py``), which is NOT a mean IoU: the mean over thresholds ``np.arange(0.1, 1.0, 0.1)[4:]``
   (0.5, 0.6, 0.7000000000000001, 0.8, 0.9: :data:`VRL_THRESHOLDS`, the array's own values) of
   R@1 counting ``iou > t`` (strict). Its IoU is ``inter / (p1 - p0 + g1 - g0 - inter)`` evaluated
   left to right. The original computes it on integer feature indices (exact integers divided in
   float64); so do we for pairs with a feature step: times are divided by the step, and a time
   within :data:`GRID_TOLERANCE_S` of a grid point is that grid point's integer index (the step
   times an integer, rounded to the records' precision, recovers the integer). Pairs without a
   step use seconds. With several ground-truth windows (the original has one), a pair's IoU is the
   maximum over them. The original accumulates the mean in float32 (``tf.metrics.mean``); we return
   the float64 mean of the same decisions.

In floating point, neither IoU is invariant to scaling time, and spans on a common grid do not
give exact ratios: ``(30.0, 75.2)`` against ``(30.0, 52.6)`` has hull IoU 0.5 (a hit at 0.5) but
``len_p + len_g - inter`` IoU 0.49999999999999994. Hence the two arithmetics above, each kept
where its evaluator uses it.

Predictions are scored exactly as given: a span reaching outside ``[0, duration]`` is not clipped
(its part outside the video enlarges the union); :func:`clip_predictions` clips explicitly. A
zero-length prediction scores IoU 0. Nothing is adjusted: the official MATR evaluation script adds
constants to its mIoU (+6) and R@5 (+7); the numbers here are exactly what the predictions earn.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from matr import choices

choices.declare(
    "IoU arithmetic of R@k and mIoU",
    "Moment-DETR standalone_eval: intersection over hull, float64 seconds, iou >= t",
    "the paper names no evaluator; standalone_eval is the field's reference for R@k, so numbers compare bit for bit",
)
choices.declare(
    "arithmetic of VRL_IoU_mean",
    "ActivityNet-VRL get_eval_metric: integer feature indices, thresholds np.arange(0.1, 1.0, 0.1)[4:], iou > t",
    "the paper's Table 1 compares with numbers computed by the original ActivityNet-VRL code",
)

IOU_THRESHOLDS: tuple[float, ...] = (0.3, 0.5, 0.7)
RECALL_KS: tuple[int, ...] = (1, 5)
VRL_THRESHOLDS: tuple[float, ...] = tuple(float(t) for t in np.arange(0.1, 1.0, 0.1)[4:])
GRID_TOLERANCE_S = 1e-6
"""A time this close (seconds) to ``step * integer`` is that feature index (records keep 1 µs)."""

METRIC_DESCRIPTIONS: dict[str, str] = {
    **{
        f"R{k}@{t}": (
            f"Recall@{k} at IoU {t}: % of pairs where any of the top-{k} predictions has IoU >= {t} "
            "(inclusive; IoU as Moment-DETR's standalone_eval computes it)"
        )
        for k in RECALL_KS
        for t in IOU_THRESHOLDS
    },
    "mIoU": "true mean IoU (%) of the top-1 prediction over pairs",
    "VRL_IoU_mean": (
        "ActivityNet-VRL 'IoU/mean' (Feng et al. 2018), not a mean IoU: mean of R@1 over IoU "
        "thresholds 0.5, 0.6, 0.7, 0.8, 0.9 counting IoU > t (strict; in feature indices where the "
        "annotation has them), in %"
    ),
    "num_pairs": "number of evaluated pairs",
    "num_missing": "ground-truth pairs with no prediction, counted as misses (0 unless strict=False)",
}
METRIC_KEYS: tuple[str, ...] = tuple(METRIC_DESCRIPTIONS)
SCORE_KEYS: tuple[str, ...] = METRIC_KEYS[:-2]
"""The metrics proper (percent), without the two counts."""

_MAX_IDS_IN_ERROR = 10


@dataclass(frozen=True)
class PairIoUs:
    """Per-pair IoUs, everything a metric (or a bootstrap over pairs) needs.

    ``pair_ids (P,)`` in ground-truth order; ``topk (P, K)``: Moment-DETR IoU of every ranked
    prediction, 0 where a pair has fewer than ``K``; ``vrl (P,)``: ActivityNet-VRL IoU of the top-1
    prediction; ``missing (P,)``: pairs without any prediction (IoU 0 everywhere).
    """

    pair_ids: list[str]
    topk: np.ndarray
    vrl: np.ndarray
    missing: np.ndarray


def hull_iou(predictions: np.ndarray, windows: np.ndarray) -> np.ndarray:
    """Moment-DETR's IoU of broadcastable spans ``(..., 2)`` -> ``(...)``: intersection over hull."""
    inter = np.maximum(
        0, np.minimum(predictions[..., 1], windows[..., 1]) - np.maximum(predictions[..., 0], windows[..., 0])
    )
    hull = np.maximum(predictions[..., 1], windows[..., 1]) - np.minimum(predictions[..., 0], windows[..., 0])
    return np.divide(inter, hull, out=np.zeros_like(inter), where=hull != 0)


def union_iou(predictions: np.ndarray, windows: np.ndarray) -> np.ndarray:
    """ActivityNet-VRL's IoU ``inter / (p1 - p0 + g1 - g0 - inter)`` of broadcastable spans -> ``(...)``."""
    p0, p1, g0, g1 = predictions[..., 0], predictions[..., 1], windows[..., 0], windows[..., 1]
    inter = np.maximum(np.minimum(p1, g1) - np.maximum(p0, g0), 0)
    union = p1 - p0 + g1 - g0 - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union != 0)


def temporal_iou(prediction: Sequence[float], windows: Any) -> float:
    """Moment-DETR IoU of one span ``(start, end[, score])`` with a window ``(2,)`` or windows ``(G, 2)``."""
    span = _as_prediction_array(np.asarray(prediction, dtype=np.float64).reshape(1, -1), "prediction")[:, :2]
    gt = _as_window_array(windows, "ground truth")
    return float(_ranked_hull_iou(span[None], gt[None], np.ones((1, len(gt)), dtype=bool))[0, 0])


def clip_predictions(predictions: Mapping[str, Any], durations: Mapping[str, float]) -> dict[str, np.ndarray]:
    """Clamp every predicted span into ``[0, duration]`` of its pair; scores are kept.

    Returns ``pair_id -> (K, 2 or 3) float64 array``. Evaluation never does this by itself.
    """
    clipped = {}
    for pair_id, ranked in predictions.items():
        if pair_id not in durations:
            raise KeyError(f"no duration for pair id {pair_id!r}")
        spans = _as_prediction_array(ranked, f"predictions[{pair_id!r}]").copy()
        spans[:, :2] = np.minimum(np.maximum(spans[:, :2], 0.0), float(durations[pair_id]))
        clipped[pair_id] = spans
    return clipped


def prediction_map(items: Iterable[tuple[str, Any]], source: str = "predictions") -> dict[str, Any]:
    """``pair_id -> spans`` from ``(pair_id, spans)`` items; a repeated pair id is an error naming both items."""
    mapping: dict[str, Any] = {}
    first: dict[str, int] = {}
    for number, (pair_id, spans) in enumerate(items, start=1):
        if pair_id in first:
            raise ValueError(f"{source}, item {number}: pair id {pair_id!r} already given by item {first[pair_id]}")
        first[pair_id] = number
        mapping[pair_id] = spans
    return mapping


def pair_ious(
    predictions: Mapping[str, Any],
    ground_truth: Mapping[str, Any],
    *,
    strict: bool = True,
    feature_steps: Mapping[str, float] | None = None,
) -> PairIoUs:
    """The per-pair IoUs of both conventions (module docstring).

    With ``strict=True`` a ground-truth pair without predictions (absent or empty list) is an error;
    with ``strict=False`` it scores as a miss with IoU 0. Predictions for pair ids absent from
    ``ground_truth`` are always an error.
    """
    _check_pair_ids(predictions, ground_truth, strict)
    pair_ids = list(ground_truth)
    spans = [_as_prediction_array(predictions.get(p, ()), f"predictions[{p!r}]")[:, :2] for p in pair_ids]
    windows = [_as_window_array(ground_truth[p], f"ground_truth[{p!r}]") for p in pair_ids]
    pred, pred_valid = _pad(spans, width=1)
    gt, gt_valid = _pad(windows, width=1)
    topk = np.where(pred_valid, _ranked_hull_iou(pred, gt, gt_valid), 0.0)
    steps = np.array([_step(feature_steps, p) for p in pair_ids]) if pair_ids else np.zeros(0)
    vrl = np.where(pred_valid[:, 0], _vrl_iou(pred[:, 0], gt, gt_valid, steps), 0.0)
    return PairIoUs(pair_ids, topk, vrl, ~pred_valid[:, 0])


def scores(topk: np.ndarray, vrl: np.ndarray) -> dict[str, float]:
    """The metrics of :data:`SCORE_KEYS` (percent) from per-pair IoUs ``topk (P, K)`` and ``vrl (P,)``."""
    results: dict[str, float] = {}
    for k in RECALL_KS:
        for t in IOU_THRESHOLDS:
            results[f"R{k}@{t}"] = float(np.mean((topk[:, :k] >= t).any(axis=1))) * 100
    results["mIoU"] = float(np.mean(topk[:, 0])) * 100
    results["VRL_IoU_mean"] = float(np.mean(np.stack([vrl > t for t in VRL_THRESHOLDS]))) * 100
    return results


def per_pair_scores(topk: np.ndarray, vrl: np.ndarray) -> dict[str, np.ndarray]:
    """Each metric of :data:`SCORE_KEYS` as per-pair values ``(..., P)`` whose mean over pairs is the metric.

    ``topk (..., P, K)``, ``vrl (..., P)``; recalls are 0 or 100 per pair, mIoU the top-1 IoU in
    percent, VRL_IoU_mean the percentage of its five thresholds a pair passes. The means equal
    :func:`scores` up to float64 rounding; bootstraps over pairs resample these.
    """
    columns = {f"R{k}@{t}": (topk[..., :k] >= t).any(axis=-1) * 100.0 for k in RECALL_KS for t in IOU_THRESHOLDS}
    columns["mIoU"] = topk[..., 0] * 100.0
    columns["VRL_IoU_mean"] = np.mean([vrl > t for t in VRL_THRESHOLDS], axis=0) * 100.0
    return columns


def top1_iou_table(
    predictions: Mapping[str, Any], ground_truth: Mapping[str, Any], *, strict: bool = True
) -> dict[str, float]:
    """``pair_id -> IoU of the top-1 prediction`` as a fraction in ``[0, 1]`` (0 for a missing pair)."""
    ious = pair_ious(predictions, ground_truth, strict=strict)
    return {pair_id: float(iou) for pair_id, iou in zip(ious.pair_ids, ious.topk[:, 0])}


def evaluate(
    predictions: Mapping[str, Any],
    ground_truth: Mapping[str, Any],
    *,
    strict: bool = True,
    feature_steps: Mapping[str, float] | None = None,
) -> dict[str, float]:
    """All metrics of :data:`METRIC_KEYS` (percent, unadjusted) plus ``num_pairs`` and ``num_missing``."""
    if not ground_truth:
        raise ValueError("ground_truth is empty: there is nothing to evaluate")
    ious = pair_ious(predictions, ground_truth, strict=strict, feature_steps=feature_steps)
    results: dict[str, float] = scores(ious.topk, ious.vrl)
    results["num_pairs"] = len(ious.pair_ids)
    results["num_missing"] = int(ious.missing.sum())
    return results


def _ranked_hull_iou(pred: np.ndarray, gt: np.ndarray, gt_valid: np.ndarray) -> np.ndarray:
    """``pred (P, K, 2)`` against each pair's windows ``gt (P, G, 2)`` -> ``(P, K)``.

    The window compared with is the one of highest ``len_p + len_g - inter`` IoU (first on ties).
    """
    p, g = pred[:, :, None], gt[:, None]  # (P, K, 1, 2), (P, 1, G, 2)
    inter = np.clip(np.minimum(p[..., 1], g[..., 1]) - np.maximum(p[..., 0], g[..., 0]), 0, None)
    union = (p[..., 1] - p[..., 0]) + (g[..., 1] - g[..., 0]) - inter
    cross = np.divide(inter, union, out=np.zeros_like(inter), where=union != 0)
    choice = np.where(gt_valid[:, None], cross, -np.inf).argmax(axis=-1)  # (P, K)
    chosen = np.take_along_axis(gt, choice[..., None].repeat(2, axis=-1), axis=1)  # (P, K, 2)
    return hull_iou(pred, chosen)


def _vrl_iou(top1: np.ndarray, gt: np.ndarray, gt_valid: np.ndarray, steps: np.ndarray) -> np.ndarray:
    """ActivityNet-VRL IoU of ``top1 (P, 2)`` with windows ``gt (P, G, 2)`` (max over windows) -> ``(P,)``."""
    on_grid = (steps > 0)[:, None, None]
    units = np.where(on_grid, steps[:, None, None], 1.0)  # (P, 1, 1)
    pred = _to_grid(top1[:, None], units, on_grid)  # (P, 1, 2)
    windows = _to_grid(gt, units, on_grid)  # (P, G, 2)
    return np.where(gt_valid, union_iou(pred, windows), -np.inf).max(axis=-1)


def _to_grid(times: np.ndarray, step: np.ndarray, on_grid: np.ndarray) -> np.ndarray:
    """Times in feature units where ``on_grid`` (integers within tolerance of a grid point), else seconds."""
    index = np.rint(times / step)
    snapped = np.where(np.abs(times - index * step) <= GRID_TOLERANCE_S, index, times / step)
    return np.where(on_grid, snapped, times)


def _step(feature_steps: Mapping[str, float] | None, pair_id: str) -> float:
    if feature_steps is None or feature_steps.get(pair_id) is None:
        return 0.0
    step = float(feature_steps[pair_id])
    if not (np.isfinite(step) and step > 0):
        raise ValueError(f"feature_steps[{pair_id!r}] must be a positive number of seconds, got {step}")
    return step


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
    if hasattr(values, "detach"):  # a torch tensor, without importing torch here
        values = values.detach().cpu().numpy()
    try:
        return np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{name}: expected numbers in rows of equal length ({error})") from error


def _pad(arrays: list[np.ndarray], width: int) -> tuple[np.ndarray, np.ndarray]:
    """Stack ``(K_i, 2)`` arrays into ``(P, max(K_i, width), 2)`` plus a ``(P, max(K_i, width))`` validity mask."""
    width = max([width, *(len(a) for a in arrays)])
    padded = np.zeros((len(arrays), width, 2))
    valid = np.zeros((len(arrays), width), dtype=bool)
    for row, array in enumerate(arrays):
        padded[row, : len(array)] = array
        valid[row, : len(array)] = True
    return padded, valid
