"""The paper's experiments (section 5, Tables 1-5) as named training variants and tables, for the notebooks.

A *variant* (:data:`VARIANTS`) is one way of training MATR, stated as data: which shared
pre-training run initialises it (if any), whether it is finetuned, and which config switches of
:mod:`matr.config` it flips. A *table* (:data:`TABLES`) lists its rows, each one variant or
baseline read from one prediction source, with the fields that match it to the paper's row in
``reported_results.json``. Everything is resumable and cached in the working folder::

    workdir/runs/pretrain, runs/pretrain_noaug   the two shared pre-training runs (with / without augmentation)
    workdir/runs/<variant>                        the finetuning run of each variant (matr.train.fit)
    workdir/eval/<split>/variants/<variant>/      predictions.jsonl + metrics.json (heads, A_pre, A_post)
    workdir/eval/<split>/baselines/<method>/      the same for Random and Video Match

``runs/pretrain`` (with augmentation) is shared by every variant that starts from pre-training.
Evaluations are reused while the checkpoint (path, size, modification time) and the evaluation
settings are unchanged. Artifacts for the report follow the contract of :mod:`matr.report`.

Choices where the paper is silent:

* Tables are computed on the test split (``EVAL_SPLIT``), whose classes no run saw in training, as
  the paper reports test numbers; every run is evaluated from the profile's checkpoint (``last``).
* Table 5 variants (TCC, Drop-DTW) are trained without pre-training, to save compute, and compared
  with the run without pre-training (``scratch``, soft-DTW); the paper's soft-DTW row is its full
  pre-trained model. Its "None" row is ``no_align`` (both alignment losses off, Table 2's first row).
* Table 1's text-VMR baselines are not re-implemented; ``encoder_only`` (MATR's projection, encoder
  and heads, without alignment losses and decoder, trained from scratch on video queries) stands in
  for their video-query variant (d) Trained+V.
* Only the runs shown as training curves (``finetuned``, ``scratch``) validate every epoch (unless
  the profile selects its ``best`` checkpoint); the ablation runs train without validation.
"""

from __future__ import annotations

import dataclasses
import io
import json
import logging
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from matr.align import alignment_cost
from matr.checkpoint import load_model
from matr.config import MATRConfig, override
from matr.data import PairDataset, PairRecord, PretrainingDataset, collate_pairs
from matr.evaluate import move_to_device, write_evaluation
from matr.inference import find_videos
from matr.io import read_jsonl, write_json, write_text
from matr.metrics import temporal_iou
from matr.pipeline import (
    BASELINES,
    MODEL_SOURCES,
    PreparedData,
    Workspace,
    evaluate_baseline,
    evaluate_checkpoint,
    feature_source,
    finetune_model,
    open_data,
    prepare_data,
    pretrain_model,
    run_info,
    silent_choices,
)
from matr.profiles import Profile, get_profile
from matr.provenance import provenance
from matr.report import reported_results
from matr.train import Distributed, resolve_device
from matr.video import SampledVideo, sample_frames

log = logging.getLogger(__name__)

EVAL_SPLIT = "test"
PRETRAINING_RUNS: Mapping[str, bool] = MappingProxyType({"pretrain": True, "pretrain_noaug": False})
"""Shared pre-training runs: run name -> whether its queries are augmented (paper 3.3, Table 3)."""
OUR_COLUMNS: tuple[str, ...] = ("mIoU", "R1@0.5", "R1@0.3", "R1@0.7", "R5@0.5", "VRL_IoU_mean", "num_pairs")
PAPER_COLUMNS: tuple[str, ...] = ("AN_mIoU", "AN_R1", "SM_mIoU", "SM_R1")


# --- Variants -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Variant:
    """One way of training MATR. ``overrides``: dotted :func:`matr.config.override` keys."""

    name: str
    description: str
    pretraining: str | None = None  # a key of PRETRAINING_RUNS, or None (random init)
    finetune: bool = True  # False: the pre-training checkpoint itself (zero-shot)
    overrides: tuple[tuple[str, Any], ...] = ()
    validate: bool = False  # validate every epoch (training curves)

    def __post_init__(self) -> None:
        if self.pretraining is not None and self.pretraining not in PRETRAINING_RUNS:
            raise ValueError(
                f"variant {self.name!r}: unknown pre-training run {self.pretraining!r}; "
                f"expected one of {sorted(PRETRAINING_RUNS)}"
            )
        if not self.finetune and self.pretraining is None:
            raise ValueError(f"variant {self.name!r} is neither pre-trained nor finetuned")
        if self.pretraining is not None and self.overrides:
            raise ValueError(
                f"variant {self.name!r}: pre-training runs use the profile's model, so a "
                "pre-trained variant cannot override it"
            )


