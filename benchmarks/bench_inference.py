"""Benchmark: ``localize`` on a 10-minute video and ``search`` over 1,000 cached videos.

Localize: :func:`matr.inference.localize_features` on 300 frames of cached features (10 minutes at
one frame per 2 s) and an 8-frame query, for the ``smoke``, ``demo`` and ``paper`` presets (one
window where ``max_target_frames`` covers the video; ``smoke`` needs 2 windows). Median of
``--repeats`` runs after one warm-up run. The issue's target: under 50 ms on this CPU.

Search: :func:`matr.inference.search_features` with a 20-frame query over a feature store on disk
of ``--videos`` videos (default 1,000; lengths uniform in 15-150 frames, i.e. 30 s to 5 min, stored
float16 and memory-mapped as ``matr extract`` leaves them), ``demo`` preset; videos per second for
each batch size, after a warm-up search. Features are random: time depends on shapes only.

The JSON records the torch threads and the machine's 1-minute load average before and after: on a
shared machine a load above the core count inflates every time. Run: ``.venv/bin/python benchmarks/bench_inference.py`` (about 2 minutes on 2 CPU cores; ``--quick``
for a smaller run). Prints a table and writes ``benchmarks/results/bench_inference.json``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from bench_loader import build_store

from matr.config import preset
from matr.features import FeatureStore
from matr.inference import localize_features, plan_windows, search_features
from matr.io import write_json
from matr.model import MATR
from matr.provenance import provenance

RESULTS = Path(__file__).resolve().parent / "results" / "bench_inference.json"
CLIP_LENGTH = 2.0
LOCALIZE_FRAMES = 300  # 10 minutes at one frame per 2 s
QUERY_FRAMES = 8
TARGET_MS = 50.0


def _model(name: str, device: str) -> MATR:
    torch.manual_seed(0)
    return MATR(preset(name)).to(device).eval()


def _synchronize(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def time_localize(preset_name: str, device: str, repeats: int) -> dict[str, Any]:
    """Median milliseconds of ``localize_features`` on 300 cached frames."""
    model = _model(preset_name, device)
    rng = np.random.default_rng(0)
    target = rng.standard_normal((LOCALIZE_FRAMES, 512)).astype(np.float32)
    query = rng.standard_normal((QUERY_FRAMES, 512)).astype(np.float32)
    localize_features(model, query, target, CLIP_LENGTH)
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        localize_features(model, query, target, CLIP_LENGTH)
        _synchronize(device)
        times.append(time.perf_counter() - started)
    median_ms = 1e3 * statistics.median(times)
    return {
        "preset": preset_name,
        "device": device,
        "max_target_frames": model.config.max_target_frames,
        "windows": len(plan_windows(LOCALIZE_FRAMES, model.config.max_target_frames)),
        "target_frames": LOCALIZE_FRAMES,
        "query_frames": QUERY_FRAMES,
        "median_ms": round(median_ms, 1),
        "min_ms": round(1e3 * min(times), 1),
        "under_target": median_ms < TARGET_MS,
    }


def time_search(store: FeatureStore, device: str, batch_sizes: tuple[int, ...]) -> list[dict[str, Any]]:
    """Videos per second of ``search_features`` over the whole store, per batch size."""
    model = _model("demo", device)
    query = np.random.default_rng(1).standard_normal((20, 512)).astype(np.float32)
    videos = len(store.video_ids())
    rows = []
    for batch_size in batch_sizes:
        search_features(model, query, store, batch_size=batch_size, video_ids=store.video_ids()[:64])
        started = time.perf_counter()
        hits = search_features(model, query, store, batch_size=batch_size)
        _synchronize(device)
        seconds = time.perf_counter() - started
        rows.append(
            {
                "preset": "demo",
                "device": device,
                "videos": videos,
                "batch_size": batch_size,
                "seconds": round(seconds, 3),
                "videos_per_second": round(videos / seconds, 1),
                "hits": len(hits),
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--videos", type=int, default=None, help="default 1000 (100 with --quick)")
    parser.add_argument("--repeats", type=int, default=None, help="default 7 (3 with --quick)")
    parser.add_argument("--presets", default=None, help="default smoke,demo,paper (smoke,demo with --quick)")
    parser.add_argument("--batch-sizes", default="16,64")
    parser.add_argument("--quick", action="store_true", help="100 videos, 3 repeats, no paper preset")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    load_before = os.getloadavg()
    quick = {"videos": 100, "repeats": 3, "presets": "smoke,demo"}
    full = {"videos": 1000, "repeats": 7, "presets": "smoke,demo,paper"}
    for name, value in (quick if args.quick else full).items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    localize = [time_localize(name, args.device, args.repeats) for name in args.presets.split(",")]
    with tempfile.TemporaryDirectory() as folder:
        store = build_store(Path(folder), args.videos, shortest=15)
        search = time_search(store, args.device, tuple(int(b) for b in args.batch_sizes.split(",")))
    print(f"localize_features, {LOCALIZE_FRAMES} cached frames (10 min), {QUERY_FRAMES}-frame query, {args.device}")
    print(f"{'preset':7} {'windows':>7} {'median ms':>10} {'min ms':>8} {'< 50 ms':>8}")
    for row in localize:
        print(
            f"{row['preset']:7} {row['windows']:>7} {row['median_ms']:>10.1f} {row['min_ms']:>8.1f} "
            f"{'yes' if row['under_target'] else 'no':>8}"
        )
    print(f"\nsearch_features over {args.videos} cached videos (15-150 frames), demo preset")
    print(f"{'batch':>5} {'seconds':>8} {'videos/s':>9}")
    for row in search:
        print(f"{row['batch_size']:>5} {row['seconds']:>8.2f} {row['videos_per_second']:>9.1f}")
    write_json(
        args.out,
        {
            "localize": localize,
            "search": search,
            "torch_threads": torch.get_num_threads(),
            "load_average_1min": {"before": round(load_before[0], 2), "after": round(os.getloadavg()[0], 2)},
            "provenance": provenance(benchmark="bench_inference"),
        },
    )
    print(f"\nwritten to {args.out}")


if __name__ == "__main__":
    main()
