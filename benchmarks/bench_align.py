"""Benchmark: soft-DTW forward + backward (cosine cost included) against its floor and the libraries
people use, side by side in one run.

CPU (default). Every timed call starts from leaf features ``Et (B, M, d)``, ``Eq (B, N, d)``,
computes the cosine cost and a per-pair value (gamma 0.1) and backpropagates ``value.sum()`` to
the features. Rows per size:

* ``cosine cost alone (the floor)`` — :func:`matr.align.cosine_cost` forward + backward: what any
  method must pay before its dynamic programme;
* ``ours subsequence`` — :func:`matr.align.soft_dtw` as the model uses it (random lengths, padded);
* ``ours full`` — full lengths, non-subsequence (``R[M, N]``): the problem both baselines solve;
* ``tslearn`` — ``tslearn.metrics.SoftDTWLossPyTorch`` (numba) with our cost as ``dist_func``;
* ``pysdtw CPU`` — ``pysdtw.SoftDTW(use_cuda=False)`` (numba) with our cost as ``dist_func``;
* ``ours drop_dtw`` — :func:`matr.align.drop_dtw` with its analytic backward pass, random lengths;
* ``ours hard_alignment`` — the hard path and span (forward only);
* at the small size, ``ours tcc``.

``/ floor`` is a row's time over the floor's; ``x ours`` a baseline's time over ``ours full`` (and
Drop-DTW's over ``ours subsequence``); ``max |diff|`` checks a baseline's values against ours.
Methods run in interleaved rounds (one call of each per round, in an order shuffled anew each
round, after one warm-up round) and the median is reported, so a change in the machine's load
hits every row alike. The load average is recorded with the results: this machine is shared, and
its absolute times vary with the load; the ratios of one run are what to compare.

GPU (``--gpu``): see ``bench_align_gpu.py`` (Triton kernels checked, then timed against pysdtw's
CUDA kernel, Maghoumi's pytorch-softdtw-cuda and the cost's matmul). Without a GPU the GPU results
file says "not measured".

Run: ``.venv/bin/python benchmarks/bench_align.py [--quick]`` (a few minutes at 2 threads; needs the
``bench`` extra for the baselines). Writes ``benchmarks/results/bench_align.json``.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import Tensor

from matr.align import AlignmentLoss, cosine_cost, drop_dtw, hard_alignment, soft_dtw
from matr.io import write_json
from matr.provenance import provenance

RESULTS = Path(__file__).resolve().parent / "results"
GAMMA = 0.1
SIZES = ((1200, 150, 60, 256), (64, 128, 32, 256))  # (B, M, N, d)
FLOOR = "cosine cost alone (the floor)"
#: Row -> the row of ours it is compared with (``x ours``).
COMPARED_WITH = {"tslearn": "ours full", "pysdtw CPU": "ours full", "ours drop_dtw": "ours subsequence"}
#: Issue 11's CPU targets at the first size: (row, reference row, at most this ratio).
TARGETS = (("ours subsequence", FLOOR, 1.25), ("ours full", FLOOR, 1.25), ("ours drop_dtw", "ours subsequence", 1.5))


@dataclass
class Row:
    """One timed method at one size."""

    size: str
    method: str
    median_ms: float
    over_floor: float | None = None
    ratio_vs_ours: float | None = None  # this row's time / the time of the row of ours it is compared with
    max_abs_diff_vs_ours: float | None = None
    note: str = ""


def baselines(dist_func: Callable[[Tensor, Tensor], Tensor]) -> dict[str, Callable[[Tensor, Tensor], Tensor] | str]:
    """``name -> loss module ((Et, Eq) -> (B,))`` for each importable baseline, else why it is missing."""
    found: dict[str, Callable[[Tensor, Tensor], Tensor] | str] = {}
    try:
        from tslearn.metrics import SoftDTWLossPyTorch

        found["tslearn"] = SoftDTWLossPyTorch(gamma=GAMMA, dist_func=dist_func)
    except ImportError as error:
        found["tslearn"] = f"not importable ({error}); pip install -e '.[bench]'"
    try:
        import pysdtw

        found["pysdtw CPU"] = pysdtw.SoftDTW(gamma=GAMMA, dist_func=dist_func, use_cuda=False)
    except ImportError as error:
        found["pysdtw CPU"] = f"not importable ({error}); pip install -e '.[bench]'"
    return found


def methods_at(B: int, M: int, N: int, d: int, seed: int) -> tuple[dict[str, Callable[[], Tensor]], dict[str, str]]:
    """The timed calls at one size (closures over fixed inputs, each returning its detached values)
    and the notes of the rows that are missing."""
    gen = torch.Generator().manual_seed(seed)
    Et = torch.randn(B, M, d, generator=gen).requires_grad_()
    Eq = torch.randn(B, N, d, generator=gen).requires_grad_()
    tl = torch.randint(M // 3, M + 1, (B,), generator=gen)
    ql = torch.randint(N // 3, N + 1, (B,), generator=gen)
    full = (torch.full((B,), M), torch.full((B,), N))

    def backward(value: Tensor) -> Tensor:
        value.sum().backward()
        Et.grad = Eq.grad = None
        return value.detach()

    methods: dict[str, Callable[[], Tensor]] = {
        FLOOR: lambda: backward(cosine_cost(Et, Eq)),
        "ours subsequence": lambda: backward(soft_dtw(cosine_cost(Et, Eq), tl, ql, GAMMA)),
        "ours full": lambda: backward(soft_dtw(cosine_cost(Et, Eq), *full, GAMMA, subsequence=False)),
        "ours drop_dtw": lambda: backward(drop_dtw(cosine_cost(Et, Eq), tl, ql, GAMMA)),
        "ours hard_alignment": lambda: hard_alignment(cosine_cost(Et.detach(), Eq.detach()), tl, ql).start,
    }
    if B <= 64:
        methods["ours tcc"] = lambda: backward(AlignmentLoss("tcc", gamma=GAMMA)(Et, Eq, tl, ql))
    missing = {}
    for name, module in baselines(cosine_cost).items():
        if isinstance(module, str):
            missing[name] = module
        else:
            methods[name] = lambda m=module: backward(m(Et, Eq))
    return methods, missing


def time_interleaved(
    methods: dict[str, Callable[[], Tensor]], rounds: int, seed: int = 0
) -> tuple[dict[str, float], dict]:
    """Median seconds of each method over ``rounds`` interleaved rounds after a warm-up round
    (numba compilation, allocator), and each method's values from the warm-up round. Each round
    calls the methods in its own order (shuffled with ``seed``), so that no method always follows
    the same one: a call may be slowed by the one before it (suspected, not shown, for the
    subsequence row, which always followed the floor's and varied from run to run)."""
    values = {name: fn() for name, fn in methods.items()}
    times: dict[str, list[float]] = {name: [] for name in methods}
    order = random.Random(seed)
    for _ in range(rounds):
        names = list(methods)
        order.shuffle(names)
        for name in names:
            start = time.perf_counter()
            methods[name]()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}, values


