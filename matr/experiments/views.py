"""Views of single pairs for the figures (paper Fig. 4 and the alignment matrices); nothing here trains.

Each reads what evaluation and training left: top-1 IoUs per pair (:func:`top1_iou_frame`), two
pairs to show (:func:`pick_pairs`), a pair's frames with every method's top-1 span
(:func:`example`), the top-1 span lengths of every source of a model against the ground truth
(:func:`span_lengths`, which shows whether a hard alignment found a moment or collapsed to one frame),
and the cost matrices and hard paths of a trained model on one pair (:func:`alignment_view`, which raises :class:`matr.experiments.evaluation.MissingCheckpoint` when
the model has not been trained).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

import numpy as np
import pandas as pd
import torch

from matr.align import alignment_cost
from matr.checkpoint import load_model
from matr.data import FrameLimits, PairDataset, PairRecord, collate_pairs
from matr.device import resolve_device
from matr.experiments.compose import compose
from matr.experiments.evaluation import (
    EVAL_SPLIT,
    MissingCheckpoint,
    cached_evaluation,
    default_source,
    predictions,
)
from matr.experiments.profiles import Profile
from matr.experiments.runs import checkpoint_path
from matr.experiments.tables import get_table
from matr.experiments.workspace import feature_source, open_data, video_paths
from matr.features import sample_frames
from matr.features.video import SampledVideo
from matr.prediction import move_to_device

QUALITATIVE_METHODS: Mapping[str, str] = MappingProxyType(
    {
        row.label: row.method
        for method in ("finetuned", "encoder_only", "video_match", "random")
        for row in get_table("table1_main").rows
        if row.method == method
    }
)
"""Table 1 row label -> variant or baseline of the spans in the Fig. 4-style figure (MATR first, as in the paper)."""


@dataclass(frozen=True)
class Example:
    """One pair as Fig. 4 shows it: frames of the query and the target, ground truth and top-1 spans (s)."""

    record: PairRecord
    ground_truth: tuple[float, float]
    spans: dict[str, tuple[float, float]]
    query: SampledVideo | None  # None when the video files are not available (user-supplied features)
    target: SampledVideo | None


@dataclass(frozen=True)
class AlignmentView:
    """The alignments of one pair: cost matrices and hard paths ``(M, N)``, target frames in rows."""

    pair_id: str
    cost_pre: np.ndarray
    cost_post: np.ndarray
    path_pre: np.ndarray
    path_post: np.ndarray
    ground_truth_frames: tuple[int, int]  # [first, stop) target frames of the ground truth
    clip_length: float


def find_record(profile: Profile, workdir: str | os.PathLike, pair_id: str, split: str = EVAL_SPLIT) -> PairRecord:
    """The record of ``pair_id`` in ``split``."""
    for record in open_data(profile, workdir).records(split):
        if record.pair_id == pair_id:
            return record
    raise KeyError(f"no pair {pair_id!r} in split {split!r}")


def _top1(profile: Profile, workdir: str | os.PathLike, method: str, split: str) -> dict[str, dict]:
    """The profile seed's predictions of ``method`` (evaluated if needed, never trained)."""
    folder = cached_evaluation(profile, workdir, method, profile.seed, split)
    return predictions(folder, default_source(method))


def top1_iou_frame(
    profile: Profile,
    workdir: str | os.PathLike,
    methods: Mapping[str, str] = QUALITATIVE_METHODS,
    split: str = EVAL_SPLIT,
) -> pd.DataFrame:
    """Rows ``method, pair_id, iou``: the top-1 IoU (0 to 1) of each method (label -> variant or baseline)."""
    lines = [
        {"method": label, "pair_id": pair_id, "iou": record["ious"][0] if record["ious"] else 0.0}
        for label, method in methods.items()
        for pair_id, record in sorted(_top1(profile, workdir, method, split).items())
    ]
    return pd.DataFrame(lines, columns=["method", "pair_id", "iou"])


def span_lengths(
    profile: Profile,
    workdir: str | os.PathLike,
    variant: str = "finetuned",
    split: str = EVAL_SPLIT,
    sources: tuple[str, ...] = ("A_pre", "A_post", "heads"),
) -> pd.DataFrame:
    """Rows ``source, pair_id, length, ground_truth, iou``: each pair's top-1 span length and ground-truth length (s).

    Read from ``variant``'s cached evaluation (profile seed); ``iou`` is the top-1 IoU (0 to 1).
    """
    folder = cached_evaluation(profile, workdir, variant, profile.seed, split)
    truth = {r.pair_id: r.windows[0] for r in open_data(profile, workdir).records(split) if r.windows}
    lines = [
        {
            "source": source,
            "pair_id": pair_id,
            "length": record["spans"][0][1] - record["spans"][0][0] if record["spans"] else 0.0,
            "ground_truth": truth[pair_id][1] - truth[pair_id][0],
            "iou": record["ious"][0] if record["ious"] else 0.0,
        }
        for source in sources
        for pair_id, record in sorted(predictions(folder, source).items())
    ]
    return pd.DataFrame(lines, columns=["source", "pair_id", "length", "ground_truth", "iou"])


