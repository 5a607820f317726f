"""A PyTorch ``Dataset`` over pair records, reading CLIP features, and the batch collate.

Features come from any :class:`FeatureSource`: an object with ``clip_length`` (seconds per
frame, ``c``) and ``load(video_id) -> array (frames, d)`` (``matr.features.FeatureStore``
returns a read-only memmap; :class:`InMemoryFeatures` wraps a dict for tests and notebooks).
Only the rows of a clip are read from that array.

Slicing by time: frame ``i`` covers ``[i c, (i + 1) c)``; a clip ``[s, e]`` takes the frames whose
centres ``(i + 0.5) c`` fall inside it, and at least the frame holding its midpoint (the
foreground rule of :mod:`matr.span_ops`).

An item's time axis starts at the start of its first target frame (``target_start``, seconds
in the target video): for a whole-video target that is 0 and the record's windows are used as
they are; a target clip ``(t0, t1)`` is snapped to the frame grid, so its windows shift by
``t0 - target_start`` (less than c / 2) and the item's ``duration`` is ``t1 - target_start``.
Windows are clipped to ``[0, duration]``.

Length limits (:class:`FrameLimits`, both optional; ``FrameLimits.of(model_config)`` gives a model's):

* ``max_query_frames``: a longer query is resampled to that many frames (nearest frame at evenly
  spaced times, :func:`resample_frames`), so it still spans the whole action.
* ``max_target_frames``: a longer target is cropped to a window of that many frames that contains
  the ground-truth frames (or lies inside them when they are longer than the window). Its
  position is uniform over the valid ones, drawn from ``numpy.random.default_rng([seed, epoch,
  crc32(pair_id)])`` with ``epoch = 0`` unless ``train=True``: fixed in evaluation, new every
  epoch (``set_epoch``) in training. Cropping changes the evaluation task, so evaluate without it
  where memory allows.

Items are dicts: ``pair_id`` str, ``query`` (N, d) and ``target`` (M, d) tensors in the stored
dtype (float16 from a feature store, else float32; :func:`collate_pairs` keeps float16 when every
item has it, half the bytes to pad, pin and copy: the model converts on its device),
``window`` (2,) float64 seconds (NaN when the record has no ground truth), ``duration`` and
``target_start`` floats (seconds), ``clip_length`` float. :func:`collate_pairs` turns a list of
them into the batch :meth:`matr.model.MATR.forward` reads.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from matr.data.records import PairRecord
from matr.span_ops import frame_centers

if TYPE_CHECKING:
    from matr.config import ModelConfig

Item = dict[str, Any]
_KEPT_DTYPES = (np.dtype(np.float16), np.dtype(np.float32))


class FeatureSource(Protocol):
    """Where per-video CLIP features come from (``matr.features.FeatureStore`` is one)."""

    clip_length: float

    def load(self, video_id: str) -> np.ndarray:
        """Features ``(frames, d)`` of a video; may be a memory map."""
        ...


class InMemoryFeatures:
    """A :class:`FeatureSource` over a dict ``video id -> (frames, d) array``."""

    def __init__(self, features: Mapping[str, np.ndarray], clip_length: float = 2.0) -> None:
        self.features = dict(features)
        self.clip_length = float(clip_length)

    def load(self, video_id: str) -> np.ndarray:
        if video_id not in self.features:
            raise KeyError(f"no features for video {video_id!r}")
        return self.features[video_id]


class CachedFeatures:
    """A :class:`FeatureSource` that opens each video of ``source`` once per process and keeps it.

    A feature store's arrays are memory maps, so keeping them costs address space, not memory;
    opening one (manifest look-up, stale check, ``.npy`` header) costs more than reading a clip.
    The cache is not pickled: every data-loader worker fills its own.
    """

    def __init__(self, source: FeatureSource) -> None:
        self.source = source
        self.clip_length = float(source.clip_length)
        self._arrays: dict[str, np.ndarray] = {}

    def load(self, video_id: str) -> np.ndarray:
        array = self._arrays.get(video_id)
        if array is None:
            array = self._arrays[video_id] = self.source.load(video_id)
        return array

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_arrays": {}}


def frame_range(span: Sequence[float], num_frames: int, clip_length: float) -> tuple[int, int]:
    """``(first, stop)``: the frames whose centres lie in ``span`` (seconds), at least one.

    The rule of :func:`matr.span_ops.frame_targets` (float32 centres, the midpoint's frame for a
    window between two centres), computed without building the per-frame targets.
    """
    if num_frames < 1:
        raise ValueError("cannot take a clip of a video with no frames")
    start, end = float(span[0]), float(span[1])
    if not end >= start:
        raise ValueError(f"window end {end} is before its start {start}")
    centres = (np.arange(num_frames, dtype=np.float32) + np.float32(0.5)) * np.float32(clip_length)
    first, stop = (
        int(np.searchsorted(centres, np.float32(start), "left")),
        int(np.searchsorted(centres, np.float32(end), "right")),
    )
    if first < stop:
        return first, stop
    middle = int(min(max((start + end) / 2 // clip_length, 0), num_frames - 1))
    return middle, middle + 1


def resample_frames(features: np.ndarray, length: int) -> np.ndarray:
    """``(N, d) -> (length, d)``: output frame ``k`` is input frame ``floor((k + 0.5) N / length)``.

    This is what sampling a re-timed video at its frame centres gives when each feature stands
    for its whole frame: ``length > N`` repeats frames (slow motion), ``length < N`` drops frames
    (fast motion, or fitting a length limit).
    """
    if length < 1:
        raise ValueError(f"length must be >= 1, got {length}")
    count = len(features)
    index = np.minimum(((np.arange(length) + 0.5) * count / length).astype(np.int64), count - 1)
    return features[index]


def crop_target(
    num_frames: int,
    window: tuple[float, float] | None,
    duration: float,
    clip_length: float,
    max_frames: int | None,
    rng: np.random.Generator,
) -> tuple[int, int, tuple[float, float] | None, float]:
    """Crop a target of ``num_frames`` frames to at most ``max_frames``: ``(first, stop, window, duration)``.

    ``[first, stop)`` are the frames kept. They contain the frames of ``window`` (seconds), or lie
    inside them when those are more than ``max_frames``; ``window=None`` allows any position. The
    position is uniform over the valid ones. ``window`` and ``duration`` are returned on the
    cropped clip's time axis (origin ``first * clip_length``).
    """
    if max_frames is None or num_frames <= max_frames:
        return 0, num_frames, window, duration
    low, high = 0, num_frames - max_frames
    if window is not None:
        keep_first, keep_stop = frame_range(window, num_frames, clip_length)
        if keep_stop - keep_first <= max_frames:
            low, high = max(low, keep_stop - max_frames), min(high, keep_first)
        else:
            low, high = keep_first, keep_stop - max_frames
    first = int(rng.integers(low, high + 1))
    shift = first * clip_length
    if window is not None:
        window = (window[0] - shift, window[1] - shift)
    return first, first + max_frames, window, min(duration - shift, max_frames * clip_length)


def make_item(
    pair_id: str,
    query: np.ndarray,
    target: np.ndarray,
    window: tuple[float, float] | None,
    duration: float,
    target_start: float,
    clip_length: float,
) -> Item:
    """An item dict from the sliced features ``query (N, d)`` and ``target (M, d)``."""
    if window is not None:
        window = (min(max(window[0], 0.0), duration), min(max(window[1], 0.0), duration))
    return {
        "pair_id": pair_id,
        "query": _features_tensor(query),
        "target": _features_tensor(target),
        "window": torch.tensor(window if window is not None else (math.nan, math.nan), dtype=torch.float64),
        "duration": float(duration),
        "target_start": float(target_start),
        "clip_length": float(clip_length),
    }


def _features_tensor(features: np.ndarray) -> Tensor:
    """A copy of ``features`` as a tensor in their stored float16 / float32 (other dtypes: float32)."""
    array = np.asarray(features)
    return torch.from_numpy(np.array(array, dtype=array.dtype if array.dtype in _KEPT_DTYPES else np.float32))


@dataclass(frozen=True)
class FrameLimits:
    """The longest query and target of an item, in frames; ``None`` is no limit (module docstring:
    a longer query is resampled, a longer target cropped around its ground truth)."""

    max_query_frames: int | None = None
    max_target_frames: int | None = None

    def __post_init__(self) -> None:
        for name in ("max_query_frames", "max_target_frames"):
            limit = getattr(self, name)
            if limit is not None and (not isinstance(limit, int) or limit < 1):
                raise ValueError(f"{name} must be a positive int or None, got {limit!r}")

    @classmethod
    def of(cls, config: ModelConfig) -> FrameLimits:
        """The limits of a model (its ``max_query_frames`` and ``max_target_frames``)."""
        return cls(config.max_query_frames, config.max_target_frames)

    def fit_query(self, query: np.ndarray) -> np.ndarray:
        """``query (N, d)``, resampled to ``max_query_frames`` frames when it is longer."""
        if self.max_query_frames is not None and len(query) > self.max_query_frames:
            return resample_frames(query, self.max_query_frames)
        return query


NO_LIMITS = FrameLimits()


class FeatureDataset(Dataset):
    """What :class:`PairDataset` and :class:`~matr.data.pretraining.PretrainingDataset` share: a feature
    ``source`` read through a per-process cache, the frame ``limits`` of the items, and the ``epoch``
    of their random draws."""

    def __init__(self, source: FeatureSource, limits: FrameLimits) -> None:
        self.source = source
        self.limits = limits
        self._cache = CachedFeatures(source)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose random draws (target crops in training, pre-training clips) the items use."""
        self.epoch = epoch


