"""Speed of the metrics and of the bootstrap over pairs (issue 9: thousands of resamples in milliseconds).

Times, side by side in one run on the same per-pair IoUs: ``metrics.evaluate`` on ``P`` pairs with
5 ranked predictions; drawing the resamples (``stats.bootstrap_counts``, cache cleared); then, with
the draws cached as a table reuses them, ``stats.metric_cells`` (every metric with its interval)
for one seed and for 3 seeds and ``stats.paired_difference`` of one metric. Each figure is the best
of ``--repeat`` runs.

    python benchmarks/bench_stats.py --pairs 300 --resamples 4000 --out benchmarks/results/stats.json
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from matr import metrics, stats


def best_ms(run: Callable[[], object], repeat: int) -> float:
    """Best wall time of ``repeat`` calls, in milliseconds."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return 1000 * min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=300)
    parser.add_argument("--resamples", type=int, default=stats.DEFAULT_RESAMPLES)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()

    rng = np.random.default_rng(args.seed)
    starts = rng.uniform(0, 100, (args.pairs, 5))
    predictions = {f"p{i}": np.stack([starts[i], starts[i] + 8], axis=1) for i in range(args.pairs)}
    ground_truth = {f"p{i}": (float(s), float(s) + 7) for i, s in enumerate(rng.uniform(0, 100, args.pairs))}
    ious = metrics.pair_ious(predictions, ground_truth)
    seeds = np.stack([ious.topk, ious.topk[::-1], np.roll(ious.topk, 1, axis=0)])
    column = metrics.per_pair_scores(ious.topk, ious.vrl)["R1@0.5"]
    n = args.resamples
    figures = {
        "pairs": args.pairs,
        "resamples": n,
        "evaluate_ms": best_ms(lambda: metrics.evaluate(predictions, ground_truth), args.repeat),
        "draws_ms": best_ms(
            lambda: (stats.bootstrap_counts.cache_clear(), stats.bootstrap_counts(args.pairs, 0, n)), args.repeat
        ),
        "metric_cells_1_seed_ms": best_ms(lambda: stats.metric_cells(ious.topk, 0, n=n), args.repeat),
        "metric_cells_3_seeds_ms": best_ms(lambda: stats.metric_cells(seeds, 0, n=n), args.repeat),
        "paired_difference_ms": best_ms(lambda: stats.paired_difference(column, column[::-1], 0, n=n), args.repeat),
    }
    print(json.dumps(figures, indent=2))
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