_NO_ALIGNMENT = (("model.align_pre", False), ("model.align_post", False))
VARIANTS: Mapping[str, Variant] = MappingProxyType(
    {
        v.name: v
        for v in (
            Variant(
                "finetuned",
                "pre-trained with augmentation, then finetuned; both alignments (the full MATR)",
                pretraining="pretrain",
                validate=True,
            ),
            Variant("scratch", "finetuned from random init; both alignments", validate=True),
            Variant(
                "zero_shot",
                "pre-trained with augmentation only, never finetuned",
                pretraining="pretrain",
                finetune=False,
            ),
            Variant(
                "pretrained_noaug", "pre-trained without augmentation, then finetuned", pretraining="pretrain_noaug"
            ),
            Variant(
                "no_pre", "from random init, no pre-fusion alignment loss", overrides=(("model.align_pre", False),)
            ),
            Variant(
                "no_post", "from random init, no post-fusion alignment loss", overrides=(("model.align_post", False),)
            ),
            Variant("no_align", "from random init, no alignment loss at either stage", overrides=_NO_ALIGNMENT),
            Variant("tcc", "from random init, TCC alignment losses", overrides=(("model.align_method", "tcc"),)),
            Variant(
                "drop_dtw",
                "from random init, Drop-DTW alignment losses",
                overrides=(("model.align_method", "drop_dtw"),),
            ),
            Variant(
                "encoder_only",
                "from random init, no alignment and no decoder (stand-in for text-VMR, video query)",
                overrides=(("model.align_method", "none"), ("model.use_decoder", False)),
            ),
        )
    }
)


def get_variant(name: str) -> Variant:
    """The variant called ``name``; unknown names raise ``ValueError`` listing the known ones."""
    if name not in VARIANTS:
        raise ValueError(f"unknown variant {name!r}; expected one of {sorted(VARIANTS)}")
    return VARIANTS[name]


def notebook_profile(name: str, workdir: str | os.PathLike, *, seed: int, device: str) -> Profile:
    """The profile a notebook runs: preset ``name`` with ``seed`` and ``device``.

    A profile without data of its own (``paper``) reads the user's data folder from
    ``workdir/data`` (``annotations/{split}.jsonl|csv`` and ``videos/``), since the notebooks'
    parameters have no data path.
    """
    profile = get_profile(name).with_changes(seed=seed, device=device)
    if profile.synthetic is None and profile.data is None:
        profile = profile.with_changes(data=str(Workspace(Path(workdir)).data))
    return profile


def prepared_data(profile: Profile, workdir: str | os.PathLike) -> PreparedData:
    """The prepared data in ``workdir`` (:func:`matr.pipeline.open_data`), with a hint when there is none."""
    try:
        return open_data(profile, workdir)
    except FileNotFoundError as error:
        raise FileNotFoundError(
            f"{error}; prepare the data first (notebook 01_data_curation, or matr.pipeline.prepare_data)"
        ) from error


def ensure_data(profile: Profile, workdir: str | os.PathLike, *, progress: bool = False) -> PreparedData:
    """Render/extract what is missing (:func:`matr.pipeline.prepare_data`); data whose features are all
    stored is used as it is, so user-supplied features need no videos."""
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


def model_config(profile: Profile, name: str) -> MATRConfig:
    """The :class:`matr.config.MATRConfig` variant ``name`` trains: the profile's with its overrides."""
    return override(profile.model_config(), dict(get_variant(name).overrides))


def checkpoint_path(profile: Profile, workdir: str | os.PathLike, name: str) -> Path:
    """Where the checkpoint evaluated for variant ``name`` lives (it may not exist yet)."""
    variant, workspace = get_variant(name), Workspace(Path(workdir))
    if not variant.finetune:
        return workspace.run(variant.pretraining) / "last.pt"
    return workspace.run(name) / f"{profile.checkpoint}.pt"


def train_pretraining(
    profile: Profile, workdir: str | os.PathLike, run: str = "pretrain", *, progress: bool | None = None
) -> Path:
    """Self-supervised pre-training run ``run`` (a key of :data:`PRETRAINING_RUNS`); returns its last checkpoint."""
    if run not in PRETRAINING_RUNS:
        raise ValueError(f"unknown pre-training run {run!r}; expected one of {sorted(PRETRAINING_RUNS)}")
    if profile.pretrain_epochs == 0:
        raise ValueError(f"profile {profile.name!r} has pretrain_epochs=0: it cannot pre-train (run {run!r})")
    prepared = prepared_data(profile, workdir)
    videos = sorted({record.target_video for record in prepared.records(profile.train_split)})
    settings = dataclasses.replace(profile.pretrain_config(), augment=PRETRAINING_RUNS[run])
    result = pretrain_model(
        profile.model_config(),
        profile.train_config(profile.pretrain_epochs),
        feature_source(prepared.store),
        videos,
        Workspace(Path(workdir)).run(run),
        pretrain_config=settings,
        progress=progress,
        info=run_info(prepared, dataset=profile.dataset, split=profile.train_split, profile=profile.name, run=run),
    )
    return result.last_checkpoint


