"""Benchmark: training runs one by one vs side by side (``Profile.parallel_runs``), same checkpoints.

Two finetuning runs of the ``demo`` profile (variant ``scratch``, seeds 0 and 1, validation every
epoch as in the report) through :func:`matr.experiments.train_variants`, once with
``parallel_runs = 1`` (in this process, one after the other) and once with ``parallel_runs = 2``
(two child processes at once, OpenMP threads sleeping while they wait), on the shapes of the demo
data set's train and val splits with random features (speed depends on shapes, not values). Rounds
alternate the two modes, each in a fresh runs folder; the checkpoints of the two modes must be
bit-identical, and the benchmark fails if they are not.

Run: ``.venv/bin/python benchmarks/bench_parallel_runs.py`` (about 4 minutes on 2 CPU cores, on
an otherwise idle machine). Prints a table and writes ``benchmarks/results/bench_parallel_runs.json``.
"""

from __future__ import annotations

import argparse
import dataclasses
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from bench_train import CLIP_LENGTH, demo_records

from matr.data import save_pairs
from matr.experiments import get_profile, train_variants
from matr.experiments.profiles import Profile
from matr.experiments.workspace import Workspace
from matr.features import FeatureStore, VideoFeatures
from matr.features.video import num_windows
from matr.io import write_json
from matr.provenance import provenance
from matr.synthetic import SIZES, plan_dataset

RESULTS = Path(__file__).resolve().parent / "results" / "bench_parallel_runs.json"
SPLITS = ("train", "val")


def write_demo_shaped_workdir(root: Path, seed: int = 0) -> None:
    """A working folder whose store holds random features of the demo plan's train and val videos."""
    plan = plan_dataset(SIZES["demo"], seed)
    rng = np.random.default_rng(seed)
    store = FeatureStore(Workspace(root).features)
    with store.writer():
        for spec in plan.videos:
            if spec.video_id.split("_")[0] in SPLITS:
                frames = num_windows(spec.duration, CLIP_LENGTH)
                times = (np.arange(frames) + 0.5) * CLIP_LENGTH
                features = rng.standard_normal((frames, 512)).astype(np.float32)
                store.put(
                    spec.video_id,
                    VideoFeatures(
                        features, times, spec.duration, spec.duration, CLIP_LENGTH, "random", "bench", spec.video_id
                    ),
                )
    for split in SPLITS:
        save_pairs(demo_records(plan, split), Workspace(root).data / "annotations" / f"{split}.jsonl")


def train_both_seeds(profile: Profile, root: Path) -> tuple[float, dict[tuple[str, int], dict]]:
    """Seconds to train ``scratch`` with both seeds from nothing, and the weights of each run."""
    shutil.rmtree(root / "runs", ignore_errors=True)
    started = time.perf_counter()
    checkpoints = train_variants(profile, root, ["scratch"], progress=False)
    seconds = time.perf_counter() - started
    return seconds, {run: torch.load(path, weights_only=True)["model"] for run, path in checkpoints.items()}


def same_weights(first: dict, second: dict) -> bool:
    return first.keys() == second.keys() and all(
        all(torch.equal(a[name], b[name]) for name in a) for a, b in ((first[run], second[run]) for run in first)
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=4, help="finetuning epochs per run (default 4)")
    parser.add_argument("--rounds", type=int, default=2, help="rounds of both modes, alternating (default 2)")
    args = parser.parse_args()
    demo = get_profile("demo")
    base = dataclasses.replace(demo, finetune_epochs=args.epochs, seeds=2, train={**demo.train, "device": "cpu"})
    modes = {"one by one": 1, "side by side": 2}
    seconds: dict[str, list[float]] = {mode: [] for mode in modes}
    weights: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        write_demo_shaped_workdir(root)
        for _ in range(args.rounds):
            for mode, parallel in modes.items():
                elapsed, weights[mode] = train_both_seeds(dataclasses.replace(base, parallel_runs=parallel), root)
                seconds[mode].append(round(elapsed, 2))
    identical = same_weights(weights["one by one"], weights["side by side"])
    medians = {mode: statistics.median(values) for mode, values in seconds.items()}
    speedup = medians["one by one"] / medians["side by side"]
    print(f"{'mode':13} {'seconds (each round)':>24} {'median':>8}")
    for mode, values in seconds.items():
        print(f"{mode:13} {', '.join(f'{v:.1f}' for v in values):>24} {medians[mode]:>8.1f}")
    print(f"side by side: {speedup:.2f}x the runs per second; checkpoints bit-identical: {identical}")
    write_json(
        RESULTS,
        {
            "case": "demo profile, variant scratch, seeds 0 and 1, validation every epoch, random demo-shaped features",
            "epochs": args.epochs,
            "threads": torch.get_num_threads(),
            "seconds": seconds,
            "median_seconds": medians,
            "speedup_side_by_side": round(speedup, 3),
            "checkpoints_bit_identical": identical,
            "provenance": provenance(benchmark="bench_parallel_runs", epochs=args.epochs, rounds=args.rounds),
        },
    )
    print(f"\nwritten to {RESULTS}")
    if not identical:
        raise SystemExit("the two modes trained different weights")


if __name__ == "__main__":
    main()
