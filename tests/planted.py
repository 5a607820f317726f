"""Planted pairs in feature space.

* :func:`planted_pairs`: each query is a noisy, resampled copy of a target moment.
* :func:`event_pair`, :func:`event_batch`: targets with three events of new classes, the query another
  noisy instance of one of them (issue 9: does a model compare target and query?).
"""

from __future__ import annotations

import numpy as np
import torch
from conftest import collate_planted

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


EVENT_DIM, EVENTS = 512, 3


def _event(prototype: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """A noisy instance of a class, 4-8 frames: (L, EVENT_DIM)."""
    length = int(torch.randint(4, 9, (1,), generator=gen))
    return prototype + torch.randn(length, EVENT_DIM, generator=gen)


def event_pair(gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, tuple[int, int]]:
    """Target (M, EVENT_DIM) with EVENTS events of classes drawn for this pair alone, at random places;
    query (N, EVENT_DIM), another instance of event 0's class; event 0's frame span (first, last)."""
    prototypes = torch.randn(EVENTS, EVENT_DIM, generator=gen)
    events = [_event(p, gen) for p in prototypes]
    gaps = torch.randint(1, 8, (EVENTS + 1,), generator=gen).tolist()
    order = torch.randperm(EVENTS, generator=gen).tolist()
    pieces, span, position = [], (0, 0), 0
    for gap, index in zip(gaps, order, strict=False):
        pieces += [torch.randn(gap, EVENT_DIM, generator=gen), events[index]]
        position += gap
        if index == 0:
            span = (position, position + len(events[index]) - 1)
        position += len(events[index])
    pieces.append(torch.randn(gaps[-1], EVENT_DIM, generator=gen))
    return torch.cat(pieces), _event(prototypes[0], gen), span


def event_batch(pairs: list, swap: bool = False) -> dict:
    """Collated batch; ``swap``: every query replaced by the next pair's (another class)."""
    queries = [pair[1] for pair in pairs]
    queries = queries[1:] + queries[:1] if swap else queries
    return collate_planted([(target, query, span) for (target, _, span), query in zip(pairs, queries, strict=True)])
