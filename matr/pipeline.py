"""The experiment as small resumable steps: data, pre-training, finetuning, evaluation.

Each step takes a :class:`~matr.profiles.Profile` and a working folder and skips work already
done, so an interrupted run continues where it stopped::

    workdir/data/                       synthetic videos + annotations (profiles with ``synthetic``)
    workdir/features/                   CLIP feature store (:class:`matr.features.FeatureStore`)
    workdir/runs/{pretrain,finetune,scratch}/   checkpoints and per-epoch logs (:func:`matr.train.fit`)
    workdir/eval/{split}/{method}/      predictions.jsonl + metrics.json of one method
    workdir/eval/{split}/metrics.{csv,json}   one table of every method, with provenance
    workdir/timings.json                wall-clock seconds of the last run of each step that did work

The same building blocks serve the command line (``matr train``, ``matr evaluate``, ...):
:func:`pretrain_model`, :func:`finetune_model`, :func:`evaluate_checkpoint`,
:func:`evaluate_baseline`. Methods of the table: MATR's prediction heads, the spans of its hard
alignments A_pre and A_post (paper Table 4), MATR finetuned without pre-training (when the profile
asks for it, Table 3), and the Random and Video Match baselines (Table 1).
"""

from __future__ import annotations

import csv
import importlib
import inspect
import io
import json
import logging
import os
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader

from matr.baselines import VideoMatchConfig, random_baseline, video_match_batch
from matr.checkpoint import load_model
from matr.config import MATRConfig
from matr.data import PairDataset, PairRecord, PretrainConfig, PretrainingDataset, collate_pairs
from matr.data.annotations import load_annotations
from matr.data.dataset import FeatureSource
from matr.data.synthetic import render_dataset
from matr.evaluate import EvalResult, predict, write_evaluation
from matr.features import ClipEncoder, FeatureStore, WeightsUnavailableError, extract_features, load_clip_encoder
from matr.inference import find_videos, weights_from_tag
from matr.io import read_jsonl, write_json, write_text
from matr.postprocess import RankedSpan
from matr.profiles import WEIGHTS_AUTO, Profile
from matr.provenance import is_random_init, provenance
from matr.train import TrainConfig, TrainResult, fit

log = logging.getLogger(__name__)

MODEL_SOURCES: tuple[str, ...] = ("heads", "A_pre", "A_post")
BASELINES: tuple[str, ...] = ("random", "video_match")
TABLE_METRICS: tuple[str, ...] = ("R1@0.3", "R1@0.5", "R1@0.7", "R5@0.5", "mIoU", "VRL_IoU_mean", "num_pairs")
_METHOD_NAMES = {("finetune", "heads"): "MATR", ("finetune", "A_pre"): "MATR, span of A_pre",
                 ("finetune", "A_post"): "MATR, span of A_post", ("scratch", "heads"): "MATR, no pre-training",
                 ("baseline", "random"): "Random", ("baseline", "video_match"): "Video Match"}


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

    @property
    def timings(self) -> Path:
        return self.root / "timings.json"


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


@dataclass
class MethodTable:
    """Metrics of every method on one split: ``rows`` of ``{"method", "run", "source", metric: value}``."""

    split: str
    rows: list[dict[str, Any]]
    provenance: dict[str, Any] = field(default_factory=dict)


@dataclass
class PipelineResult:
    """What :func:`run_pipeline` produced."""

    profile: Profile
    workspace: Workspace
    weights_tag: str
    tables: dict[str, MethodTable]
    timings: dict[str, float]


def stored_records(records: Sequence[PairRecord], store: FeatureStore) -> list[PairRecord]:
    """``records`` whose query and target features are in ``store``; a warning counts the others."""
    kept = [r for r in records if store.has(r.query_video) and store.has(r.target_video)]
    if len(kept) < len(records):
        log.warning("%d of %d pairs dropped: their videos have no features in %s (see its failures*.jsonl)",
                    len(records) - len(kept), len(records), store.root)
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
    return {"weights_tag": store.weights_tag, "clip_length": store.clip_length, "feature_store": str(store.root),
            "dataset": dataset, "split": split, **extra}


# --- Training -----------------------------------------------------------------------------------