def bench_size(B: int, M: int, N: int, d: int, rounds: int, seed: int = 0) -> list[Row]:
    """All rows at one size (see the module docstring)."""
    size = f"B={B} M={M} N={N} d={d}"
    methods, missing = methods_at(B, M, N, d, seed)
    seconds, values = time_interleaved(methods, rounds, seed)
    rows = []
    for name, s in seconds.items():
        row = Row(size, name, s * 1e3, over_floor=s / seconds[FLOOR])
        if name in COMPARED_WITH:
            row.ratio_vs_ours = s / seconds[COMPARED_WITH[name]]
        if name in ("tslearn", "pysdtw CPU"):
            row.max_abs_diff_vs_ours = float((values[name] - values["ours full"]).abs().max())
            row.note = "non-subsequence, full lengths, our cosine cost via dist_func"
        rows.append(row)
    rows.extend(Row(size, name, float("nan"), note=why) for name, why in missing.items())
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
    for package in ("numba", "tslearn", "pysdtw"):
        try:
            info[package] = __import__(package).__version__
        except ImportError:
            info[package] = None
    return info


def format_table(rows: list[Row]) -> str:
    header = f"{'size':<24} {'method':<30} {'ms':>9} {'/ floor':>8} {'x ours':>7} {'max|diff|':>9}  note"
    lines = [header, "-" * len(header)]
    for r in rows:
        over = f"{r.over_floor:8.2f}" if r.over_floor is not None else f"{'':>8}"
        ratio = f"{r.ratio_vs_ours:7.2f}" if r.ratio_vs_ours is not None else f"{'':>7}"
        diff = f"{r.max_abs_diff_vs_ours:9.1e}" if r.max_abs_diff_vs_ours is not None else f"{'':>9}"
        lines.append(f"{r.size:<24} {r.method:<30} {r.median_ms:9.1f} {over} {ratio} {diff}  {r.note}")
    return "\n".join(lines)