def train_variant(profile: Profile, workdir: str | os.PathLike, name: str, *, progress: bool | None = None) -> Path:
    """Train variant ``name`` (and its pre-training run) unless done; returns the checkpoint to evaluate.

    Resumable: :func:`matr.train.fit` continues an interrupted run, does nothing for a finished one,
    and refuses a run folder written with other settings.
    """
    variant = get_variant(name)
    init = (
        None
        if variant.pretraining is None
        else train_pretraining(profile, workdir, variant.pretraining, progress=progress)
    )
    if not variant.finetune:
        return init
    prepared = prepared_data(profile, workdir)
    validate = variant.validate or profile.checkpoint == "best"
    finetune_model(
        model_config(profile, name),
        profile.train_config(profile.finetune_epochs),
        feature_source(prepared.store),
        prepared.records(profile.train_split),
        Workspace(Path(workdir)).run(name),
        val_records=prepared.records(profile.val_split) if validate else None,
        init_from=init,
        info=run_info(prepared, dataset=profile.dataset, split=profile.train_split, profile=profile.name, variant=name),
        progress=progress,
    )
    return checkpoint_path(profile, workdir, name)


def train_variants(
    profile: Profile, workdir: str | os.PathLike, names: Iterable[str], *, progress: bool | None = None
) -> dict[str, Path]:
    """:func:`train_variant` for each of ``names`` in order; ``progress``: one bar over the variants.

    The training loop's own per-batch bars stay off: in a notebook they would store one output per batch.
    """
    names = list(names)
    return {
        name: train_variant(profile, workdir, name, progress=False)
        for name in tqdm(names, desc="variants", unit="run", disable=_disable(progress))
    }


def train_pretraining_runs(
    profile: Profile,
    workdir: str | os.PathLike,
    runs: Iterable[str] = tuple(PRETRAINING_RUNS),
    *,
    progress: bool | None = None,
) -> dict[str, Path]:
    """:func:`train_pretraining` for each of ``runs``; ``progress``: one bar over the runs."""
    runs = list(runs)
    return {
        run: train_pretraining(profile, workdir, run, progress=False)
        for run in tqdm(runs, desc="pre-training runs", unit="run", disable=_disable(progress))
    }


def _disable(progress: bool | None) -> bool | None:
    """tqdm's ``disable``: ``None`` lets tqdm hide the bar when not writing to a terminal."""
    return None if progress is None else not progress


# --- Evaluation ---------------------------------------------------------------------------------


def evaluation_dir(workdir: str | os.PathLike, method: str, split: str = EVAL_SPLIT) -> Path:
    """Folder of the predictions and metrics of a variant or baseline on ``split``."""
    kind = "baselines" if method in BASELINES else "variants"
    return Workspace(Path(workdir)).evaluation(split) / kind / method


def evaluate_variant(
    profile: Profile,
    workdir: str | os.PathLike,
    name: str,
    split: str = EVAL_SPLIT,
    sources: Sequence[str] = ("heads",),
    *,
    progress: bool | None = None,
) -> dict[str, dict]:
    """Metrics ``source -> {metric: value}`` of variant ``name`` on ``split`` (trained first if needed).

    Every prediction source (heads, A_pre, A_post) is evaluated and cached at once: the model
    computes both hard alignments in eval mode anyway. ``progress``: the prediction bar.
    """
    _check_sources(sources)
    checkpoint = train_variant(profile, workdir, name, progress=False)
    stat = checkpoint.stat()
    prepared = prepared_data(profile, workdir)
    records = prepared.records(split)
    signature = {
        "checkpoint": str(checkpoint.resolve()),
        "mtime_ns": stat.st_mtime_ns,
        "size": stat.st_size,
        "split": split,
        "pairs": len(records),
        "top_k": profile.top_k,
        "nms_threshold": profile.nms_threshold,
    }
    folder = evaluation_dir(workdir, name, split)
    scores = _cached_metrics(folder, signature)
    if scores is None:
        device = str(resolve_device(profile.device, Distributed()))
        result, stored = evaluate_checkpoint(
            checkpoint,
            feature_source(prepared.store),
            records,
            sources=MODEL_SOURCES,
            top_k=profile.top_k,
            nms_threshold=profile.nms_threshold,
            device=device,
            progress=progress,
        )
        record = provenance(
            **_base_provenance(profile, prepared, split),
            method="MATR",
            variant=name,
            epoch=stored.get("epoch"),
            config=stored.get("config"),
            signature=signature,
        )
        scores = write_evaluation(folder, result, record)
    return {source: scores[source] for source in sources}


def evaluate_baseline_method(
    profile: Profile, workdir: str | os.PathLike, method: str, split: str = EVAL_SPLIT
) -> dict[str, float]:
    """Metrics of the training-free baseline ``method`` (``random`` or ``video_match``) on ``split``, cached."""
    prepared = prepared_data(profile, workdir)
    records = prepared.records(split)
    signature = {
        "method": method,
        "split": split,
        "pairs": len(records),
        "seed": profile.seed,
        "top_k": profile.top_k,
        "weights_tag": prepared.weights_tag,
    }
    folder = evaluation_dir(workdir, method, split)
    scores = _cached_metrics(folder, signature)
    if scores is None:
        result = evaluate_baseline(
            method, feature_source(prepared.store), records, seed=profile.seed, top_k=profile.top_k
        )
        record = provenance(**_base_provenance(profile, prepared, split), method=method, signature=signature)
        scores = write_evaluation(folder, result, record)
    return scores[method]


