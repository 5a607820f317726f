"""Benchmark: how long a user waits for the ``matr`` command line (issue 12, "speed where a user waits").

All in one run, each a fresh ``python -m matr`` process, best and median of ``--repeats``:

* ``help``: ``matr --help``; ``argument_error``: ``matr localize --nms-threshold nan ...`` (goal for
  both: under 1 s, since parsing imports neither torch nor open_clip);
* ``import_torch``: ``python -c "import torch"``, what every call paid before the imports were lazy;
* ``localize_cold``: ``matr localize`` on two short videos with an empty ``--store`` (decodes, builds
  the random-init CLIP backbone, encodes); ``localize_cached``: the same call again, every feature
  now in the store, so the backbone is never built;
* ``model_only``: in this process, the model part of that call (:func:`matr.inference.localize_features`
  on the cached features), so ``localize_cached - model_only`` is what start-up still costs.

Run: ``.venv/bin/python benchmarks/bench_cli.py`` (about a minute). Prints a table and writes
``benchmarks/results/bench_cli.json``.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from matr.checkpoint import load_model, save_checkpoint
from matr.config import preset
from matr.features import FeatureStore
from matr.features.extract import cache_id
from matr.inference import localize_features
from matr.model import MATR
from matr.synthetic.render import write_mp4

RESULTS = Path(__file__).resolve().parent / "results" / "bench_cli.json"
GOAL_S = 1.0
TAG = "random-init(seed=0)"


def timed(command: list[str], repeats: int) -> dict[str, float]:
    """Best and median wall seconds of ``command`` (which must exit 0 or 2, a user error)."""
    seconds = []
    for _ in range(repeats):
        began = time.perf_counter()
        status = subprocess.run(command, capture_output=True).returncode
        seconds.append(time.perf_counter() - began)
        if status not in (0, 2):
            raise RuntimeError(f"{' '.join(command)} exited {status}")
    return {"best_s": min(seconds), "median_s": statistics.median(seconds)}


def inputs(folder: Path) -> tuple[Path, Path, Path]:
    """A smoke checkpoint (random weights, trained-on tag random-init) and a 6 s query and 30 s target video."""
    rng = np.random.default_rng(0)
    query, target = folder / "query.mp4", folder / "target.mp4"
    write_mp4(query, rng.integers(0, 255, (60, 64, 96, 3), dtype=np.uint8), fps=10)
    write_mp4(target, rng.integers(0, 255, (300, 64, 96, 3), dtype=np.uint8), fps=10)
    torch.manual_seed(0)
    checkpoint = folder / "smoke.pt"
    save_checkpoint(checkpoint, MATR(preset("smoke")), preset("smoke"), run={"weights_tag": TAG, "clip_length": 2.0})
    return checkpoint, query, target


def model_only(checkpoint: Path, store: Path, query: Path, target: Path, repeats: int) -> dict[str, float]:
    """Seconds of the model's part of a cached localize (features already in memory)."""
    model, _ = load_model(checkpoint)
    features = FeatureStore(store)
    q, t = (np.asarray(features.load(cache_id(path)), dtype=np.float32) for path in (query, target))
    duration = features.info(cache_id(target))["duration"]
    seconds = []
    for _ in range(repeats):
        began = time.perf_counter()
        localize_features(model, q, t, 2.0, duration, 5, 0.7)
        seconds.append(time.perf_counter() - began)
    return {"best_s": min(seconds), "median_s": statistics.median(seconds)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    matr = [sys.executable, "-m", "matr"]
    rows: dict[str, dict[str, float]] = {}
    rows["help"] = timed([*matr, "--help"], args.repeats)
    rows["argument_error"] = timed([*matr, "localize", "--query", "q", "--target", "t", "--nms-threshold", "nan"], 5)
    rows["import_torch"] = timed([sys.executable, "-c", "import torch"], args.repeats)
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint, query, target = inputs(Path(tmp))
        store = Path(tmp) / "cache"
        localize = [*matr, "localize", "--query", str(query), "--target", str(target), "--checkpoint", str(checkpoint)]
        localize += ["--store", str(store), "--device", "cpu", "--json"]
        rows["localize_cold"] = timed(localize, 1)
        rows["localize_cached"] = timed(localize, args.repeats)
        rows["model_only"] = model_only(checkpoint, store, query, target, args.repeats)
    for name, row in rows.items():
        print(f"{name:16s} best {row['best_s']:7.3f} s   median {row['median_s']:7.3f} s")
    result = {
        "benchmark": "bench_cli",
        "machine": {"platform": platform.platform(), "python": platform.python_version(), "torch": torch.__version__},
        "goal": f"matr --help and argument errors under {GOAL_S:g} s",
        "help_under_goal": rows["help"]["median_s"] < GOAL_S,
        "argument_error_under_goal": rows["argument_error"]["median_s"] < GOAL_S,
        "cached_localize_startup_s": rows["localize_cached"]["median_s"] - rows["model_only"]["median_s"],
        "rows": rows,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    print(f"written {RESULTS}")


if __name__ == "__main__":
    main()
