"""Synthetic data, version 2: a miniature of SportsMoments as frame features see it.

:mod:`~matr.synthetic.scenes` (what a broadcast shows), :mod:`~matr.synthetic.plan` (sizes and the
random plan), :mod:`~matr.synthetic.render` (mp4 files and annotations), :mod:`~matr.synthetic.reference`
(statistics of the real annotations) and :mod:`~matr.synthetic.retrieval` (frame-level retrieval diagnostic).
"""

from matr.synthetic.plan import SIZES, SPLITS, DatasetPlan, SyntheticSize, VideoSpec, plan_dataset
from matr.synthetic.render import RenderSummary, example_pair, render_dataset, render_frames, write_mp4
from matr.synthetic.scenes import CLASS_SPLIT, CLASSES

__all__ = [
    "CLASSES",
    "CLASS_SPLIT",
    "SIZES",
    "SPLITS",
    "DatasetPlan",
    "RenderSummary",
    "SyntheticSize",
    "VideoSpec",
    "example_pair",
    "plan_dataset",
    "render_dataset",
    "render_frames",
    "write_mp4",
]