def evaluate_method(
    profile: Profile,
    workdir: str | os.PathLike,
    method: str,
    split: str = EVAL_SPLIT,
    source: str = "heads",
    *,
    progress: bool | None = None,
) -> dict[str, float]:
    """Metrics of a variant (from ``source``) or a baseline: the one entry point the tables use."""
    if method in BASELINES:
        return evaluate_baseline_method(profile, workdir, method, split)
    return evaluate_variant(profile, workdir, method, split, (source,), progress=progress)[source]


def load_predictions(
    workdir: str | os.PathLike, method: str, split: str = EVAL_SPLIT, source: str | None = None
) -> dict[str, list[list[float]]]:
    """``pair_id -> [[start, end, score], ...]`` (best first) of an evaluated variant or baseline.

    ``source`` defaults to ``heads`` for variants and to the method's own name for baselines.
    """
    path = evaluation_dir(workdir, method, split) / "predictions.jsonl"
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist: evaluate {method!r} on {split!r} first")
    wanted = source or (method if method in BASELINES else "heads")
    return {r["pair_id"]: r["spans"] for r in read_jsonl(path) if r["source"] == wanted}


def _check_sources(sources: Sequence[str]) -> None:
    unknown = sorted(set(sources) - set(MODEL_SOURCES))
    if unknown or not sources:
        raise ValueError(f"unknown prediction sources {unknown}; expected some of {list(MODEL_SOURCES)}")


def _cached_metrics(folder: Path, signature: Mapping[str, Any]) -> dict[str, dict] | None:
    path = folder / "metrics.json"
    if not (path.is_file() and (folder / "predictions.jsonl").is_file()):
        return None
    stored = json.loads(path.read_text(encoding="utf-8"))
    if stored.get("provenance", {}).get("signature") != json.loads(json.dumps(signature)):
        return None
    log.info("%s is up to date; evaluation reused", path)
    return stored["metrics"]


def _base_provenance(profile: Profile, prepared: PreparedData, split: str | None) -> dict[str, Any]:
    record = {
        "profile": profile.name,
        "seed": profile.seed,
        "weights_tag": prepared.weights_tag,
        "dataset": profile.dataset,
    }
    return record if split is None else {**record, "split": split}


# --- Tables -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RowSpec:
    """One row of a table: ``method`` (a variant or baseline) read from ``source``; ``match``: paper fields."""

    label: str
    method: str
    match: tuple[tuple[str, Any], ...]
    source: str = "heads"


@dataclass(frozen=True)
class TableSpec:
    """A table of the paper: its key in ``reported_results.json``, how to show it, and its rows."""

    key: str
    title: str
    caption: str
    paper_match: tuple[str, ...]
    rows: tuple[RowSpec, ...]

    @property
    def methods(self) -> list[str]:
        """The variants and baselines of the rows, in order, without repeats."""
        return list(dict.fromkeys(row.method for row in self.rows))

    @property
    def variants(self) -> list[str]:
        """The variants the table needs trained."""
        return [method for method in self.methods if method in VARIANTS]


def _mv(method: str, variant: str) -> tuple[tuple[str, Any], ...]:
    return (("method", method), ("variant", variant))


def _prepost(pre: bool, post: bool) -> tuple[tuple[str, Any], ...]:
    return (("pre_fusion", pre), ("post_fusion", post))


