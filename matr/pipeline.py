"""Resumable building blocks shared by the command line and the notebooks.

A working folder (:class:`Workspace`) holds everything a profile's runs produce, so an interrupted
run continues where it stopped::

    workdir/data/                       synthetic videos + annotations (profiles with ``synthetic``)
    workdir/features/                   CLIP feature store (:class:`matr.features.FeatureStore`)
    workdir/runs/<name>/                checkpoints and per-epoch logs (:func:`matr.train.fit`)
    workdir/eval/<split>/...            predictions.jsonl + metrics.json of each evaluation

:func:`prepare_data` renders the synthetic data (or reads the user's) and extracts the features of
every video used; :func:`pretrain_model`, :func:`finetune_model`, :func:`evaluate_checkpoint` and
:func:`evaluate_baseline` train and evaluate; :func:`silent_choices` gathers the choices where the
paper is silent for the report. The named model variants behind each table of the paper are in
:mod:`matr.experiments`.
"""

from __future__ import annotations

import importlib
import inspect
import logging
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch.utils.data import DataLoader

from matr.baselines import VideoMatchConfig, random_baseline, video_match_batch
from matr.checkpoint import load_model
from matr.config import MATRConfig
from matr.data import PairDataset, PairRecord, PretrainConfig, PretrainingDataset, collate_pairs
from matr.data.annotations import load_annotations
from matr.data.dataset import FeatureSource
from matr.data.synthetic import render_dataset
from matr.evaluate import EvalResult, predict
from matr.features import ClipEncoder, FeatureStore, WeightsUnavailableError, extract_features, load_clip_encoder
from matr.inference import find_videos, weights_from_tag
from matr.postprocess import RankedSpan
from matr.profiles import WEIGHTS_AUTO, Profile
from matr.train import TrainConfig, TrainResult, fit

log = logging.getLogger(__name__)

MODEL_SOURCES: tuple[str, ...] = ("heads", "A_pre", "A_post")
BASELINES: tuple[str, ...] = ("random", "video_match")
TABLE_METRICS: tuple[str, ...] = ("R1@0.3", "R1@0.5", "R1@0.7", "R5@0.5", "mIoU", "VRL_IoU_mean", "num_pairs")


@dataclass(frozen=True)
class Workspace:
    """The layout of a pipeline's working folder (module docstring)."""

    root: Path

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def features(self) -> Path:
        return self.root / "features"

    def run(self, name: str) -> Path:
        return self.root / "runs" / name

    def evaluation(self, split: str) -> Path:
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
        """The pairs of ``split`` whose videos are all in the store (others are dropped with a warning)."""
        if split not in self.annotations:
            raise ValueError(f"no annotations of split {split!r}; found {sorted(self.annotations)}")
        return stored_records(load_annotations(self.annotations[split], split), self.store)


