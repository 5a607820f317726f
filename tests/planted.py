"""A planted pair dataset in feature space: each query is a noisy, resampled copy of a target moment."""

from __future__ import annotations

import numpy as np

from matr.data import InMemoryFeatures, PairRecord

CLIP_LENGTH = 2.0


def planted_pairs(
    num_pairs: int = 8,
    seed: int = 0,
    target_frames: tuple[int, int] = (16, 24),
    query_frames: tuple[int, int] = (4, 8),
    noise: float = 0.3,
    split: str = "train",
) -> tuple[InMemoryFeatures, list[PairRecord]]:
    """Feature source and records of ``num_pairs`` pairs with recoverable moments."""
    rng = np.random.default_rng(seed)
    features, records = {}, []
    for i in range(num_pairs):
        m = int(rng.integers(target_frames[0], target_frames[1] + 1))
        n = int(rng.integers(query_frames[0], query_frames[1] + 1))
        length = int(rng.integers(3, m // 3 + 1))
        start = int(rng.integers(0, m - length + 1))
        target = rng.standard_normal((m, 512)).astype(np.float32)
        index = np.linspace(start, start + length - 1, n).round().astype(int)
        query = target[index] + noise * rng.standard_normal((n, 512)).astype(np.float32)
        features[f"{split}-target-{i}"], features[f"{split}-query-{i}"] = target, query
        window = (start * CLIP_LENGTH, (start + length) * CLIP_LENGTH)
        records.append(
            PairRecord(
                pair_id=f"{split}-pair-{i}",
                query_video=f"{split}-query-{i}",
                target_video=f"{split}-target-{i}",
                duration=m * CLIP_LENGTH,
                windows=(window,),
                action_class="planted",
                split=split,
            )
        )
    return InMemoryFeatures(features, clip_length=CLIP_LENGTH), records
