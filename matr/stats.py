"""Uncertainty of the metrics: seeded bootstrap confidence intervals over pairs, and verdicts.

Everything resamples *pairs* (the test pairs are the sample; a different set of pairs of the same
kind would give different numbers). A resample draws ``P`` pairs with replacement; it is stored as
a count per pair, ``(n, P)`` integers from :func:`bootstrap_counts`, so that the mean of a per-pair
value over every resample is one matrix product. Intervals are percentile intervals of the
resampled statistic (95% by default), and every function takes a ``seed``: the same inputs and seed
give the same interval on every machine.

* :func:`bootstrap_ci`: the interval of any statistic of per-pair values.
* :func:`metric_table`: every metric of :mod:`matr.metrics` with its interval, from per-pair IoUs.
* :func:`metric_cells`: the same for one seed or several trained seeds on the same pairs: the mean
  over seeds, their standard deviation and the interval of the seed-mean under a *two-level*
  bootstrap: each resample draws the training seeds with replacement (:func:`seed_weights`) and the
  pairs with replacement, so the interval holds the seeds' disagreement as well as the pairs'.
  With one seed it is the bootstrap over pairs alone.
* :func:`paired_difference`: ``metric(a) - metric(b)`` of two methods on the same pairs, each
  resample taking the same pairs for both (tighter than two separate intervals when the methods
  succeed on the same pairs) and resampling each method's seeds, and :func:`verdict` on a claimed
  ordering.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import numpy as np

from matr import choices
from matr.metrics import SCORE_KEYS, per_pair_scores, scores

DEFAULT_RESAMPLES = choices.declare(
    "bootstrap resamples per interval",
    4000,
    "the paper reports no intervals; 4000 resamples keep the Monte-Carlo error of a 95% bound well under its width",
)
LEVEL = 0.95
choices.declare(
    "confidence intervals",
    f"{LEVEL:.0%} percentile bootstrap over pairs (and over training seeds where a row has several), seeded",
    "the paper reports single numbers; the test pairs and the training seeds are the samples that another draw"
    " would change",
)
VERDICTS: tuple[str, ...] = ("holds", "reversed", "not distinguishable at this size")

Statistic = Callable[[np.ndarray], np.ndarray]


@functools.lru_cache(maxsize=4)
def bootstrap_counts(num_pairs: int, seed: int, n: int = DEFAULT_RESAMPLES) -> np.ndarray:
    """How often each of ``num_pairs`` pairs is drawn in each of ``n`` resamples: ``(n, P)`` float64, read-only.

    Cached: the rows and columns of one table, resampled with one seed, reuse the same draws.
    """
    if num_pairs < 1:
        raise ValueError("a bootstrap needs at least one pair")
    if n < 1:
        raise ValueError(f"the number of resamples must be >= 1, got {n}")
    counts = _draw_counts(num_pairs, np.random.default_rng(seed), n)
    counts.flags.writeable = False
    return counts


@functools.lru_cache(maxsize=4)
def seed_weights(num_seeds: int, seed: int, n: int = DEFAULT_RESAMPLES) -> np.ndarray:
    """How often each of ``num_seeds`` training seeds is drawn in each of ``n`` resamples, over ``num_seeds``.

    ``(n, S)`` float64 rows summing to 1, read-only (all ones for one seed). Drawn from a stream of its
    own (``seed`` and ``S``), so the pair draws of :func:`bootstrap_counts` stay those of a one-seed
    table, and two rows with as many seeds draw the same seed indices (paired by training seed).
    """
    if num_seeds < 1:
        raise ValueError("a bootstrap needs at least one training seed")
    weights = _draw_counts(num_seeds, np.random.default_rng([seed, num_seeds]), n) / num_seeds
    weights.flags.writeable = False
    return weights


def two_level_means(values: np.ndarray, seed: int, n: int = DEFAULT_RESAMPLES) -> np.ndarray:
    """Mean over seeds and pairs of ``values (S, P, ...)`` in every two-level resample -> ``(n, ...)``.

    Each resample draws ``S`` seeds and ``P`` pairs with replacement (the same pairs for every seed).
    """
    values = np.asarray(values, dtype=np.float64)
    counts = bootstrap_counts(values.shape[1], seed, n)
    per_seed = np.stack([resampled_means(seed_values, counts) for seed_values in values], axis=1)  # (n, S, ...)
    weights = seed_weights(values.shape[0], seed, n)
    return np.einsum("ns,ns...->n...", weights, per_seed)


def resampled_means(values: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Mean over pairs of ``values (P, ...)`` in every resample ``counts (n, P)`` -> ``(n, ...)``."""
    values = np.asarray(values, dtype=np.float64)
    flat = values.reshape(values.shape[0], -1)
    return (counts @ flat / values.shape[0]).reshape(counts.shape[0], *values.shape[1:])