def pretrain_model(config: MATRConfig, train_config: TrainConfig, source: FeatureSource, video_ids: Sequence[str],
                   out_dir: str | os.PathLike, *, pretrain_config: PretrainConfig | None = None,
                   info: Mapping[str, Any] | None = None, progress: bool | None = None) -> TrainResult:
    """Self-supervised pre-training (paper 3.3) on ``video_ids`` of ``source``; resumes in ``out_dir``."""
    cfg = config.model
    dataset = PretrainingDataset(sorted(set(video_ids)), source, pretrain_config,
                                 max_query_frames=cfg.max_query_frames, max_target_frames=cfg.max_target_frames)
    return fit(config, train_config, dataset, out_dir, run_info={**(info or {}), "stage": "pretrain"},
               progress=progress)


def finetune_model(config: MATRConfig, train_config: TrainConfig, source: FeatureSource,
                   records: Sequence[PairRecord], out_dir: str | os.PathLike, *,
                   val_records: Sequence[PairRecord] | None = None, init_from: str | os.PathLike | None = None,
                   info: Mapping[str, Any] | None = None, progress: bool | None = None) -> TrainResult:
    """Supervised finetuning on labelled pairs, validating on ``val_records``; resumes in ``out_dir``."""
    cfg = config.model
    limits = {"max_query_frames": cfg.max_query_frames, "max_target_frames": cfg.max_target_frames}
    train_set = PairDataset(records, source, train=True, seed=train_config.seed, **limits)
    val_set = PairDataset(val_records, source, **limits) if val_records else None
    return fit(config, train_config, train_set, out_dir, val_set=val_set, init_from=init_from,
               run_info={**(info or {}), "stage": "finetune",
                         "init_from": None if init_from is None else str(init_from)},
               progress=progress)


# --- Evaluation ---------------------------------------------------------------------------------

def evaluate_checkpoint(checkpoint: str | os.PathLike, source: FeatureSource, records: Sequence[PairRecord], *,
                        sources: Sequence[str] = ("heads",), top_k: int = 5, nms_threshold: float = 0.7,
                        batch_size: int = 32, device: str = "cpu",
                        progress: bool | None = None) -> tuple[EvalResult, dict[str, Any]]:
    """Predictions of a checkpoint on ``records``; also returns the loaded checkpoint (without weights).

    Targets longer than the model's ``max_target_frames`` are cropped around their ground truth
    (:class:`matr.data.PairDataset`), which a warning reports.
    """
    unknown = sorted(set(sources) - set(MODEL_SOURCES))
    if unknown or not sources:
        raise ValueError(f"unknown prediction sources {unknown}; expected some of {list(MODEL_SOURCES)}")
    model, data = load_model(checkpoint, device)
    cfg = model.config
    dataset = PairDataset(records, source, max_query_frames=cfg.max_query_frames,
                          max_target_frames=cfg.max_target_frames)
    _warn_cropped(dataset, cfg.max_target_frames)
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, collate_fn=collate_pairs)
    result = predict(model, loader, device=device, sources=tuple(sources), top_k=top_k,
                     nms_threshold=nms_threshold, progress=progress)
    return result, {key: value for key, value in data.items() if key not in ("model", "optimizer", "rng")}


def evaluate_baseline(method: str, source: FeatureSource, records: Sequence[PairRecord], *, seed: int = 0,
                      top_k: int = 5, batch_size: int = 32) -> EvalResult:
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
        result.predictions[method].update({pair_id: [RankedSpan(*span) for span in ranked]
                                           for pair_id, ranked in spans.items()})
    return result


def _warn_cropped(dataset: PairDataset, max_frames: int) -> None:
    source = dataset.source
    long = [r.pair_id for r in dataset.records if _frames(source, r) > max_frames]
    if long:
        log.warning("%d pairs have targets longer than max_target_frames=%d; they are evaluated on a crop "
                    "around their ground truth (first: %s)", len(long), max_frames, long[0])


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
    used = {video for split, path in data.annotations.items()
            for record in load_annotations(path, split) for video in (record.query_video, record.target_video)}
    missing = sorted(used - set(videos))
    if missing:
        raise FileNotFoundError(f"{len(missing)} videos named by the annotations are not in the video folder "
                                f"(first: {missing[0]!r})")
    todo = {video: videos[video] for video in sorted(used) if not data.store.has(video)}
    if todo:
        encoder = profile_encoder(profile, data.store)
        report = extract_features(todo, data.store, encoder, profile.clip_length, shard=(0, 1), progress=progress)
        if report.failed:
            log.warning("%d videos could not be decoded; their pairs are left out", len(report.failed))
    return data


