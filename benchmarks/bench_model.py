"""Benchmark: MATR training-step throughput, peak memory, and the alignment's share of a step.

One training step = forward, ``MATRLoss``, backward, AdamW update, on random CLIP-like features
(B pairs, M target frames, N query frames). Cases: the ``smoke`` preset and the ``paper`` preset
(d = 1024, 4 + 4 layers; a reduced batch on CPU, a larger one on a GPU when there is one).

For each case (every time is the fastest of several repeats, the figure least disturbed by other
processes on a shared machine):

* ``step ms`` / ``steps/s`` with the full objective (soft-DTW pre- and post-fusion losses);
* ``no-align``: steps/s with ``align_method="none"`` (the hard alignment A^post that restricts
  the decoder still runs);
* ``align ms``: the alignment work of one step timed in isolation on the same shapes (two
  soft-DTW losses forward + backward, one hard alignment); ``align %`` = align ms / step ms;
* ``peak MiB``: CPU: growth of the process's peak resident set (``ru_maxrss``) over its value
  after import, during the full-objective steps, in a fresh process per case; CUDA:
  ``torch.cuda.max_memory_allocated``.

Run: ``.venv/bin/python benchmarks/bench_model.py`` (about 1-3 minutes on 2 CPU cores). Prints a
table and writes ``benchmarks/results/bench_model.json``.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import platform
import resource
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from matr.align import alignment_loss, cosine_cost, hard_alignment
from matr.config import override, preset
from matr.io import write_json
from matr.losses import MATRLoss
from matr.model import MATR
from matr.span_ops import frame_targets

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


def default_cases(cuda: bool) -> list[Case]:
    """Smoke and paper presets on CPU; on a GPU also the paper preset at a training-size batch."""
    cases = [Case("smoke-cpu", "smoke", "cpu", 8, 64, 16, 10), Case("paper-cpu", "paper", "cpu", 2, 64, 16, 3)]
    if cuda:
        cases += [
            Case("smoke-cuda", "smoke", "cuda", 32, 128, 32, 20),
            Case("paper-cuda", "paper", "cuda", 64, 128, 32, 10),
        ]
    return cases


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
    """A closure running one training step of a fresh model (seed 0) on ``batch``."""
    torch.manual_seed(0)
    config = override(preset(case.preset), {"model.align_method": align_method})
    model = MATR(config).to(case.device).train()
    criterion = MATRLoss(config.loss)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=1e-4)

    def step() -> None:
        loss = criterion(model(batch), batch)["loss"]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step


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
            alignment_loss("soft_dtw", et, eq, *lengths, gamma=gamma).sum().backward()
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
    return {
        **asdict(case),
        "params_m": params / 1e6,
        "step_ms": 1e3 * full,
        "steps_per_s": 1 / full,
        "steps_per_s_no_align": 1 / no_align,
        "align_ms": 1e3 * align,
        "align_share": align / full,
        "peak_mib": peak_mib,
    }


def _measure_in_child(case: Case) -> dict:
    with mp.get_context("spawn").Pool(1) as pool:
        return pool.apply(measure, (case,))


def format_table(rows: list[dict]) -> str:
    """Fixed-width table of the figures."""
    header = (
        f"{'case':<11} {'params M':>8} {'B,M,N':>11} {'step ms':>8} {'steps/s':>8} {'no-align':>9} "
        f"{'align ms':>9} {'align %':>8} {'peak MiB':>9}"
    )
    lines = [header, "-" * len(header)]
    for r in rows:
        shape = f"{r['batch']},{r['target_frames']},{r['query_frames']}"
        lines.append(
            f"{r['name']:<11} {r['params_m']:>8.1f} {shape:>11} {r['step_ms']:>8.0f} {r['steps_per_s']:>8.2f} "
            f"{r['steps_per_s_no_align']:>9.2f} {r['align_ms']:>9.1f} {100 * r['align_share']:>7.1f}% "
            f"{r['peak_mib']:>9.0f}"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    rows = [_measure_in_child(case) for case in default_cases(torch.cuda.is_available())]
    print(format_table(rows))  # noqa: T201 (benchmark script output)
    write_json(
        args.out,
        {
            "benchmark": "bench_model",
            "torch": torch.__version__,
            "platform": platform.platform(),
            "cpu_threads": torch.get_num_threads(),
            "cases": rows,
        },
    )


if __name__ == "__main__":
    main()
