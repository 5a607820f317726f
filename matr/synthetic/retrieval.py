"""Frame-level retrieval: can a backbone's single-frame features find a query's moment at all?

For each query frame, the target frames are ranked by cosine similarity. A good design for the
demo gives the ground-truth frames (those whose 2 s window lies at least half inside the moment)
high ranks, also against the decoys' frames (other classes' events in the same target). Chance is
an AUC of 0.5 and a hit@1 of ``g / M`` (``g`` ground-truth frames among ``M``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from matr.io import read_jsonl

__all__ = ["FrameRetrieval", "dataset_frame_retrieval", "frame_retrieval", "plot_frame_retrieval", "window_mask"]


def window_mask(num_windows: int, spans: Sequence[Sequence[float]], clip_length: float = 2.0) -> np.ndarray:
    """``(M,)`` bool: windows ``[i c, (i + 1) c)`` at least half covered by one of ``spans`` ``[start, end]`` (s)."""
    starts = np.arange(num_windows) * clip_length
    mask = np.zeros(num_windows, dtype=bool)
    for start, end in spans:
        overlap = np.clip(np.minimum(starts + clip_length, end) - np.maximum(starts, start), 0, None)
        mask |= overlap >= clip_length / 2
    return mask


@dataclass(frozen=True)
class FrameRetrieval:
    """Per query frame (``(F,)`` each): the rank of the best ground-truth target frame (1 = top); the AUC,
    the probability that a ground-truth frame (any of them, so a query frame of one shot is also
    compared through the moment's other shots) scores above a frame outside the moment, and the same
    against the decoys' frames only (NaN without decoys); and the chance hit@1 ``g / M``."""

    rank: np.ndarray
    auc: np.ndarray
    auc_decoys: np.ndarray
    chance_hit: np.ndarray

    def summary(self) -> dict[str, float]:
        """Means over query frames: ``hit@1``, ``chance hit@1``, ``AUC``, ``AUC vs decoys``, ``frames``."""
        return {
            "hit@1": float(np.mean(self.rank == 1)),
            "chance hit@1": float(np.mean(self.chance_hit)),
            "AUC": float(np.mean(self.auc)),
            "AUC vs decoys": float(np.nanmean(self.auc_decoys)) if np.isfinite(self.auc_decoys).any() else float("nan"),
            "frames": float(len(self.rank)),
        }


def _auc(positive: np.ndarray, negative: np.ndarray) -> np.ndarray:
    """``(F,)`` probability that a positive score beats a negative one (ties count half); rows are query frames."""
    if positive.shape[1] == 0 or negative.shape[1] == 0:
        return np.full(positive.shape[0], np.nan)
    diff = positive[:, :, None] - negative[:, None, :]
    return ((diff > 0) + 0.5 * (diff == 0)).mean(axis=(1, 2))


def _unit(features: np.ndarray) -> np.ndarray:
    return features / np.maximum(np.linalg.norm(features, axis=1, keepdims=True), 1e-12)


def frame_retrieval(pairs: Iterable[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]) -> FrameRetrieval:
    """The diagnostic over ``pairs`` of (query ``(N, d)``, target ``(M, d)``, ground truth ``(M,)`` bool,
    decoys ``(M,)`` bool) features and masks; pairs without a ground-truth frame are skipped."""
    parts: list[tuple[np.ndarray, ...]] = []
    for query, target, truth, decoys in pairs:
        if not truth.any():
            continue
        scores = _unit(query) @ _unit(target).T  # (N, M)
        best = scores[:, truth].max(axis=1)
        rank = 1 + (scores[:, ~truth] > best[:, None]).sum(axis=1)
        chance = np.full(len(query), truth.sum() / len(truth))
        parts.append(
            (rank, _auc(scores[:, truth], scores[:, ~truth]), _auc(scores[:, truth], scores[:, decoys]), chance)
        )
    if not parts:
        raise ValueError("no pair has a ground-truth frame")
    return FrameRetrieval(*(np.concatenate(column) for column in zip(*parts)))


def dataset_frame_retrieval(
    load: Callable[[str], np.ndarray],
    annotations: str | Path,
    decoys: str | Path | None = None,
    clip_length: float = 2.0,
) -> FrameRetrieval:
    """The diagnostic on a rendered synthetic split: ``load(video_id) -> (M, d)`` features (e.g. a
    feature store's ``load``) and the split's ``annotations/{split}.jsonl``. ``decoys`` defaults to the
    dataset's ``decoys/{split}.jsonl`` beside ``annotations/`` when there is one (else no decoy frames)."""
    annotations = Path(annotations)
    decoys = Path(decoys) if decoys is not None else annotations.parent.parent / "decoys" / annotations.name
    decoy_windows = {r["vid"]: r["decoy_windows"] for r in read_jsonl(decoys)} if decoys.is_file() else {}

    def pairs() -> Iterable[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
        for record in read_jsonl(annotations):
            target = np.asarray(load(record["vid"]), dtype=np.float32)
            truth = window_mask(len(target), record["relevant_windows"], clip_length)
            decoy = window_mask(len(target), decoy_windows.get(record["vid"], []), clip_length) & ~truth
            yield np.asarray(load(record["qid"]), dtype=np.float32), target, truth, decoy

    return frame_retrieval(pairs())


def plot_frame_retrieval(results: dict[str, FrameRetrieval], ax=None):
    """Cumulative distribution of the ground truth's rank, one line per named result (e.g. a dataset
    and backbone), chance hit@1 in the legend. Returns the matplotlib axes."""
    import matplotlib.pyplot as plt

    ax = ax or plt.subplots(figsize=(6, 4))[1]
    for name, result in results.items():
        ranks = np.sort(result.rank)
        summary = result.summary()
        label = f"{name}: hit@1 {summary['hit@1']:.2f} (chance {summary['chance hit@1']:.2f}), AUC {summary['AUC']:.2f}"
        ax.step(ranks, np.arange(1, len(ranks) + 1) / len(ranks), where="post", label=label)
    ax.set_xscale("log")
    ax.set_xlabel("rank of the best ground-truth target frame (1 = top)")
    ax.set_ylabel("fraction of query frames")
    ax.set_title("Frame-level retrieval by cosine")
    ax.legend(fontsize=7, loc="lower right")
    return ax