_TEST = (
    "Ours: the test split, whose classes are unseen in training; metrics in percent, as "
    "matr.metrics computes them (no adjustment)."
)
TABLES: Mapping[str, TableSpec] = MappingProxyType(
    {
        t.key: t
        for t in (
            TableSpec(
                "table1_main",
                "Table 1: MATR against the baselines",
                "Random and Video Match are the training-free baselines of Feng et al. (matr.baselines). MATR "
                "zero-shot is the self-supervised pre-training checkpoint alone; Trained+V starts from random init; "
                "Finetuned+V is pre-trained (with augmentation) then finetuned. The encoder-only model (no "
                "alignment, no decoder, trained from scratch) stands in for the text-VMR methods' video-query "
                "variant (d) Trained+V, which the kit does not re-implement (nor the VLM and image-VMR rows). " + _TEST,
                ("method", "variant"),
                (
                    RowSpec("Random", "random", _mv("Random", "-")),
                    RowSpec("Video Match", "video_match", _mv("Video Match", "-")),
                    RowSpec(
                        "Encoder only, no alignment, no decoder (Trained+V)",
                        "encoder_only",
                        _mv("MATR encoder only", "Trained+V"),
                    ),
                    RowSpec("MATR zero-shot (pre-trained only)", "zero_shot", _mv("MATR", "Zero-shot")),
                    RowSpec("MATR Trained+V (no pre-training)", "scratch", _mv("MATR", "Trained+V")),
                    RowSpec("MATR Finetuned+V (pre-trained, finetuned)", "finetuned", _mv("MATR", "Finetuned+V")),
                ),
            ),
            TableSpec(
                "table2_dual_alignment",
                "Table 2: dual-stage alignment",
                "The soft-DTW alignment loss on the projected features (pre-fusion) and on the encoder's outputs "
                "(post-fusion), switched off one at a time (model.align_pre, model.align_post). Every run "
                "starts from random init, as in the paper. " + _TEST,
                ("pre_fusion", "post_fusion"),
                (
                    RowSpec("neither stage", "no_align", _prepost(False, False)),
                    RowSpec("post-fusion only", "no_pre", _prepost(False, True)),
                    RowSpec("pre-fusion only", "no_post", _prepost(True, False)),
                    RowSpec("both stages (MATR)", "scratch", _prepost(True, True)),
                ),
            ),
            TableSpec(
                "table3_pretraining",
                "Table 3: self-supervised pre-training and its augmentation",
                "MATR finetuned from random init, from pre-training without augmented queries, and from "
                "pre-training with them (reverse, noise, slow, fast; matr.data.pretraining). Pre-training uses "
                "the training split's target videos (the paper adds Kinetics-700). " + _TEST,
                ("pretraining", "augmentation"),
                (
                    RowSpec("no pre-training", "scratch", (("pretraining", False), ("augmentation", None))),
                    RowSpec(
                        "pre-training, no augmentation",
                        "pretrained_noaug",
                        (("pretraining", True), ("augmentation", False)),
                    ),
                    RowSpec(
                        "pre-training with augmentation", "finetuned", (("pretraining", True), ("augmentation", True))
                    ),
                ),
            ),
            TableSpec(
                "table4_heads_vs_alignment",
                "Table 4: predicting from the heads or from the alignment matrices",
                "One model, the full MATR (pre-trained, finetuned), read three ways: the target span covered by the "
                "hard alignment path A_pre or A_post (one prediction per pair), or the prediction heads after "
                "NMS. " + _TEST,
                ("predict_from",),
                (
                    RowSpec("span of A_pre", "finetuned", (("predict_from", "pre-fusion alignment (A_pre)"),), "A_pre"),
                    RowSpec(
                        "span of A_post", "finetuned", (("predict_from", "post-fusion alignment (A_post)"),), "A_post"
                    ),
                    RowSpec("prediction heads", "finetuned", (("predict_from", "prediction heads"),), "heads"),
                ),
            ),
            TableSpec(
                "table5_alignment_methods",
                "Table 5: alignment methods",
                "The alignment loss at both stages: none, TCC, Drop-DTW or soft-DTW (model.align_method). To save "
                "compute every run here starts from random init: 'None' is the run without alignment of Table 2 "
                "and soft-DTW the run without pre-training of Tables 2 and 3, whereas the paper's soft-DTW row is "
                "its full pre-trained model. " + _TEST,
                ("alignment",),
                (
                    RowSpec("None", "no_align", (("alignment", "None"),)),
                    RowSpec("TCC", "tcc", (("alignment", "TCC"),)),
                    RowSpec("Drop-DTW", "drop_dtw", (("alignment", "Drop-DTW"),)),
                    RowSpec("soft-DTW", "scratch", (("alignment", "soft-DTW"),)),
                ),
            ),
        )
    }
)


def get_table(key: str) -> TableSpec:
    """The table ``key`` of :data:`TABLES` (a key of ``reported_results.json``)."""
    if key not in TABLES:
        raise ValueError(f"unknown table {key!r}; expected one of {sorted(TABLES)}")
    return TABLES[key]


def table_rows(
    profile: Profile, workdir: str | os.PathLike, key: str, split: str = EVAL_SPLIT, *, progress: bool | None = None
) -> list[dict[str, Any]]:
    """Rows ``{"label", <paper_match fields>, "metrics"}`` of table ``key`` (the artifact contract's format).

    Variants not yet trained are trained first; evaluations are cached.
    """
    return [
        {
            "label": row.label,
            **dict(row.match),
            "metrics": evaluate_method(profile, workdir, row.method, split, row.source, progress=progress),
        }
        for row in get_table(key).rows
    ]


def table1(profile: Profile, workdir: str | os.PathLike, split: str = EVAL_SPLIT, **options: Any) -> list[dict]:
    """Rows of Table 1 (main results): baselines, encoder-only, MATR zero-shot / Trained+V / Finetuned+V."""
    return table_rows(profile, workdir, "table1_main", split, **options)


def table2(profile: Profile, workdir: str | os.PathLike, split: str = EVAL_SPLIT, **options: Any) -> list[dict]:
    """Rows of Table 2 (pre-/post-fusion alignment on or off, no pre-training)."""
    return table_rows(profile, workdir, "table2_dual_alignment", split, **options)


def table3(profile: Profile, workdir: str | os.PathLike, split: str = EVAL_SPLIT, **options: Any) -> list[dict]:
    """Rows of Table 3 (no pre-training, pre-training without and with augmentation)."""
    return table_rows(profile, workdir, "table3_pretraining", split, **options)


def table4(profile: Profile, workdir: str | os.PathLike, split: str = EVAL_SPLIT, **options: Any) -> list[dict]:
    """Rows of Table 4 (the full model's A_pre span, A_post span and heads)."""
    return table_rows(profile, workdir, "table4_heads_vs_alignment", split, **options)