def pretrain(profile: Profile, workdir: str | os.PathLike, *, progress: bool | None = None) -> TrainResult | None:
    """Pre-train on the training split's target videos into ``workdir/runs/pretrain`` (None if the profile has none)."""
    if profile.pretrain_epochs == 0:
        return None
    data = open_data(profile, workdir)
    videos = sorted({record.target_video for record in data.records(profile.train_split)})
    return pretrain_model(profile.model_config(), profile.train_config(profile.pretrain_epochs),
                          feature_source(data.store), videos, Workspace(Path(workdir)).run("pretrain"),
                          pretrain_config=profile.pretrain_config(),
                          info=run_info(data, dataset=profile.dataset, split=profile.train_split,
                                        profile=profile.name), progress=progress)


def finetune(profile: Profile, workdir: str | os.PathLike, init_from: str | os.PathLike | None = None,
             name: str = "finetune", *, progress: bool | None = None) -> TrainResult:
    """Finetune on the training split into ``workdir/runs/{name}``, starting from ``init_from`` if given."""
    data = open_data(profile, workdir)
    return finetune_model(profile.model_config(), profile.train_config(profile.finetune_epochs),
                          feature_source(data.store), data.records(profile.train_split),
                          Workspace(Path(workdir)).run(name), val_records=data.records(profile.val_split),
                          init_from=init_from,
                          info=run_info(data, dataset=profile.dataset, split=profile.train_split,
                                        profile=profile.name), progress=progress)


def evaluate_methods(profile: Profile, workdir: str | os.PathLike, split: str) -> MethodTable:
    """Evaluate MATR (heads, A_pre, A_post; no pre-training) and the baselines on ``split``: one table.

    Writes every method's predictions and metrics, and ``metrics.csv`` / ``metrics.json``, into
    ``workdir/eval/{split}``. Skipped when that table exists for the same profile and checkpoints.
    """
    workspace = Workspace(Path(workdir))
    data = open_data(profile, workdir)
    checkpoints = _checkpoints(profile, workspace)
    if "finetune" not in checkpoints:
        log.warning("no finetuned checkpoint in %s: the table of split %s holds the baselines only",
                    workspace.run("finetune"), split)
    signature = _evaluation_signature(profile, workspace, split)
    done = _load_table(workspace.evaluation(split) / "metrics.json", signature)
    if done is not None:
        return done
    records, source = data.records(split), feature_source(data.store)
    base = {"dataset": data.dataset, "split": split, "seed": profile.seed, "weights_tag": data.weights_tag,
            "profile": profile.name}
    rows = []
    for run, checkpoint in checkpoints.items():
        sources = MODEL_SOURCES if run == "finetune" else ("heads",)
        result, stored = evaluate_checkpoint(checkpoint, source, records, sources=sources, top_k=profile.top_k,
                                             nms_threshold=profile.nms_threshold, device=_device(profile.device))
        info = {**base, "method": "MATR", "run": run, "checkpoint": str(checkpoint), "epoch": stored.get("epoch"),
                "config": stored.get("config")}
        rows += _rows(run, write_evaluation(workspace.evaluation(split) / run, result, provenance(**info)))
    for method in BASELINES:
        result = evaluate_baseline(method, source, records, seed=profile.seed, top_k=profile.top_k)
        info = {**base, "method": method, "config": {"top_k": profile.top_k}}
        rows += _rows("baseline", write_evaluation(workspace.evaluation(split) / method, result, provenance(**info)))
    table = MethodTable(split, rows, provenance(**base, signature=signature))
    write_table(workspace.evaluation(split), table)
    return table


