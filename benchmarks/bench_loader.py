"""Benchmark: how fast the training data loader reads pairs from a feature store.

A feature store on disk as ``matr extract`` leaves it (float16 ``.npy`` memory maps, one per video)
holds ``--videos`` random videos of 20-150 frames; ``--pairs`` pair records draw a query clip of
up to 60 s from one video and a target from another, as ActivityNet-VRL's do. The loader is the
one :func:`matr.train.fit` builds: :class:`matr.data.PairDataset` (training crops on), shuffled
batches of ``--batch`` pairs collated by :func:`matr.data.collate_pairs`, ``num_workers`` worker
processes, pinned memory on a GPU machine. Reported: pairs per second for each worker count, over
the second of two epochs (the first opens every video once per worker).

The loader is never the bottleneck when its pairs/s exceed the training step's
(``benchmarks/bench_model.py``: pairs/s of the paper preset at B = 1200 on the GPU).

Run: ``.venv/bin/python benchmarks/bench_loader.py`` (about a minute on 2 CPU cores).
Writes ``benchmarks/results/bench_loader.json``.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from matr.data import FrameLimits, PairDataset, PairRecord, collate_pairs
from matr.features import FeatureStore, VideoFeatures
from matr.io import write_json
from matr.provenance import provenance

RESULTS = Path(__file__).resolve().parent / "results" / "bench_loader.json"
CLIP_LENGTH = 2.0


def build_store(root: Path, videos: int, seed: int = 0, shortest: int = 20) -> FeatureStore:
    """A feature store of ``videos`` random videos of ``shortest``-150 frames (also used by bench_inference)."""
    rng = np.random.default_rng(seed)
    store = FeatureStore(root)
    with store.writer() as writer:
        for v in range(videos):
            frames = int(rng.integers(shortest, 151))
            duration = frames * CLIP_LENGTH
            features = VideoFeatures(
                rng.standard_normal((frames, 512)).astype(np.float32),
                (np.arange(frames) + 0.5) * CLIP_LENGTH,
                duration,
                duration,
                CLIP_LENGTH,
                "random-init(seed=0)",
                "ViT-B/32",
                str(root / f"v{v:05d}.mp4"),
            )
            writer.put(f"v{v:05d}", features)
    return FeatureStore(root)


def pair_records(store: FeatureStore, pairs: int, seed: int = 0) -> list[PairRecord]:
    """Pairs of a query clip (up to 60 s) of one video and a ground-truth window in another."""
    rng = np.random.default_rng(seed)
    ids = store.video_ids()
    records = []
    for k in range(pairs):
        target, query = ids[int(rng.integers(len(ids)))], ids[int(rng.integers(len(ids)))]
        target_s = store.info(target)["num_frames"] * CLIP_LENGTH
        query_s = store.info(query)["num_frames"] * CLIP_LENGTH
        start, query_start = float(rng.uniform(0, target_s - 10)), float(rng.uniform(0, query_s - 10))
        records.append(
            PairRecord(
                pair_id=f"p{k}",
                query_video=query,
                target_video=target,
                duration=target_s,
                windows=((start, start + 8.0),),
                query_window=(query_start, min(query_start + 60.0, query_s)),
                action_class="a",
                split="train",
            )
        )
    return records


def time_loader(dataset: PairDataset, batch: int, workers: int, pin_memory: bool) -> dict[str, Any]:
    """Pairs per second over the second of two epochs."""
    loader = DataLoader(
        dataset,
        batch_size=batch,
        shuffle=True,
        collate_fn=collate_pairs,
        num_workers=workers,
        pin_memory=pin_memory,
        persistent_workers=workers > 0,
    )
    for _ in loader:  # first epoch: workers start, every video is opened once per worker
        pass
    started, pairs = time.perf_counter(), 0
    for batch_data in loader:
        pairs += len(batch_data["pair_id"])
    seconds = time.perf_counter() - started
    return {"workers": workers, "batch": batch, "pin_memory": pin_memory, "pairs_per_s": round(pairs / seconds, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=1000)
    parser.add_argument("--pairs", type=int, default=4800)
    parser.add_argument("--batch", type=int, default=1200)
    parser.add_argument("--workers", default=None, help="comma-separated worker counts (default 0,2 or 0,4,8)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    workers = [int(w) for w in args.workers.split(",")] if args.workers else ([0, 2] if cores <= 4 else [0, 4, 8])
    pin = torch.cuda.is_available()
    with tempfile.TemporaryDirectory() as folder:
        store = build_store(Path(folder), args.videos)
        limits = FrameLimits(max_query_frames=128, max_target_frames=512)
        dataset = PairDataset(pair_records(store, args.pairs), store, limits=limits, train=True)
        rows = [time_loader(dataset, args.batch, w, pin) for w in workers]
    print(f"loader: {args.pairs} pairs, batch {args.batch}, {cores} CPU cores, pinned memory {pin}")
    for row in rows:
        print(f"  workers {row['workers']:>2}: {row['pairs_per_s']:>9.1f} pairs/s")
    write_json(
        args.out,
        {
            "cpu_cores": cores,
            "videos": args.videos,
            "pairs": args.pairs,
            "rows": rows,
            **provenance(benchmark="bench_loader"),
        },
    )
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
