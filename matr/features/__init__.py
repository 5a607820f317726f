"""Frame features: decoding (:mod:`.video`, :mod:`.cursor`), the CLIP encoder (:mod:`.clip`), the store
(:mod:`.store`) and extraction into it (:mod:`.extract`)."""

from matr.features.clip import (
    BACKBONE,
    FEATURE_DIM,
    ClipEncoder,
    WeightsUnavailableError,
    download_host_reachable,
    encode_frames,
    load_clip_encoder,
)
from matr.features.extract import ExtractionReport, extract_features, resolve_shard, shard_of, video_features
from matr.features.store import FeatureStore, StaleFeaturesError, VideoFeatures, source_fingerprint
from matr.features.video import VideoDecodeError, probe_video, sample_frames
from matr.provenance import is_random_init

__all__ = [
    "BACKBONE",
    "FEATURE_DIM",
    "ClipEncoder",
    "ExtractionReport",
    "FeatureStore",
    "StaleFeaturesError",
    "VideoDecodeError",
    "VideoFeatures",
    "WeightsUnavailableError",
    "download_host_reachable",
    "encode_frames",
    "extract_features",
    "is_random_init",
    "load_clip_encoder",
    "probe_video",
    "resolve_shard",
    "sample_frames",
    "shard_of",
    "source_fingerprint",
    "video_features",
]
