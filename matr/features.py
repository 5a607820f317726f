"""Frame features: a frozen CLIP ViT-B/32 image encoder (open_clip) and an on-disk feature store.

The paper encodes one frame every 2 s with frozen CLIP ViT-B/32 and feeds the 512-d embeddings to
a projection MLP. Choices made here where the paper is silent:

* Architecture ``ViT-B-32-quickgelu``: OpenAI's ViT-B/32 uses QuickGELU; open_clip's plain
  ``ViT-B-32`` config would run OpenAI's weights with the wrong activation.
* Preprocessing is the model's own eval transform (resize the shorter side to 224, bicubic; centre
  crop 224; OpenAI mean/std), applied to each full-resolution RGB frame.
* Features are the *raw* image embeddings (after CLIP's projection, not L2-normalised): MATR
  compares them by cosine, and normalising is one line downstream. Stored as float16.
* Inference: eval mode, no autograd; bf16 autocast on GPUs that support it (fp16 otherwise), fp32
  on CPU.

Weights are ``"openai"`` (open_clip's download and cache), a local checkpoint file (open_clip
state dict, ``.safetensors`` or a ``torch.save`` file loaded with ``weights_only=True``), or
``"random"`` (seeded random init for offline demos and CI). Every encoder carries a *weights tag*
(``"openai"``, ``"file:<sha256 prefix>"``, ``"random-init(seed=0)"``) that is written next to every
feature it produces, so random features can never pass for real ones (:func:`is_random_init`).

Store layout (``FeatureStore(root)``)::

    root/features/<video_id>.npy      float16 (M, 512), written to a temp file then os.replace'd
    root/manifest[-<i>-of-<n>].jsonl  one JSON record per stored video, appended after its array
    root/failures[-<i>-of-<n>].jsonl  one JSON record per video that could not be decoded

Shard ``i`` of ``n`` (``torchrun`` ranks, or ``shard=(i, n)``) takes the videos whose id hashes to
``i`` and writes only its own manifest and failure files, so concurrent shards never write the
same file; readers merge every manifest. Unsharded runs use ``manifest.jsonl``/``failures.jsonl``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import socket
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path

import numpy as np
import open_clip
import torch
from PIL import Image
from torch import Tensor, nn
from tqdm.auto import tqdm

from matr.io import atomic_open
from matr.provenance import RANDOM_INIT_PREFIX, is_random_init
from matr.video import VideoDecodeError, clip_bounds, iter_frames, probe_video

__all__ = [
    "BACKBONE",
    "FEATURE_DIM",
    "ClipEncoder",
    "ExtractionReport",
    "FeatureStore",
    "VideoFeatures",
    "WeightsUnavailableError",
    "download_host_reachable",
    "encode_frames",
    "extract_features",
    "is_random_init",
    "load_clip_encoder",
    "resolve_shard",
    "shard_of",
    "video_features",
]

logger = logging.getLogger(__name__)

BACKBONE = "ViT-B-32-quickgelu"
FEATURE_DIM = 512
OPENAI_HF_REPO = "timm/vit_base_patch32_clip_224.openai"
_OPENAI_FILES = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")
_DOWNLOAD_HOST = "huggingface.co"
_PROBE_TIMEOUT_S = 3.0
_STORED_DTYPE = np.float16


class WeightsUnavailableError(RuntimeError):
    """Pretrained weights were asked for but cannot be found locally or downloaded."""


def download_host_reachable(host: str = _DOWNLOAD_HOST, timeout: float = _PROBE_TIMEOUT_S) -> bool:
    """Whether a TCP connection to ``host:443`` opens within ``timeout`` seconds (DNS included).

    ``HF_HUB_OFFLINE=1`` answers ``False`` without touching the network.
    """
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in {"1", "true", "yes", "on"}:
        return False

    answers: list[bool] = []

    def connect() -> None:
        try:
            socket.create_connection((host, 443), timeout=timeout).close()
            answers.append(True)
        except OSError:
            answers.append(False)

    probe = threading.Thread(target=connect, daemon=True)
    probe.start()
    probe.join(timeout)
    return bool(answers and answers[0])


@dataclass(eq=False)
class ClipEncoder:
    """Frozen CLIP image tower with its preprocessing; ``weights_tag`` says which weights it holds."""

    visual: nn.Module
    preprocess: Callable[[Image.Image], Tensor]
    weights_tag: str
    device: torch.device
    backbone: str = BACKBONE
    feature_dim: int = FEATURE_DIM

    @torch.inference_mode()
    def embed(self, images: Tensor) -> Tensor:
        """Preprocessed images ``(B, 3, 224, 224)`` -> raw CLIP embeddings ``(B, 512)`` float32 on CPU."""
        images = images.to(self.device, non_blocking=True)
        if self.device.type == "cuda":
            dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
            with torch.autocast("cuda", dtype=dtype):
                embeddings = self.visual(images)
        else:
            embeddings = self.visual(images)
        return embeddings.float().cpu()


def load_clip_encoder(
    weights: str | os.PathLike = "openai",
    *,
    device: str | torch.device | None = None,
    seed: int = 0,
    download_available: Callable[[], bool] = download_host_reachable,
) -> ClipEncoder:
    """Build the frozen CLIP ViT-B/32 image encoder.

    ``weights``: ``"openai"`` (from the Hugging Face cache, else downloaded), ``"random"`` (seeded
    with ``seed``), or a path to a checkpoint file. When the OpenAI weights are not cached and
    ``download_available()`` is false, raises :class:`WeightsUnavailableError` at once, explaining
    how to provide weights, instead of letting the download retry for a minute.
    """
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if str(weights) == "random":
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model, _, preprocess = open_clip.create_model_and_transforms(BACKBONE, pretrained=None)
        tag = f"{RANDOM_INIT_PREFIX}(seed={seed})"
    elif str(weights) == "openai":
        model, preprocess = _load_openai(download_available)
        tag = "openai"
    elif Path(weights).is_file():
        model, preprocess = _load_checkpoint(Path(weights))
        tag = f"file:{_sha256(Path(weights))[:12]}"
    else:
        raise ValueError(f"weights must be 'openai', 'random' or a checkpoint file; {str(weights)!r} is none of these")
    visual = model.visual.to(device).eval().requires_grad_(False)
    return ClipEncoder(visual=visual, preprocess=preprocess, weights_tag=tag, device=device)


def encode_frames(encoder: ClipEncoder, frames: Iterable[np.ndarray | Image.Image], batch_size: int = 64) -> np.ndarray:
    """Raw CLIP embeddings of RGB frames (``(H, W, 3)`` uint8 arrays or PIL images): ``(M, 512)`` float32."""
    chunks = [
        encoder.embed(torch.stack([encoder.preprocess(_as_image(frame)) for frame in batch])).numpy()
        for batch in _batches(frames, batch_size)
    ]
    return np.concatenate(chunks) if chunks else np.zeros((0, encoder.feature_dim), dtype=np.float32)


@dataclass(frozen=True)
class VideoFeatures:
    """CLIP features of a video (or clip): ``features`` ``(M, 512)`` float32, ``timestamps`` ``(M,)`` s.

    ``duration`` is that of the sampled span, ``video_duration`` that of the file; ``weights_tag``
    and ``backbone`` say which encoder produced the features.
    """

    features: np.ndarray
    timestamps: np.ndarray
    duration: float
    video_duration: float
    clip_length: float
    weights_tag: str
    backbone: str
    path: str


def video_features(
    path: str | os.PathLike,
    encoder: ClipEncoder,
    clip_length: float = 2.0,
    start: float | None = None,
    end: float | None = None,
    batch_size: int = 64,
) -> VideoFeatures:
    """Decode one frame per ``clip_length`` window of a video (or of its clip ``[start, end]``) and encode it.

    Frames stream through the encoder ``batch_size`` at a time, so long videos need little memory.
    Raises :class:`~matr.video.VideoDecodeError` for unreadable files.
    """
    info = probe_video(path)
    clip_start, clip_duration = clip_bounds(info, start or 0.0, end)
    timestamps: list[float] = []

    def frames() -> Iterator[np.ndarray]:
        for timestamp, frame in iter_frames(info, clip_length, start=clip_start, end=end):
            timestamps.append(timestamp)
            yield frame

    features = encode_frames(encoder, frames(), batch_size)
    return VideoFeatures(
        features=features,
        timestamps=np.asarray(timestamps, dtype=np.float64),
        duration=clip_duration,
        video_duration=info.duration,
        clip_length=float(clip_length),
        weights_tag=encoder.weights_tag,
        backbone=encoder.backbone,
        path=str(path),
    )


class FeatureStore:
    """Per-video CLIP features on disk (layout in the module docstring).

    Reads merge every shard's manifest; a record counts only once its array exists. The manifest is
    read once and cached; call :meth:`reload` to see what other processes wrote since.
    """

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        self._records: dict[str, dict] | None = None

    def reload(self) -> None:
        """Forget the cached manifest."""
        self._records = None

    def video_ids(self) -> list[str]:
        """Ids of the stored videos, sorted."""
        return sorted(video_id for video_id in self._manifest() if self.has(video_id))

    def has(self, video_id: str) -> bool:
        """Whether the features of ``video_id`` are stored (manifest record and array)."""
        record = self._manifest().get(video_id)
        return record is not None and (self.root / record["file"]).is_file()

    def info(self, video_id: str) -> dict:
        """The manifest record of ``video_id``: path, duration, num_frames, clip_length, backbone, weights_tag, ..."""
        record = self._manifest().get(video_id)
        if record is None:
            raise KeyError(f"video {video_id!r} is not in the feature store {self.root}")
        return dict(record)

    def load(self, video_id: str) -> np.ndarray:
        """Features of ``video_id``: ``(M, 512)`` float16, memory-mapped read-only."""
        record = self.info(video_id)
        array = np.load(self.root / record["file"], mmap_mode="r")
        expected = (record["num_frames"], record["feature_dim"])
        if array.shape != expected or array.dtype != _STORED_DTYPE:
            raise ValueError(
                f"{self.root / record['file']} holds {array.dtype} {array.shape}; "
                f"its manifest record says float16 {expected}"
            )
        return array

    @property
    def weights_tag(self) -> str | None:
        """Weights tag of every stored feature (``None`` for an empty store); see :func:`is_random_init`."""
        return self._shared("weights_tag")

    @property
    def clip_length(self) -> float | None:
        """Seconds per frame ``c`` of every stored video (``None`` for an empty store)."""
        return self._shared("clip_length")

    def failures(self) -> dict[str, dict]:
        """Failure records (video id -> {path, error, shard}) of videos still not stored."""
        records = _read_jsonl(sorted(self.root.glob("failures*.jsonl")))
        return {video_id: record for video_id, record in records.items() if not self.has(video_id)}

    def check_settings(self, **settings: object) -> None:
        """Raise ``ValueError`` if any stored record disagrees with ``settings`` (e.g. ``weights_tag=...``)."""
        for video_id, record in self._manifest().items():
            stored = {key: record.get(key) for key in settings}
            if stored != settings:
                raise ValueError(
                    f"feature store {self.root} holds features made with {stored} (video {video_id!r}), "
                    f"but this run uses {settings}; use another store directory or the same settings"
                )

    def put(self, video_id: str, features: VideoFeatures, shard: tuple[int, int] = (0, 1)) -> None:
        """Store the features of one video: the array atomically, then its manifest record."""
        _check_video_id(video_id)
        relative = f"features/{video_id}.npy"
        with atomic_open(self.root / relative) as file:
            np.save(file, features.features.astype(_STORED_DTYPE))
        record = {
            "video_id": video_id,
            "path": features.path,
            "file": relative,
            "duration": features.duration,
            "num_frames": int(features.features.shape[0]),
            "clip_length": features.clip_length,
            "backbone": features.backbone,
            "weights_tag": features.weights_tag,
            "feature_dim": int(features.features.shape[1]),
        }
        _append_jsonl(self.root / _shard_file("manifest", shard), record)
        self._manifest()[video_id] = record

    def record_failure(
        self, video_id: str, path: str | os.PathLike, error: str, shard: tuple[int, int] = (0, 1)
    ) -> None:
        """Note that ``video_id`` could not be processed."""
        record = {"video_id": video_id, "path": str(path), "error": error, "shard": list(shard)}
        _append_jsonl(self.root / _shard_file("failures", shard), record)

    def _shared(self, key: str):
        values = {record[key] for record in self._manifest().values()}
        if len(values) > 1:
            raise ValueError(f"feature store {self.root} mixes {key} values {sorted(values)}")
        return values.pop() if values else None

    def _manifest(self) -> dict[str, dict]:
        if self._records is None:
            self._records = _read_jsonl(sorted(self.root.glob("manifest*.jsonl")))
        return self._records


@dataclass
class ExtractionReport:
    """What one :func:`extract_features` run did: video ids extracted, already stored, failed (id -> error)."""

    store: str
    shard: tuple[int, int]
    weights_tag: str
    extracted: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)

    @property
    def complete(self) -> bool:
        """Whether every video of this shard is now stored."""
        return not self.failed


def resolve_shard(shard: tuple[int, int] | None = None) -> tuple[int, int]:
    """``(i, n)``: ``shard`` itself, else ``torchrun``'s ``RANK``/``WORLD_SIZE``, else ``(0, 1)``."""
    if shard is None:
        if "WORLD_SIZE" not in os.environ:
            return 0, 1
        try:
            shard = int(os.environ.get("RANK", "0")), int(os.environ["WORLD_SIZE"])
        except ValueError as error:
            raise ValueError(f"RANK/WORLD_SIZE must be integers: {error}") from error
    index, count = shard
    if not 0 <= index < count:
        raise ValueError(f"shard must be (i, n) with 0 <= i < n, got {shard}")
    return int(index), int(count)


