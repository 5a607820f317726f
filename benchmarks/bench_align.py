"""Benchmark: soft-DTW forward + backward (cosine cost included) against common alternatives.

Every timed call starts from random features ``Et (B, M, d)``, ``Eq (B, N, d)`` with
``requires_grad``, computes the cosine cost, the soft-DTW value of each pair (gamma = 0.1), and
backpropagates ``value.sum()`` to the features. Rows per size:

* ``ours subsequence`` — :func:`matr.align.soft_dtw` as the model uses it: subsequence mode,
  random lengths per pair (padding included);
* ``ours full`` — the same on full lengths, non-subsequence (``R[M, N]``): the common problem
  every baseline below solves, so the ratios compare equal work;
* ``tslearn`` — ``tslearn.metrics.SoftDTWLossPyTorch(gamma, dist_func=cosine_cost)`` when
  importable: numba-compiled forward and backward on the CPU, fed our cosine cost through its
  ``dist_func`` hook, so the cost is identical; it computes non-subsequence soft-DTW on full
  lengths and has no padding masks;
* ``naive batched loop`` — Python loops over ``i, j`` with autograd, each cell one batched op
  over the pairs;
* ``naive per-pair loop`` — Python loops over ``i, j`` with autograd on scalars, one pair at a
  time; timed on ``--naive-pairs`` pairs and extrapolated linearly to ``B`` (stated in the table);
* ``ours full, DP only`` and ``tslearn, DP only`` — the same two on a precomputed cost (a leaf
  tensor; tslearn gets it through an identity ``dist_func``): the DPs alone, since at the large
  size the cosine cost's matmuls take a good part of the time;
* ``ours hard_alignment`` — the hard path and span (forward only, no gradient);
* at the small size, ``ours drop_dtw`` and ``ours tcc`` through ``alignment_loss``.

The ``x ours`` column is a baseline's total time over that of ours on the same problem, and
``max |diff|`` checks its values against ours (gamma = 0.1; float32).
Times are medians over ``--repeats`` runs after one warm-up. The machine's CPU may be shared with
other jobs: threads default to 1 (torch and numba) because oversubscribed OpenMP threads stall
for milliseconds per operation; the load average is recorded with the results.

Run: ``.venv/bin/python benchmarks/bench_align.py [--quick]`` (about 2-3 minutes; ``--quick``
under a minute). Writes ``benchmarks/results/bench_align.json``.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import Tensor

from matr.align import alignment_loss, cosine_cost, hard_alignment, soft_dtw
from matr.io import write_json

RESULTS = Path(__file__).resolve().parent / "results" / "bench_align.json"
GAMMA = 0.1
SIZES = ((1200, 150, 60, 256), (64, 128, 32, 256))  # (B, M, N, d)
#: Baseline rows and the row of ours that solves the same problem.
BASELINES = {
    "tslearn": "ours full",
    "naive batched loop": "ours full",
    "naive per-pair loop": "ours full",
    "tslearn, DP only": "ours full, DP only",
}


@dataclass
class Row:
    """One timed method at one size."""

    size: str
    method: str
    forward_s: float
    backward_s: float
    total_s: float
    note: str = ""
    ratio_vs_ours: float | None = None  # baseline time / time of ours on the same problem
    max_abs_diff_vs_ours: float | None = None  # baseline values vs ours on the same problem


# ---------------------------------------------------------------------------------------------
# Baselines
# ---------------------------------------------------------------------------------------------


def _softmin(values: list[Tensor]) -> Tensor:
    return -GAMMA * torch.logsumexp(-torch.stack(values) / GAMMA, dim=0)


def naive_batched_soft_dtw(C: Tensor) -> Tensor:
    """Non-subsequence soft-DTW of full-length pairs, autograd through a Python double loop whose
    cells are batched over the pairs: ``(B, M, N) -> (B,)``."""
    B, M, N = C.shape
    cells = C.permute(1, 2, 0).reshape(M * N, B).unbind(0)
    inf = C.new_full((B,), float("inf"))
    R = [[inf] * (N + 1) for _ in range(M + 1)]
    R[0][0] = C.new_zeros(B)
    for i in range(1, M + 1):
        for j in range(1, N + 1):
            R[i][j] = cells[(i - 1) * N + j - 1] + _softmin([R[i - 1][j - 1], R[i - 1][j], R[i][j - 1]])
    return R[M][N]


def naive_pair_soft_dtw(C: Tensor) -> Tensor:
    """The same for one pair with scalar cells: ``(M, N) -> ()``."""
    return naive_batched_soft_dtw(C[None])[0]


def tslearn_loss(dist_func: Callable[[Tensor, Tensor], Tensor]) -> Callable[[Tensor, Tensor], Tensor] | None:
    """tslearn's ``SoftDTWLossPyTorch`` with ``dist_func`` as its cost, or None when tslearn is missing."""
    try:
        from tslearn.metrics import SoftDTWLossPyTorch
    except ImportError:
        return None
    return SoftDTWLossPyTorch(gamma=GAMMA, dist_func=dist_func)


