"""Benchmark: MATR training-step throughput, peak memory, the alignment's share and model FLOP utilisation.

One training step = forward, ``MATRLoss``, backward, AdamW update, on random CLIP-like features
(B pairs, M target frames, N query frames), exactly as :func:`matr.train.fit` runs it (bf16 autocast
on a GPU, no host synchronisation inside the step). Cases: the ``smoke`` and ``paper`` presets on
the CPU (small batches) and ``demo`` at the demo profile's training shapes (B = 16, M = 50, N = 4); on a GPU the ``paper`` preset at the paper's ActivityNet-VRL batch, B = 1200,
M = 150, N = 60, in bf16 (and with ``--compile`` also its ``torch.compile`` variant).

For each case (every time is the fastest of several repeats, the figure least disturbed by other
processes on a shared machine):

* ``step ms`` / ``steps/s`` / ``pairs/s`` with the full objective (soft-DTW pre- and post-fusion losses);
* ``no-align``: steps/s with ``align_method="none"`` (the hard alignment A^post that restricts
  the decoder still runs);
* ``align ms``: the alignment work of one step timed in isolation on the same shapes (two
  soft-DTW losses forward + backward, one hard alignment); ``align %`` = align ms / step ms;
* ``TFLOP/step``: the model's matrix FLOPs of one training step counted from the config
  (:func:`model_flops`: projections, attention, FFNs, heads, cost matrices; backward = 2x forward);
  ``MFU`` = FLOPs / step time / the GPU's dense bf16 peak (H100 / H200 SXM: 989 TFLOP/s), GPU only;
* ``peak MiB``: CPU: growth of the process's peak resident set (``ru_maxrss``) over its value
  after import, during the full-objective steps, in a fresh process per case; CUDA:
  ``torch.cuda.max_memory_allocated``.

Run: ``.venv/bin/python benchmarks/bench_model.py`` (about 1-3 minutes on 2 CPU cores; ``--gpu-only``
on the GPU machine). Prints a table and writes ``benchmarks/results/bench_model.json``.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import platform
import resource
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch

from matr.align import AlignmentLoss, cosine_cost, hard_alignment
from matr.config import override, preset
from matr.io import write_json
from matr.losses import MATRLoss
from matr.model import MATR
from matr.span_ops import frame_targets
from matr.train import TrainConfig, training_step

RESULTS = Path(__file__).resolve().parent / "results" / "bench_model.json"


@dataclass(frozen=True)
class Case:
    """One benchmark setting."""

    name: str
    preset: str
    device: str
    batch: int
    target_frames: int  # M
    query_frames: int  # N
    steps: int
    compile: bool = False


BF16_PEAK_FLOPS = {"H100": 989e12, "H200": 989e12}  # dense bf16, SXM parts


def default_cases(cuda: bool, cpu: bool = True, batch: int = 1200, compile_too: bool = False) -> list[Case]:
    """Smoke and paper presets on CPU; on a GPU the paper preset at the paper's batch (B, 150, 60)."""
    cases = []
    if cpu:
        cases += [
            Case("smoke-cpu", "smoke", "cpu", 8, 64, 16, 10),
            Case("demo-cpu", "demo", "cpu", 16, 50, 4, 10),  # the demo profile's training shapes (issue 9)
            Case("paper-cpu", "paper", "cpu", 2, 64, 16, 3),
        ]
    if cuda:
        cases.append(Case("paper-cuda", "paper", "cuda", batch, 150, 60, 5))
        if compile_too:
            cases.append(Case("paper-cuda-compiled", "paper", "cuda", batch, 150, 60, 5, compile=True))
    return cases


