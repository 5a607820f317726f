"""Annotations, pair lists and datasets: everything between annotation files and batches.

* :mod:`matr.data.records`: :class:`PairRecord` and its JSON-lines format.
* Importers: :mod:`~matr.data.activitynet_vrl`, :mod:`~matr.data.sportsmoments`,
  :mod:`~matr.data.own_videos`.
* :mod:`matr.data.dataset`: ``PairDataset`` over a feature source and ``collate_pairs``.
* :mod:`matr.data.pretraining`: self-supervised pre-training pairs (paper section 3.3).
"""

from matr.data.activitynet_vrl import (
    import_activitynet_vrl,
    load_activitynet_durations,
    load_class_split,
    read_vrl_entries,
    vrl_pairs,
)
from matr.data.dataset import FeatureSource, FrameLimits, InMemoryFeatures, PairDataset, collate_pairs
from matr.data.own_videos import OwnVideos, read_own_videos
from matr.data.pretraining import PretrainConfig, PretrainingDataset
from matr.data.records import (
    WINDOW_TOLERANCE_S,
    AnnotationError,
    PairRecord,
    check_against_store,
    evaluation_inputs,
    load_pairs,
    save_pairs,
)
from matr.data.sportsmoments import load_class_names, read_sportsmoments_csv, read_sportsmoments_jsonl

__all__ = [
    "WINDOW_TOLERANCE_S",
    "AnnotationError",
    "FeatureSource",
    "FrameLimits",
    "InMemoryFeatures",
    "OwnVideos",
    "PairDataset",
    "PairRecord",
    "PretrainConfig",
    "PretrainingDataset",
    "check_against_store",
    "collate_pairs",
    "evaluation_inputs",
    "import_activitynet_vrl",
    "load_activitynet_durations",
    "load_class_names",
    "load_class_split",
    "load_pairs",
    "read_own_videos",
    "read_sportsmoments_csv",
    "read_sportsmoments_jsonl",
    "read_vrl_entries",
    "save_pairs",
    "vrl_pairs",
]