def percentile_interval(samples: np.ndarray, level: float = LEVEL) -> tuple[Any, Any]:
    """The central ``level`` interval ``(low, high)`` of resampled statistics ``samples (n, ...)``.

    Floats for ``samples (n,)``; arrays ``(...)`` otherwise.
    """
    if not 0 < level < 1:
        raise ValueError(f"level must lie in (0, 1), got {level}")
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(samples, [tail, 100 - tail], axis=0)
    return (float(low), float(high)) if np.ndim(low) == 0 else (low, high)


def bootstrap_ci(
    per_pair_values: Any,
    statistic: Statistic | None = None,
    seed: int = 0,
    n: int = DEFAULT_RESAMPLES,
    level: float = LEVEL,
) -> tuple[float, float]:
    """Percentile interval of ``statistic`` over pairs resampled with replacement.

    ``per_pair_values (P, ...)``: one row per pair. ``statistic``: ``(n, P, ...) -> (n,)``, applied to
    all resamples at once (e.g. ``lambda x: np.median(x, axis=1)``); ``None`` is the mean over
    pairs, computed without materialising the resamples.
    """
    values = np.asarray(per_pair_values, dtype=np.float64)
    if values.ndim == 0 or values.shape[0] == 0:
        raise ValueError("per_pair_values must hold one row per pair, at least one pair")
    if statistic is None:
        if values.ndim != 1:
            raise ValueError(f"the default statistic (mean) takes per-pair values of shape (P,), got {values.shape}")
        return percentile_interval(resampled_means(values, bootstrap_counts(len(values), seed, n)), level)
    draws = np.random.default_rng(seed).integers(0, values.shape[0], size=(n, values.shape[0]))
    return percentile_interval(np.asarray(statistic(values[draws]), dtype=np.float64), level)


def metric_table(
    ious_top1: Any,
    ious_topk: Any,
    seed: int,
    *,
    vrl_ious: Any = None,
    n: int = DEFAULT_RESAMPLES,
    level: float = LEVEL,
) -> dict[str, tuple[float, float, float]]:
    """``{metric: (value, low, high)}`` for every metric of :data:`matr.metrics.SCORE_KEYS`, in percent.

    ``ious_top1 (P,)`` and ``ious_topk (P, K)`` (0 where a pair has fewer than ``K`` predictions) as
    :func:`matr.metrics.pair_ious` gives them (``topk[:, 0]`` must be ``ious_top1``); ``vrl_ious
    (P,)``: its ``vrl`` IoUs (ActivityNet-VRL arithmetic), defaulting to ``ious_top1``. Values equal
    :func:`matr.metrics.scores` exactly.
    """
    cells = metric_cells(_with_top1(ious_top1, ious_topk), seed, vrl_ious=vrl_ious, n=n, level=level)
    return {key: (cell["value"], *cell["ci"]) for key, cell in cells.items()}


def metric_cells(
    ious_topk: Any, seed: int, *, vrl_ious: Any = None, n: int = DEFAULT_RESAMPLES, level: float = LEVEL
) -> dict[str, dict[str, Any]]:
    """Table cells ``{metric: {"value", "ci": [low, high], "std", "seeds"}}`` for one or several seeds.

    ``ious_topk``: ``(P, K)`` for one trained seed or ``(S, P, K)`` for ``S`` seeds on the same pairs;
    ``vrl_ious``: ``(P,)`` or ``(S, P)``, defaulting to the top-1 IoUs. ``value``: the mean over seeds
    of each seed's metric; ``std``: their standard deviation (``ddof=1``; ``None`` for one seed);
    ``ci``: the interval of the seed-mean when seeds and pairs are resampled (:func:`two_level_means`).
    """
    topk = np.asarray(ious_topk, dtype=np.float64)
    topk = topk[None] if topk.ndim == 2 else topk
    if topk.ndim != 3 or topk.shape[1] == 0 or topk.shape[2] == 0:
        raise ValueError(f"ious_topk must have shape (P, K) or (S, P, K) with P, K >= 1, got {topk.shape}")
    vrl = topk[..., 0] if vrl_ious is None else np.asarray(vrl_ious, dtype=np.float64).reshape(topk.shape[:2])
    per_seed = [scores(topk[s], vrl[s]) for s in range(topk.shape[0])]
    columns = per_pair_scores(topk, vrl)  # metric -> (S, P)
    matrix = np.stack([columns[key] for key in SCORE_KEYS], axis=2)  # (S, P, M)
    bounds = percentile_interval(two_level_means(matrix, seed, n), level)
    cells = {}
    for column, key in enumerate(SCORE_KEYS):
        values = np.array([row[key] for row in per_seed])
        std = float(values.std(ddof=1)) if len(values) > 1 else None
        ci = [float(bounds[0][column]), float(bounds[1][column])]
        cells[key] = {"value": float(values.mean()), "ci": ci, "std": std, "seeds": len(values)}
    return cells