def model_flops(case: Case, align: bool = True) -> float:
    """Matrix FLOPs of one training step (forward + backward = 3x forward) counted from the config.

    Per pair, with L = M + N tokens: projection ``L (512 d + d^2)``; each encoder layer
    ``L (4 d^2 + 2 d f) + 2 L^2 d``; each decoder layer self-attention ``4 l d^2 + 2 l^2 d``,
    cross-attention ``2 l d^2 + 2 M d^2 + 2 l M d``, FFN ``2 l d f``; attend fusion
    ``2 M d^2 + 2 l d^2 + 2 M l d``; heads ``M k (2 d d + d d + d o)`` per head with ``k``-tap
    convolutions; the two cost matrices ``M N d`` each. Multiply-accumulates count 2 FLOPs.
    """
    cfg = preset(case.preset).model
    d, f, lq, k = cfg.hidden_dim, cfg.ffn_dim, cfg.num_queries, cfg.head_kernel
    m, n = case.target_frames, case.query_frames
    tokens = m + n
    macs = tokens * (cfg.input_dim * d + d * d)
    macs += cfg.encoder_layers * (tokens * (4 * d * d + 2 * d * f) + 2 * tokens * tokens * d)
    head_in = d
    if cfg.use_decoder:
        per_layer = 4 * lq * d * d + 2 * lq * lq * d + 2 * lq * d * d + 2 * m * d * d + 2 * lq * m * d + 2 * lq * d * f
        macs += cfg.decoder_layers * per_layer + 2 * m * d * d + 2 * lq * d * d + 2 * m * lq * d
        head_in = 2 * d
    hidden = [head_in] + [d] * (cfg.head_layers - 1)
    for out in (1, 2):
        dims = [*hidden, out]
        macs += m * k * sum(a * b for a, b in zip(dims[:-1], dims[1:], strict=True))
    if align:
        macs += 2 * m * n * d
    return 3 * 2 * macs * case.batch


def peak_flops(device: str) -> float | None:
    """Dense bf16 peak of the GPU, or None when unknown (CPU, another GPU)."""
    if device != "cuda":
        return None
    name = torch.cuda.get_device_name(0)
    return next((peak for key, peak in BF16_PEAK_FLOPS.items() if key in name), None)