def shard_of(video_id: str, num_shards: int) -> int:
    """The shard (``0 .. num_shards - 1``) that owns ``video_id``: a stable hash of the id."""
    return int.from_bytes(hashlib.sha1(video_id.encode("utf-8")).digest()[:8], "big") % num_shards


def extract_features(
    videos: Mapping[str, str | os.PathLike] | Sequence[str | os.PathLike],
    store: FeatureStore | str | os.PathLike,
    encoder: ClipEncoder,
    clip_length: float = 2.0,
    *,
    shard: tuple[int, int] | None = None,
    batch_size: int = 64,
    progress: bool = True,
) -> ExtractionReport:
    """Extract CLIP features of every video of this shard into ``store``, resuming where it stopped.

    ``videos`` maps video ids to files (a list of files uses their stems as ids). Videos already in
    the store are skipped; a store made with another clip length, backbone or weights tag is an
    error. A file that cannot be decoded is recorded (report and failures file) and skipped; any
    other exception stops the run, and rerunning resumes it.
    """
    store = store if isinstance(store, FeatureStore) else FeatureStore(store)
    store.reload()
    shard = resolve_shard(shard)
    store.check_settings(
        clip_length=float(clip_length),
        backbone=encoder.backbone,
        weights_tag=encoder.weights_tag,
        feature_dim=encoder.feature_dim,
    )
    mine = {video_id: path for video_id, path in _video_map(videos).items() if shard_of(video_id, shard[1]) == shard[0]}
    report = ExtractionReport(store=str(store.root), shard=shard, weights_tag=encoder.weights_tag)
    bar = tqdm(mine.items(), desc=f"CLIP features {shard[0] + 1}/{shard[1]}", unit="video", disable=not progress)
    for video_id, path in bar:
        if store.has(video_id):
            report.skipped.append(video_id)
            continue
        try:
            features = video_features(path, encoder, clip_length, batch_size=batch_size)
        except VideoDecodeError as error:
            report.failed[video_id] = str(error)
            store.record_failure(video_id, path, str(error), shard)
            bar.set_postfix(failed=len(report.failed))
            continue
        store.put(video_id, features, shard)
        report.extracted.append(video_id)
    logger.info(
        "feature store %s, shard %d/%d: %d extracted, %d already stored, %d failed",
        store.root,
        shard[0] + 1,
        shard[1],
        len(report.extracted),
        len(report.skipped),
        len(report.failed),
    )
    for video_id, error in report.failed.items():
        logger.warning("failed %s: %s", video_id, error)
    return report