# ---------------------------------------------------------------------------------------------
# Timing
# ---------------------------------------------------------------------------------------------


def features(B: int, M: int, N: int, d: int, seed: int) -> tuple[Tensor, Tensor]:
    """Random leaf features ``Et (B, M, d)``, ``Eq (B, N, d)``."""
    gen = torch.Generator().manual_seed(seed)
    return (torch.randn(B, M, d, generator=gen).requires_grad_(), torch.randn(B, N, d, generator=gen).requires_grad_())


def time_method(
    fn: Callable[..., Tensor], make_inputs: Callable[[int], tuple[Tensor, ...]], repeats: int, backward: bool = True
) -> tuple[float, float, Tensor]:
    """Median forward and backward seconds of ``fn(*inputs) -> (B,)`` and the values of the last run.

    Run ``r`` uses inputs from seed ``repeats - r``: run 0 (seed ``repeats``) warms up (numba
    compilation, allocator) and is not timed, and every method's last run sees seed 0, so values
    can be compared across methods.
    """
    forward, backward_times = [], []
    for run in range(repeats + 1):
        inputs = make_inputs(repeats - run)
        start = time.perf_counter()
        value = fn(*inputs)
        middle = time.perf_counter()
        if backward:
            value.sum().backward()
        end = time.perf_counter()
        if run:
            forward.append(middle - start)
            backward_times.append(end - middle)
    return statistics.median(forward), statistics.median(backward_times), value.detach()


