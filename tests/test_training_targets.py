"""Training targets and post-processing agree: perfect head outputs give back the ground truth.

If the foreground labels, the offsets' units or the window bookkeeping after snapping / cropping
disagreed with how :func:`matr.postprocess.predict_spans` reads the heads, a model that learned
its targets exactly would still miss; these tests feed the batch's own targets back as outputs.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from matr.data import FrameLimits, InMemoryFeatures, PairDataset, PairRecord, collate_pairs
from matr.metrics import evaluate
from matr.postprocess import predict_spans

CLIP = 2.0


def _records_and_features(seed: int = 0) -> tuple[list[PairRecord], InMemoryFeatures]:
    """12 pairs: targets of 20-60 frames, windows of 0.5-12 s off the frame grid, some target clips."""
    rng = np.random.default_rng(seed)
    features, records = {"q": np.zeros((4, 8), np.float32)}, []
    for k in range(12):
        frames = int(rng.integers(20, 61))
        features[f"t{k}"] = np.zeros((frames, 8), np.float32)
        duration = frames * CLIP
        target_window = (5.3, duration - 7.1) if k % 3 == 0 else None
        low, high = target_window or (0.0, duration)
        length = float(rng.uniform(0.5, 12.0))
        start = float(rng.uniform(low, high - length))
        windows = ((round(start - low, 3), round(start - low + length, 3)),)
        records.append(
            PairRecord(
                pair_id=f"q->t{k}",
                query_video="q",
                target_video=f"t{k}",
                duration=round(high - low, 3),
                windows=windows,
                action_class="a",
                split="val",
                target_window=target_window,
            )
        )
    return records, InMemoryFeatures(features, CLIP)


def _oracle_metrics(dataset: PairDataset) -> dict[str, float]:
    """Metrics of predictions made from the batch's own targets (fg logits +-10, true offsets)."""
    predictions, ground_truth = {}, {}
    for batch in DataLoader(dataset, batch_size=5, collate_fn=collate_pairs):
        outputs = {"fg_logits": batch["foreground"] * 20.0 - 10.0, "offsets": batch["offsets"]}
        for pair_id, spans, window in zip(batch["pair_id"], predict_spans(outputs, batch), batch["window"]):
            predictions[pair_id] = spans
            ground_truth[pair_id] = [window.tolist()]
    return evaluate(predictions, ground_truth)


@pytest.mark.parametrize("max_target_frames", [None, 16])
def test_perfect_heads_recover_every_window(max_target_frames: int | None) -> None:
    records, features = _records_and_features()
    dataset = PairDataset(records, features, limits=FrameLimits(max_target_frames=max_target_frames))
    metrics = _oracle_metrics(dataset)
    assert metrics["R1@0.7"] == pytest.approx(100.0)
    assert metrics["mIoU"] > 99.9


def test_offsets_of_every_foreground_frame_point_at_the_window() -> None:
    records, features = _records_and_features(seed=1)
    batch = collate_pairs(
        [PairDataset(records, features, limits=FrameLimits(max_target_frames=16), train=True)[i] for i in range(12)]
    )
    centres = (torch.arange(batch["foreground"].shape[1]) + 0.5) * CLIP
    starts = centres - batch["offsets"][..., 0] * CLIP
    ends = centres + batch["offsets"][..., 1] * CLIP
    foreground = batch["foreground"] > 0
    window = batch["window"].float()
    assert bool(foreground.any(dim=1).all())
    torch.testing.assert_close(starts[foreground], window[:, :1].expand_as(starts)[foreground], atol=1e-4, rtol=0)
    torch.testing.assert_close(ends[foreground], window[:, 1:].expand_as(ends)[foreground], atol=1e-4, rtol=0)
    inside = (centres >= window[:, :1]) & (centres <= window[:, 1:])
    assert bool((foreground | ~inside).all()), "a frame centre inside the window is not foreground"
