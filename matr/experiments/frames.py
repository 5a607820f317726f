"""The data and the runs as DataFrames, for the notebooks' tables and figures (nothing here trains).

Pairs and their lengths per split (:func:`pairs_frame`, :func:`summary_frame`), the feature store
(:func:`store_frame`), pre-training samples (:func:`pretraining_frame`), training curves
(:func:`curves_frame`) and the runs behind a table (:func:`runs_frame`).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from matr.data import FrameLimits, PairRecord, PretrainingDataset
from matr.experiments.compose import compose, run_seeds
from matr.experiments.profiles import Profile
from matr.experiments.runs import checkpoint_path
from matr.experiments.variants import VARIANTS, get_variant
from matr.experiments.workspace import PreparedData, Workspace, feature_source, open_data
from matr.io import read_jsonl


def split_order(splits: Iterable[str]) -> list[str]:
    """``splits`` as train, val, test, then any others alphabetically."""
    splits = set(splits)
    known = [split for split in ("train", "val", "test") if split in splits]
    return known + sorted(splits - set(known))


def pairs_frame(profile: Profile, workdir: str | os.PathLike) -> pd.DataFrame:
    """One line per pair of every split: class, videos, target duration, moment and query lengths (s)."""
    prepared = open_data(profile, workdir)
    lines = []
    for split in split_order(prepared.annotations):
        for record in prepared.records(split):
            start, end = record.windows[0] if record.windows else (np.nan, np.nan)
            lines.append(
                {
                    "split": split,
                    "pair_id": record.pair_id,
                    "action_class": record.action_class,
                    "query_video": record.query_video,
                    "target_video": record.target_video,
                    "duration": record.duration,
                    "moment_start": start,
                    "moment_end": end,
                    "moment_length": end - start,
                    "query_length": _query_length(prepared, record),
                }
            )
    frame = pd.DataFrame(lines)
    frame["relative_length"] = frame["moment_length"] / frame["duration"]
    frame["relative_centre"] = (frame["moment_start"] + frame["moment_end"]) / 2 / frame["duration"]
    return frame


def _query_length(prepared: PreparedData, record: PairRecord) -> float:
    if record.query_window is not None:
        return record.query_window[1] - record.query_window[0]
    return float(prepared.store.info(record.query_video)["duration"])


def summary_frame(pairs: pd.DataFrame) -> pd.DataFrame:
    """Per split: pairs, classes, target and query videos, mean target / moment / query length (s)."""
    order = split_order(set(pairs["split"]))
    grouped = pairs.groupby("split", sort=False)
    summary = pd.DataFrame(
        {
            "pairs": grouped.size(),
            "classes": grouped["action_class"].nunique(),
            "target_videos": grouped["target_video"].nunique(),
            "query_videos": grouped["query_video"].nunique(),
            "mean_target_s": grouped["duration"].mean(),
            "mean_moment_s": grouped["moment_length"].mean(),
            "mean_query_s": grouped["query_length"].mean(),
        }
    )
    return summary.loc[order].reset_index()


def store_frame(profile: Profile, workdir: str | os.PathLike) -> pd.DataFrame:
    """The feature store: one line per video (frames, duration, clip length, weights tag)."""
    store = open_data(profile, workdir).store
    columns = ("video_id", "num_frames", "duration", "clip_length", "feature_dim", "weights_tag")
    return pd.DataFrame([{key: store.info(video)[key] for key in columns} for video in store.video_ids()])


def pretraining_frame(
    profile: Profile, workdir: str | os.PathLike, variant: str = "pretrain", count: int = 8
) -> pd.DataFrame:
    """The first ``count`` pre-training samples of epoch 0 of ``variant``: video, clip, augmentation, lengths."""
    config = compose(profile, variant, profile.seed)
    prepared = open_data(profile, workdir)
    videos = sorted({record.target_video for record in prepared.records(config.data.train_split)})
    cfg = config.model.model
    dataset = PretrainingDataset(
        videos,
        feature_source(prepared.store),
        config.pretraining,
        limits=FrameLimits.of(cfg),
    )
    lines = []
    for index in range(min(count, len(dataset))):
        sample, item = dataset.sample(index), dataset[index]
        lines.append(
            {
                "pair_id": item["pair_id"],
                "video": sample.video_id,
                "clip_frames": f"[{sample.first}, {sample.stop})",
                "augmentation": sample.augmentation or "-",
                "query_frames": len(item["query"]),
                "target_frames": len(item["target"]),
                "window_s": tuple(round(float(t), 2) for t in item["window"]),
            }
        )
    return pd.DataFrame(lines)


def curves_frame(profile: Profile, workdir: str | os.PathLike, variants: Sequence[str]) -> pd.DataFrame:
    """Training curves of ``variants`` with the profile's seed: ``run, epoch, <quantity>...`` per epoch, run = variant."""
    frames = []
    for variant in variants:
        path = Workspace(Path(workdir)).run(variant, profile.seed) / "metrics.jsonl"
        if not path.is_file():
            raise FileNotFoundError(f"{path} does not exist: train {variant!r} (seed {profile.seed}) first")
        frames.append(pd.DataFrame(read_jsonl(path)).assign(run=variant))
    frame = pd.concat(frames, ignore_index=True)
    rest = sorted(column for column in frame.columns if column not in ("run", "epoch"))
    return frame[["run", "epoch", *rest]]