def run_pipeline(profile: Profile, workdir: str | os.PathLike, *, progress: bool = False) -> PipelineResult:
    """Every step in order: data, pre-training, finetuning (and without pre-training), evaluation."""
    workspace = Workspace(Path(workdir))
    workspace.root.mkdir(parents=True, exist_ok=True)
    timings = _read_timings(workspace)
    data = _timed(timings, workspace, "prepare_data", lambda: prepare_data(profile, workdir, progress=progress),
                  done=lambda: _extracted(profile, workdir))
    pre = _timed(timings, workspace, "pretrain", lambda: pretrain(profile, workdir),
                 done=lambda: _trained(workspace.run("pretrain"), profile.pretrain_epochs))
    init = None if pre is None else pre.last_checkpoint
    _timed(timings, workspace, "finetune", lambda: finetune(profile, workdir, init_from=init),
           done=lambda: _trained(workspace.run("finetune"), profile.finetune_epochs))
    if profile.scratch:
        _timed(timings, workspace, "scratch", lambda: finetune(profile, workdir, name="scratch"),
               done=lambda: _trained(workspace.run("scratch"), profile.finetune_epochs))
    tables = {split: _timed(timings, workspace, f"evaluate_{split}",
                            lambda s=split: evaluate_methods(profile, workdir, s),
                            done=lambda s=split: _evaluated(profile, workspace, s))
              for split in profile.eval_splits}
    return PipelineResult(profile, workspace, data.weights_tag, tables, timings)


# --- Tables and helpers -------------------------------------------------------------------------

def write_table(folder: Path, table: MethodTable) -> None:
    """``metrics.csv`` (one row per method) and ``metrics.json`` (rows + provenance) in ``folder``."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=["method", "run", "source", *TABLE_METRICS], extrasaction="ignore",
                            lineterminator="\n")
    writer.writeheader()
    writer.writerows(table.rows)
    write_text(folder / "metrics.csv", buffer.getvalue())
    write_json(folder / "metrics.json", {"split": table.split, "rows": table.rows, "provenance": table.provenance})


def _checkpoints(profile: Profile, workspace: Workspace) -> dict[str, Path]:
    """The checkpoint to evaluate of each finished training run (``finetune``, ``scratch``)."""
    return {run: path for run in ("finetune", "scratch")
            if (path := workspace.run(run) / f"{profile.checkpoint}.pt").is_file()}


def _evaluation_signature(profile: Profile, workspace: Workspace, split: str) -> dict[str, Any]:
    """What an evaluation table depends on: the profile, the split and the checkpoints' files."""
    return {"profile": profile.to_dict(), "split": split,
            "checkpoints": {run: [str(path), path.stat().st_mtime_ns, path.stat().st_size]
                            for run, path in _checkpoints(profile, workspace).items()}}


def _evaluated(profile: Profile, workspace: Workspace, split: str) -> bool:
    path = workspace.evaluation(split) / "metrics.json"
    return _load_table(path, _evaluation_signature(profile, workspace, split), quiet=True) is not None


def _load_table(path: Path, signature: dict[str, Any], quiet: bool = False) -> MethodTable | None:
    if not path.is_file():
        return None
    stored = json.loads(path.read_text(encoding="utf-8"))
    if json.loads(json.dumps(signature)) != stored.get("provenance", {}).get("signature"):
        return None
    if not quiet:
        log.info("%s is up to date; evaluation skipped", path)
    return MethodTable(stored["split"], stored["rows"], stored["provenance"])


def _rows(run: str, scores: Mapping[str, Mapping[str, float]]) -> list[dict[str, Any]]:
    return [{"method": _METHOD_NAMES[(run, source)], "run": run, "source": source,
             **{key: metrics[key] for key in TABLE_METRICS}} for source, metrics in scores.items()]


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
        log.warning("OpenAI CLIP weights unavailable (%s); using a random-init backbone: results are NOT "
                    "comparable to the paper", str(error).split(". ")[0])
        return load_clip_encoder("random", seed=profile.seed, device=device)


def _user_data(profile: Profile) -> Path:
    if profile.data is None:
        raise ValueError(f"profile {profile.name!r} needs a data folder (annotations/{{split}}.jsonl|csv and "
                         "videos/): pass --data DIR")
    return Path(profile.data)


def _device(name: str) -> str:
    return ("cuda" if torch.cuda.is_available() else "cpu") if name == "auto" else name


def _clip_device(name: str) -> str | None:
    return None if name == "auto" else name