def table5(profile: Profile, workdir: str | os.PathLike, split: str = EVAL_SPLIT, **options: Any) -> list[dict]:
    """Rows of Table 5 (no alignment, TCC, Drop-DTW, soft-DTW; all without pre-training)."""
    return table_rows(profile, workdir, "table5_alignment_methods", split, **options)


def table_frame(rows: Sequence[Mapping[str, Any]], key: str) -> pd.DataFrame:
    """One line per row: label, paper_match fields, our metrics, then the matching paper row's numbers."""
    spec = get_table(key)
    paper = reported_results()[key]
    lines = []
    for row in rows:
        match = paper_row(row, paper, spec.paper_match)
        lines.append(
            {
                "label": row["label"],
                **{name: row[name] for name in spec.paper_match},
                **{name: row["metrics"].get(name) for name in OUR_COLUMNS},
                **{f"paper_{name}": (match or {}).get(name) for name in PAPER_COLUMNS},
            }
        )
    return pd.DataFrame(lines)


def paper_row(
    row: Mapping[str, Any], paper_rows: Sequence[Mapping[str, Any]], fields: Sequence[str]
) -> Mapping[str, Any] | None:
    """The paper's row whose ``fields`` all equal ``row``'s (None if there is none or ``fields`` is empty)."""
    hits = [paper for paper in paper_rows if fields and all(paper.get(name, object()) == row[name] for name in fields)]
    if len(hits) > 1:
        raise ValueError(f"row {row['label']!r} matches {len(hits)} rows of the paper on {list(fields)}")
    return hits[0] if hits else None


# --- Artifacts (matr.report's ARTIFACT CONTRACT) ------------------------------------------------


def artifact_dir(artifacts: str | os.PathLike, stem: str) -> Path:
    """``artifacts/<stem>/``, created."""
    folder = Path(artifacts) / stem
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def notebook_provenance(
    profile: Profile, workdir: str | os.PathLike, split: str | None = None, **extra: Any
) -> dict[str, Any]:
    """The provenance record of a notebook's artifacts (profile, seed, weights tag, dataset[, split])."""
    prepared = prepared_data(profile, workdir)
    return provenance(**_base_provenance(profile, prepared, split), workdir=str(Path(workdir).resolve()), **extra)


def write_provenance(
    artifacts: str | os.PathLike,
    stem: str,
    profile: Profile,
    workdir: str | os.PathLike,
    split: str | None = None,
    **extra: Any,
) -> Path:
    """Write ``artifacts/<stem>/provenance.json``; returns its path."""
    path = artifact_dir(artifacts, stem) / "provenance.json"
    write_json(path, notebook_provenance(profile, workdir, split, **extra))
    return path


def write_table_artifact(
    artifacts: str | os.PathLike,
    stem: str,
    key: str,
    rows: Sequence[Mapping[str, Any]],
    *,
    profile: Profile,
    workdir: str | os.PathLike,
    split: str = EVAL_SPLIT,
) -> Path:
    """Write ``table.json``, ``table.csv`` (:func:`table_frame`) and ``provenance.json`` into ``artifacts/<stem>/``.

    Title, caption and ``paper_match`` come from :data:`TABLES`. Returns the ``table.json`` path.
    """
    spec = get_table(key)
    folder = artifact_dir(artifacts, stem)
    runs = {
        row.method: str(checkpoint_path(profile, workdir, row.method)) for row in spec.rows if row.method in VARIANTS
    }
    record = notebook_provenance(profile, workdir, split, runs=runs)
    write_json(
        folder / "table.json",
        {
            "table": key,
            "title": spec.title,
            "caption": spec.caption,
            "dataset": profile.dataset,
            "split": split,
            "paper_match": list(spec.paper_match),
            "rows": [dict(row) for row in rows],
            "provenance": record,
        },
    )
    write_csv(folder / "table.csv", table_frame(rows, key))
    write_json(folder / "provenance.json", record)
    return folder / "table.json"


def write_csv(path: str | os.PathLike, frame: pd.DataFrame) -> None:
    """Atomically write ``frame`` as CSV (no index)."""
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False, lineterminator="\n")
    write_text(path, buffer.getvalue())


