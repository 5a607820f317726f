"""A profile's working folder and its data: render or read the pairs, extract their features, find them again.

Everything a profile's runs produce lives in one folder (:class:`Workspace`), so an interrupted
series continues where it stopped::

    workdir/data/                          synthetic videos + annotations (profiles with a synthetic size)
    workdir/features/                      CLIP feature store (matr.features.FeatureStore)
    workdir/runs/<variant>/seed<s>/        checkpoints, per-epoch logs, run_config.json (matr.train.fit)
    workdir/eval/<split>/<kind>/<name>/... predictions.jsonl + metrics.json of each evaluation

:func:`prepare_data` renders the synthetic data (or reads the user's) and extracts the features of
every video used; :func:`open_data` finds what it left and does no work.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from matr.data import PairRecord
from matr.data.annotations import load_annotations
from matr.data.dataset import FeatureSource
from matr.device import resolve_device
from matr.experiments.profiles import WEIGHTS_AUTO, Profile
from matr.features import ClipEncoder, FeatureStore, WeightsUnavailableError, extract_features, load_clip_encoder
from matr.inference import find_videos, weights_from_tag
from matr.synthetic import render_dataset

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Workspace:
    """The layout of a profile's working folder (module docstring)."""

    root: Path

    @property
    def data(self) -> Path:
        """Rendered synthetic videos and annotations."""
        return self.root / "data"

    def run(self, variant: str, seed: int) -> Path:
        """The folder of one training run."""
        return self.root / "runs" / variant / f"seed{seed}"

    @property
    def features(self) -> Path:
        """The CLIP feature store."""
        return self.root / "features"

    def evaluation(self, split: str) -> Path:
        """The evaluations on ``split``."""
        return self.root / "eval" / split


@dataclass(frozen=True)
class PreparedData:
    """Annotation file per split and the feature store holding every video they use."""

    annotations: Mapping[str, Path]
    store: FeatureStore
    dataset: str

    @property
    def weights_tag(self) -> str:
        tag = self.store.weights_tag
        if tag is None:
            raise ValueError(f"feature store {self.store.root} is empty; run prepare_data (or matr extract) first")
        return tag

    def records(self, split: str) -> list[PairRecord]:
        """The pairs of ``split`` whose videos are all in the store (others are dropped with a warning).

        Records that contradict their videos' stored durations raise, naming the file and the record.
        """
        if split not in self.annotations:
            raise ValueError(f"no annotations of split {split!r}; found {sorted(self.annotations)}")
        durations = {video: self.store.info(video)["duration"] for video in self.store.video_ids()}
        return stored_records(load_annotations(self.annotations[split], split, durations=durations), self.store)


def stored_records(records: Sequence[PairRecord], store: FeatureStore) -> list[PairRecord]:
    """``records`` whose query and target features are in ``store``; a warning counts the others."""
    kept = [r for r in records if store.has(r.query_video) and store.has(r.target_video)]
    if len(kept) < len(records):
        logger.warning(
            "%d of %d pairs dropped: their videos have no features in %s (see its failures*.jsonl)",
            len(records) - len(kept),
            len(records),
            store.root,
        )
    if not kept:
        raise ValueError(f"none of the {len(records)} pairs has its videos in the feature store {store.root}")
    return kept


def feature_source(store: FeatureStore) -> FeatureSource:
    """``store`` checked to be usable as a dataset's feature source (non-empty, one clip length)."""
    if store.clip_length is None:
        raise ValueError(f"feature store {store.root} is empty; extract features into it first")
    return store


def run_info(data: PreparedData | FeatureStore, *, dataset: str, split: str, **extra: Any) -> dict[str, Any]:
    """What a checkpoint records about its training data (weights tag, clip length, dataset, split)."""
    store = data.store if isinstance(data, PreparedData) else data
    return {
        "weights_tag": store.weights_tag,
        "clip_length": store.clip_length,
        "feature_store": str(store.root),
        "dataset": dataset,
        "split": split,
        **extra,
    }


def open_data(profile: Profile, workdir: str | os.PathLike) -> PreparedData:
    """The data of ``profile`` in ``workdir`` as :func:`prepare_data` left it (does no work).

    Missing annotations raise ``FileNotFoundError`` saying to prepare the data first.
    """
    workspace = Workspace(Path(workdir))
    root = workspace.data if profile.data.synthetic is not None else _user_data(profile)
    try:
        annotations = find_annotations(root / "annotations")
    except FileNotFoundError as error:
        raise FileNotFoundError(
            f"{error}; prepare the data first (notebook 01_data_curation, or matr.experiments.ensure_data)"
        ) from error
    return PreparedData(annotations, FeatureStore(workspace.features), profile.data.dataset)


