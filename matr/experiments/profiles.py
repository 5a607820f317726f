"""Run profiles as data: ``profiles/<name>.toml`` beside this module, read by :func:`get_profile`.

A profile names its data (a synthetic dataset *size* of :mod:`matr.synthetic`, or a folder of
the user's), its CLIP weights, its model preset with overrides, and the optimisation settings of
both training stages. Each TOML table maps onto one config dataclass, so a key that is not one of
its fields is refused by :func:`matr.config.from_mapping`, the one unknown-key check::

    model_preset = "smoke"        # matr.config.PRESETS
    pretrain_epochs = 10          # 0: no pre-training
    finetune_epochs = 40
    seeds = 1                     # training seeds of every variant (profile seed, seed + 1, ...)
    ablation_seeds = 1            # optional: fewer seeds for the variants only the ablations use
    parallel_runs = 1             # training runs at once, each in its own process (same numbers as one by one)
    [data]                        # DataConfig fields
    [model.model]                 # ModelConfig fields over the preset ([model.loss]: LossConfig)
    [train]                       # matr.train.TrainConfig fields shared by both stages
    [pretraining]                 # matr.data.pretraining.PretrainConfig fields
    [choices]                     # "dotted.key" = "why": choices where the paper is silent

Each ``[choices]`` entry is declared (:func:`matr.choices.declare`) with the value the profile
gives that key, so the report lists it without the value being written twice.

:func:`matr.experiments.compose.compose` turns a profile, a variant and a seed into a run's full
config. Presets: ``smoke`` (CI, minutes), ``demo`` (the report, CPU), ``paper`` and
``paper-activitynet`` (the paper's settings of section 5.2, the user's data in ``WORKDIR/data``).
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

from matr.choices import declare
from matr.config import PRESETS, MATRConfig, from_mapping
from matr.data.pretraining import PretrainConfig
from matr.train import TrainConfig

WEIGHTS_AUTO = "auto"
CHECKPOINT = declare(
    "checkpoint evaluated",
    "last",
    "the last epoch of every run: choosing the best validation epoch, then reporting on data that chose it, "
    "would flatter the numbers",
)


@dataclass(frozen=True)
class DataConfig:
    """Where a run's pairs and features come from."""

    dataset: str  # the name written into provenance
    synthetic: str | None = None  # a synthetic dataset size (matr.synthetic.PROFILES), or None
    folder: str | None = None  # the user's data: annotations/{split}.jsonl|csv and videos/
    weights: str = "openai"  # CLIP weights: "openai", "random", a checkpoint file, or "auto"
    clip_length: float = 2.0  # seconds per feature frame (paper 3.2)
    train_split: str = "train"
    val_split: str = "val"