def stored_records(records: Sequence[PairRecord], store: FeatureStore) -> list[PairRecord]:
    """``records`` whose query and target features are in ``store``; a warning counts the others."""
    kept = [r for r in records if store.has(r.query_video) and store.has(r.target_video)]
    if len(kept) < len(records):
        log.warning(
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


# --- Training -----------------------------------------------------------------------------------


def pretrain_model(
    config: MATRConfig,
    train_config: TrainConfig,
    source: FeatureSource,
    video_ids: Sequence[str],
    out_dir: str | os.PathLike,
    *,
    pretrain_config: PretrainConfig | None = None,
    info: Mapping[str, Any] | None = None,
    progress: bool | None = None,
) -> TrainResult:
    """Self-supervised pre-training (paper 3.3) on ``video_ids`` of ``source``; resumes in ``out_dir``."""
    cfg = config.model
    dataset = PretrainingDataset(
        sorted(set(video_ids)),
        source,
        pretrain_config,
        max_query_frames=cfg.max_query_frames,
        max_target_frames=cfg.max_target_frames,
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
    progress: bool | None = None,
) -> TrainResult:
    """Supervised finetuning on labelled pairs, validating on ``val_records``; resumes in ``out_dir``."""
    cfg = config.model
    limits = {"max_query_frames": cfg.max_query_frames, "max_target_frames": cfg.max_target_frames}
    train_set = PairDataset(records, source, train=True, seed=train_config.seed, **limits)
    val_set = PairDataset(val_records, source, **limits) if val_records else None
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


# --- Evaluation ---------------------------------------------------------------------------------


def evaluate_checkpoint(
    checkpoint: str | os.PathLike,
    source: FeatureSource,
    records: Sequence[PairRecord],
    *,
    sources: Sequence[str] = ("heads",),
    top_k: int = 5,
    nms_threshold: float = 0.7,
    batch_size: int = 32,
    device: str = "cpu",
    progress: bool | None = None,
) -> tuple[EvalResult, dict[str, Any]]:
    """Predictions of a checkpoint on ``records``; also returns the loaded checkpoint (without weights).

    Targets longer than the model's ``max_target_frames`` are cropped around their ground truth
    (:class:`matr.data.PairDataset`), which a warning reports.
    """
    unknown = sorted(set(sources) - set(MODEL_SOURCES))
    if unknown or not sources:
        raise ValueError(f"unknown prediction sources {unknown}; expected some of {list(MODEL_SOURCES)}")
    model, data = load_model(checkpoint, device)
    cfg = model.config
    dataset = PairDataset(
        records, source, max_query_frames=cfg.max_query_frames, max_target_frames=cfg.max_target_frames
    )
    _warn_cropped(dataset, cfg.max_target_frames)
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, collate_fn=collate_pairs)
    result = predict(
        model,
        loader,
        device=device,
        sources=tuple(sources),
        top_k=top_k,
        nms_threshold=nms_threshold,
        progress=progress,
    )
    return result, {key: value for key, value in data.items() if key not in ("model", "optimizer", "rng")}


def evaluate_baseline(
    method: str,
    source: FeatureSource,
    records: Sequence[PairRecord],
    *,
    seed: int = 0,
    top_k: int = 5,
    batch_size: int = 32,
) -> EvalResult:
    """Predictions of a training-free baseline (``random`` or ``video_match``, paper Table 1) on ``records``."""
    if method not in BASELINES:
        raise ValueError(f"unknown baseline {method!r}; expected one of {list(BASELINES)}")
    loader = DataLoader(PairDataset(records, source), batch_size=batch_size, shuffle=False, collate_fn=collate_pairs)
    result = EvalResult(predictions={method: {}})
    for batch in loader:
        windows, durations = batch["window"].tolist(), batch["duration"].tolist()
        for pair_id, window, duration in zip(batch["pair_id"], windows, durations, strict=True):
            result.ground_truth[pair_id] = (window[0], window[1])
            result.durations[pair_id] = duration
        if method == "random":
            spans = random_baseline(dict(zip(batch["pair_id"], durations, strict=True)), top_k=top_k, seed=seed)
        else:
            spans = video_match_batch(batch, VideoMatchConfig(top_k=top_k))
        result.predictions[method].update(
            {pair_id: [RankedSpan(*span) for span in ranked] for pair_id, ranked in spans.items()}
        )
    return result


def _warn_cropped(dataset: PairDataset, max_frames: int) -> None:
    source = dataset.source
    long = [r.pair_id for r in dataset.records if _frames(source, r) > max_frames]
    if long:
        log.warning(
            "%d pairs have targets longer than max_target_frames=%d; they are evaluated on a crop "
            "around their ground truth (first: %s)",
            len(long),
            max_frames,
            long[0],
        )


def _frames(source: FeatureSource, record: PairRecord) -> int:
    if record.target_window is not None:
        return round((record.target_window[1] - record.target_window[0]) / source.clip_length)
    return len(source.load(record.target_video))


# --- Profile steps ------------------------------------------------------------------------------


def open_data(profile: Profile, workdir: str | os.PathLike) -> PreparedData:
    """The data of ``profile`` in ``workdir`` as :func:`prepare_data` left it (does no work)."""
    workspace = Workspace(Path(workdir))
    root = workspace.data if profile.synthetic is not None else _user_data(profile)
    return PreparedData(find_annotations(root / "annotations"), FeatureStore(workspace.features), profile.dataset)