def span_summary(lengths: pd.DataFrame, clip_length: float) -> pd.DataFrame:
    """One line per source of :func:`span_lengths`: median top-1 span and ground truth (s), the share (%) of
    spans of at most one frame (``clip_length`` s), and R1@0.5 (%)."""
    groups = lengths.groupby("source", sort=False)
    return pd.DataFrame(
        {
            "median span (s)": groups["length"].median(),
            "median ground truth (s)": groups["ground_truth"].median(),
            "one-frame spans (%)": groups["length"].apply(lambda x: 100.0 * float((x <= clip_length + 1e-6).mean())),
            "R1@0.5 (%)": groups["iou"].apply(lambda x: 100.0 * float((x >= 0.5).mean())),
        }
    )


def pick_pairs(
    profile: Profile, workdir: str | os.PathLike, method: str = "finetuned", split: str = EVAL_SPLIT
) -> dict[str, str]:
    """Two pairs to show: ``{"highest IoU": id, "median IoU": id}`` by ``method``'s top-1 IoU (ties: pair id)."""
    ious = top1_iou_frame(profile, workdir, {method: method}, split)
    if ious.empty:
        raise ValueError(f"no evaluated pair in split {split!r}")
    ranked = sorted(zip(ious["pair_id"], ious["iou"]), key=lambda item: (-item[1], item[0]))
    return {"highest IoU": ranked[0][0], "median IoU": ranked[len(ranked) // 2][0]}


def example(
    profile: Profile,
    workdir: str | os.PathLike,
    pair_id: str,
    split: str = EVAL_SPLIT,
    *,
    methods: Mapping[str, str] = QUALITATIVE_METHODS,
    target_frames: int = 8,
    frame_size: int = 96,
) -> Example:
    """Pair ``pair_id`` with the top-1 span of each of ``methods`` (label -> evaluated variant or baseline).

    Frames: every query frame at the clip length, and about ``target_frames`` frames over the target.
    """
    record = find_record(profile, workdir, pair_id, split)
    spans = {
        label: tuple(_top1(profile, workdir, method, split)[pair_id]["spans"][0][:2])
        for label, method in methods.items()
    }
    videos = video_paths(profile, workdir)
    query = target = None
    clip_length = profile.data.clip_length
    if record.query_video in videos and record.target_video in videos:
        query = _frames(videos[record.query_video], record.query_window, clip_length, frame_size)
        step = max(clip_length, record.duration / target_frames)
        target = _frames(videos[record.target_video], record.target_window, step, frame_size)
    return Example(record, record.windows[0], spans, query, target)


def _frames(path: Path, window: tuple[float, float] | None, step: float, size: int) -> SampledVideo:
    start, end = window if window is not None else (0.0, None)
    return sample_frames(path, step, start=start, end=end, size=size)


def alignment_view(
    profile: Profile, workdir: str | os.PathLike, pair_id: str, split: str = EVAL_SPLIT, variant: str = "finetuned"
) -> AlignmentView:
    """Cost matrices and hard alignment paths of ``variant`` (profile seed) on one pair, before and after the encoder.

    The projected features E_t, E_q and the encoder outputs E_t^g, E_q^g are captured with forward
    hooks on the model's projection and last encoder layer while it runs on the pair; the costs are
    :func:`matr.align.alignment_cost` of them, the paths the model's own A_pre and A_post.
    """
    checkpoint = checkpoint_path(workdir, compose(profile, variant, profile.seed))
    if not checkpoint.is_file():
        raise MissingCheckpoint(
            f"no checkpoint {checkpoint}: train {variant!r} first (matr.experiments.train_variants)"
        )
    device = resolve_device(profile.device)
    model, _ = load_model(checkpoint, device)
    cfg = model.config
    dataset = PairDataset(
        [find_record(profile, workdir, pair_id, split)],
        feature_source(open_data(profile, workdir).store),
        limits=FrameLimits.of(cfg),
    )
    batch = move_to_device(collate_pairs([dataset[0]]), device)
    captured: list[torch.Tensor] = []
    hooks = [
        module.register_forward_hook(lambda _module, _inputs, output: captured.append(output))
        for module in (model.projection, model.encoder[-1])
    ]
    try:
        with torch.no_grad():
            outputs = model(batch)
    finally:
        for hook in hooks:
            hook.remove()
    et, eq, encoded = captured  # (1, M, d), (1, N, d), (1, M + N, d)
    m = et.shape[1]
    costs = [
        alignment_cost(cfg.align_cost, t, q, batch["target_lengths"], cfg.align_temperature)[0].cpu().numpy()
        for t, q in ((et, eq), (encoded[:, :m], encoded[:, m:]))
    ]
    foreground = torch.nonzero(batch["foreground"][0]).flatten().tolist() or [0, -1]  # [0, 0): no ground truth
    return AlignmentView(
        pair_id,
        costs[0],
        costs[1],
        outputs["A_pre"].matrix[0].cpu().numpy(),
        outputs["A_post"].matrix[0].cpu().numpy(),
        (foreground[0], foreground[-1] + 1),
        float(batch["clip_length"]),
    )
