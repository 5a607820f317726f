"""Study: does the paper's subsequence alignment loss remove query use, and does aligning with the ground-truth moment keep it?

Issue 9's diagnosis: the post-fusion loss ``soft-DTW(C^post)`` over the whole target is met by a
content-free "hub": the encoder maps every query frame and ONE target frame to one vector, the
subsequence path runs down that target row, and the loss is near its minimum whatever the videos
show; the heads then stop using the query. ``align_span="moment"`` aligns the query with the
ground-truth moment's frames only (full soft-DTW on those rows of the whole target's cost).

Data: ``tests/planted.py``'s event pairs (each target holds three events of classes drawn for that
pair alone, the query is another noisy instance of one of them), so only comparing target and query
finds the moment. The ``demo`` model (dropout off, AdamW lr 1e-3, 32 fresh pairs a step), the
contrastive cost of the synthetic profiles. Arms (``ARMS``): no alignment loss; both losses over the
whole target (the paper's span); both on the ground-truth moment.

Every ``--eval-every`` steps on 128 held-out pairs: R1@0.5 of the heads with each pair's own query
and with another pair's query (``other``: a model that compares scores low), and the mean length
(frames) and R1@0.5 of A^post's span. Run: ``.venv/bin/python benchmarks/study_alignment_hub.py``
(one CPU thread; about 15 minutes for the three arms). Writes
``benchmarks/results/study_alignment_hub.json``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import torch

from matr.config import override, preset
from matr.io import write_json
from matr.losses import MATRLoss
from matr.model import MATR
from matr.postprocess import predict_spans
from matr.provenance import provenance
from matr.span_ops import span_iou

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "study_alignment_hub.json"
BASE = {"model.transformer_dropout": 0.0, "model.projection_dropout": 0.0, "model.align_cost": "contrastive"}
CLIP_LENGTH = 2.0  # seconds per frame of tests/conftest.py's collate_planted
ARMS: dict[str, dict[str, Any]] = {
    "none": {"model.align_method": "none"},
    "subsequence": {"model.align_span": "subsequence"},
    "moment": {"model.align_span": "moment"},
}


def recall(spans: torch.Tensor, batch: dict) -> float:
    """R1@0.5 (%) of top-1 spans (B, 2) in seconds."""
    return 100 * float((span_iou(spans, batch["window"]) >= 0.5).float().mean())


def evaluate(model: MATR, own: dict, other: dict) -> dict[str, float]:
    """Heads R1@0.5 with own / other queries, A^post's mean span length (frames) and R1@0.5."""
    model.eval()
    with torch.no_grad():
        heads = [torch.tensor([s[0][:2] for s in predict_spans(model(b), b, top_k=1)]) for b in (own, other)]
        a_post = model(own)["A_post"]
    post = torch.stack([a_post.start * CLIP_LENGTH, (a_post.end + 1) * CLIP_LENGTH], dim=-1).float()
    return {
        "own": recall(heads[0], own),
        "other": recall(heads[1], other),
        "A_post_frames": float((a_post.end - a_post.start + 1).float().mean()),
        "A_post_R1": recall(post, own),
    }


def train_arm(updates: dict[str, Any], steps: int, eval_every: int, planted: Any) -> list[dict[str, float]]:
    """Train one arm (seed 0); the evaluation history."""
    torch.manual_seed(0)
    config = override(preset("demo"), {**BASE, **updates})
    model, criterion = MATR(config), MATRLoss(config.loss)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-4)
    train_gen, test_gen = torch.Generator().manual_seed(1), torch.Generator().manual_seed(2)
    held_out = [planted.event_pair(test_gen) for _ in range(128)]
    own, other = planted.event_batch(held_out), planted.event_batch(held_out, swap=True)
    history = []
    for step in range(1, steps + 1):
        model.train()
        batch = planted.event_batch([planted.event_pair(train_gen) for _ in range(32)])
        loss = criterion(model(batch), batch)["loss"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step % eval_every == 0:
            history.append({"step": step, **evaluate(model, own, other)})
    return history


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--eval-every", type=int, default=100)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    torch.set_num_threads(1)
    sys.path.insert(0, str(ROOT / "tests"))
    import planted  # tests/planted.py: the event pairs of tests/test_query_use.py

    started = time.perf_counter()
    results = {}
    for arm, updates in ARMS.items():
        results[arm] = {"overrides": updates, "history": train_arm(updates, args.steps, args.eval_every, planted)}
        steps = (
            f"{h['step']}: {h['own']:.1f} / {h['other']:.1f}, A_post {h['A_post_frames']:.1f} frames"
            for h in results[arm]["history"]
        )
        print(f"{arm:<12}", " | ".join(steps), flush=True)
    write_json(
        args.out,
        {
            "study": "study_alignment_hub",
            "setup": {
                "preset": "demo",
                "base_overrides": BASE,
                "optimizer": "AdamW lr 1e-3 wd 1e-4, 32 fresh event pairs per step, seed 0",
                "steps": args.steps,
                "held_out": "128 event pairs (generator seed 2); other = each query swapped with the next pair's",
            },
            "arms": results,
            "seconds": time.perf_counter() - started,
            "provenance": provenance(torch_threads=1),
        },
    )


if __name__ == "__main__":
    main()