class PairDataset(FeatureDataset):
    """Items of query-target pairs (module docstring) from ``records`` and a feature ``source``.

    Each record must have at most one ground-truth window (the batch holds one per pair).
    """

    def __init__(
        self,
        records: Sequence[PairRecord],
        source: FeatureSource,
        *,
        limits: FrameLimits = NO_LIMITS,
        train: bool = False,
        seed: int = 0,
    ) -> None:
        for record in records:
            if len(record.windows) > 1:
                raise ValueError(
                    f"pair {record.pair_id!r} has {len(record.windows)} ground-truth windows; "
                    "PairDataset supports one per pair"
                )
        super().__init__(source, limits)
        self.records = list(records)
        self.train = train
        self.seed = seed

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> Item:
        record = self.records[index]
        c = self._cache.clip_length
        features = self._cache.load(record.target_video)
        first, stop = 0, len(features)
        origin, duration, shift = 0.0, record.duration, 0.0
        if record.target_window is not None:
            first, stop = frame_range(record.target_window, len(features), c)
            origin = first * c
            duration = record.target_window[1] - origin
            shift = record.target_window[0] - origin
        window = (record.windows[0][0] + shift, record.windows[0][1] + shift) if record.windows else None
        rng = np.random.default_rng([self.seed, self.epoch if self.train else 0, zlib.crc32(record.pair_id.encode())])
        crop_first, crop_stop, window, duration = crop_target(
            stop - first, window, duration, c, self.limits.max_target_frames, rng
        )
        target = features[first + crop_first : first + crop_stop]
        return make_item(record.pair_id, self._query(record, c), target, window, duration, origin + crop_first * c, c)

    def _query(self, record: PairRecord, clip_length: float) -> np.ndarray:
        features = self._cache.load(record.query_video)
        first, stop = 0, len(features)
        if record.query_window is not None:
            first, stop = frame_range(record.query_window, len(features), clip_length)
        return self.limits.fit_query(np.asarray(features[first:stop]))


