"""Benchmark: training throughput (pairs/s) through :func:`matr.train.fit` on the demo data's shapes.

Training: pre-training and finetuning through :func:`matr.train.fit` (data loading, forward, loss,
backward, AdamW; no validation) on the shapes of the synthetic ``demo`` data set's training split
(150 targets of 30-60 s, 300 pairs; one frame per 2 s). The features are random: throughput
depends on shapes, not values, and this way the benchmark needs no rendering or CLIP extraction.
Cases: the ``smoke`` and ``demo`` model presets, at the batch sizes of the profiles that use them.
Pre-training pairs are the clips of :class:`matr.data.PretrainingDataset` (two per video, with
augmentation). The first epoch is a warm-up and is not timed.

The latency of ``localize`` and the throughput of ``search`` are measured by
``benchmarks/bench_inference.py``, the data loader alone by ``benchmarks/bench_loader.py``.

Run: ``.venv/bin/python benchmarks/bench_train.py`` (a few minutes on 2 CPU cores). Prints a table
and writes ``benchmarks/results/bench_train.json``. On a machine without a GPU everything runs on
the CPU and the JSON says so.
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from matr.data import FrameLimits, InMemoryFeatures, PairDataset, PairRecord, PretrainingDataset
from matr.experiments.compose import compose
from matr.experiments.profiles import get_profile
from matr.features.video import num_windows
from matr.io import write_json
from matr.provenance import provenance
from matr.synthetic import SIZES, DatasetPlan, plan_dataset
from matr.train import fit

RESULTS = Path(__file__).resolve().parent / "results" / "bench_train.json"
CLIP_LENGTH = 2.0
LOCALIZE_FRAMES = 300  # 10 minutes at one frame per 2 s
QUERY_FRAMES = 8


def demo_training_data(seed: int = 0) -> tuple[InMemoryFeatures, list[PairRecord]]:
    """Random features with the lengths of the ``demo`` training split, and its pair records."""
    plan = plan_dataset(SIZES["demo"], seed)
    rng = np.random.default_rng(seed)
    features = {
        spec.video_id: rng.standard_normal((num_windows(spec.duration, CLIP_LENGTH), 512)).astype(np.float32)
        for spec in plan.videos
        if spec.video_id.startswith("train_")
    }
    return InMemoryFeatures(features, CLIP_LENGTH), demo_records(plan, "train")


def demo_records(plan: DatasetPlan, split: str) -> list[PairRecord]:
    """The pair records of one split of a synthetic plan."""
    return [
        PairRecord(
            pair_id=f"{row['qid']}->{row['vid']}",
            query_video=row["qid"],
            target_video=row["vid"],
            duration=row["duration"],
            windows=(tuple(row["relevant_windows"][0]),),
            action_class=row["action_class"],
            split=split,
        )
        for row in plan.annotations[split]
    ]


def time_training(
    profile_name: str, stage: str, source: InMemoryFeatures, records: list[PairRecord], epochs: int, device: str
) -> dict[str, Any]:
    """Pairs per second of ``stage`` (``pretrain`` / ``finetune``) with the settings of a profile."""
    profile = get_profile(profile_name)
    run = compose(profile, "pretrain" if stage == "pretrain" else "scratch", profile.seed)
    config = run.model
    limits = FrameLimits.of(config.model)
    if stage == "pretrain":
        dataset = PretrainingDataset(sorted({r.target_video for r in records}), source, run.pretraining, limits=limits)
    else:
        dataset = PairDataset(records, source, limits=limits, train=True, seed=profile.seed)
    train_config = dataclasses.replace(run.train, epochs=epochs, device=device)
    with tempfile.TemporaryDirectory() as folder:
        fit(config, dataclasses.replace(train_config, epochs=1), dataset, folder, progress=False)
        started = time.perf_counter()
        fit(config, train_config, dataset, folder, progress=False)  # resumes after the warm-up epoch
        seconds = time.perf_counter() - started
    timed_epochs = epochs - 1
    return {
        "profile": profile_name,
        "preset": profile.model_preset,
        "stage": stage,
        "device": device,
        "batch_size": train_config.batch_size,
        "pairs_per_epoch": len(dataset),
        "timed_epochs": timed_epochs,
        "seconds": round(seconds, 3),
        "pairs_per_second": round(len(dataset) * timed_epochs / seconds, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3, help="epochs per training case, the first untimed (default 3)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    source, records = demo_training_data()
    training = [
        time_training(profile, stage, source, records, args.epochs, args.device)
        for profile in ("smoke", "demo")
        for stage in ("pretrain", "finetune")
    ]
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    note = f"GPU: {gpu}" if gpu else "no GPU on this machine: every number is CPU-only"
    print(note)
    print(f"{'profile':8} {'preset':7} {'stage':9} {'batch':>5} {'pairs/epoch':>11} {'pairs/s':>8}")
    for row in training:
        print(
            f"{row['profile']:8} {row['preset']:7} {row['stage']:9} {row['batch_size']:>5} "
            f"{row['pairs_per_epoch']:>11} {row['pairs_per_second']:>8.1f}"
        )
    write_json(
        RESULTS,
        {
            "note": note,
            "training": training,
            "provenance": provenance(benchmark="bench_train", epochs=args.epochs),
        },
    )
    print(f"\nwritten to {RESULTS}")


if __name__ == "__main__":
    main()