def choices(profile: Profile) -> list[dict[str, str]]:
    """Choices where the paper is silent, as ``choices.json`` entries ``{"what", "choice", "where"}``.

    The experiments' own (with the values of ``profile``), then those the library's docstrings and
    config comments declare (:func:`matr.pipeline.silent_choices`).
    """
    model, pre = profile.model_config().model, profile.pretrain_config()
    entries = [
        (
            "evaluation split",
            f"every table is computed on the '{EVAL_SPLIT}' split (classes unseen in training), "
            f"from each run's '{profile.checkpoint}' checkpoint",
            "matr.experiments",
        ),
        (
            "soft-min smoothing gamma",
            f"{model.gamma} (the paper: 'selected empirically', no value)",
            "matr.config.ModelConfig",
        ),
        ("alignment cost", f"'{model.align_cost}' for the losses and the hard alignments", "matr.config.ModelConfig"),
        (
            "fusion of E_t^g and E_t^l",
            f"'{model.fusion}': every target frame attends to the l decoder outputs, "
            "concatenated channel-wise with E_t^g",
            "matr.model",
        ),
        (
            "pre-training clip lengths",
            f"uniform from {pre.min_clip_seconds:g} s to {pre.max_clip_fraction:.0%} of the "
            "video, in whole feature frames",
            "matr.data.pretraining",
        ),
        (
            "pre-training noise",
            f"Gaussian on CLIP features, sigma {pre.noise_sigma:g} x the clip's feature std",
            "matr.data.pretraining",
        ),
        (
            "pre-training speed factors",
            f"slow {pre.slow_factor:g}x, fast {pre.fast_factor:g}x (frames resampled)",
            "matr.data.pretraining",
        ),
        (
            "Table 5 training",
            "without pre-training (compared with the run without pre-training); the paper's "
            "soft-DTW row is its pre-trained model",
            "matr.experiments",
        ),
        (
            "Table 1 text-VMR stand-in",
            "an encoder-only model (no alignment, no decoder) trained from scratch on video queries",
            "matr.experiments",
        ),
        (
            "validation during training",
            "only the runs shown as curves (finetuned, scratch) validate every epoch",
            "matr.experiments",
        ),
    ]
    found = [dict(what=what, choice=choice, where=where) for what, choice, where in entries]
    for source, statements in silent_choices().items():
        found += [_choice(statement, source) for statement in statements]
    return found


_CONFIG_CHOICE = re.compile(r"^(?P<name>\w+ = [^:]+): (?P<why>.+)$")
_TOPICS = {
    "matr.features": "CLIP features",
    "matr.model": "model",
    "matr.data.pretraining": "pre-training pairs",
    "matr.inference": "inference on long videos",
    "matr.profiles": "run profiles",
}


def _choice(statement: str, source: str) -> dict[str, str]:
    """A ``choices.json`` entry from a statement ``"name = value: why"`` or ``"Topic: details"``."""
    field = _CONFIG_CHOICE.match(statement)
    if field:
        return {"what": field["name"], "choice": field["why"], "where": source}
    head, colon, rest = statement.partition(": ")
    if colon and len(head) <= 50 and "(" not in head:
        return {"what": head, "choice": rest, "where": source}
    return {"what": _TOPICS.get(source, source), "choice": statement, "where": source}


def write_choices(artifacts: str | os.PathLike, stem: str, profile: Profile) -> Path:
    """Write ``artifacts/<stem>/choices.json`` (:func:`choices`); returns its path."""
    path = artifact_dir(artifacts, stem) / "choices.json"
    write_json(path, choices(profile))
    return path


# --- Data and runs as tables --------------------------------------------------------------------


def pairs_frame(profile: Profile, workdir: str | os.PathLike) -> pd.DataFrame:
    """One line per pair of every split: class, videos, target duration, moment and query lengths (s)."""
    prepared = prepared_data(profile, workdir)
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


def split_order(splits: Iterable[str]) -> list[str]:
    """``splits`` as train, val, test, then any others alphabetically."""
    splits = set(splits)
    known = [split for split in ("train", "val", "test") if split in splits]
    return known + sorted(splits - set(known))


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
    store = prepared_data(profile, workdir).store
    columns = ("video_id", "num_frames", "duration", "clip_length", "feature_dim", "weights_tag")
    return pd.DataFrame([{key: store.info(video)[key] for key in columns} for video in store.video_ids()])