def runs_frame(profile: Profile, workdir: str | os.PathLike, names: Sequence[str]) -> pd.DataFrame:
    """One line per variant and seed: description, initialisation, overrides, epochs trained, training seconds."""
    lines = []
    for name in names:
        variant = get_variant(name)
        for seed in run_seeds(profile, name):
            runs = [run for run in (variant.init, name if variant.trained else None) if run is not None]
            history = [record for run in runs for record in _history(workdir, run, seed)]
            lines.append(
                {
                    "variant": name,
                    "seed": seed,
                    "description": variant.description,
                    "init": variant.init or "random",
                    "overrides": dict(variant.overrides) or "-",
                    "epochs": len(history),
                    "train_seconds": round(sum(r.get("seconds", 0.0) for r in history), 1),
                    "checkpoint": str(checkpoint_path(workdir, compose(profile, name, seed))),
                }
            )
    return pd.DataFrame(lines)


def _history(workdir: str | os.PathLike, run: str, seed: int) -> list[dict[str, Any]]:
    path = Workspace(Path(workdir)).run(run, seed) / "metrics.jsonl"
    return read_jsonl(path) if path.is_file() else []


def plan_frame(profile: Profile, workdir: str | os.PathLike, names: Sequence[str]) -> pd.DataFrame:
    """The training runs ``names`` need (their ``init`` runs first), with the epochs left and a time estimate.

    ``estimated_seconds``: epochs left times the mean seconds per epoch of the runs of the same stage
    already in ``workdir`` (NaN before any has run), so a notebook can say what it will cost.
    """
    runs: dict[tuple[str, int], str] = {}
    for name in names:
        variant = get_variant(name)
        for seed in run_seeds(profile, name):
            for run in (variant.init, name if variant.trained else None):
                if run is not None:
                    runs[(run, seed)] = get_variant(run).stage or ""
    pace = _seconds_per_epoch(workdir)
    lines = []
    for (run, seed), stage in runs.items():
        epochs = compose(profile, run, seed).train.epochs
        done = len(_history(workdir, run, seed))
        left = max(epochs - done, 0)
        lines.append(
            {"run": run, "seed": seed, "stage": stage, "epochs": epochs, "epochs_done": done}
            | {"estimated_seconds": left * pace.get(stage, np.nan) if left else 0.0}
        )
    return pd.DataFrame(lines)


def _seconds_per_epoch(workdir: str | os.PathLike) -> dict[str, float]:
    """Mean seconds per epoch of every finished epoch in ``workdir/runs``, per stage (pretrain, finetune)."""
    seconds: dict[str, list[float]] = {}
    for path in sorted((Path(workdir) / "runs").glob("*/seed*/metrics.jsonl")):
        stage = get_variant(path.parent.parent.name).stage if path.parent.parent.name in VARIANTS else None
        if stage is not None:
            seconds.setdefault(stage, []).extend(r["seconds"] for r in read_jsonl(path) if "seconds" in r)
    return {stage: float(np.mean(values)) for stage, values in seconds.items() if values}