def ensure_data(profile: Profile, workdir: str | os.PathLike, *, progress: bool = False) -> PreparedData:
    """:func:`prepare_data` unless every video of every split already has features (then no videos are needed)."""
    try:
        prepared = open_data(profile, workdir)
        if all(
            prepared.store.has(video)
            for split in prepared.annotations
            for record in prepared.records(split)
            for video in (record.query_video, record.target_video)
        ):
            return prepared
    except (OSError, ValueError):
        pass
    return prepare_data(profile, workdir, progress=progress)


def prepare_data(profile: Profile, workdir: str | os.PathLike, *, progress: bool = False) -> PreparedData:
    """Render the synthetic data (if the profile has some) and extract the features of every video used.

    Resumable: rendered videos and stored features are kept. The CLIP encoder is loaded only when
    some video still lacks features.
    """
    workspace = Workspace(Path(workdir))
    if profile.data.synthetic is not None:
        render_dataset(workspace.data, profile.data.synthetic, seed=profile.seed, progress=progress)
        videos = find_videos(workspace.data / "videos")
    else:
        videos = find_videos(_user_data(profile) / "videos")
    data = open_data(profile, workdir)
    used = {
        video
        for split, path in data.annotations.items()
        for record in load_annotations(path, split)
        for video in (record.query_video, record.target_video)
    }
    missing = sorted(used - set(videos))
    if missing:
        raise FileNotFoundError(
            f"{len(missing)} videos named by the annotations are not in the video folder (first: {missing[0]!r})"
        )
    todo = {video: videos[video] for video in sorted(used) if not data.store.has(video)}
    if todo:
        encoder = profile_encoder(profile, data.store)
        report = extract_features(todo, data.store, encoder, profile.data.clip_length, shard=(0, 1), progress=progress)
        if report.failed:
            logger.warning("%d videos could not be decoded; their pairs are left out", len(report.failed))
    return data


def find_annotations(folder: Path) -> dict[str, Path]:
    """``split -> file`` for the annotation files ``{split}.{jsonl,json,csv}`` in ``folder``."""
    if not folder.is_dir():
        raise FileNotFoundError(f"annotation folder {folder} does not exist")
    found: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.suffix.lower() in (".jsonl", ".json", ".csv") and not path.name.startswith("."):
            if path.stem in found:
                raise ValueError(f"two annotation files for split {path.stem!r}: {found[path.stem]} and {path}")
            found[path.stem] = path
    if not found:
        raise FileNotFoundError(f"no annotation files ({{split}}.jsonl / .csv) in {folder}")
    return found


def video_paths(profile: Profile, workdir: str | os.PathLike) -> dict[str, Path]:
    """Video id -> file of the profile's videos (``{}`` when the folder does not exist)."""
    root = Workspace(Path(workdir)).data if profile.data.synthetic is not None else Path(profile.data.folder or "")
    folder = root / "videos"
    return find_videos(folder) if folder.is_dir() else {}


def profile_encoder(profile: Profile, store: FeatureStore) -> ClipEncoder:
    """The CLIP encoder of a profile's features; weights ``auto`` keep what ``store`` holds, else try OpenAI.

    ``auto`` on a machine without the OpenAI weights falls back to a random-init backbone, with a
    warning (the report's first line says so too).
    """
    device = resolve_device(profile.device)
    weights = profile.data.weights
    if weights != WEIGHTS_AUTO:
        return load_clip_encoder(weights, seed=profile.seed, device=device)
    if store.weights_tag is not None:
        weights, seed = weights_from_tag(store.weights_tag)
        return load_clip_encoder(weights, seed=seed, device=device)
    try:
        return load_clip_encoder("openai", device=device)
    except WeightsUnavailableError as error:
        logger.warning(
            "OpenAI CLIP weights unavailable (%s); using a random-init backbone: results are NOT "
            "comparable to the paper",
            str(error).split(". ")[0],
        )
        return load_clip_encoder("random", seed=profile.seed, device=device)


def _user_data(profile: Profile) -> Path:
    if profile.data.folder is None:
        raise ValueError(
            f"profile {profile.name!r} needs a data folder (annotations/{{split}}.jsonl|csv and videos/): pass --data DIR"
        )
    return Path(profile.data.folder)
