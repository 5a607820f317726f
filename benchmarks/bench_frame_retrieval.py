"""Frame-level retrieval on the demo's features: synthetic v1 vs v2, random-init CLIP vs alternatives.

For each query frame of the test pairs, the target frames are ranked by cosine similarity
(:mod:`matr.synthetic.retrieval`); the training-free Random and Video Match baselines are scored on
the same features (R1@0.5, top-1 IoU >= 0.5). Frames are taken from the renderer at the times the
2 s sampling decodes (the middle of each window), not decoded from mp4, so codec loss is ignored.

Backbones: ``random-init`` (CLIP ViT-B/32, seed 0, the demo's), the same features ``centred`` (the
split's mean feature subtracted: a training-free projection a model could learn), and ``pixels``
(an 8x8 colour thumbnail minus 0.5, a backbone-free reference).

    python benchmarks/bench_frame_retrieval.py --device cuda --out benchmarks/results/frame_retrieval.json
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import time
from collections.abc import Callable

import numpy as np
import torch
from tqdm.auto import tqdm

from matr.baselines import random_baseline, video_match
from matr.features import encode_frames, load_clip_encoder
from matr.features.video import sample_times
from matr.metrics import temporal_iou
from matr.synthetic.retrieval import FrameRetrieval, frame_retrieval, window_mask

CLIP_LENGTH = 2.0


def v1_videos(max_targets: int | None) -> tuple[list[dict], dict, Callable]:
    """Test pairs, decoy records and a frame sampler of the v1 ``demo`` data."""
    from matr.data import synthetic as v1

    plan = v1.plan_dataset(v1.PROFILES["demo"], 0)

    def frames(spec) -> np.ndarray:
        rendered = v1.render_frames(spec)
        times = sample_times(spec.duration, CLIP_LENGTH)
        return rendered[np.minimum(np.round(times * spec.fps).astype(int), len(rendered) - 1)]

    return _pick(plan, max_targets), {d["vid"]: d for d in plan.decoys["test"]}, frames


def v2_videos(max_targets: int | None) -> tuple[list[dict], dict, Callable]:
    """Test pairs, decoy records and a frame sampler of the v2 ``demo`` data."""
    from matr.synthetic import SIZES, plan_dataset
    from matr.synthetic.scenes import draw_frames

    plan = plan_dataset(SIZES["demo"], 0)

    def frames(spec) -> np.ndarray:
        return draw_frames(spec.scene, sample_times(spec.duration, CLIP_LENGTH), spec.frame_size)

    return _pick(plan, max_targets), {d["vid"]: d for d in plan.decoys["test"]}, frames


def _pick(plan, max_targets: int | None) -> list[dict]:
    """The test records (with the plan's specs attached) of the first ``max_targets`` targets of each class."""
    specs = {spec.video_id: spec for spec in plan.videos}
    kept, per_class = [], {}
    for record in plan.annotations["test"]:
        targets = per_class.setdefault(record["action_class"], [])
        if record["vid"] not in targets:
            if max_targets is not None and len(targets) >= max_targets:
                continue
            targets.append(record["vid"])
        kept.append({**record, "query_spec": specs[record["qid"]], "target_spec": specs[record["vid"]]})
    return kept


def embed_all(records: list[dict], frames: Callable, encoder) -> dict[str, np.ndarray]:
    """Random-init CLIP and pixel features of every video of ``records``: ``{backbone: {video_id: (M, d)}}``."""
    specs = {r["qid"]: r["query_spec"] for r in records} | {r["vid"]: r["target_spec"] for r in records}
    out: dict[str, dict[str, np.ndarray]] = {"random-init": {}, "pixels": {}}
    for video_id, spec in tqdm(specs.items(), desc="features", unit="video"):
        images = frames(spec)
        out["random-init"][video_id] = encode_frames(encoder, list(images))
        thumbs = torch.nn.functional.adaptive_avg_pool2d(torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255, 8)
        out["pixels"][video_id] = (thumbs.flatten(1) - 0.5).numpy()
    mean = np.concatenate(list(out["random-init"].values())).mean(axis=0)
    out["centred"] = {key: value - mean for key, value in out["random-init"].items()}
    return out


def evaluate(records: list[dict], decoys: dict, features: dict[str, np.ndarray]) -> dict[str, float]:
    """The retrieval summary plus Random and Video Match R1@0.5 (%) on these features."""

    def pairs():
        for r in records:
            target = features[r["vid"]]
            truth = window_mask(len(target), r["relevant_windows"], CLIP_LENGTH)
            decoy = window_mask(len(target), decoys[r["vid"]]["decoy_windows"], CLIP_LENGTH) & ~truth
            yield features[r["qid"]], target, truth, decoy

    result: FrameRetrieval = frame_retrieval(pairs())
    match = [
        video_match(
            torch.from_numpy(features[r["vid"]]), torch.from_numpy(features[r["qid"]]), CLIP_LENGTH, None, r["duration"]
        )
        for r in records
    ]
    random = random_baseline({f"{r['qid']}->{r['vid']}": r["duration"] for r in records}, seed=0)
    hit = lambda spans, r: temporal_iou(spans[0][:2], r["relevant_windows"]) >= 0.5  # noqa: E731
    return result.summary() | {
        "VideoMatch R1@0.5": 100 * float(np.mean([hit(m, r) for m, r in zip(match, records)])),
        "Random R1@0.5": 100 * float(np.mean([hit(random[f"{r['qid']}->{r['vid']}"], r) for r in records])),
        "pairs": len(records),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--max-targets", type=int, default=None, help="targets per test class (default: all)")
    parser.add_argument("--out", default=None, help="write the results as JSON here")
    args = parser.parse_args()
    encoder = load_clip_encoder("random", device=args.device, seed=0)
    results = {"weights_tag": encoder.weights_tag, "device": args.device, "clip_length": CLIP_LENGTH, "data": {}}
    for name, videos in (("v1", v1_videos), ("v2", v2_videos)):
        if name == "v1" and importlib.util.find_spec("matr.data.synthetic") is None:
            continue  # version 1 is deleted once the profiles use version 2; its numbers stay in the results file
        start = time.perf_counter()
        records, decoys, frames = videos(args.max_targets)
        features = embed_all(records, frames, encoder)
        results["data"][name] = {backbone: evaluate(records, decoys, feats) for backbone, feats in features.items()}
        results["data"][name]["seconds"] = time.perf_counter() - start
    text = json.dumps(results, indent=1)
    print(text)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as handle:
            handle.write(text + "\n")


if __name__ == "__main__":
    main()