@dataclass(frozen=True)
class Profile:
    """One series of runs (module docstring); every table is checked against its dataclass when the profile is built."""

    name: str
    description: str
    model_preset: str
    data: DataConfig
    pretrain_epochs: int = 0
    finetune_epochs: int = 10
    seed: int = 0
    seeds: int = 1
    ablation_seeds: int | None = None  # None: ``seeds``
    parallel_runs: int = 1  # training runs at once (matr.experiments.runs.train_variants)
    checkpoint: Literal["last", "best"] = CHECKPOINT
    model: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    train: Mapping[str, Any] = field(default_factory=dict)
    pretraining: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.pretrain_epochs < 0 or self.finetune_epochs < 1 or min(self.seeds, self.ablation_seeds or 1) < 1:
            raise ValueError(f"profile {self.name!r}: needs pretrain_epochs >= 0, finetune_epochs >= 1, seeds >= 1")
        if self.parallel_runs < 1:
            raise ValueError(f"profile {self.name!r}: parallel_runs must be >= 1, got {self.parallel_runs}")
        if self.checkpoint not in ("last", "best"):
            raise ValueError(f"profile {self.name!r}: checkpoint must be 'last' or 'best', got {self.checkpoint!r}")
        if self.data.synthetic is not None and self.data.folder is not None:
            raise ValueError(f"profile {self.name!r}: give either a synthetic size or a data folder, not both")
        self.model_config()  # each table checked against its dataclass (unknown keys, invalid values)
        self.train_config()
        from_mapping(PretrainConfig, self.pretraining)

    def model_config(self) -> MATRConfig:
        """The profile's model: its preset with its ``[model]`` table merged over it."""
        if self.model_preset not in PRESETS:
            raise ValueError(f"profile {self.name!r}: unknown model preset {self.model_preset!r}")
        layers = PRESETS[self.model_preset]
        sections = {*layers, *self.model}
        return MATRConfig.from_dict({s: {**layers.get(s, {}), **self.model.get(s, {})} for s in sections})

    def train_config(self) -> TrainConfig:
        """The ``[train]`` table over the defaults: the settings every run shares (e.g. ``top_k``)."""
        return from_mapping(TrainConfig, self.train)

    def training_seeds(self, *, ablation: bool = False) -> tuple[int, ...]:
        """``seed, seed + 1, ...``: ``seeds`` of them, or ``ablation_seeds`` for a variant only ablations use."""
        count = self.ablation_seeds if ablation and self.ablation_seeds is not None else self.seeds
        return tuple(range(self.seed, self.seed + count))

    @property
    def device(self) -> str:
        """The device of training and evaluation (``train.device``, default ``auto``)."""
        return str(self.train.get("device", "auto"))

    def with_options(
        self, *, seed: int | None = None, device: str | None = None, data_folder: str | os.PathLike | None = None
    ) -> Profile:
        """A copy with another seed, device or user data folder (the options of a notebook or command)."""
        profile = self
        if seed is not None:
            profile = dataclasses.replace(profile, seed=seed)
        if device is not None:
            profile = dataclasses.replace(profile, train={**profile.train, "device": device})
        if data_folder is not None:
            data = dataclasses.replace(profile.data, synthetic=None, folder=str(Path(data_folder)))
            profile = dataclasses.replace(profile, data=data)
        return profile


def load_profile(path: str | os.PathLike) -> Profile:
    """The profile in a TOML file (module docstring); its name is the file's stem."""
    path = Path(path)
    with path.open("rb") as handle:
        table = tomllib.load(handle)
    reasons = table.pop("choices", {})
    try:
        profile = from_mapping(Profile, {**table, "name": path.stem, "data": from_mapping(DataConfig, table["data"])})
        for key, reason in reasons.items():
            declare(f"{key} of profile {path.stem}", _lookup(table, key), reason, module=__name__)
    except (KeyError, TypeError, ValueError) as error:
        raise ValueError(f"{path}: {error}") from error
    return profile


def profile_from_dict(data: Mapping[str, Any]) -> Profile:
    """Inverse of ``dataclasses.asdict`` on a :class:`Profile` (how a child process receives its profile)."""
    return from_mapping(Profile, {**data, "data": from_mapping(DataConfig, data["data"])})


def _lookup(table: Mapping[str, Any], key: str) -> Any:
    """The value at dotted ``key`` of a nested table; a missing key raises ``KeyError`` naming it."""
    value: Any = table
    for part in key.split("."):
        if not isinstance(value, Mapping) or part not in value:
            raise KeyError(f"[choices] names {key!r}, which the profile does not set")
        value = value[part]
    return value


def _packaged() -> Mapping[str, Profile]:
    folder = resources.files("matr.experiments") / "profiles"
    profiles = {}
    for item in sorted(folder.iterdir(), key=lambda entry: entry.name):
        if item.name.endswith(".toml"):
            with resources.as_file(item) as path:
                profiles[path.stem] = load_profile(path)
    return MappingProxyType(profiles)


PROFILES: Mapping[str, Profile] = _packaged()


def get_profile(name: str) -> Profile:
    """The packaged profile ``name``; unknown names raise ``ValueError`` listing the known ones."""
    if name not in PROFILES:
        raise ValueError(f"unknown profile {name!r}; expected one of {sorted(PROFILES)}")
    return PROFILES[name]


def notebook_profile(name: str, workdir: str | os.PathLike, *, seed: int, device: str) -> Profile:
    """The profile a notebook runs: ``name`` with ``seed`` and ``device``.

    A profile without data of its own (``paper``) reads the user's data from ``workdir/data``
    (``annotations/{split}.jsonl|csv`` and ``videos/``): the notebooks' parameters have no data path.
    """
    profile = get_profile(name).with_options(seed=seed, device=device)
    if profile.data.synthetic is None and profile.data.folder is None:
        profile = profile.with_options(data_folder=Path(workdir) / "data")
    return profile
