"""The paper's experiments (section 5, Tables 1-5), from a notebook cell to trained and evaluated runs.

One module per job, imports going down the list:

* :mod:`.profiles`: run profiles as data (``profiles/*.toml``): data, model preset, optimisation;
* :mod:`.variants`: the named ways of training MATR behind the tables, as data;
* :mod:`.compose`: ``compose(profile, variant, seed)`` -> the full frozen :class:`RunConfig`;
* :mod:`.workspace`: the working folder, data rendering / reading and feature extraction;
* :mod:`.runs`: :func:`train_variants`, the only training entry point;
* :mod:`.evaluation`: cached evaluation of what training left (never trains);
* :mod:`.tables`: the tables' rows and claimed orderings, the paper's numbers;
* :mod:`.results`: cells with bootstrap intervals and a verdict per claim;
* :mod:`.frames`, :mod:`.views`: DataFrames and single-pair views for the figures;
* :mod:`.artifacts`: what a notebook writes for the report (table, provenance, choices).

A table notebook reaches the model in two calls: ``train_variants`` -> ``train_run`` ->
:func:`matr.train.fit` -> ``MATR``. The names below are the notebooks' vocabulary.
"""

from matr.experiments.artifacts import (
    NOTEBOOK_MODULES,
    artifact_dir,
    write_choices,
    write_csv,
    write_provenance,
    write_table_artifact,
)
from matr.experiments.compose import RunConfig, compose
from matr.experiments.evaluation import EVAL_SPLIT, MissingCheckpoint, cached_evaluation
from matr.experiments.frames import (
    curves_frame,
    pairs_frame,
    plan_frame,
    pretraining_frame,
    runs_frame,
    store_frame,
    summary_frame,
)
from matr.experiments.profiles import PROFILES, Profile, get_profile, notebook_profile
from matr.experiments.results import table_frame, table_result, verdict_frame
from matr.experiments.runs import train_variants
from matr.experiments.tables import TABLES, get_table, run_labels
from matr.experiments.variants import PRETRAINING_RUNS, VARIANTS, get_variant
from matr.experiments.views import (
    QUALITATIVE_METHODS,
    alignment_view,
    example,
    pick_pairs,
    span_lengths,
    span_summary,
    top1_iou_frame,
)
from matr.experiments.workspace import ensure_data

__all__ = [
    "EVAL_SPLIT",
    "NOTEBOOK_MODULES",
    "PRETRAINING_RUNS",
    "PROFILES",
    "QUALITATIVE_METHODS",
    "TABLES",
    "VARIANTS",
    "MissingCheckpoint",
    "Profile",
    "RunConfig",
    "alignment_view",
    "artifact_dir",
    "cached_evaluation",
    "compose",
    "curves_frame",
    "ensure_data",
    "example",
    "get_profile",
    "get_table",
    "get_variant",
    "notebook_profile",
    "pairs_frame",
    "pick_pairs",
    "plan_frame",
    "pretraining_frame",
    "run_labels",
    "runs_frame",
    "store_frame",
    "summary_frame",
    "table_frame",
    "table_result",
    "span_lengths",
    "span_summary",
    "top1_iou_frame",
    "train_variants",
    "verdict_frame",
    "write_choices",
    "write_csv",
    "write_provenance",
    "write_table_artifact",
]
