"""The only functions that train: one run per (variant, seed), each from its composed config.

:func:`train_variants` is what a notebook calls: every variant it names, with every training seed
of the profile, each run resumable (:func:`matr.train.fit` continues an interrupted run, does
nothing for a finished one and refuses a folder written with other settings). A variant trains
its ``init`` pre-training run first. :func:`pretrain_model` and :func:`finetune_model` are the two
stages, shared with the command line.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from matr.choices import declare
from matr.config import MATRConfig
from matr.data import PairDataset, PairRecord, PretrainConfig, PretrainingDataset
from matr.data.dataset import FeatureSource, FrameLimits
from matr.experiments.compose import RunConfig, compose, run_seeds, write_run_config
from matr.experiments.profiles import Profile
from matr.experiments.workspace import Workspace, feature_source, open_data, run_info
from matr.progress import bar_options
from matr.train import TrainConfig, TrainResult, fit

PRETRAINING_VIDEOS = declare(
    "pre-training videos",
    "the training split's target videos",
    "the paper adds unlabelled Kinetics-700 videos, which this kit does not download",
)


def checkpoint_path(workdir: str | os.PathLike, config: RunConfig) -> Path:
    """The checkpoint evaluated for the run ``config`` (which may not exist yet)."""
    workspace = Workspace(Path(workdir))
    if config.stage is None:
        return workspace.run(config.init, config.seed) / "last.pt"
    name = "last" if config.stage == "pretrain" else config.checkpoint
    return workspace.run(config.variant, config.seed) / f"{name}.pt"


def train_run(profile: Profile, workdir: str | os.PathLike, variant: str, seed: int) -> Path:
    """Train ``variant`` with ``seed`` (and its ``init`` run first) unless done; returns its checkpoint."""
    config = compose(profile, variant, seed)
    init = None if config.init is None else train_run(profile, workdir, config.init, seed)
    if config.stage is None:
        return checkpoint_path(workdir, config)
    prepared = open_data(profile, workdir)
    folder = Workspace(Path(workdir)).run(variant, seed)
    write_run_config(folder, config)
    records = prepared.records(config.data.train_split)
    info = run_info(prepared, dataset=config.data.dataset, split=config.data.train_split, profile=profile.name)
    source = feature_source(prepared.store)
    if config.stage == "pretrain":
        videos = [record.target_video for record in records]
        pretrain_model(
            config.model, config.train, source, videos, folder, pretrain_config=config.pretraining, info=info
        )
    else:
        val = prepared.records(config.data.val_split) if config.validate else None
        finetune_model(config.model, config.train, source, records, folder, val_records=val, init_from=init, info=info)
    return checkpoint_path(workdir, config)


def train_variants(
    profile: Profile, workdir: str | os.PathLike, names: Iterable[str], *, progress: bool | None = None
) -> dict[tuple[str, int], Path]:
    """:func:`train_run` for each of ``names`` and each of its seeds (:func:`run_seeds`); ``progress``: one bar over the runs.

    Returns ``(variant, seed) -> checkpoint``. The training loop's own bars stay off (a notebook
    would store one output per batch).
    """
    runs = [(name, seed) for name in names for seed in run_seeds(profile, name)]
    return {
        (name, seed): train_run(profile, workdir, name, seed)
        for name, seed in tqdm(runs, desc="training runs", unit="run", **bar_options(progress))
    }


def pretrain_model(
    config: MATRConfig,
    train_config: TrainConfig,
    source: FeatureSource,
    video_ids: Sequence[str],
    out_dir: str | os.PathLike,
    *,
    pretrain_config: PretrainConfig | None = None,
    info: Mapping[str, Any] | None = None,
    progress: bool | None = False,
) -> TrainResult:
    """Self-supervised pre-training (paper 3.3) on ``video_ids`` of ``source``; resumes in ``out_dir``."""
    cfg = config.model
    dataset = PretrainingDataset(
        sorted(set(video_ids)),
        source,
        pretrain_config,
        limits=FrameLimits.of(cfg),
    )
    return fit(
        config, train_config, dataset, out_dir, run_info={**(info or {}), "stage": "pretrain"}, progress=progress
    )


def finetune_model(
    config: MATRConfig,
    train_config: TrainConfig,
    source: FeatureSource,
    records: Sequence[PairRecord],
    out_dir: str | os.PathLike,
    *,
    val_records: Sequence[PairRecord] | None = None,
    init_from: str | os.PathLike | None = None,
    info: Mapping[str, Any] | None = None,
    progress: bool | None = False,
) -> TrainResult:
    """Supervised finetuning on labelled pairs, validating on ``val_records``; resumes in ``out_dir``."""
    cfg = config.model
    limits = FrameLimits.of(cfg)
    train_set = PairDataset(records, source, limits=limits, train=True, seed=train_config.seed)
    val_set = PairDataset(val_records, source, limits=limits) if val_records else None
    return fit(
        config,
        train_config,
        train_set,
        out_dir,
        val_set=val_set,
        init_from=init_from,
        run_info={**(info or {}), "stage": "finetune", "init_from": None if init_from is None else str(init_from)},
        progress=progress,
    )
