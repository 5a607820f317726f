"""The only functions that train: one run per (variant, seed), each from its composed config.

:func:`train_variants` is what a notebook calls: every variant it names, with every training seed
of the profile, each run resumable (:func:`matr.train.fit` continues an interrupted run, does
nothing for a finished one and refuses a folder written with other settings). A variant trains
its ``init`` pre-training run first. :func:`pretrain_model` and :func:`finetune_model` are the two
stages, shared with the command line.

A profile with ``parallel_runs = n > 1`` trains up to ``n`` runs at once, each in a child process
(:mod:`matr.experiments.run_worker`, its output in ``train.log`` of the run's folder) with the
parent's thread count, so every run ends with the weights it has when trained alone. The children's
OpenMP threads sleep instead of spinning while they wait (``OMP_WAIT_POLICY=PASSIVE``), which lets
two runs share the cores; a run with nothing to run beside it trains in the calling process.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from matr.choices import declare
from matr.config import MATRConfig
from matr.data import PairDataset, PairRecord, PretrainConfig, PretrainingDataset
from matr.data.dataset import FeatureSource, FrameLimits
from matr.experiments.compose import RunConfig, compose, run_seeds, write_run_config
from matr.experiments.profiles import Profile
from matr.experiments.workspace import Workspace, feature_source, open_data, run_info
from matr.io import read_jsonl
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

    Returns ``(variant, seed) -> checkpoint``. Unfinished runs (and the ``init`` runs they start
    from) train ``profile.parallel_runs`` at a time, an ``init`` run before the runs that start from
    it (module docstring). The training loop's own bars stay off (a notebook would store one output
    per batch).
    """
    runs = [(name, seed) for name in names for seed in run_seeds(profile, name)]
    levels = _unfinished_levels(profile, workdir, runs)
    with tqdm(total=sum(map(len, levels)), desc="training runs", unit="run", **bar_options(progress)) as bar:
        for level in levels:
            for start in range(0, len(level), profile.parallel_runs):
                batch = level[start : start + profile.parallel_runs]
                _train_together(profile, workdir, batch)
                bar.update(len(batch))
    return {(name, seed): train_run(profile, workdir, name, seed) for name, seed in runs}


def _unfinished_levels(
    profile: Profile, workdir: str | os.PathLike, runs: Sequence[tuple[str, int]]
) -> list[list[tuple[str, int]]]:
    """The unfinished runs among ``runs`` and their ``init`` runs, grouped by depth (inits first)."""
    depths: dict[tuple[str, int], int] = {}

    def depth_of(name: str, seed: int) -> int:
        config = compose(profile, name, seed)
        depth = 0 if config.init is None else depth_of(config.init, seed) + 1
        if config.stage is not None and not _finished(workdir, config):
            depths.setdefault((name, seed), depth)
        return depth

    for name, seed in runs:
        depth_of(name, seed)
    return [[run for run, d in depths.items() if d == depth] for depth in sorted(set(depths.values()))]


def _finished(workdir: str | os.PathLike, config: RunConfig) -> bool:
    """Whether the run of ``config`` has its last checkpoint and logged its last epoch."""
    folder = Workspace(Path(workdir)).run(config.variant, config.seed)
    log = folder / "metrics.jsonl"
    if not (folder / "last.pt").is_file() or not log.is_file():
        return False
    records = read_jsonl(log)
    return bool(records) and records[-1].get("epoch") == config.train.epochs


def _train_together(profile: Profile, workdir: str | os.PathLike, runs: Sequence[tuple[str, int]]) -> None:
    """Train ``runs`` at once, one child process each; a single run trains in this process."""
    if len(runs) == 1:
        train_run(profile, workdir, *runs[0])
        return
    threads = torch.get_num_threads()
    job = {"profile": dataclasses.asdict(profile), "workdir": str(workdir), "threads": threads}
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE", "OMP_NUM_THREADS": str(threads)}
    children: list[tuple[str, int, Path, subprocess.Popen]] = []
    try:
        for name, seed in runs:
            log = Workspace(Path(workdir)).run(name, seed) / "train.log"
            log.parent.mkdir(parents=True, exist_ok=True)
            with log.open("w") as stream:
                child = subprocess.Popen(
                    [sys.executable, "-m", "matr.experiments.run_worker"],
                    stdin=subprocess.PIPE,
                    stdout=stream,
                    stderr=subprocess.STDOUT,
                    env=env,
                    text=True,
                )
            children.append((name, seed, log, child))
            child.stdin.write(json.dumps({**job, "variant": name, "seed": seed}))
            child.stdin.close()
        failed = [(name, seed, log, child.wait()) for name, seed, log, child in children]
    finally:
        for *_, child in children:
            if child.poll() is None:
                child.kill()
                child.wait()
    for name, seed, log, code in failed:
        if code != 0:
            lines = log.read_text(errors="replace").strip().splitlines() or ["(no output)"]
            raise RuntimeError(
                f"training run {name!r} seed {seed} failed in its process (exit {code}): {lines[-1]} (log: {log})"
            )


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