def random_batch(case: Case, seed: int = 0) -> dict:
    """Collated batch of random features with one planted window per pair, on ``case.device``."""
    gen = torch.Generator().manual_seed(seed)
    b, m, n, c = case.batch, case.target_frames, case.query_frames, 2.0
    foreground, offsets = torch.zeros(b, m), torch.zeros(b, m, 2)
    windows = torch.zeros(b, 2)
    for i in range(b):
        start = int(torch.randint(0, m - 8, (1,), generator=gen))
        windows[i] = torch.tensor([start * c, (start + 8) * c])
        foreground[i], offsets[i] = frame_targets(tuple(windows[i].tolist()), m, c)
    batch = {
        "target": torch.randn(b, m, 512, generator=gen),
        "query": torch.randn(b, n, 512, generator=gen),
        "target_mask": torch.ones(b, m, dtype=torch.bool),
        "query_mask": torch.ones(b, n, dtype=torch.bool),
        "target_lengths": torch.full((b,), m),
        "query_lengths": torch.full((b,), n),
        "foreground": foreground,
        "offsets": offsets,
        "window": windows,
        "duration": torch.full((b,), m * c),
        "clip_length": c,
    }
    return {k: v.to(case.device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


def make_step(case: Case, align_method: str, batch: dict) -> Callable[[], None]:
    """A closure running one training step of a fresh model (seed 0) on ``batch``: the step of ``fit``."""
    torch.manual_seed(0)
    config = override(preset(case.preset), {"model.align_method": align_method})
    model = MATR(config).to(case.device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=1e-4)
    train_config = TrainConfig(device=case.device, compile=case.compile)
    step = training_step(model, MATRLoss(config.loss), optimizer, train_config, torch.device(case.device))
    return lambda: step(batch)


def best_seconds(fn: Callable[[], None], device: str, repeats: int, warmup: int = 2) -> float:
    """Fastest of ``repeats`` timed calls after ``warmup`` calls (the minimum is the figure least
    disturbed by other processes on a shared machine)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        _synchronize(device)
        start = time.perf_counter()
        fn()
        _synchronize(device)
        times.append(time.perf_counter() - start)
    return min(times)


def alignment_step(case: Case, batch: dict) -> Callable[[], None]:
    """The alignment work of one training step in isolation: two soft-DTW losses (pre and post
    fusion), forward and backward, and one hard alignment (A^post), on (B, M, d) / (B, N, d)."""
    d = preset(case.preset).model.hidden_dim
    gamma = preset(case.preset).model.gamma
    et = torch.randn(case.batch, case.target_frames, d, device=case.device, requires_grad=True)
    eq = torch.randn(case.batch, case.query_frames, d, device=case.device, requires_grad=True)
    lengths = (batch["target_lengths"], batch["query_lengths"])

    def run() -> None:
        for _ in range(2):
            AlignmentLoss("soft_dtw", gamma=gamma)(et, eq, *lengths).sum().backward()
        hard_alignment(cosine_cost(et.detach(), eq.detach()), *lengths)

    return run


def _synchronize(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def measure(case: Case) -> dict:
    """All figures of one case (run in a fresh process for a clean CPU peak)."""
    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    batch = random_batch(case)
    if case.device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    full = best_seconds(make_step(case, "soft_dtw", batch), case.device, case.steps)
    if case.device == "cuda":
        peak_mib = torch.cuda.max_memory_allocated() / 2**20
    else:
        peak_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - baseline) / 1024  # KiB on Linux
    no_align = best_seconds(make_step(case, "none", batch), case.device, case.steps)
    align = best_seconds(alignment_step(case, batch), case.device, max(case.steps, 5))
    params = sum(p.numel() for p in MATR(preset(case.preset)).parameters())
    flops, peak = model_flops(case), peak_flops(case.device)
    return {
        **asdict(case),
        "bf16": case.device == "cuda",
        "gpu": torch.cuda.get_device_name(0) if case.device == "cuda" else None,
        "params_m": params / 1e6,
        "step_ms": 1e3 * full,
        "steps_per_s": 1 / full,
        "pairs_per_s": case.batch / full,
        "steps_per_s_no_align": 1 / no_align,
        "align_ms": 1e3 * align,
        "align_share": align / full,
        "tflop_per_step": flops / 1e12,
        "achieved_tflops": flops / full / 1e12,
        "peak_tflops": None if peak is None else peak / 1e12,
        "mfu": None if peak is None else flops / full / peak,
        "peak_mib": peak_mib,
    }


def _measure_in_child(case: Case) -> dict:
    """``measure(case)`` in a fresh process; on a GPU out of memory, once more at half the batch."""
    try:
        with mp.get_context("spawn").Pool(1) as pool:
            return pool.apply(measure, (case,))
    except Exception as error:  # noqa: BLE001 - a failing case is recorded, the next one runs
        if "out of memory" in str(error).lower() and case.batch > 1:
            half = replace(case, name=f"{case.name}-b{case.batch // 2}", batch=case.batch // 2)
            return {**_measure_in_child(half), "note": f"B={case.batch} ran out of GPU memory"}
        return {**asdict(case), "error": f"{type(error).__name__}: {str(error)[:500]}"}


def format_table(rows: list[dict]) -> str:
    """Fixed-width table of the figures."""
    header = (
        f"{'case':<19} {'params M':>8} {'B,M,N':>11} {'step ms':>8} {'steps/s':>8} {'pairs/s':>8} {'no-align':>9} "
        f"{'align ms':>9} {'align %':>8} {'TFLOP':>7} {'MFU':>6} {'peak MiB':>9}"
    )
    lines = [header, "-" * len(header)]
    for r in rows:
        if "error" in r:
            lines.append(f"{r['name']:<19} failed: {r['error']}")
            continue
        shape = f"{r['batch']},{r['target_frames']},{r['query_frames']}"
        mfu = "-" if r["mfu"] is None else f"{100 * r['mfu']:.1f}%"
        lines.append(
            f"{r['name']:<19} {r['params_m']:>8.1f} {shape:>11} {r['step_ms']:>8.0f} {r['steps_per_s']:>8.2f} "
            f"{r['pairs_per_s']:>8.0f} {r['steps_per_s_no_align']:>9.2f} {r['align_ms']:>9.1f} "
            f"{100 * r['align_share']:>7.1f}% {r['tflop_per_step']:>7.2f} {mfu:>6} {r['peak_mib']:>9.0f}"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--gpu-only", action="store_true", help="skip the CPU cases")
    parser.add_argument("--batch", type=int, default=1200, help="GPU batch (default 1200, the paper's)")
    parser.add_argument("--compile", action="store_true", help="also time the torch.compile'd model on the GPU")
    args = parser.parse_args()
    cases = default_cases(torch.cuda.is_available(), cpu=not args.gpu_only, batch=args.batch, compile_too=args.compile)
    rows = []
    for case in cases:  # the file is rewritten after every case: a later case that fails loses nothing
        rows.append(_measure_in_child(case))
        write_json(
            args.out,
            {
                "benchmark": "bench_model",
                "torch": torch.__version__,
                "platform": platform.platform(),
                "cpu_threads": torch.get_num_threads(),
                "gpu": torch.cuda.get_device_name(0)
                if torch.cuda.is_available()
                else "not measured: no GPU on this machine",
                "cases": rows,
            },
        )
    if not cases:
        write_json(args.out, {"benchmark": "bench_model", "gpu": "not measured: no GPU on this machine", "cases": []})
    print(format_table(rows))  # noqa: T201 (benchmark script output)


if __name__ == "__main__":
    main()
