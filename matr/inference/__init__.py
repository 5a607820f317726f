"""Inference: ranked moments of a query in a target, or across a library of videos.

* :mod:`matr.inference.windows`: on cached features of any length (overlapping windows over long
  targets, one NMS over their proposals, batched search across videos);
* :mod:`matr.inference.videos`: on video files (decoding, CLIP encoding, feature stores of folders,
  checkpoint and weights-tag checks).
"""

from matr.inference.videos import (
    VIDEO_SUFFIXES,
    Localization,
    SearchResult,
    check_weights_tag,
    find_videos,
    is_feature_store,
    library_store,
    load_for_inference,
    localize_videos,
    open_library,
    search_videos,
    weights_from_tag,
)
from matr.inference.windows import (
    DEFAULT_BATCH_SIZE,
    SearchHit,
    Window,
    localize_features,
    plan_windows,
    prepare_query,
    search_features,
)

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "VIDEO_SUFFIXES",
    "Localization",
    "SearchHit",
    "SearchResult",
    "Window",
    "check_weights_tag",
    "find_videos",
    "is_feature_store",
    "library_store",
    "load_for_inference",
    "localize_features",
    "localize_videos",
    "open_library",
    "plan_windows",
    "prepare_query",
    "search_features",
    "search_videos",
    "weights_from_tag",
]