def _load_openai(download_available: Callable[[], bool]) -> tuple[nn.Module, Callable]:
    cached = _cached_openai_weights()
    if cached is not None:
        return _load_checkpoint(Path(cached))
    if not download_available():
        raise WeightsUnavailableError(_missing_weights_message(f"{_DOWNLOAD_HOST} cannot be reached"))
    try:
        model, _, preprocess = open_clip.create_model_and_transforms(BACKBONE, pretrained="openai")
    except RuntimeError as error:
        raise WeightsUnavailableError(_missing_weights_message(f"the download failed ({error})")) from error
    return model, preprocess


def _cached_openai_weights() -> str | None:
    """Path of the OpenAI ViT-B/32 checkpoint in the Hugging Face cache, if it is there."""
    from huggingface_hub import try_to_load_from_cache

    for filename in _OPENAI_FILES:
        cached = try_to_load_from_cache(OPENAI_HF_REPO, filename)
        if isinstance(cached, str):
            return cached
    return None


def _missing_weights_message(reason: str) -> str:
    return (
        f"CLIP ViT-B/32 'openai' weights are not in the local cache and {reason}. Either pass the path "
        f"of a checkpoint file as the weights (e.g. {_OPENAI_FILES[0]} downloaded from "
        f"https://huggingface.co/{OPENAI_HF_REPO} on a machine with internet, or a copy of its Hugging Face "
        "cache), or pass 'random' for an offline demo: its features are tagged 'random-init(seed=...)' "
        "and carry no meaning."
    )


