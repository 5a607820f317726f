"""One function, :func:`compose`, turns (profile, variant, seed) into the full frozen config of one run.

Layers, each a mapping of dataclass fields, merged in this order and built once by
:func:`matr.config.from_mapping` (which refuses unknown keys):

* model: the preset ``profile.model_preset`` <- the profile's ``[model]`` table <- the variant's
  dotted ``overrides``;
* train: :class:`matr.train.TrainConfig` defaults <- the profile's ``[train]`` table <- the stage's
  ``epochs`` and the run's ``seed``;
* pretraining (pre-training stage only): :class:`matr.data.pretraining.PretrainConfig` defaults <-
  the profile's ``[pretraining]`` table <- the variant's ``pretraining`` <- the run's ``seed``.

:func:`write_run_config` writes the result whole as ``run_config.json`` into the run's folder.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from matr.choices import declare
from matr.config import MATRConfig, from_mapping, override
from matr.data.pretraining import PretrainConfig
from matr.experiments.profiles import DataConfig, Profile
from matr.experiments.variants import Stage, get_variant
from matr.io import write_json
from matr.train import TrainConfig

PRETRAIN_SCHEDULE = declare(
    "pre-training schedule",
    "the profile's pretrain_epochs, at the finetuning batch size and learning rate",
    "the paper gives no pre-training schedule",
)


@dataclass(frozen=True)
class RunConfig:
    """Everything one training run (or one evaluated variant) is: written whole into its folder."""

    profile: str
    variant: str
    seed: int
    stage: Stage | None  # None: nothing to train (evaluated from ``init``)
    init: str | None  # the variant whose last checkpoint (same seed) initialises this run
    validate: bool
    checkpoint: str  # "last" or "best": the checkpoint evaluated
    data: DataConfig
    model: MATRConfig
    train: TrainConfig
    pretraining: PretrainConfig | None

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict (JSON-able)."""
        return dataclasses.asdict(self)


def compose(profile: Profile, variant: str, seed: int) -> RunConfig:
    """The full frozen config of ``variant`` trained with ``seed`` under ``profile`` (module docstring)."""
    spec = get_variant(variant)
    stage = spec.stage
    if stage == "pretrain" and profile.pretrain_epochs == 0:
        raise ValueError(f"profile {profile.name!r} has pretrain_epochs=0: it cannot run {variant!r}")
    epochs = profile.pretrain_epochs if stage == "pretrain" else profile.finetune_epochs
    pretraining = None
    if stage == "pretrain":
        pretraining = from_mapping(PretrainConfig, {**profile.pretraining, **dict(spec.pretraining), "seed": seed})
    return RunConfig(
        profile=profile.name,
        variant=variant,
        seed=seed,
        stage=stage,
        init=spec.init,
        validate=spec.validate or profile.checkpoint == "best",
        checkpoint=profile.checkpoint,
        data=profile.data,
        model=override(profile.model_config(), dict(spec.overrides)),
        train=from_mapping(TrainConfig, {**profile.train, "epochs": epochs, "seed": seed}),
        pretraining=pretraining,
    )


def run_seeds(profile: Profile, variant: str) -> tuple[int, ...]:
    """The seeds ``variant`` is trained with under ``profile`` (fewer for an ablation-only variant, if the profile says so)."""
    return profile.training_seeds(ablation=get_variant(variant).ablation)


def write_run_config(folder: str | os.PathLike, config: RunConfig) -> Path:
    """Write ``config`` whole to ``folder/run_config.json``; returns the path."""
    path = Path(folder) / "run_config.json"
    write_json(path, config.to_dict())
    return path