def collate_pairs(items: Sequence[Item]) -> dict[str, Any]:
    """Pad items into the batch :meth:`matr.model.MATR.forward` and :class:`matr.losses.MATRLoss` read.

    Returns ``target (B, M, d)`` (float16 when every item's features are, else float32),
    ``target_mask (B, M)`` bool (True = real frame),
    ``target_lengths (B,)``, ``query (B, N, d)``, ``query_mask (B, N)``, ``query_lengths (B,)``,
    ``foreground (B, M)`` 0/1 and ``offsets (B, M, 2)`` frame units from
    :func:`matr.span_ops.frame_targets` (0 on padding and for pairs without ground truth),
    ``window (B, 2)`` float64 (exact ground truth for the metrics) and ``duration (B,)`` seconds, ``pair_id`` list, ``clip_length`` float;
    plus ``target_start (B,)``: where each item's time axis starts in its target video (s).
    """
    if not items:
        raise ValueError("cannot collate an empty list of items")
    clip_length = items[0]["clip_length"]
    if any(item["clip_length"] != clip_length for item in items):
        raise ValueError(f"items mix clip lengths {sorted({item['clip_length'] for item in items})}")
    target, target_mask, target_lengths = _pad([item["target"] for item in items])
    query, query_mask, query_lengths = _pad([item["query"] for item in items])
    windows = torch.stack([item["window"] for item in items])
    foreground, offsets = batch_frame_targets(windows.float(), target_lengths, target_mask.shape[1], clip_length)
    return {
        "target": target,
        "target_mask": target_mask,
        "target_lengths": target_lengths,
        "query": query,
        "query_mask": query_mask,
        "query_lengths": query_lengths,
        "foreground": foreground,
        "offsets": offsets,
        "window": windows,
        "duration": torch.tensor([item["duration"] for item in items], dtype=torch.float32),
        "target_start": torch.tensor([item["target_start"] for item in items], dtype=torch.float32),
        "pair_id": [item["pair_id"] for item in items],
        "clip_length": float(clip_length),
    }