def _load_checkpoint(path: Path) -> tuple[nn.Module, Callable]:
    """CLIP model with the weights of a local open_clip checkpoint (safetensors, or torch.load weights_only)."""
    try:
        model, _, preprocess = open_clip.create_model_and_transforms(BACKBONE, pretrained=str(path), weights_only=True)
    except (RuntimeError, KeyError, ValueError, OSError) as error:
        raise ValueError(f"cannot load {path} as an open_clip {BACKBONE} checkpoint: {error}") from error
    return model, preprocess


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _as_image(frame: np.ndarray | Image.Image) -> Image.Image:
    return frame if isinstance(frame, Image.Image) else Image.fromarray(np.asarray(frame, dtype=np.uint8))


def _batches(items: Iterable, size: int) -> Iterator[list]:
    if size <= 0:
        raise ValueError(f"batch_size must be positive, got {size}")
    iterator = iter(items)
    while batch := list(islice(iterator, size)):
        yield batch


def _video_map(videos: Mapping[str, str | os.PathLike] | Sequence[str | os.PathLike]) -> dict[str, Path]:
    """Video id -> path; a sequence of paths is keyed by file stem, which must then be unique."""
    if isinstance(videos, Mapping):
        mapping = {str(video_id): Path(path) for video_id, path in videos.items()}
    else:
        paths = [Path(path) for path in videos]
        mapping = {path.stem: path for path in paths}
        if len(mapping) != len(paths):
            stems = [path.stem for path in paths]
            duplicates = sorted({stem for stem in stems if stems.count(stem) > 1})
            raise ValueError(f"video file stems must be unique to serve as ids; repeated: {duplicates}")
    for video_id in mapping:
        _check_video_id(video_id)
    return mapping


def _check_video_id(video_id: str) -> None:
    if not video_id or video_id.startswith(".") or any(char in video_id for char in "/\\\0"):
        raise ValueError(f"video id {video_id!r} cannot name a file (empty, leading '.', or a path separator)")


def _shard_file(kind: str, shard: tuple[int, int]) -> str:
    index, count = shard
    return f"{kind}.jsonl" if count == 1 else f"{kind}-{index}-of-{count}.jsonl"


def _append_jsonl(path: Path, record: dict) -> None:
    """Append one JSON line in a single write, and fsync it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as file:
        file.write(json.dumps(record, sort_keys=True) + "\n")
        file.flush()
        os.fsync(file.fileno())


def _read_jsonl(paths: Iterable[Path]) -> dict[str, dict]:
    """Records keyed by ``video_id`` (a later line wins); a torn line from a crash is skipped with a warning."""
    records: dict[str, dict] = {}
    for path in paths:
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                logger.warning("%s line %d is not valid JSON (interrupted write?); ignoring it", path, number)
                continue
            if not isinstance(record, dict) or "video_id" not in record:
                raise ValueError(f"{path} line {number}: expected a JSON object with a 'video_id' field")
            records[record["video_id"]] = record
    return records