def _extracted(profile: Profile, workdir: str | os.PathLike) -> bool:
    try:
        data = open_data(profile, workdir)
        return all(data.store.has(r.query_video) and data.store.has(r.target_video)
                   for split, path in data.annotations.items() for r in load_annotations(path, split))
    except (OSError, ValueError):
        return False


def _trained(run_dir: Path, epochs: int) -> bool:
    log_file = run_dir / "metrics.jsonl"
    return log_file.is_file() and len(read_jsonl(log_file)) >= epochs and (run_dir / "last.pt").is_file()


def _read_timings(workspace: Workspace) -> dict[str, float]:
    path = workspace.timings
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def _timed(timings: dict[str, float], workspace: Workspace, step: str, run: Callable[[], Any],
           done: Callable[[], bool] | None = None) -> Any:
    """Run a step; record its seconds in ``timings.json`` unless it found its work already done."""
    skipped = done is not None and done()
    started = time.perf_counter()
    result = run()
    if not skipped:
        timings[step] = round(time.perf_counter() - started, 2)
        write_json(workspace.timings, timings)
    log.info("step %s: %s", step, "already done" if skipped else f"{timings[step]:.1f} s")
    return result


# --- Report -------------------------------------------------------------------------------------

CHOICE_MODULES: tuple[str, ...] = ("matr.video", "matr.features", "matr.model", "matr.data.pretraining",
                                   "matr.inference", "matr.profiles")
CHOICE_CONFIGS: tuple[str, ...] = ("matr.config:ModelConfig", "matr.config:LossConfig", "matr.train:TrainConfig")
_SILENT = re.compile(r"paper is silent|paper silent", re.IGNORECASE)


def reported_results() -> dict[str, Any]:
    """The paper's reported numbers (Tables 1-5 and implementation details), shipped as package data."""
    return json.loads(resources.files("matr").joinpath("resources/reported_results.json").read_text(encoding="utf-8"))


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
        fields = [f"{m['name']} = {m['value']}: {m['why'].strip(' ;:')}" if m["why"].strip(" ;:") else
                  f"{m['name']} = {m['value']}" for m in _SILENT_FIELD.finditer(source)]
        if fields:
            choices[f"{module}.{cls}"] = fields
    return choices


_SILENT_FIELD = re.compile(r"^\s+(?P<name>\w+): [^=\n]+= (?P<value>[^#\n]+?)\s+#\s*paper silent(?P<why>[^\n]*)$",
                           re.MULTILINE)


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


def render_report(result: PipelineResult) -> str:
    """The Markdown report of a pipeline run (first line: the backbone weights and what they imply)."""
    profile, tag = result.profile, result.weights_tag
    lines = [_weights_line(tag), "", f"# MATR reproduction report: profile `{profile.name}`", ""]
    for split, table in result.tables.items():
        pairs = table.rows[0]["num_pairs"] if table.rows else 0
        lines += [f"## Results on `{profile.dataset}`, split `{split}` ({pairs} pairs)", "",
                  "Metrics in percent, computed by `matr.metrics` without adjustment. "
                  f"MATR is evaluated from its `{profile.checkpoint}.pt` checkpoint.", "",
                  *_markdown_table(["Method", "R1@0.3", "R1@0.5", "R1@0.7", "R5@0.5", "mIoU", "VRL IoU/mean"],
                                   [[row["method"], *(f"{row[k]:.1f}" for k in TABLE_METRICS[:-1])]
                                    for row in table.rows]), ""]
    lines += ["## The paper's Table 1, for reference", "",
              "As reported (mIoU and R@1 at IoU 0.5, percent); AN = ActivityNet-VRL, SM = SportsMoments. "
              "The paper's \"mIoU\" column may mix true mIoU and ActivityNet-VRL's IoU/mean (see `matr.metrics`).",
              "", *_markdown_table(["Group", "Method", "Variant", "AN mIoU", "AN R1@0.5", "SM mIoU", "SM R1@0.5"],
                                   [[r["group"], r["method"], r["variant"],
                                     *(_number(r[k]) for k in ("AN_mIoU", "AN_R1", "SM_mIoU", "SM_R1"))]
                                    for r in reported_results()["table1_main"]]), ""]
    lines += ["## Settings that differ from the paper's", "", *_deviation_lines(profile), "",
              "## Choices where the paper is silent", ""]
    for source, items in silent_choices().items():
        lines += [f"- `{source}`:", *(f"  - {item}" for item in items)]
    lines += ["", "## Provenance", "", *_provenance_lines(result), ""]
    return "\n".join(lines)