def batch_frame_targets(windows: Tensor, lengths: Tensor, num_frames: int, clip_length: float) -> tuple[Tensor, Tensor]:
    """:func:`matr.span_ops.frame_targets` of a whole batch at once.

    ``windows (B, 2)`` float32 seconds (NaN rows: no ground truth), ``lengths (B,)`` real frames.
    Returns ``foreground (B, M)`` 0/1 and ``offsets (B, M, 2)`` frame units, 0 on padding and on
    pairs without ground truth; values equal the per-pair function's.
    """
    has_window = ~torch.isnan(windows).any(dim=1)
    if bool((windows[has_window, 1] < windows[has_window, 0]).any()):
        raise ValueError("a window ends before its start")
    real = (torch.arange(num_frames) < lengths[:, None]) & has_window[:, None]
    centres = frame_centers(num_frames, clip_length)
    start, end = windows[:, :1], windows[:, 1:]
    foreground = (centres >= start) & (centres <= end) & real
    empty = has_window & ~foreground.any(dim=1)
    if bool(empty.any()):
        midpoint = (windows[empty].double().sum(dim=1) / 2).div(clip_length, rounding_mode="floor")
        middle = torch.minimum(midpoint.clamp(min=0).long(), lengths[empty] - 1)
        foreground[torch.nonzero(empty).flatten(), middle] = True
    offsets = torch.stack([(centres - start) / clip_length, (end - centres) / clip_length], dim=-1)
    return foreground.float(), torch.where(real.unsqueeze(-1), offsets, 0.0)


def _pad(sequences: list[Tensor]) -> tuple[Tensor, Tensor, Tensor]:
    """``B`` tensors ``(L_b, d)`` -> padded ``(B, L, d)``, mask ``(B, L)``, lengths ``(B,)``.

    The padded tensor is float16 when every sequence is (features from a feature store), else float32.
    """
    dims = {s.shape[1] for s in sequences}
    if len(dims) != 1:
        raise ValueError(f"items mix feature sizes {sorted(dims)}")
    lengths = torch.tensor([len(s) for s in sequences], dtype=torch.long)
    if bool((lengths == 0).any()):
        raise ValueError("an item has no frames")
    dtype = torch.float16 if all(s.dtype == torch.float16 for s in sequences) else torch.float32
    padded = torch.zeros(len(sequences), int(lengths.max()), dims.pop(), dtype=dtype)
    for row, sequence in zip(padded, sequences, strict=True):
        row[: len(sequence)] = sequence
    mask = torch.arange(padded.shape[1]) < lengths[:, None]
    return padded, mask, lengths