def bench_size(B: int, M: int, N: int, d: int, args: argparse.Namespace) -> list[Row]:
    """All rows at one size (see the module docstring)."""
    size = f"B={B} M={M} N={N} d={d}"
    gen = torch.Generator().manual_seed(0)
    tl = torch.randint(M // 3, M + 1, (B,), generator=gen)
    ql = torch.randint(N // 3, N + 1, (B,), generator=gen)
    full = (torch.full((B,), M), torch.full((B,), N))
    rows: list[Row] = []

    def make_features(seed: int) -> tuple[Tensor, Tensor]:
        return features(B, M, N, d, seed)

    def make_cost(seed: int) -> tuple[Tensor]:
        with torch.no_grad():
            return (cosine_cost(*features(B, M, N, d, seed)).requires_grad_(),)

    def add(
        method: str,
        fn: Callable[..., Tensor],
        note: str = "",
        scale: float = 1.0,
        backward: bool = True,
        reps: int = args.repeats,
        inputs: Callable[[int], tuple[Tensor, ...]] = make_features,
    ) -> Tensor:
        fwd, bwd, value = time_method(fn, inputs, reps, backward)
        rows.append(Row(size, method, fwd * scale, bwd * scale, (fwd + bwd) * scale, note))
        return value

    add("ours subsequence", lambda Et, Eq: soft_dtw(cosine_cost(Et, Eq), tl, ql, GAMMA), "random lengths, padded")
    reference = add(
        "ours full",
        lambda Et, Eq: soft_dtw(cosine_cost(Et, Eq), *full, GAMMA, subsequence=False),
        "non-subsequence, full lengths",
    )
    checks: list[tuple[Row, Tensor, Tensor]] = []
    loss = tslearn_loss(cosine_cost)
    if loss is None:
        rows.append(Row(size, "tslearn", float("nan"), float("nan"), float("nan"), "not importable: skipped"))
    else:
        value = add("tslearn", loss, "numba; our cosine cost via dist_func")
        checks.append((rows[-1], value, reference))
    if not args.skip_naive:
        reps = min(args.repeats, args.naive_repeats)
        value = add(
            "naive batched loop",
            lambda Et, Eq: naive_batched_soft_dtw(cosine_cost(Et, Eq)),
            "autograd, loops over i, j",
            reps=reps,
        )
        checks.append((rows[-1], value, reference))
        k = min(args.naive_pairs, B)
        value = add(
            "naive per-pair loop",
            lambda Et, Eq: torch.stack([naive_pair_soft_dtw(c) for c in cosine_cost(Et[:k], Eq[:k])]),
            f"timed on {k} of {B} pairs, extrapolated x{B / k:g}",
            scale=B / k,
            reps=reps,
        )
        checks.append((rows[-1], value, reference[:k]))
    dp_reference = add(
        "ours full, DP only",
        lambda C: soft_dtw(C, *full, GAMMA, subsequence=False),
        "cost precomputed (leaf)",
        inputs=make_cost,
    )
    dp_loss = tslearn_loss(lambda C, _: C)
    if dp_loss is not None:
        value = add(
            "tslearn, DP only", lambda C: dp_loss(C, C[:, :N]), "cost precomputed, identity dist_func", inputs=make_cost
        )
        checks.append((rows[-1], value, dp_reference))
    add(
        "ours hard_alignment",
        lambda Et, Eq: hard_alignment(cosine_cost(Et, Eq), tl, ql).start,
        "forward only, random lengths",
        backward=False,
    )
    if B <= args.extra_methods_max_batch:
        for method in ("drop_dtw", "tcc"):
            add(
                f"ours {method}",
                lambda Et, Eq, m=method: alignment_loss(m, Et, Eq, tl, ql, GAMMA),
                "alignment_loss, random lengths",
            )
    for row, value, expected in checks:
        row.max_abs_diff_vs_ours = float((value - expected).abs().max())
    ours = {r.method: r.total_s for r in rows if r.method in BASELINES.values()}
    for row in rows:
        if row.method in BASELINES and row.total_s == row.total_s:  # timed (not NaN)
            row.ratio_vs_ours = row.total_s / ours[BASELINES[row.method]]
    return rows


# ---------------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------------


def cpu_model() -> str:
    """The CPU's model name from ``/proc/cpuinfo`` where there is one, else the architecture."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.machine()


def machine_info(threads: int) -> dict:
    info = {
        "platform": platform.platform(),
        "processor": cpu_model(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cpu_count": os.cpu_count(),
        "torch_threads": threads,
        "load_average_start": os.getloadavg(),
    }
    try:
        import numba
        import tslearn

        info.update(numba=numba.__version__, tslearn=tslearn.__version__, numba_threads=numba.get_num_threads())
    except ImportError:
        info.update(tslearn=None)
    return info


def format_table(rows: list[Row]) -> str:
    header = (
        f"{'size':<24} {'method':<21} {'fwd s':>8} {'bwd s':>8} {'total s':>8} {'x ours':>7} {'max|diff|':>9}  note"
    )
    lines = [header, "-" * len(header)]
    for r in rows:
        ratio = f"{r.ratio_vs_ours:7.1f}" if r.ratio_vs_ours is not None else f"{'':>7}"
        diff = f"{r.max_abs_diff_vs_ours:9.1e}" if r.max_abs_diff_vs_ours is not None else f"{'':>9}"
        lines.append(
            f"{r.size:<24} {r.method:<21} {r.forward_s:8.3f} {r.backward_s:8.3f} {r.total_s:8.3f} "
            f"{ratio} {diff}  {r.note}"
        )
    return "\n".join(lines)


def verdict(rows: list[Row]) -> str:
    """Whether ours is no slower than the fastest baseline at the first (largest) size."""
    big = rows[0].size
    timed = [r for r in rows if r.size == big and r.ratio_vs_ours is not None]
    if not timed:
        return f"{big}: no baseline timed"
    best = min(timed, key=lambda r: r.ratio_vs_ours)
    status = "ours is no slower" if best.ratio_vs_ours >= 1.0 else "ours is SLOWER"
    return (
        f"{big}: fastest baseline relative to ours: {best.method} at {best.ratio_vs_ours:.1f}x "
        f"the time of {BASELINES[best.method]!r}: {status}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="2 repeats, 1 naive pair, no drop_dtw/tcc rows")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per method (median reported)")
    parser.add_argument("--threads", type=int, default=1, help="torch and numba threads (default 1: shared CPU)")
    parser.add_argument("--naive-pairs", type=int, default=2, help="pairs timed for the per-pair naive loop")
    parser.add_argument("--naive-repeats", type=int, default=1, help="timed runs for the naive loops")
    parser.add_argument("--skip-naive", action="store_true", help="skip both naive loops")
    parser.add_argument(
        "--extra-methods-max-batch", type=int, default=64, help="time drop_dtw and tcc at sizes with at most this batch"
    )
    parser.add_argument("--output", type=Path, default=RESULTS, help="JSON results path")
    args = parser.parse_args()
    if args.quick:
        args.repeats, args.naive_pairs, args.extra_methods_max_batch = 2, 1, 0
    torch.set_num_threads(args.threads)
    try:
        import numba

        numba.set_num_threads(min(args.threads, numba.config.NUMBA_NUM_THREADS))
    except ImportError:
        pass
    info = machine_info(args.threads)
    rows = [row for size in SIZES for row in bench_size(*size, args)]
    info["load_average_end"] = os.getloadavg()
    table = format_table(rows)
    summary = verdict(rows)
    print(table)
    print()
    print(summary)
    print(
        f"threads={args.threads}; load average start {info['load_average_start']}, end {info['load_average_end']} "
        f"on {info['cpu_count']} CPUs (shared machine: timings are noisy)"
    )
    write_json(
        args.output,
        {
            "machine": info,
            "settings": {k: str(v) for k, v in vars(args).items()},
            "gamma": GAMMA,
            "rows": [asdict(r) for r in rows],
            "verdict": summary,
        },
    )
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
