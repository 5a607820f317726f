"""Cached evaluation: predictions and metrics of what training left, computed once and read back.

Nothing here trains. Asking for a variant whose checkpoint is missing raises
:class:`MissingCheckpoint`, one line naming the file and the call that trains it. Each evaluation
writes ``predictions.jsonl`` (per pair and source: ranked spans and their IoUs, see
:mod:`matr.prediction`) and ``metrics.json`` into::

    workdir/eval/<split>/variants/<variant>/seed<s>/    every source (heads, A_pre, A_post) at once
    workdir/eval/<split>/baselines/<method>/seed<s>/

and is reused while the checkpoint (path, size, modification time) and the settings are unchanged.
With ``queries="other"`` each pair keeps its target and ground truth but gets the query of a pair
of another class (:func:`other_class_queries`), evaluated into ``workdir/eval/<split>/other-queries/``
the same way: a model that uses its query should lose most of its score there.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from torch.utils.data import DataLoader

from matr.baselines import VideoMatchConfig, random_baseline, video_match_batch
from matr.checkpoint import load_model
from matr.choices import declare
from matr.data import PairDataset, PairRecord, collate_pairs
from matr.data.dataset import FeatureSource, FrameLimits
from matr.data.records import evaluation_inputs
from matr.device import resolve_device
from matr.experiments.compose import compose, run_seeds
from matr.experiments.profiles import Profile
from matr.experiments.runs import checkpoint_path
from matr.experiments.workspace import PreparedData, Workspace, feature_source, open_data
from matr.io import read_jsonl
from matr.postprocess import NMS_THRESHOLD, TOP_K, RankedSpan
from matr.prediction import EvalResult, predict, write_evaluation
from matr.provenance import provenance

logger = logging.getLogger(__name__)

EVAL_SPLIT = declare(
    "evaluation split", "test", "every table is computed on the test split, whose classes no run saw in training"
)
MODEL_SOURCES: tuple[str, ...] = ("heads", "A_pre", "A_post")
BASELINES: tuple[str, ...] = ("random", "video_match")
SEEDED_BASELINES: tuple[str, ...] = ("random",)  # Video Match is deterministic: one seed
PREDICTIONS_FORMAT = 2  # predictions.jsonl with per-pair "ious" and "vrl_iou"; older caches are recomputed
QUERIES: tuple[str, ...] = ("own", "other")  # each pair's own query, or that of a pair of another class


class MissingCheckpoint(FileNotFoundError):
    """An evaluation asked for a run that has not been trained."""


def evaluation_dir(
    workdir: str | os.PathLike, method: str, seed: int, split: str = EVAL_SPLIT, queries: str = "own"
) -> Path:
    """Folder of the predictions and metrics of a variant or baseline with ``seed`` on ``split`` (module docstring)."""
    _check_queries(queries)
    kind = "baselines" if method in BASELINES else "variants"
    root = Workspace(Path(workdir)).evaluation(split)
    return (root if queries == "own" else root / "other-queries") / kind / method / f"seed{seed}"


def other_class_queries(records: Sequence[PairRecord], seed: int) -> list[PairRecord]:
    """``records`` in order, each with the query (video and window) of a pair of another ``action_class``.

    The donor is drawn uniformly among the pairs of the other classes with ``seed``; pair ids,
    targets and ground truth are unchanged, so a paired bootstrap compares the same pairs.
    """
    classes = np.array([str(record.action_class) for record in records])
    if len(set(classes)) < 2:
        raise ValueError(
            f"swapping queries across classes needs at least two classes; the {len(records)} pairs have {set(classes)}"
        )
    rng = np.random.default_rng(seed)
    swapped = []
    for record, action_class in zip(records, classes, strict=True):
        donor = records[int(rng.choice(np.flatnonzero(classes != action_class)))]
        swapped.append(dataclasses.replace(record, query_video=donor.query_video, query_window=donor.query_window))
    return swapped


def method_seeds(profile: Profile, method: str) -> tuple[int, ...]:
    """The seeds a method is evaluated with: its training seeds, the profile's for Random, one for Video Match."""
    if method in BASELINES:
        return profile.training_seeds() if method in SEEDED_BASELINES else (profile.seed,)
    return run_seeds(profile, method)