def paired_difference(
    a_pairs: Any, b_pairs: Any, seed: int, *, n: int = DEFAULT_RESAMPLES, level: float = LEVEL
) -> tuple[float, float, float]:
    """``(mean(a) - mean(b), low, high)`` over the same pairs, resampled together.

    ``a_pairs``, ``b_pairs``: per-pair values ``(P,)`` (e.g. a column of
    :func:`matr.metrics.per_pair_scores`) or ``(S, P)`` for several seeds (averaged over seeds; the
    seeds of each are resampled too, paired by index when both have as many).
    """
    a, b = _per_seed(a_pairs, "a_pairs"), _per_seed(b_pairs, "b_pairs")
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"a and b must hold the same pairs: {a.shape[1]} and {b.shape[1]} pairs")
    samples = two_level_means(a, seed, n) - two_level_means(b, seed, n)
    low, high = percentile_interval(samples, level)
    return float(a.mean() - b.mean()), low, high


def verdict(diff: float, low: float, high: float, claimed_sign: int) -> str:
    """Whether a claimed ordering survives: one of :data:`VERDICTS`.

    ``claimed_sign``: +1 when the claim is ``a > b``, -1 when ``a < b``. The claim ``holds`` when the
    interval ``[low, high]`` of ``a - b`` lies strictly on the claimed side of 0, is ``reversed``
    when it lies strictly on the other side, and is ``not distinguishable at this size`` when it
    contains 0. ``diff`` is reported alongside and does not decide.
    """
    if claimed_sign not in (1, -1):
        raise ValueError(f"claimed_sign must be +1 or -1, got {claimed_sign}")
    if not (np.isfinite([diff, low, high]).all() and low <= high):
        raise ValueError(f"expected a finite difference and interval, got {diff} in [{low}, {high}]")
    if low > 0 or high < 0:
        return VERDICTS[0] if (1 if low > 0 else -1) == claimed_sign else VERDICTS[1]
    return VERDICTS[2]


def _draw_counts(num_items: int, rng: np.random.Generator, n: int) -> np.ndarray:
    """``(n, num_items)`` float64: how often each item is drawn in each of ``n`` draws with replacement."""
    draws = rng.integers(0, num_items, size=(n, num_items))
    flat = (draws + num_items * np.arange(n)[:, None]).ravel()
    return np.bincount(flat, minlength=n * num_items).reshape(n, num_items).astype(np.float64)


def _with_top1(ious_top1: Any, ious_topk: Any) -> np.ndarray:
    top1 = np.asarray(ious_top1, dtype=np.float64)
    topk = np.asarray(ious_topk, dtype=np.float64)
    if topk.ndim != 2 or top1.shape != topk.shape[:1]:
        raise ValueError(f"expected ious_top1 (P,) and ious_topk (P, K), got {top1.shape} and {topk.shape}")
    if not np.array_equal(topk[:, 0], top1):
        raise ValueError("ious_topk[:, 0] must be the top-1 IoUs")
    return topk


def _per_seed(values: Any, name: str) -> np.ndarray:
    """``(S, P)`` from per-pair values ``(P,)`` or ``(S, P)``."""
    array = np.asarray(values, dtype=np.float64)
    array = array[None] if array.ndim == 1 else array
    if array.ndim != 2 or array.shape[1] == 0:
        raise ValueError(f"{name} must have shape (P,) or (S, P) with P >= 1, got {np.shape(values)}")
    return array
