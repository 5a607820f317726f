"""Shared test settings, and a planted synthetic batch in the collated format of matr.data.collate_pairs.

The suite runs in two pytest-xdist workers (``-n 2 --dist loadfile`` in pyproject.toml), one file per
worker at a time, so module-scoped chains (the notebook series, the end-to-end commands) stay in
order within their worker. :func:`pytest_collection_modifyitems` hands out the longest files
first (:data:`LONGEST_FIRST`), so the notebook series does not start last. Each worker, and the
kernels and commands it starts, uses one intra-op thread (``OMP_NUM_THREADS``, unless set): two
workers share two cores, and the small models' ops are faster on one thread than on two.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import pytest
import torch

from matr.span_ops import frame_targets

# Seconds per file measured with --durations on the shared 2-core machine at load 6-7 (about twice
# the idle time): the notebook series 793, the end-to-end commands 278, the browser 80; the rest under 80.
LONGEST_FIRST = ("test_notebooks.py", "test_end_to_end.py", "test_browser.py")


def pytest_configure(config: pytest.Config) -> None:
    """One intra-op thread in this process and in every process it starts (module docstring)."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The files of :data:`LONGEST_FIRST` first, in that order; the rest as collected."""
    rank = {name: index for index, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))


def make_planted_batch(
    num_pairs: int = 4,
    seed: int = 0,
    target_frames: tuple[int, int] = (20, 32),
    query_frames: tuple[int, int] = (4, 10),
    clip_length: float = 2.0,
    noise: float = 0.3,
    pad_to: tuple[int, int] | None = None,
) -> dict:
    """Pairs whose query is a noisy, resampled copy of target frames s..e.

    Target features are Gaussian; the query takes N frames evenly from the moment and adds noise.
    ``pad_to`` = (M, N) pads beyond the longest pair (:func:`collate_planted`).
    """
    gen = torch.Generator().manual_seed(seed)
    pairs = [_planted_pair(gen, target_frames, query_frames, noise) for _ in range(num_pairs)]
    return collate_planted(pairs, seed=seed, clip_length=clip_length, pad_to=pad_to, gen=gen)


def collate_planted(
    pairs: list[tuple[torch.Tensor, torch.Tensor, tuple[int, int]]],
    seed: int = 0,
    clip_length: float = 2.0,
    pad_to: tuple[int, int] | None = None,
    gen: torch.Generator | None = None,
) -> dict:
    """Batch dict of ``(target (M, d), query (N, d), (s, e) frame span)`` pairs, as matr.data.collate_pairs gives.

    Padded slots hold large random garbage so that a missing mask shows up.
    """
    gen = gen if gen is not None else torch.Generator().manual_seed(seed)
    num_pairs, dim = len(pairs), pairs[0][0].shape[1]
    m = max(t.shape[0] for t, _, _ in pairs) if pad_to is None else pad_to[0]
    n = max(q.shape[0] for _, q, _ in pairs) if pad_to is None else pad_to[1]
    batch = {
        "target": 10 * torch.randn(num_pairs, m, dim, generator=gen),
        "query": 10 * torch.randn(num_pairs, n, dim, generator=gen),
        "target_mask": torch.zeros(num_pairs, m, dtype=torch.bool),
        "query_mask": torch.zeros(num_pairs, n, dtype=torch.bool),
        "foreground": torch.zeros(num_pairs, m),
        "offsets": torch.zeros(num_pairs, m, 2),
        "window": torch.zeros(num_pairs, 2),
        "duration": torch.zeros(num_pairs),
        "pair_id": [f"planted-{seed}-{b}" for b in range(num_pairs)],
        "clip_length": clip_length,
    }
    for b, (target, query, (s, e)) in enumerate(pairs):
        mb, nb = target.shape[0], query.shape[0]
        window = (s * clip_length, (e + 1) * clip_length)
        fg, offsets = frame_targets(window, mb, clip_length)
        batch["target"][b, :mb], batch["query"][b, :nb] = target, query
        batch["target_mask"][b, :mb], batch["query_mask"][b, :nb] = True, True
        batch["foreground"][b, :mb], batch["offsets"][b, :mb] = fg, offsets
        batch["window"][b] = torch.tensor(window)
        batch["duration"][b] = mb * clip_length
    batch["target_lengths"] = batch["target_mask"].sum(1)
    batch["query_lengths"] = batch["query_mask"].sum(1)
    return batch


def _planted_pair(
    gen: torch.Generator, target_frames: tuple[int, int], query_frames: tuple[int, int], noise: float
) -> tuple[torch.Tensor, torch.Tensor, tuple[int, int]]:
    m = int(torch.randint(target_frames[0], target_frames[1] + 1, (1,), generator=gen))
    n = int(torch.randint(query_frames[0], query_frames[1] + 1, (1,), generator=gen))
    length = int(torch.randint(3, max(4, m // 3) + 1, (1,), generator=gen))
    s = int(torch.randint(0, m - length + 1, (1,), generator=gen))
    target = torch.randn(m, 512, generator=gen)
    index = torch.linspace(s, s + length - 1, n).round().long()
    query = target[index] + noise * torch.randn(n, 512, generator=gen)
    return target, query, (s, s + length - 1)


@pytest.fixture
def planted_batch() -> Callable[..., dict]:
    """Factory fixture: ``planted_batch(num_pairs=..., seed=...)`` -> collated batch dict."""
    return make_planted_batch
