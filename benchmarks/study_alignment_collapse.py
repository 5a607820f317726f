"""Study: does soft-DTW on the paper's cosine cost collapse the features, and does a contrastive cost help?

Soft-DTW on ``1 - cos`` reaches its global minimum, ``-gamma * log(number of paths)``, when all
frames share one direction (every cell costs 0). This study trains the ``smoke`` model (dropout
off, AdamW lr 1e-3, the setting of ``tests/test_overfit.py``) on a planted batch of 24 pairs,
whose queries are noisy resampled copies of a target moment, and evaluates it on that batch and on
a held-out planted batch of 24 other pairs. Arms (``ARMS``):

* ``cosine``: the paper (soft-DTW pre- and post-fusion on ``1 - cos``, all lambdas 1);
* ``none``: no alignment loss (the decoder span A^post still comes from the cosine cost);
* ``cosine-l0.1``: the paper's cost with both alignment lambdas at 0.1 (a weighting fix only);
* ``contrastive``: soft-DTW on :func:`matr.align.contrastive_cost` (``-log softmax`` over target
  frames of ``cos / 0.1``), also used for A^pre, A^post and the decoder span.

Every ``--eval-every`` steps, in eval mode, on both batches: R@1 at IoU 0.5 of the heads' top-1
span and of the hard-alignment spans A^pre and A^post (``predict_spans(..., source=...)``), the
mean IoU of each, and the mean pairwise cosine between distinct real target frames of E_t (after
the projection) and E_t^g (after the encoder), averaged over pairs; plus the training losses.
Reported: the state at the last step, the first step where the heads reach R@1 >= 0.9 on the
training pairs, and the trajectories (``mean``, over ``--seeds`` model seeds; ``last_per_seed``
gives the spread at the last step).

Run: ``.venv/bin/python benchmarks/study_alignment_collapse.py`` (about 2-3 minutes on one CPU
thread). Prints tables and writes ``benchmarks/results/study_alignment_collapse.json``.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import time
from collections.abc import Callable
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
RESULTS = ROOT / "benchmarks" / "results" / "study_alignment_collapse.json"
ARMS: dict[str, dict[str, Any]] = {
    "cosine": {},
    "none": {"model.align_method": "none"},
    "cosine-l0.1": {"loss.align_pre": 0.1, "loss.align_post": 0.1},
    "contrastive": {"model.align_cost": "contrastive"},
}
SOURCES = ("heads", "A_pre", "A_post")
BASE = {"model.transformer_dropout": 0.0, "model.projection_dropout": 0.0}


def planted_batch_factory() -> Callable[..., dict]:
    """``make_planted_batch`` of ``tests/conftest.py``: the planted data of the overfit test."""
    spec = importlib.util.spec_from_file_location("matr_tests_conftest", ROOT / "tests" / "conftest.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.make_planted_batch


def mean_pairwise_cosine(x: torch.Tensor, lengths: torch.Tensor) -> float:
    """Mean cosine between distinct real frames of each pair, averaged over pairs: x (B, M, d)."""
    unit = torch.nn.functional.normalize(x, dim=-1)
    values = []
    for b, m in enumerate(lengths.tolist()):
        cos = unit[b, :m] @ unit[b, :m].T
        values.append(float((cos.sum() - cos.diagonal().sum()) / (m * (m - 1))))
    return statistics.fmean(values)


def evaluate(model: MATR, batch: dict) -> dict[str, float]:
    """R@1@0.5 and mIoU of each source, and the frame collapse of E_t and E_t^g, in eval mode."""
    captured: dict[str, torch.Tensor] = {}
    M = batch["target"].shape[1]

    def keep_first(name: str) -> Callable[..., None]:  # the projection runs on the target first
        def hook(_module, _inputs, output: torch.Tensor) -> None:
            captured.setdefault(name, output[:, :M])

        return hook

    hooks = [
        model.projection.register_forward_hook(keep_first("Et")),
        model.encoder[-1].register_forward_hook(keep_first("Etg")),
    ]
    model.eval()
    with torch.no_grad():
        outputs = model(batch)
    for hook in hooks:
        hook.remove()
    row = {}
    for source in SOURCES:
        top1 = torch.tensor([spans[0][:2] for spans in predict_spans(outputs, batch, top_k=1, source=source)])
        iou = span_iou(top1, batch["window"])
        row[f"{source}_r1"], row[f"{source}_miou"] = float((iou >= 0.5).float().mean()), float(iou.mean())
    for name in ("Et", "Etg"):
        row[f"cos_{name}"] = mean_pairwise_cosine(captured[name], batch["target_lengths"])
    return row


def train_arm(
    updates: dict[str, Any], seed: int, train: dict, held_out: dict, steps: int, eval_every: int
) -> list[dict[str, float]]:
    """Train one arm from seed ``seed``; one record per evaluation (step 0 included)."""
    torch.manual_seed(seed)
    config = override(preset("smoke"), {**BASE, **updates})
    model, criterion = MATR(config), MATRLoss(config.loss)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-4)
    history, terms = [], {}
    for step in range(steps + 1):
        if step % eval_every == 0:
            record = {"step": step, **{f"loss_{k}": v for k, v in terms.items()}}
            record.update({f"train_{k}": v for k, v in evaluate(model, train).items()})
            record.update({f"heldout_{k}": v for k, v in evaluate(model, held_out).items()})
            history.append(record)
        if step == steps:
            break
        model.train()
        losses = criterion(model(train), train)
        optimizer.zero_grad()
        losses["loss"].backward()
        optimizer.step()
        terms = {k: float(v.detach()) for k, v in losses.items()}
    return history


def mean_histories(histories: list[list[dict[str, float]]]) -> list[dict[str, float]]:
    """Per-step means over seeds (keys present in every record)."""
    return [
        {k: statistics.fmean(h[i][k] for h in histories) if k != "step" else h0[k] for k in h0}
        for i, h0 in enumerate(histories[0])
    ]


def first_step(history: list[dict[str, float]], key: str, threshold: float) -> int | None:
    """First evaluated step where ``key`` >= ``threshold``, or None."""
    return next((r["step"] for r in history if r[key] >= threshold), None)


def print_tables(results: dict[str, dict[str, Any]]) -> None:
    """Final state per arm and split, then the trajectories of the collapse."""
    print("\nlast step, mean over seeds; R@1 = R@1 at IoU 0.5 of the top-1 span")
    print(
        f"{'arm':<12} {'split':<8} {'heads':>6} {'A_pre':>6} {'A_post':>6} {'cos E_t':>8} {'cos E_t^g':>9} "
        f"{'L_pre':>7} {'L_post':>7} {'heads>=0.9 @':>13}"
    )
    for arm, result in results.items():
        last = result["mean"][-1]
        reached = result["heads_r1_0.9_step"]
        for split in ("train", "heldout"):
            cells = [f"{last[f'{split}_{s}_r1']:6.2f}" for s in SOURCES]
            losses = " ".join(f"{last.get(f'loss_align_{s}', float('nan')):7.2f}" for s in ("pre", "post"))
            extra = f"{losses} {str(reached):>13}" if split == "train" else ""
            print(
                f"{arm:<12} {split:<8} {' '.join(cells)} {last[f'{split}_cos_Et']:8.3f} "
                f"{last[f'{split}_cos_Etg']:9.3f} {extra}"
            )
    for key, label in (
        ("train_A_post_r1", "A_post R@1, train pairs"),
        ("train_heads_r1", "heads R@1, train pairs"),
        ("train_cos_Etg", "mean cos of E_t^g, train pairs"),
    ):
        steps = [r["step"] for r in next(iter(results.values()))["mean"]]
        print(f"\n{label} by step")
        print(f"{'arm':<12} " + " ".join(f"{s:>5}" for s in steps))
        for arm, result in results.items():
            print(f"{arm:<12} " + " ".join(f"{r[key]:5.2f}" for r in result["mean"]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--eval-every", type=int, default=25)
    parser.add_argument("--seeds", type=int, default=2, help="model seeds 0..seeds-1")
    parser.add_argument("--pairs", type=int, default=24)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    torch.set_num_threads(1)
    make_planted_batch = planted_batch_factory()
    train = make_planted_batch(num_pairs=args.pairs, seed=1)
    held_out = make_planted_batch(num_pairs=args.pairs, seed=2)
    started = time.perf_counter()
    results = {}
    for arm, updates in ARMS.items():
        histories = [
            train_arm(updates, seed, train, held_out, args.steps, args.eval_every) for seed in range(args.seeds)
        ]
        mean = mean_histories(histories)
        results[arm] = {
            "overrides": updates,
            "mean": mean,
            "last_per_seed": [h[-1] for h in histories],
            "heads_r1_0.9_step": first_step(mean, "train_heads_r1", 0.9),
        }
    print_tables(results)
    write_json(
        args.out,
        {
            "study": "study_alignment_collapse",
            "setup": {
                "preset": "smoke",
                "base_overrides": BASE,
                "optimizer": "AdamW lr 1e-3 wd 1e-4",
                "steps": args.steps,
                "eval_every": args.eval_every,
                "seeds": list(range(args.seeds)),
                "train": f"make_planted_batch(num_pairs={args.pairs}, seed=1)",
                "held_out": f"make_planted_batch(num_pairs={args.pairs}, seed=2)",
            },
            "arms": results,
            "seconds": time.perf_counter() - started,
            "provenance": provenance(torch_threads=1),
        },
    )
    print(f"\nwrote {args.out} ({time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