def pretraining_frame(
    profile: Profile, workdir: str | os.PathLike, augment: bool = True, count: int = 8
) -> pd.DataFrame:
    """The first ``count`` self-supervised pre-training samples of epoch 0: video, clip, augmentation, lengths."""
    prepared = prepared_data(profile, workdir)
    cfg = profile.model_config().model
    videos = sorted({record.target_video for record in prepared.records(profile.train_split)})
    dataset = PretrainingDataset(
        videos,
        feature_source(prepared.store),
        dataclasses.replace(profile.pretrain_config(), augment=augment),
        max_query_frames=cfg.max_query_frames,
        max_target_frames=cfg.max_target_frames,
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


def curves_frame(workdir: str | os.PathLike, runs: Sequence[str]) -> pd.DataFrame:
    """Training curves of ``runs`` (folders under ``workdir/runs``): ``run, epoch, <quantity>...`` per epoch."""
    frames = []
    for run in runs:
        path = Workspace(Path(workdir)).run(run) / "metrics.jsonl"
        if not path.is_file():
            raise FileNotFoundError(f"{path} does not exist: train run {run!r} first")
        frames.append(pd.DataFrame(read_jsonl(path)).assign(run=run))
    frame = pd.concat(frames, ignore_index=True)
    rest = sorted(column for column in frame.columns if column not in ("run", "epoch"))
    return frame[["run", "epoch", *rest]]


def runs_frame(profile: Profile, workdir: str | os.PathLike, names: Sequence[str]) -> pd.DataFrame:
    """One line per variant: description, initialisation, overrides, epochs trained, training seconds."""
    lines = []
    for name in names:
        variant = get_variant(name)
        runs = ([variant.pretraining] if variant.pretraining else []) + ([name] if variant.finetune else [])
        history = [record for run in runs for record in _history(workdir, run)]
        lines.append(
            {
                "variant": name,
                "description": variant.description,
                "init": variant.pretraining or "random",
                "overrides": dict(variant.overrides) or "-",
                "epochs": len(history),
                "train_seconds": round(sum(r.get("seconds", 0.0) for r in history), 1),
                "checkpoint": str(checkpoint_path(profile, workdir, name)),
            }
        )
    return pd.DataFrame(lines)


def _history(workdir: str | os.PathLike, run: str) -> list[dict[str, Any]]:
    path = Workspace(Path(workdir)).run(run) / "metrics.jsonl"
    return read_jsonl(path) if path.is_file() else []


# --- Qualitative: one pair ----------------------------------------------------------------------

QUALITATIVE_METHODS: Mapping[str, str] = MappingProxyType(
    {"MATR": "finetuned", "Encoder only (Trained+V)": "encoder_only", "Video Match": "video_match", "Random": "random"}
)
"""Label -> variant or baseline of the spans in the Fig. 4-style figure (MATR first, as in the paper)."""


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
    for record in prepared_data(profile, workdir).records(split):
        if record.pair_id == pair_id:
            return record
    raise KeyError(f"no pair {pair_id!r} in split {split!r}")


def top1_ious(profile: Profile, workdir: str | os.PathLike, method: str, split: str = EVAL_SPLIT) -> pd.Series:
    """IoU of the top-1 prediction of ``method`` with the ground truth, per pair id (0 to 1)."""
    predictions = load_predictions(workdir, method, split)
    records = [r for r in prepared_data(profile, workdir).records(split) if r.pair_id in predictions and r.windows]
    ious = {r.pair_id: temporal_iou(predictions[r.pair_id][0][:2], r.windows[0]) for r in records}
    return pd.Series(ious, name=f"{method} top-1 IoU").sort_index()


def top1_iou_frame(
    profile: Profile,
    workdir: str | os.PathLike,
    methods: Mapping[str, str] = QUALITATIVE_METHODS,
    split: str = EVAL_SPLIT,
) -> pd.DataFrame:
    """Rows ``method, pair_id, iou`` of :func:`top1_ious` for each of ``methods`` (label -> variant or baseline)."""
    frames = [
        top1_ious(profile, workdir, method, split)
        .rename("iou")
        .rename_axis("pair_id")
        .reset_index()
        .assign(method=label)
        for label, method in methods.items()
    ]
    return pd.concat(frames, ignore_index=True)[["method", "pair_id", "iou"]]


def pick_pairs(
    profile: Profile, workdir: str | os.PathLike, method: str = "finetuned", split: str = EVAL_SPLIT
) -> dict[str, str]:
    """Two pairs to show: ``{"highest IoU": id, "median IoU": id}`` by ``method``'s top-1 IoU (ties: pair id)."""
    ious = top1_ious(profile, workdir, method, split)
    if ious.empty:
        raise ValueError(f"no evaluated pair with a ground truth in split {split!r}")
    ranked = sorted(ious.items(), key=lambda item: (-item[1], item[0]))
    return {"highest IoU": ranked[0][0], "median IoU": ranked[len(ranked) // 2][0]}


def video_paths(profile: Profile, workdir: str | os.PathLike) -> dict[str, Path]:
    """Video id -> file of the profile's videos (``{}`` when the folder does not exist)."""
    root = Workspace(Path(workdir)).data if profile.synthetic is not None else Path(profile.data or "")
    folder = root / "videos"
    return find_videos(folder) if folder.is_dir() else {}


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
        label: tuple(load_predictions(workdir, method, split)[pair_id][0][:2]) for label, method in methods.items()
    }
    videos = video_paths(profile, workdir)
    query = target = None
    if record.query_video in videos and record.target_video in videos:
        query = _frames(videos[record.query_video], record.query_window, profile.clip_length, frame_size)
        step = max(profile.clip_length, record.duration / target_frames)
        target = _frames(videos[record.target_video], record.target_window, step, frame_size)
    return Example(record, record.windows[0], spans, query, target)


def _frames(path: Path, window: tuple[float, float] | None, step: float, size: int) -> SampledVideo:
    start, end = window if window is not None else (0.0, None)
    return sample_frames(path, step, start=start, end=end, size=size)


def alignment_view(
    profile: Profile, workdir: str | os.PathLike, pair_id: str, split: str = EVAL_SPLIT, variant: str = "finetuned"
) -> AlignmentView:
    """Cost matrices and hard alignment paths of ``variant`` on one pair, before and after the encoder.

    The projected features E_t, E_q and the encoder outputs E_t^g, E_q^g are captured with forward
    hooks on the model's projection and last encoder layer while it runs on the pair; the costs are
    :func:`matr.align.alignment_cost` of them, the paths the model's own A_pre and A_post.
    """
    prepared = prepared_data(profile, workdir)
    device = resolve_device(profile.device, Distributed())
    model, _ = load_model(train_variant(profile, workdir, variant), device)
    cfg = model.config
    dataset = PairDataset(
        [find_record(profile, workdir, pair_id, split)],
        feature_source(prepared.store),
        max_query_frames=cfg.max_query_frames,
        max_target_frames=cfg.max_target_frames,
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
