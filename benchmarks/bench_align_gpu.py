"""GPU part of ``bench_align.py`` (``--gpu``): the Triton kernels of :mod:`matr.align` checked
against the PyTorch path, then timed against pysdtw's CUDA kernel, Maghoumi's
pytorch-softdtw-cuda and the cost's matmul, side by side in one run.

The two baselines are not dependencies of the kit: they are imported from a vendor folder given
with ``--vendor`` (or ``MATR_GPU_VENDOR``) holding ``pysdtw/`` (the package, pure Python) and
``pytorch-softdtw-cuda/soft_dtw_cuda.py`` (the repository's file); both use numba's CUDA JIT. A
baseline that cannot be imported or fails is recorded with its error, not fatal, and so is a
kernel whose check fails: the checks run first and are written to the JSON whatever happens.

Timed rows at ``B=1200, M=150, N=60, d=256``, gamma 0.1, float32; each call starts from leaf
features, computes the cosine cost and backpropagates ``value.sum()`` to the features (the
"DP only" rows start from a leaf cost matrix instead). Medians over interleaved rounds.
"""

from __future__ import annotations

import argparse
import functools
import os
import platform
import statistics
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor

from matr.align import cosine_cost, drop_dtw, hard_alignment, soft_dtw
from matr.align.dtw import _SoftDTW
from matr.io import write_json

GAMMA = 0.1
SIZE = (1200, 150, 60, 256)  # (B, M, N, d)
NOT_MEASURED = "not measured"


# ---------------------------------------------------------------------------------------------
# Checks: Triton (float32) against the PyTorch path (float64) on the same GPU
# ---------------------------------------------------------------------------------------------


