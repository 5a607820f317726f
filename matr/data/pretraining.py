"""Self-supervised pre-training pairs (paper section 3.3).

From an unlabelled video, a random clip is the query and the whole video is the target; the
model learns to localise the clip. Each clip also yields one augmented copy of its query
(reversed frames, Gaussian noise, slowed down or sped up), "doubling the number of pre-training
samples". The target and the ground truth of the copy are those of the clip.

The choices where the paper is silent (the fields of :class:`PretrainConfig` among them) are declared
below with :func:`matr.choices.declare`. Clip lengths: ``L`` is uniform in ``[ceil(min_clip_seconds / c),
floor(max_clip_fraction * M)]`` (both clamped to ``[1, M]``, the upper bound raised to the lower one for
short videos), the start ``s`` uniform over the valid starts; ``slow`` / ``fast`` give ``floor(L / factor
+ 0.5)`` frames (nearest frame at each new frame's time, :func:`matr.data.dataset.resample_frames`).

* Randomness: sample ``k`` is copy ``k % 2`` (0 original, 1 augmented) of video ``k // 2`` (with
  ``augment=False``: video ``k``, no copies); the clip and augmentation come from
  ``numpy.random.default_rng([seed, epoch, video index])``, the noise from
  ``default_rng([seed, epoch, video index, 1])`` and an optional target crop (``limits``, a
  :class:`~matr.data.dataset.FrameLimits` as in ``PairDataset``) from ``default_rng([seed, epoch,
  video index, 2])``. Clips are the same with augmentation on or off.
* Items are those of :class:`matr.data.dataset.PairDataset`, so ``collate_pairs`` batches them;
  ``pair_id`` is ``pretrain/{video}`` or ``pretrain/{video}+{augmentation}``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from matr import choices
from matr.data.dataset import (
    NO_LIMITS,
    FeatureDataset,
    FeatureSource,
    FrameLimits,
    Item,
    crop_target,
    make_item,
    resample_frames,
)

AUGMENTATIONS: tuple[str, ...] = ("reverse", "noise", "slow", "fast")
choices.declare(
    "pre-training clips",
    "whole frames: L frames from frame s, ground truth [s c, (s + L) c]",
    "the query's frames are then exactly the foreground frames",
)
choices.declare(
    "pre-training target",
    "all M feature frames of the video, duration M c",
    "needs only the feature source, no metadata",
)
choices.declare(
    "augmentations act on CLIP features",
    "reverse flips the frame order; slow / fast resample the clip; noise adds N(0, (sigma std)^2) per value",
    "equivalent to augmenting frames for the temporal ones; the noise is feature-level, not pixel noise",
)
choices.declare("augmentations per clip", 1, "uniform over PretrainConfig.augmentations")


@dataclass(frozen=True)
class PretrainConfig:
    """Settings of the pre-training pairs; the paper gives none of these values."""

    min_clip_seconds: float = choices.declare("shortest pre-training query", 4.0, "two 2-s frames")
    max_clip_fraction: float = choices.declare(
        "longest pre-training query", 0.5, "as a fraction of the video: the target keeps frames outside the query"
    )
    augment: bool = True  # Table 3: pre-training with / without augmentation
    augmentations: tuple[str, ...] = AUGMENTATIONS
    noise_sigma: float = choices.declare("noise augmentation sigma", 0.5, "relative to the clip's feature std")
    slow_factor: float = choices.declare("slow-motion speed", 0.5, "half speed: twice the frames")
    fast_factor: float = choices.declare("fast-motion speed", 2.0, "double speed: half the frames")
    seed: int = 0

    def __post_init__(self) -> None:
        if not self.min_clip_seconds > 0:
            raise ValueError(f"PretrainConfig.min_clip_seconds must be > 0, got {self.min_clip_seconds}")
        if not 0 < self.max_clip_fraction <= 1:
            raise ValueError(f"PretrainConfig.max_clip_fraction must be in (0, 1], got {self.max_clip_fraction}")
        unknown = [name for name in self.augmentations if name not in AUGMENTATIONS]
        if unknown or not self.augmentations:
            raise ValueError(
                f"PretrainConfig.augmentations must be a non-empty subset of {AUGMENTATIONS}, got {self.augmentations}"
            )
        if not self.noise_sigma >= 0:
            raise ValueError(f"PretrainConfig.noise_sigma must be >= 0, got {self.noise_sigma}")
        if not 0 < self.slow_factor < 1:
            raise ValueError(f"PretrainConfig.slow_factor must be in (0, 1), got {self.slow_factor}")
        if not self.fast_factor > 1:
            raise ValueError(f"PretrainConfig.fast_factor must be > 1, got {self.fast_factor}")


@dataclass(frozen=True)
class PretrainSample:
    """The recipe of one pre-training sample: query = frames ``[first, stop)`` of ``video_id``."""

    video_id: str
    first: int
    stop: int
    augmentation: str | None  # None for the original copy


def sample_clip(
    num_frames: int, clip_length: float, config: PretrainConfig, rng: np.random.Generator
) -> tuple[int, int]:
    """Frames ``[first, stop)`` of a random query clip of a video of ``num_frames`` frames."""
    if num_frames < 1:
        raise ValueError("cannot sample a clip from a video with no frames")
    shortest = min(max(1, math.ceil(config.min_clip_seconds / clip_length - 1e-9)), num_frames)
    longest = max(shortest, min(int(config.max_clip_fraction * num_frames), num_frames))
    length = int(rng.integers(shortest, longest + 1))
    first = int(rng.integers(0, num_frames - length + 1))
    return first, first + length


def augment(query: np.ndarray, name: str, config: PretrainConfig, rng: np.random.Generator) -> np.ndarray:
    """The augmented copy ``(N', d)`` of a query clip ``(N, d)`` (module docstring)."""
    if name == "reverse":
        return query[::-1].copy()
    if name == "noise":
        scale = config.noise_sigma * float(query.std())
        return (query + rng.normal(0.0, scale, size=query.shape)).astype(query.dtype)
    if name in ("slow", "fast"):
        factor = config.slow_factor if name == "slow" else config.fast_factor
        return resample_frames(query, max(1, int(len(query) / factor + 0.5)))
    raise ValueError(f"unknown augmentation {name!r}; expected one of {AUGMENTATIONS}")


class PretrainingDataset(FeatureDataset):
    """Pre-training items over ``video_ids`` whose features ``source`` holds (module docstring)."""

    def __init__(
        self,
        video_ids: Sequence[str],
        source: FeatureSource,
        config: PretrainConfig | None = None,
        *,
        limits: FrameLimits = NO_LIMITS,
    ) -> None:
        if len(set(video_ids)) != len(video_ids):
            raise ValueError("video_ids must be unique (pair ids are built from them)")
        super().__init__(source, limits)
        self.video_ids = list(video_ids)
        self.config = config or PretrainConfig()

    @property
    def copies(self) -> int:
        return 2 if self.config.augment else 1

    def __len__(self) -> int:
        return len(self.video_ids) * self.copies

    def sample(self, index: int) -> PretrainSample:
        """The clip and augmentation of sample ``index`` in the current epoch."""
        return self._sample(index, len(self._features(index)))

    def _features(self, index: int) -> np.ndarray:
        if not 0 <= index < len(self):
            raise IndexError(f"sample {index} out of range for {len(self)} samples")
        return self._cache.load(self.video_ids[index // self.copies])

    def _sample(self, index: int, num_frames: int) -> PretrainSample:
        video, copy = divmod(index, self.copies)
        rng = np.random.default_rng([self.config.seed, self.epoch, video])
        first, stop = sample_clip(num_frames, float(self.source.clip_length), self.config, rng)
        choice = self.config.augmentations[int(rng.integers(len(self.config.augmentations)))]
        return PretrainSample(self.video_ids[video], first, stop, choice if copy == 1 else None)

    def __getitem__(self, index: int) -> Item:
        features = self._features(index)
        sample = self._sample(index, len(features))
        video = index // self.copies
        c = float(self.source.clip_length)
        query = np.asarray(features[sample.first : sample.stop], dtype=np.float32)
        pair_id = f"pretrain/{sample.video_id}"
        if sample.augmentation is not None:
            noise_rng = np.random.default_rng([self.config.seed, self.epoch, video, 1])
            query = augment(query, sample.augmentation, self.config, noise_rng)
            pair_id += f"+{sample.augmentation}"
        query = self.limits.fit_query(query)
        num_frames = len(features)
        window = (sample.first * c, sample.stop * c)
        crop_rng = np.random.default_rng([self.config.seed, self.epoch, video, 2])
        first, stop, window, duration = crop_target(
            num_frames, window, num_frames * c, c, self.limits.max_target_frames, crop_rng
        )
        return make_item(pair_id, query, features[first:stop], window, duration, first * c, c)