def write_report(result: PipelineResult, out_dir: str | os.PathLike) -> Path:
    """Write ``out_dir/README.md`` (:func:`render_report`) and the tables as ``metrics_{split}.csv``."""
    out_dir = Path(out_dir)
    for split in result.tables:
        source = result.workspace.evaluation(split) / "metrics.csv"
        write_text(out_dir / f"metrics_{split}.csv", source.read_text(encoding="utf-8"))
    write_text(out_dir / "README.md", render_report(result))
    return out_dir / "README.md"


def _weights_line(tag: str) -> str:
    if is_random_init(tag):
        return (f"**Backbone weights: `{tag}`. The CLIP backbone is randomly initialised, so these numbers "
                "are NOT comparable to the paper's.**")
    return f"**Backbone weights: `{tag}` (CLIP ViT-B/32, as in the paper).**"


def _provenance_lines(result: PipelineResult) -> list[str]:
    record = provenance(profile=result.profile.name, seed=result.profile.seed, weights_tag=result.weights_tag,
                        dataset=result.profile.dataset, splits=list(result.tables))
    hardware = ", ".join(f"{key} {value}" for key, value in record["hardware"].items())
    lines = [f"- git commit: `{record['git_commit']}`", f"- created: {record['created']}",
             f"- profile: `{result.profile.name}`, seed {result.profile.seed}",
             f"- backbone weights tag: `{result.weights_tag}` (random-init: {record['random_init_backbone']})",
             f"- dataset: {result.profile.dataset}; splits evaluated: {', '.join(result.tables)}",
             f"- hardware: {hardware}", f"- working folder: `{result.workspace.root}`", "",
             *_markdown_table(["Step", "Seconds"], [[step, f"{result.timings[step]:.1f}"]
                                                    for step in _steps_in_order(result)]),
             "", "Seconds are those of the run that did each step's work (a resumed run keeps earlier times).",
             "", "Profile:", "", "```json", json.dumps(result.profile.to_dict(), indent=2, sort_keys=True), "```"]
    return lines


def _deviation_lines(profile: Profile) -> list[str]:
    """The profile's departures from the paper's section 5.2 (see :mod:`matr.profiles` for the reasons)."""
    paper = reported_results()["implementation"]
    config, reference = profile.model_config().model, MATRConfig().model
    lines = [f"- model preset `{profile.model_preset}`: d = {config.hidden_dim}, {config.encoder_layers} + "
             f"{config.decoder_layers} layers, l = {config.num_queries} (paper: d = {paper['hidden_dim']}, "
             f"{paper['encoder_layers']} + {paper['decoder_layers']} layers, l = {paper['num_queries']})"]
    lines += [f"- `{key}` = `{value}` (paper: `{getattr(reference, key.split('.')[-1], '?')}`)"
              for key, value in profile.model_overrides]
    lines += [f"- learning rate {profile.lr:g}, batch size {profile.batch_size}, {profile.finetune_epochs} finetuning "
              f"and {profile.pretrain_epochs} pre-training epochs (paper: lr {paper['lr']:g}; "
              f"{paper['epochs']['SportsMoments']} epochs at batch {paper['batch_size']['SportsMoments']} on "
              f"SportsMoments, {paper['epochs']['ActivityNet-VRL']} at {paper['batch_size']['ActivityNet-VRL']} on "
              "ActivityNet-VRL; pre-training on Kinetics-700)",
              "- the reasons are in `matr.profiles`"]
    return lines


def _steps_in_order(result: PipelineResult) -> list[str]:
    order = ["prepare_data", "pretrain", "finetune", "scratch", *(f"evaluate_{s}" for s in result.profile.eval_splits)]
    return sorted(result.timings, key=lambda step: order.index(step) if step in order else len(order))


def _markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|",
            *("| " + " | ".join(str(cell) for cell in row) + " |" for row in rows)]


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"