def _lengths(B: int, M: int, N: int, gen: torch.Generator, device: torch.device) -> tuple[Tensor, Tensor]:
    tl = torch.randint(max(1, M // 3), M + 1, (B,), generator=gen)
    ql = torch.randint(1, N + 1, (B,), generator=gen)
    tl[0], ql[0], tl[-1], ql[-1] = M, N, 1, 1  # the full block and the smallest one
    return tl.to(device), ql.to(device)


def _value_and_grad(fn: Callable[[Tensor], Tensor], C: Tensor) -> tuple[Tensor, Tensor]:
    C = C.detach().clone().requires_grad_()
    value = fn(C)
    weights = torch.linspace(-1.0, 2.0, C.shape[0], device=C.device, dtype=value.dtype)
    (grad,) = torch.autograd.grad((value * weights).sum(), C)
    return value.detach().double(), grad.double()


def _check_dp(fn: Callable[[Tensor], Tensor], C: Tensor, grad_atol: float = 1e-3) -> dict:
    """Triton on float32 ``C`` against the PyTorch path on float64 ``C`` (same function: float64
    always takes the PyTorch path)."""
    value, grad = _value_and_grad(fn, C.float())
    expected, expected_grad = _value_and_grad(fn, C.double())
    value_diff = float((value - expected).abs().max()) if len(value) else 0.0
    grad_diff = float((grad - expected_grad).abs().max()) if len(value) else 0.0
    ok = value_diff <= 1e-4 * max(1.0, float(expected.abs().max())) and grad_diff <= grad_atol
    ok = ok and bool(torch.isfinite(grad).all())
    return {"ok": ok, "max_abs_value_diff": value_diff, "max_abs_grad_diff": grad_diff}


def _check_hard(C: Tensor, tl: Tensor, ql: Tensor, subsequence: bool) -> dict:
    gpu = hard_alignment(C.float(), tl, ql, subsequence=subsequence)
    cpu = hard_alignment(C.float().cpu(), tl.cpu(), ql.cpu(), subsequence=subsequence)
    same = [torch.equal(a.cpu(), b) for a, b in zip(gpu, cpu)]
    return {"ok": all(same), "matrix_equal": same[0], "start_equal": same[1], "end_equal": same[2]}


def _record(checks: list[dict], name: str, check: Callable[[], dict]) -> None:
    try:
        checks.append({"check": name, **check()})
    except Exception as error:  # noqa: BLE001 - recorded, the benchmark goes on
        checks.append({"check": name, "ok": False, "error": _error(error)})


def _checks_at(checks: list[dict], B: int, M: int, N: int, device: torch.device, seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    C = (2 * torch.rand(B, M, N, generator=gen, dtype=torch.float64)).to(device)
    tl, ql = _lengths(B, M, N, gen, device)
    size = f"B={B} M={M} N={N}"
    for gamma in (1.0, 0.1):
        for subsequence in (True, False):
            soft = functools.partial(
                soft_dtw, target_lengths=tl, query_lengths=ql, gamma=gamma, subsequence=subsequence
            )
            _record(checks, f"soft_dtw gamma={gamma} subsequence={subsequence} {size}", lambda f=soft: _check_dp(f, C))
        drop = functools.partial(drop_dtw, target_lengths=tl, query_lengths=ql, gamma=gamma)
        _record(checks, f"drop_dtw gamma={gamma} {size}", lambda f=drop: _check_dp(f, C))
    for subsequence in (True, False):
        _record(
            checks, f"hard_alignment subsequence={subsequence} {size}", lambda s=subsequence: _check_hard(C, tl, ql, s)
        )


def run_checks(device: torch.device, seed: int = 0) -> list[dict]:
    """Each kernel against the PyTorch path, at a small size and at the benchmark size."""
    checks: list[dict] = []
    for B, M, N in ((16, 40, 12), SIZE[:3]):
        _checks_at(checks, B, M, N, device, seed)
    return checks


# ---------------------------------------------------------------------------------------------
# Baselines from the vendor folder
# ---------------------------------------------------------------------------------------------


def _error(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}".splitlines()[0][:300] + " | " + traceback.format_exc(limit=2)[-300:]


def load_baselines(vendor: Path | None, dist_func: Callable) -> dict[str, Callable | str]:
    """``name -> SoftDTW module`` (``(Et, Eq) -> (B,)``) or the reason it is missing."""
    found: dict[str, Callable | str] = {}
    if vendor is None:
        return {"pysdtw CUDA": "no --vendor folder", "pytorch-softdtw-cuda": "no --vendor folder"}
    sys.path[:0] = [str(vendor), str(vendor / "pytorch-softdtw-cuda")]
    import numpy

    if not hasattr(numpy, "row_stack"):  # removed in numpy 2.4, still called by numba's CUDA launcher
        numpy.row_stack = numpy.vstack
    try:
        import pysdtw

        found["pysdtw CUDA"] = pysdtw.SoftDTW(gamma=GAMMA, dist_func=dist_func, use_cuda=True)
    except Exception as error:  # noqa: BLE001
        found["pysdtw CUDA"] = _error(error)
    try:
        import soft_dtw_cuda

        found["pytorch-softdtw-cuda"] = soft_dtw_cuda.SoftDTW(use_cuda=True, gamma=GAMMA, dist_func=dist_func)
    except Exception as error:  # noqa: BLE001
        found["pytorch-softdtw-cuda"] = _error(error)
    return found


# ---------------------------------------------------------------------------------------------
# Timing
# ---------------------------------------------------------------------------------------------


def _time(fn: Callable[[], object]) -> float:
    torch.cuda.synchronize()
    start = time.perf_counter()
    fn()
    torch.cuda.synchronize()
    return time.perf_counter() - start


def time_interleaved(methods: dict[str, Callable[[], object]], rounds: int) -> dict[str, float | str]:
    """Median seconds of each method over ``rounds`` interleaved rounds after one warm-up call
    (compilation); a method that raises is recorded with its error and dropped."""
    times: dict[str, list[float]] = {}
    result: dict[str, float | str] = {}
    for name, fn in methods.items():
        try:
            _time(fn)
            times[name] = []
        except Exception as error:  # noqa: BLE001
            result[name] = _error(error)
    for _ in range(rounds):
        for name in list(times):
            try:
                times[name].append(_time(methods[name]))
            except Exception as error:  # noqa: BLE001
                result[name] = _error(error)
                del times[name]
    result.update({name: statistics.median(t) for name, t in times.items()})
    return result


def timed_methods(
    device: torch.device, baselines: dict[str, Callable | str], dp_only: dict[str, Callable | str], seed: int
) -> dict:
    """The timed calls at :data:`SIZE` (each a closure over fixed inputs) and the values to compare."""
    B, M, N, d = SIZE
    gen = torch.Generator().manual_seed(seed)
    Et = torch.randn(B, M, d, generator=gen).to(device).requires_grad_()
    Eq = torch.randn(B, N, d, generator=gen).to(device).requires_grad_()
    tl, ql = _lengths(B, M, N, gen, device)
    full = (torch.full((B,), M, device=device), torch.full((B,), N, device=device))
    with torch.no_grad():
        C0 = cosine_cost(Et, Eq)
    C = C0.clone().requires_grad_()

    def backward(value: Tensor) -> Tensor:
        value.sum().backward()
        Et.grad = Eq.grad = C.grad = None
        return value.detach()

    methods: dict[str, Callable[[], object]] = {
        "bmm alone (forward)": lambda: torch.bmm(Et.detach(), Eq.detach().transpose(1, 2)),
        "cosine cost alone (the floor)": lambda: backward(cosine_cost(Et, Eq)),
        "ours subsequence (Triton)": lambda: backward(soft_dtw(cosine_cost(Et, Eq), tl, ql, GAMMA)),
        "ours full (Triton)": lambda: backward(soft_dtw(cosine_cost(Et, Eq), *full, GAMMA, subsequence=False)),
        "ours full, PyTorch path": lambda: backward(_SoftDTW.apply(cosine_cost(Et, Eq), *full, GAMMA, False)),
        "ours full, DP only (Triton)": lambda: backward(soft_dtw(C, *full, GAMMA, subsequence=False)),
        "ours drop_dtw (Triton)": lambda: backward(drop_dtw(cosine_cost(Et, Eq), tl, ql, GAMMA)),
        "ours hard_alignment (Triton)": lambda: hard_alignment(C0, tl, ql).start,
    }
    for name, module in baselines.items():
        if callable(module):
            methods[name] = lambda m=module: backward(m(Et, Eq))
    for name, module in dp_only.items():
        if callable(module):
            # identity dist_func, so the cost is C; the second argument carries only the query length N and
            # the last dimension for the baselines' shape checks (pysdtw reads N from its Y.shape[1])
            methods[f"{name}, DP only"] = lambda m=module: backward(m(C, C[:, :N]))
    values = {"ours full (Triton)": methods["ours full (Triton)"]}
    values.update({name: methods[name] for name in baselines if name in methods})
    return {"methods": methods, "values": values}


def gpu_info(device: torch.device) -> dict:
    import triton

    props = torch.cuda.get_device_properties(device)
    return {
        "gpu": props.name,
        "multiprocessors": props.multi_processor_count,
        "memory_gib": round(props.total_memory / 2**30, 1),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "triton": triton.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def summarise(seconds: dict[str, float | str]) -> dict:
    """Ratios against the cost floor and the faster CUDA baseline; acceptance of issue 11."""
    ms = {k: v * 1e3 for k, v in seconds.items() if isinstance(v, float)}
    floor, ours = ms.get("cosine cost alone (the floor)"), ms.get("ours full (Triton)")
    baselines = [ms[k] for k in ("pysdtw CUDA", "pytorch-softdtw-cuda") if k in ms]
    out: dict = {}
    if floor and ours:
        out["ours full / cost floor"] = ours / floor
        out["ours subsequence / cost floor"] = ms.get("ours subsequence (Triton)", float("nan")) / floor
        out["within 2x the cost (target)"] = ours <= 2 * floor
    if ours and baselines:
        out["faster CUDA baseline / ours full"] = min(baselines) / ours
        out["at least 3x faster than the faster baseline (target)"] = min(baselines) >= 3 * ours
    dp_ours = ms.get("ours full, DP only (Triton)")
    dp_baselines = [ms[k] for k in ("pysdtw CUDA, DP only", "pytorch-softdtw-cuda, DP only") if k in ms]
    if dp_ours and dp_baselines:
        out["faster CUDA baseline / ours, DP only"] = min(dp_baselines) / dp_ours
    return out


def run(vendor: Path | None, output: Path, rounds: int = 10, seed: int = 0) -> dict:
    """Checks, then timings; writes ``output`` after each stage so a later failure loses nothing."""
    device = torch.device("cuda")
    result: dict = {"machine": gpu_info(device), "size": dict(zip("BMNd", SIZE)), "gamma": GAMMA}
    start = time.perf_counter()
    result["checks"] = run_checks(device, seed)
    result["checks_ok"] = all(c["ok"] for c in result["checks"])
    result["check_seconds"] = time.perf_counter() - start
    write_json(output, result)
    baselines = load_baselines(vendor, cosine_cost)
    result["baselines_missing"] = {k: v for k, v in baselines.items() if isinstance(v, str)}
    dp_only = load_baselines(vendor, lambda cost, _: cost)
    timed = timed_methods(device, baselines, dp_only, seed)
    values = {name: fn() for name, fn in timed["values"].items() if _safe(fn)}
    reference = values.get("ours full (Triton)")
    if reference is not None:
        result["max_abs_value_diff_vs_ours_full"] = {
            k: float((v - reference).abs().max()) for k, v in values.items() if k != "ours full (Triton)"
        }
    seconds = time_interleaved(timed["methods"], rounds)
    result["median_ms"] = {k: v * 1e3 if isinstance(v, float) else v for k, v in seconds.items()}
    result["summary"] = summarise(seconds)
    result["total_seconds"] = time.perf_counter() - start
    write_json(output, result)
    return result


def _safe(fn: Callable[[], object]) -> bool:
    try:
        fn()
        return True
    except Exception:  # noqa: BLE001 - the timing records the error
        return False


def not_measured() -> dict:
    """The GPU section of the results before a GPU run."""
    return {"status": NOT_MEASURED, "reason": "no GPU in this run; see bench_align.py --gpu"}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--vendor", type=Path, default=os.environ.get("MATR_GPU_VENDOR"), help="baselines folder")
    parser.add_argument("--output", type=Path, required=True, help="JSON results path")
    parser.add_argument("--rounds", type=int, default=10, help="interleaved timed rounds (median reported)")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        if args.output.exists():  # never replace a GPU measurement by "not measured"
            print(f"no CUDA device: kept {args.output}")
        else:
            write_json(args.output, not_measured())
            print(f"no CUDA device: wrote {args.output} ({NOT_MEASURED})")
        return
    result = run(args.vendor, args.output, args.rounds)
    print("checks:", "all ok" if result["checks_ok"] else [c for c in result["checks"] if not c["ok"]])
    for name, value in result["median_ms"].items():
        print(f"{name:<34} {value:10.3f} ms" if isinstance(value, float) else f"{name:<34} {value}")
    print(result["summary"])
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