def targets(rows: list[Row]) -> list[dict]:
    """Issue 11's CPU targets at the first (largest) size: measured ratio, limit, met or not."""
    ms = {r.method: r.median_ms for r in rows if r.size == rows[0].size}
    out = []
    for row, reference, limit in TARGETS:
        ratio = ms[row] / ms[reference]
        out.append({"row": row, "over": reference, "ratio": ratio, "at_most": limit, "met": ratio <= limit})
    return out


def run_gpu(args: argparse.Namespace) -> None:
    """``--gpu``: the GPU comparison of ``bench_align_gpu.py`` (or "not measured" without a GPU)."""
    import bench_align_gpu

    argv = ["--output", str(args.gpu_output), "--rounds", str(args.rounds)]
    if args.vendor is not None:
        argv += ["--vendor", str(args.vendor)]
    bench_align_gpu.main(argv)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="2 rounds, first size only")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved timed rounds (median reported)")
    parser.add_argument("--threads", type=int, default=2, help="torch and numba threads")
    parser.add_argument("--output", type=Path, default=RESULTS / "bench_align.json", help="CPU results path")
    parser.add_argument("--gpu", action="store_true", help="run the GPU comparison instead (bench_align_gpu.py)")
    parser.add_argument("--vendor", type=Path, default=os.environ.get("MATR_GPU_VENDOR"), help="GPU baselines folder")
    parser.add_argument("--gpu-output", type=Path, default=RESULTS / "gpu" / "bench_align_gpu.json")
    args = parser.parse_args()
    if args.gpu:
        run_gpu(args)
        return
    sizes = SIZES[:1] if args.quick else SIZES
    rounds = 2 if args.quick else args.rounds
    torch.set_num_threads(args.threads)
    try:
        import numba

        # The baselines' parallel loops on numba's "workqueue" pool: its OpenMP pool keeps spinning
        # after each call and slows the torch rows measured next (many times over on a loaded
        # 2-core machine). Ours uses no numba pool (matr.align._cpu_dp.run).
        numba.config.THREADING_LAYER = "workqueue"
        numba.set_num_threads(min(args.threads, numba.config.NUMBA_NUM_THREADS))
    except ImportError:
        pass
    info = machine_info(args.threads)
    rows = [row for size in sizes for row in bench_size(*size, rounds)]
    info["load_average_end"] = os.getloadavg()
    print(format_table(rows))
    met = targets(rows)
    for target in met:
        print(
            f"{target['row']} / {target['over']}: {target['ratio']:.2f} (target <= {target['at_most']}): "
            f"{'met' if target['met'] else 'NOT met'}"
        )
    print(
        f"threads={args.threads}; load average start {info['load_average_start']}, end {info['load_average_end']} "
        f"on {info['cpu_count']} CPUs (shared machine: absolute times vary with the load)"
    )
    write_json(
        args.output,
        {
            "provenance": provenance(benchmark="bench_align"),
            "machine": info,
            "settings": {"rounds": rounds, "threads": args.threads, "gamma": GAMMA, "sizes": sizes},
            "rows": [asdict(r) for r in rows],
            "targets": met,
            "gpu": "benchmarks/results/gpu/bench_align_gpu.json (bench_align.py --gpu)",
        },
    )
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