def prepare_data(profile: Profile, workdir: str | os.PathLike, *, progress: bool = False) -> PreparedData:
    """Render the synthetic data (if the profile has some) and extract the features of every video used.

    Resumable: rendered videos and stored features are kept. The CLIP encoder is loaded only when
    some video still lacks features.
    """
    workspace = Workspace(Path(workdir))
    if profile.synthetic is not None:
        render_dataset(workspace.data, profile.synthetic, seed=profile.seed, progress=progress)
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
        report = extract_features(todo, data.store, encoder, profile.clip_length, shard=(0, 1), progress=progress)
        if report.failed:
            log.warning("%d videos could not be decoded; their pairs are left out", len(report.failed))
    return data


# --- Tables and helpers -------------------------------------------------------------------------


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


def profile_encoder(profile: Profile, store: FeatureStore) -> ClipEncoder:
    """The CLIP encoder of a profile's features; weights ``auto`` keep what ``store`` holds, else try OpenAI.

    ``auto`` on a machine without the OpenAI weights falls back to a random-init backbone, with a
    warning (the report's first line says so too).
    """
    device = _clip_device(profile.device)
    if profile.weights != WEIGHTS_AUTO:
        return load_clip_encoder(profile.weights, seed=profile.seed, device=device)
    if store.weights_tag is not None:
        weights, seed = weights_from_tag(store.weights_tag)
        return load_clip_encoder(weights, seed=seed, device=device)
    try:
        return load_clip_encoder("openai", device=device)
    except WeightsUnavailableError as error:
        log.warning(
            "OpenAI CLIP weights unavailable (%s); using a random-init backbone: results are NOT "
            "comparable to the paper",
            str(error).split(". ")[0],
        )
        return load_clip_encoder("random", seed=profile.seed, device=device)


def _user_data(profile: Profile) -> Path:
    if profile.data is None:
        raise ValueError(
            f"profile {profile.name!r} needs a data folder (annotations/{{split}}.jsonl|csv and "
            "videos/): pass --data DIR"
        )
    return Path(profile.data)


def _clip_device(name: str) -> str | None:
    return None if name == "auto" else name


# --- Report -------------------------------------------------------------------------------------

CHOICE_MODULES: tuple[str, ...] = (
    "matr.video",
    "matr.features",
    "matr.model",
    "matr.data.pretraining",
    "matr.inference",
    "matr.profiles",
)
CHOICE_CONFIGS: tuple[str, ...] = ("matr.config:ModelConfig", "matr.config:LossConfig", "matr.train:TrainConfig")
_SILENT = re.compile(r"paper is silent|paper silent", re.IGNORECASE)


def silent_choices() -> dict[str, list[str]]:
    """Our choices where the paper is silent, collected from module docstrings and config comments.

    Returns ``source -> short statements``: the first sentence of every bullet of a docstring
    section headed "... where the paper is silent ...:", and every config field commented
    ``# paper silent``.
    """
    choices: dict[str, list[str]] = {}
    for name in CHOICE_MODULES:
        bullets = _silent_bullets(importlib.import_module(name).__doc__ or "")
        if bullets:
            choices[name] = bullets
    for target in CHOICE_CONFIGS:
        module, _, cls = target.partition(":")
        source = inspect.getsource(getattr(importlib.import_module(module), cls))
        fields = [
            f"{m['name']} = {m['value']}: {m['why'].strip(' ;:')}"
            if m["why"].strip(" ;:")
            else f"{m['name']} = {m['value']}"
            for m in _SILENT_FIELD.finditer(source)
        ]
        if fields:
            choices[f"{module}.{cls}"] = fields
    return choices


_SILENT_FIELD = re.compile(
    r"^\s+(?P<name>\w+): [^=\n]+= (?P<value>[^#\n]+?)\s+#\s*paper silent(?P<why>[^\n]*)$", re.MULTILINE
)


def _silent_bullets(doc: str) -> list[str]:
    """First sentences of the bullets under a docstring line like "Choices where the paper is silent:"."""
    bullets: list[str] = []
    inside = False
    for line in doc.splitlines():
        text = line.strip()
        if not inside:
            inside = bool(_SILENT.search(text)) and text.endswith(":")
        elif text.startswith("* "):
            bullets.append(text[2:])
        elif text and line.startswith("  ") and bullets:
            bullets[-1] += " " + text
        elif text:
            break
    return [_first_sentence(bullet) for bullet in bullets]


def _first_sentence(text: str) -> str:
    match = re.match(r"(.+?\.)\s+(?=[A-Z])", text)
    return match.group(1) if match else text
