"""What a notebook leaves for the report in ``artifacts/<stem>/`` (the contract of :mod:`matr.reporting.artifacts`).

``provenance.json`` (every notebook), ``table.json`` + ``table.csv`` (the table notebooks; a further
table of a notebook: ``table_<key>.json`` + ``table_<key>.csv``) and
``choices.json``: the choices where the paper is silent declared (:func:`matr.choices.declare`) by
the modules the notebook uses, :data:`NOTEBOOK_MODULES`, so the report credits each choice to the
notebooks whose results depend on it.
"""

from __future__ import annotations

import importlib
import io
import os
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pandas as pd

from matr.choices import choices_of
from matr.experiments.compose import compose, run_seeds
from matr.experiments.evaluation import EVAL_SPLIT
from matr.experiments.profiles import Profile
from matr.experiments.results import table_frame, verdict_frame
from matr.experiments.runs import checkpoint_path
from matr.experiments.tables import get_table
from matr.experiments.workspace import open_data
from matr.io import write_json, write_text
from matr.provenance import provenance

_DATA = ("matr.data", "matr.synthetic", "matr.features", "matr.experiments.workspace", "matr.experiments.profiles")
_TRAINING = ("matr.config", "matr.model", "matr.losses", "matr.align", "matr.train", "matr.experiments.compose")
_TABLES = (
    *_TRAINING,
    "matr.experiments.variants",
    "matr.experiments.runs",
    "matr.experiments.evaluation",
    "matr.experiments.tables",
    "matr.postprocess",
    "matr.baselines",
    "matr.metrics",
    "matr.stats",
)
NOTEBOOK_MODULES: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "01_data_curation": _DATA,
        "02_pretraining": (*_TRAINING, "matr.data.pretraining", "matr.experiments.runs"),
        "03_finetuning": (*_TRAINING, "matr.experiments.variants", "matr.experiments.runs"),
        "04_table1_main_results": _TABLES,
        "05_table2_dual_alignment": _TABLES,
        "06_table3_pretraining": (*_TABLES, "matr.data.pretraining"),
        "07_table4_heads_vs_alignment": _TABLES,
        "08_table5_alignment_methods": _TABLES,
        "09_qualitative_figures": (
            *_TRAINING,
            "matr.postprocess",
            "matr.experiments.evaluation",
            "matr.experiments.views",
        ),
    }
)
"""Notebook stem -> the modules whose choices its results depend on (a package includes its submodules)."""


def artifact_dir(artifacts: str | os.PathLike, stem: str) -> Path:
    """``artifacts/<stem>/``, created."""
    folder = Path(artifacts) / stem
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def notebook_provenance(
    profile: Profile, workdir: str | os.PathLike, split: str | None = None, **extra: Any
) -> dict[str, Any]:
    """The provenance record of a notebook's artifacts (profile, seed, weights tag, dataset[, split])."""
    prepared = open_data(profile, workdir)
    record = {"profile": profile.name, "seed": profile.seed, "weights_tag": prepared.weights_tag}
    record |= {"dataset": prepared.dataset} | ({} if split is None else {"split": split})
    return provenance(**record, workdir=str(Path(workdir).resolve()), **extra)


def write_provenance(
    artifacts: str | os.PathLike, stem: str, profile: Profile, workdir: str | os.PathLike, split: str | None = None
) -> Path:
    """Write ``artifacts/<stem>/provenance.json``; returns its path."""
    path = artifact_dir(artifacts, stem) / "provenance.json"
    write_json(path, notebook_provenance(profile, workdir, split))
    return path


def write_choices(artifacts: str | os.PathLike, stem: str) -> Path:
    """Write ``artifacts/<stem>/choices.json``: the declared choices of ``NOTEBOOK_MODULES[stem]``."""
    modules = NOTEBOOK_MODULES[stem]
    for name in modules:
        importlib.import_module(name)
    path = artifact_dir(artifacts, stem) / "choices.json"
    write_json(path, [choice.as_dict() for choice in choices_of(modules)])
    return path


def write_table_artifact(
    artifacts: str | os.PathLike,
    stem: str,
    result: Mapping[str, Any],
    *,
    profile: Profile,
    workdir: str | os.PathLike,
    main: bool = True,
) -> Path:
    """Write ``table.json``, ``table.csv``, ``verdicts.csv``, ``provenance.json`` and ``choices.json`` of a table.

    ``result``: :func:`matr.experiments.results.table_result`. ``main=False``: a further table of the
    notebook, written as ``table_<key>.json``, ``table_<key>.csv`` and ``verdicts_<key>.csv`` only (the
    report shows it after the notebook's table). Returns the path of the table's JSON.
    """
    spec = get_table(result["table"])
    suffix = "" if main else f"_{spec.key}"
    folder = artifact_dir(artifacts, stem)
    runs = {
        f"{method}/seed{seed}": str(checkpoint_path(workdir, compose(profile, method, seed)))
        for method in spec.variants
        for seed in run_seeds(profile, method)
    }
    record = notebook_provenance(profile, workdir, result.get("split", EVAL_SPLIT), runs=runs)
    table = {"title": spec.title, "caption": spec.caption, "dataset": record["dataset"]}
    path = folder / f"table{suffix}.json"
    write_json(path, {**result, **table, "paper_match": list(spec.paper_match), "provenance": record})
    write_csv(folder / f"table{suffix}.csv", table_frame(result))
    write_csv(folder / f"verdicts{suffix}.csv", verdict_frame(result))
    if main:
        write_json(folder / "provenance.json", record)
        write_choices(artifacts, stem)
    return path


def write_csv(path: str | os.PathLike, frame: pd.DataFrame) -> None:
    """Atomically write ``frame`` as CSV (no index)."""
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False, lineterminator="\n")
    write_text(path, buffer.getvalue())