def cached_evaluation(
    profile: Profile,
    workdir: str | os.PathLike,
    method: str,
    seed: int,
    split: str = EVAL_SPLIT,
    *,
    queries: str = "own",
    progress: bool | None = None,
) -> Path:
    """Predictions and metrics of ``method`` (a variant or baseline) with ``seed`` on ``split``; returns the folder.

    ``queries``: ``"own"``, or ``"other"`` for each pair's query swapped with that of another class,
    drawn with the profile's seed (:func:`other_class_queries`). Cached (module docstring). A variant
    that has not been trained raises :class:`MissingCheckpoint`.
    """
    prepared = open_data(profile, workdir)
    records = prepared.records(split)
    folder = evaluation_dir(workdir, method, seed, split, queries)
    if queries == "other":
        records = other_class_queries(records, profile.seed)
    if method in BASELINES:
        signature, run = _baseline_signature(profile, prepared, method, seed, split, len(records)), None
    else:
        run = compose(profile, method, seed)
        signature = _variant_signature(checkpoint_path(workdir, run), run.train.top_k, run.train.nms_threshold)
        signature.update(split=split, pairs=len(records))
    signature["format"] = PREDICTIONS_FORMAT
    if queries == "other":
        signature.update(queries=queries, query_seed=profile.seed)
    if _is_cached(folder, signature):
        return folder
    base = {"profile": profile.name, "seed": seed, "weights_tag": prepared.weights_tag, "dataset": prepared.dataset}
    source = feature_source(prepared.store)
    if run is None:
        result = predict_baseline(method, source, records, seed=seed, top_k=signature["top_k"])
        record = provenance(**base, split=split, method=method, signature=signature)
    else:
        result, stored = predict_checkpoint(
            signature["checkpoint"],
            source,
            records,
            sources=MODEL_SOURCES,
            top_k=run.train.top_k,
            nms_threshold=run.train.nms_threshold,
            device=str(resolve_device(profile.device)),
            progress=progress,
        )
        record = provenance(
            **base,
            split=split,
            method="MATR",
            variant=method,
            epoch=stored.get("epoch"),
            config=stored.get("config"),
            signature=signature,
        )
    result.feature_steps = evaluation_inputs(records, str(prepared.annotations[split]))[1]
    write_evaluation(folder, result, record)
    return folder


def predictions(folder: str | os.PathLike, source: str) -> dict[str, dict[str, Any]]:
    """``pair_id -> {"spans": [[start, end, score], ...], "ious": [...]}`` (best first) of one source."""
    path = Path(folder) / "predictions.jsonl"
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} does not exist: evaluate first (matr.experiments.evaluation.cached_evaluation)"
        )
    return {r["pair_id"]: r for r in read_jsonl(path, key=("pair_id", "source")) if r["source"] == source}


def default_source(method: str) -> str:
    """The prediction source a method's table row reads by default: its own name for a baseline, else the heads."""
    return method if method in BASELINES else "heads"


def _check_queries(queries: str) -> None:
    if queries not in QUERIES:
        raise ValueError(f"unknown queries {queries!r}; expected one of {list(QUERIES)}")


def _variant_signature(checkpoint: Path, top_k: int, nms_threshold: float) -> dict[str, Any]:
    if not checkpoint.is_file():
        raise MissingCheckpoint(
            f"no checkpoint {checkpoint}: train it first (matr.experiments.train_variants, or notebooks 02-08)"
        )
    stat = checkpoint.stat()
    return {
        "checkpoint": str(checkpoint.resolve()),
        "mtime_ns": stat.st_mtime_ns,
        "size": stat.st_size,
        "top_k": top_k,
        "nms_threshold": nms_threshold,
    }


def _baseline_signature(
    profile: Profile, prepared: PreparedData, method: str, seed: int, split: str, pairs: int
) -> dict[str, Any]:
    if method not in BASELINES:
        raise ValueError(f"unknown baseline {method!r}; expected one of {list(BASELINES)}")
    top_k = profile.train_config().top_k
    return {
        "method": method,
        "split": split,
        "pairs": pairs,
        "seed": seed,
        "top_k": top_k,
        "weights_tag": prepared.weights_tag,
    }


def _is_cached(folder: Path, signature: Mapping[str, Any]) -> bool:
    path = folder / "metrics.json"
    if not (path.is_file() and (folder / "predictions.jsonl").is_file()):
        return False
    stored = json.loads(path.read_text(encoding="utf-8"))
    if stored.get("provenance", {}).get("signature") != json.loads(json.dumps(signature)):
        return False
    logger.info("%s is up to date; evaluation reused", path)
    return True


def predict_checkpoint(
    checkpoint: str | os.PathLike,
    source: FeatureSource,
    records: Sequence[PairRecord],
    *,
    sources: Sequence[str] = ("heads",),
    top_k: int = TOP_K,
    nms_threshold: float = NMS_THRESHOLD,
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
    dataset = PairDataset(records, source, limits=FrameLimits.of(cfg))
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


def predict_baseline(
    method: str,
    source: FeatureSource,
    records: Sequence[PairRecord],
    *,
    seed: int = 0,
    top_k: int = TOP_K,
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
        logger.warning(
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
