"""A synthetic video-to-video moment retrieval dataset that renders anywhere, without a download.

Each *action class* is a motion pattern of a simple shape (``bounce``, ``orbit``, ``spin``, ...).
A *target* video shows an actor shape that drifts slowly among drifting distractor shapes, except
during one moment ``[s, e]`` in which it performs an action. Each *query* clip shows another instance
of the same class: another background, shape colour, size, speed, path size and direction, and maybe
another shape, so that matching takes more than copying pixels. With a profile's ``decoys``, other
shapes of the target perform actions of *other* classes of the split at other times, so that a model
must use the query to tell the moment from the decoys. Classes are split disjointly into
train/val/test, as in SportsMoments (paper Sec. 4), and the annotations are written in the
SportsMoments JSON-lines form, so that the demo goes through the same importer as real data.

Layout under ``root``: ``videos/{video_id}.mp4`` (targets and queries), ``annotations/{split}.jsonl``,
``classes.json`` (the class split), ``manifest.json`` (generator version, seed, profile) and, for
profiles with decoys, ``decoys/{split}.jsonl`` (one line per target: ``vid``, ``action_class``,
``decoy_windows`` ``[[start, end], ...]`` in seconds, ``decoy_classes``, ``split``; kept out of
``annotations/``, where every file is a split). Every video and annotation is a pure function of
``(profile, seed)``.
"""

from __future__ import annotations

import colorsys
import dataclasses
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import NamedTuple

import av
import numpy as np
from tqdm import tqdm

from matr.io import atomic_open, write_json, write_jsonl

__all__ = [
    "ACTION_CLASSES",
    "CLASS_SPLIT",
    "PROFILES",
    "SPLITS",
    "ActionClass",
    "Pose",
    "SyntheticProfile",
    "Performance",
    "VideoSpec",
    "DatasetPlan",
    "RenderSummary",
    "plan_dataset",
    "render_frames",
    "write_mp4",
    "render_dataset",
]

logger = logging.getLogger(__name__)

GENERATOR_VERSION = 1
SPLITS = ("train", "val", "test")
SHAPES = ("circle", "square", "triangle", "bar")
RGB = tuple[float, float, float]

_SIZE = (0.08, 0.14)  # shape "radius", fraction of the frame side
_EXTENT = (0.25, 0.45)  # length of an action's path, fraction of the frame side
_DRIFT = 0.06  # amplitude of each slow drift wave, fraction of the frame side
_REACH = 1.3  # farthest shape pixel from its centre, in radii (triangle corners)
_TRAIL = (0.1, 0.2, 0.3, 0.45)  # opacities of the ghosts of a shape's last 4 poses, oldest first
_DECOY_GAP_S = 2.0  # least time between a target's moment and a decoy, or two decoys: one feature clip


class Pose(NamedTuple):
    """Per-frame pose of a shape; every field has shape ``(T,)``.

    Motion functions return poses *relative to rest*: ``x, y`` are displacements in units of the
    instance's path extent (image axes: x right, y down), ``scale`` multiplies the size, ``aspect``
    the width/height ratio (area kept), ``angle`` (radians) adds to the orientation. Tracks used for
    drawing hold absolute positions in fractions of the frame side.
    """

    x: np.ndarray
    y: np.ndarray
    scale: np.ndarray
    angle: np.ndarray
    aspect: np.ndarray
    visible: np.ndarray


def _pose(phase: np.ndarray, **fields: np.ndarray) -> Pose:
    """A rest pose over ``phase`` with the given fields replaced."""
    zeros, ones = np.zeros(phase.shape), np.ones(phase.shape)
    rest = {
        "x": zeros,
        "y": zeros,
        "scale": ones,
        "angle": zeros,
        "aspect": ones,
        "visible": np.ones(phase.shape, dtype=bool),
    }
    return Pose(**(rest | fields))


def _triangle_wave(phase: np.ndarray) -> np.ndarray:
    """0 at whole cycles, 1 at half cycles, linear in between."""
    return 1 - np.abs(2 * np.mod(phase, 1) - 1)


# Motion patterns. ``phase`` is time in cycles; every pattern is at rest at whole cycles.


def bounce(phase: np.ndarray) -> Pose:
    """Hops straight up and falls back to the floor, like a ball."""
    return _pose(phase, y=-np.abs(np.sin(np.pi * phase)))


def orbit(phase: np.ndarray) -> Pose:
    """Circles around a centre to its left."""
    angle = 2 * np.pi * phase
    return _pose(phase, x=0.5 * (np.cos(angle) - 1), y=-0.5 * np.sin(angle))


def zigzag(phase: np.ndarray) -> Pose:
    """Sweeps right and back while zig-zagging down and up, twice per way."""
    return _pose(phase, x=_triangle_wave(phase), y=0.4 * _triangle_wave(4 * phase))


def slide(phase: np.ndarray) -> Pose:
    """Slides left and right along a horizontal line."""
    return _pose(phase, x=0.5 * np.sin(2 * np.pi * phase))


def grow_shrink(phase: np.ndarray) -> Pose:
    """Stays in place while its size swells to 1.5 times and shrinks to half."""
    return _pose(phase, scale=1 + 0.5 * np.sin(2 * np.pi * phase))


def spin(phase: np.ndarray) -> Pose:
    """Stays in place and turns one full turn per cycle."""
    return _pose(phase, angle=2 * np.pi * phase)


def blink(phase: np.ndarray) -> Pose:
    """Stays in place and vanishes for the second half of every cycle."""
    return _pose(phase, visible=np.mod(phase, 1) < 0.5)


def figure_eight(phase: np.ndarray) -> Pose:
    """Traces a horizontal figure eight (a 1:2 Lissajous curve)."""
    angle = 2 * np.pi * phase
    return _pose(phase, x=0.5 * np.sin(angle), y=0.25 * np.sin(2 * angle))


def stretch(phase: np.ndarray) -> Pose:
    """Stays in place while squashing wide (2:1) and stretching tall (1:2), keeping its area."""
    return _pose(phase, aspect=2.0 ** np.sin(2 * np.pi * phase))


def spiral(phase: np.ndarray) -> Pose:
    """Spirals out and back in, three turns per cycle."""
    radius, angle = 0.5 * np.abs(np.sin(np.pi * phase)), 6 * np.pi * phase
    return _pose(phase, x=radius * np.cos(angle), y=radius * np.sin(angle))


def pendulum(phase: np.ndarray) -> Pose:
    """Swings along an arc under a pivot, tilting with the swing (amplitude 45 degrees)."""
    swing = np.pi / 4 * np.sin(2 * np.pi * phase)
    return _pose(phase, x=0.7 * np.sin(swing), y=-0.7 * (1 - np.cos(swing)), angle=swing)


def square_path(phase: np.ndarray) -> Pose:
    """Runs around a square at constant speed: right, down, left, up."""
    corners = 0.8 * np.array([[0, 0], [1, 0], [1, 1], [0, 1], [0, 0]], dtype=float)
    position = 4 * np.mod(phase, 1)
    side = np.minimum(np.floor(position).astype(int), 3)
    point = corners[side] + (position - side)[:, None] * (corners[side + 1] - corners[side])
    return _pose(phase, x=point[:, 0], y=point[:, 1])


@dataclass(frozen=True)
class ActionClass:
    """A class of moments: a motion pattern, the range its period is drawn from, the shapes that show it."""

    name: str
    motion: Callable[[np.ndarray], Pose]
    period: tuple[float, float]
    shapes: tuple[str, ...] = SHAPES


ACTION_CLASSES: Mapping[str, ActionClass] = MappingProxyType(
    {
        c.name: c
        for c in (
            ActionClass("bounce", bounce, (0.8, 2.0)),
            ActionClass("orbit", orbit, (1.5, 3.0)),
            ActionClass("zigzag", zigzag, (2.0, 4.0)),
            ActionClass("grow_shrink", grow_shrink, (0.8, 2.0)),
            ActionClass("spin", spin, (0.8, 2.0), shapes=("square", "triangle", "bar")),
            ActionClass("slide", slide, (1.0, 2.5)),
            ActionClass("blink", blink, (0.5, 1.2)),
            ActionClass("figure_eight", figure_eight, (2.0, 4.0)),
            ActionClass("stretch", stretch, (0.8, 2.0)),
            ActionClass("spiral", spiral, (3.0, 6.0)),
            ActionClass("pendulum", pendulum, (1.2, 2.5)),
            ActionClass("square_path", square_path, (2.0, 4.0)),
        )
    }
)

# Class-disjoint split; a profile takes the first k classes of each split.
CLASS_SPLIT: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "train": ("bounce", "orbit", "zigzag", "grow_shrink", "spin", "slide"),
        "val": ("blink", "figure_eight", "stretch"),
        "test": ("spiral", "pendulum", "square_path"),
    }
)


@dataclass(frozen=True)
class SyntheticProfile:
    """Sizes of a synthetic dataset. Per-split tuples are ordered (train, val, test); ranges are inclusive.

    Every target shows one moment; each target is paired with ``queries_per_target`` query clips of
    its class, so a split has ``classes * targets_per_class * queries_per_target`` pairs. ``decoys``:
    how many actions of other classes of the split a target shows besides its moment (as many of the
    drawn number as fit, see :func:`plan_dataset`); with decoys, every split needs two classes.
    """

    name: str
    classes_per_split: tuple[int, int, int]
    targets_per_class: tuple[int, int, int]
    queries_per_target: int
    target_seconds: tuple[int, int]
    moment_seconds: tuple[float, float]
    query_seconds: tuple[float, float]
    distractors: tuple[int, int]
    decoys: tuple[int, int] = (0, 0)
    fps: int = 8
    size: int = 128

    def __post_init__(self) -> None:
        for split, count in zip(SPLITS, self.classes_per_split, strict=True):
            if not 1 <= count <= len(CLASS_SPLIT[split]):
                raise ValueError(
                    f"profile {self.name!r}: classes_per_split for {split} is {count}, "
                    f"expected 1..{len(CLASS_SPLIT[split])}"
                )
        for field in ("target_seconds", "moment_seconds", "query_seconds", "distractors", "decoys"):
            low, high = getattr(self, field)
            if not 0 <= low <= high:
                raise ValueError(f"profile {self.name!r}: {field} = {(low, high)} is not a range 0 <= low <= high")
        if self.decoys[1] > 0 and min(self.classes_per_split) < 2:
            raise ValueError(
                f"profile {self.name!r}: decoys {self.decoys} need another class in every split, "
                f"but classes_per_split is {self.classes_per_split}; expected >= 2 each"
            )
        if min(self.targets_per_class) < 1 or self.queries_per_target < 1 or self.fps < 1:
            raise ValueError(f"profile {self.name!r}: targets_per_class, queries_per_target and fps must be >= 1")
        if self.moment_seconds[0] * self.fps < 1 or self.query_seconds[0] * self.fps < 1:
            raise ValueError(f"profile {self.name!r}: moments and queries must last at least one frame")
        if self.moment_seconds[1] > self.target_seconds[0]:
            raise ValueError(
                f"profile {self.name!r}: moment_seconds {self.moment_seconds} must fit in the "
                f"shortest target ({self.target_seconds[0]} s)"
            )
        if self.size < 32 or self.size % 2:
            raise ValueError(f"profile {self.name!r}: size {self.size} must be even and >= 32 (yuv420p)")

    def pairs(self, split: str) -> int:
        """Number of query-target pairs in ``split``."""
        index = SPLITS.index(split)
        return self.classes_per_split[index] * self.targets_per_class[index] * self.queries_per_target


PROFILES: Mapping[str, SyntheticProfile] = MappingProxyType(
    {
        p.name: p
        for p in (
            SyntheticProfile(
                "tiny",
                classes_per_split=(3, 2, 2),
                targets_per_class=(4, 2, 2),
                queries_per_target=2,
                target_seconds=(20, 28),
                moment_seconds=(4.0, 10.0),
                query_seconds=(3.0, 6.0),
                distractors=(0, 2),
            ),
            SyntheticProfile(
                "demo",
                classes_per_split=(6, 3, 3),
                targets_per_class=(25, 10, 10),
                queries_per_target=2,
                target_seconds=(30, 60),
                moment_seconds=(4.0, 15.0),
                query_seconds=(4.0, 10.0),
                distractors=(0, 3),
                decoys=(1, 2),
            ),
        )
    }
)


@dataclass(frozen=True)
class Look:
    """Appearance of one shape: kind, colour (HSV in [0, 1]) and radius (fraction of the frame side)."""

    shape: str
    hsv: RGB
    size: float

    @property
    def rgb(self) -> RGB:
        return colorsys.hsv_to_rgb(*self.hsv)


@dataclass(frozen=True)
class Background:
    """A background: ``solid`` (first colour), a static ``gradient`` between two colours along
    ``direction``, or a ``texture`` of plane waves ``(kx, ky, phase, speed)`` (cycles per frame side,
    radians, cycles per second) that drifts slowly."""

    kind: str
    hue: float
    colours: tuple[RGB, RGB]
    direction: float
    waves: tuple[tuple[float, float, float, float], ...]


@dataclass(frozen=True)
class Performance:
    """A shape performing ``cycles`` cycles of ``action`` in frames ``[k0, k1)``, drifting before and after."""

    look: Look
    action: str
    action_frames: tuple[int, int]
    cycles: int
    extent: float
    mirror: bool


@dataclass(frozen=True)
class VideoSpec:
    """Everything needed to render one video; the actor performs ``action`` in frames ``[k0, k1)``.

    In a target, each of ``decoys`` is another shape performing an action of another class, at a
    time apart from the moment and from the other decoys.
    """

    video_id: str
    num_frames: int
    fps: int
    size: int
    background: Background
    actor: Look
    action: str
    action_frames: tuple[int, int]
    cycles: int
    extent: float
    mirror: bool
    distractors: tuple[Look, ...]
    seed: int
    decoys: tuple[Performance, ...] = ()

    @property
    def duration(self) -> float:
        return self.num_frames / self.fps

    @property
    def window(self) -> tuple[float, float]:
        """The action's ``[start, end]`` in seconds."""
        return self.action_frames[0] / self.fps, self.action_frames[1] / self.fps

    @property
    def performance(self) -> Performance:
        """The actor's action, the moment."""
        return Performance(self.actor, self.action, self.action_frames, self.cycles, self.extent, self.mirror)

    @property
    def decoy_windows(self) -> tuple[tuple[float, float], ...]:
        """The decoys' ``[start, end]`` in seconds, in time order."""
        return tuple((decoy.action_frames[0] / self.fps, decoy.action_frames[1] / self.fps) for decoy in self.decoys)


@dataclass(frozen=True)
class DatasetPlan:
    """All videos to render (targets and queries), the annotation records of each split and its
    decoy records (one per target)."""

    videos: tuple[VideoSpec, ...]
    annotations: Mapping[str, tuple[dict, ...]]
    decoys: Mapping[str, tuple[dict, ...]]


@dataclass(frozen=True)
class RenderSummary:
    """What :func:`render_dataset` did: annotation file, decoy file (profiles with decoys) and pair count
    per split, videos rendered and skipped."""

    root: Path
    annotations: Mapping[str, Path]
    decoys: Mapping[str, Path]
    pairs: Mapping[str, int]
    rendered: int
    skipped: int


def _sample_look(rng: np.random.Generator, shapes: tuple[str, ...], avoid_hue: float | None = None) -> Look:
    hue = rng.uniform() if avoid_hue is None else (avoid_hue + rng.uniform(0.2, 0.8)) % 1
    return Look(str(rng.choice(shapes)), (hue, rng.uniform(0.6, 1.0), rng.uniform(0.8, 1.0)), rng.uniform(*_SIZE))


def _sample_background(rng: np.random.Generator, avoid_hue: float | None = None) -> Background:
    hue = rng.uniform() if avoid_hue is None else (avoid_hue + rng.uniform(0.2, 0.8)) % 1
    colours = (
        colorsys.hsv_to_rgb(hue, rng.uniform(0.2, 0.6), rng.uniform(0.15, 0.4)),
        colorsys.hsv_to_rgb((hue + rng.uniform(-0.15, 0.15)) % 1, rng.uniform(0.2, 0.6), rng.uniform(0.3, 0.55)),
    )
    waves = tuple(
        (float(k * np.cos(a)), float(k * np.sin(a)), float(p), float(v))
        for k, a, p, v in zip(
            rng.uniform(1, 3, 3),
            rng.uniform(0, 2 * np.pi, 3),
            rng.uniform(0, 2 * np.pi, 3),
            rng.uniform(-0.02, 0.02, 3),
        )
    )
    return Background(
        str(rng.choice(("solid", "gradient", "texture"))), float(hue), colours, float(rng.uniform(0, 2 * np.pi)), waves
    )


def _sample_cycles(rng: np.random.Generator, action: str, action_frames: tuple[int, int], fps: int) -> int:
    """Whole cycles of ``action`` in ``action_frames``, at a period drawn from the class's range."""
    return max(1, round((action_frames[1] - action_frames[0]) / fps / rng.uniform(*ACTION_CLASSES[action].period)))


def _sample_video(
    rng: np.random.Generator,
    video_id: str,
    action: str,
    num_frames: int,
    action_frames: tuple[int, int],
    profile: SyntheticProfile,
    avoid: VideoSpec | None,
    decoys: tuple[Performance, ...] = (),
) -> VideoSpec:
    """Draws an instance of ``action``; with ``avoid``, its background and actor hues differ from those."""
    cycles = _sample_cycles(rng, action, action_frames, profile.fps)
    background = _sample_background(rng, None if avoid is None else avoid.background.hue)
    actor = _sample_look(rng, ACTION_CLASSES[action].shapes, None if avoid is None else avoid.actor.hsv[0])
    distractors = tuple(
        _sample_look(rng, SHAPES) for _ in range(rng.integers(profile.distractors[0], profile.distractors[1] + 1))
    )
    return VideoSpec(
        video_id,
        num_frames,
        profile.fps,
        profile.size,
        background,
        actor,
        action,
        action_frames,
        cycles,
        float(rng.uniform(*_EXTENT)),
        bool(rng.integers(2)),
        distractors,
        int(rng.integers(2**63)),
        decoys,
    )


def _place(rng: np.random.Generator, free: list[tuple[int, int]], length: int, gap: int) -> int | None:
    """A start frame, uniform over the places where ``length`` frames fit in one of the ``free``
    frame ranges ``[a, b)``, which it then splits, keeping ``gap`` frames on either side; ``None``
    (and ``free`` untouched) when it fits nowhere."""
    fits = [(index, a, b - length) for index, (a, b) in enumerate(free) if b - length >= a]
    if not fits:
        return None
    pick = int(rng.integers(sum(last - first + 1 for _, first, last in fits)))
    for index, first, last in fits:
        if pick <= last - first:
            a, b = free[index]
            free[index : index + 1] = [(a, first + pick - gap), (first + pick + length + gap, b)]
            return first + pick
        pick -= last - first + 1
    raise AssertionError("unreachable: pick is below the number of places")


def _sample_decoys(
    rng: np.random.Generator,
    classes: tuple[str, ...],
    num_frames: int,
    moment: tuple[int, int],
    profile: SyntheticProfile,
) -> tuple[Performance, ...]:
    """Decoys of a target with ``moment`` (frames): a number drawn from ``profile.decoys`` of actions of
    ``classes`` (distinct while there are enough), each as long as a moment could be and placed
    uniformly where it fits, :data:`_DECOY_GAP_S` away from the moment and the decoys placed before
    it; those that fit nowhere are left out. In time order."""
    count = int(rng.integers(profile.decoys[0], profile.decoys[1] + 1))
    if count == 0:
        return ()
    gap = round(_DECOY_GAP_S * profile.fps)
    free = [(0, moment[0] - gap), (moment[1] + gap, num_frames)]
    decoys = []
    for action in rng.choice(classes, size=count, replace=count > len(classes)):
        length = _seconds_to_frames(rng, profile.moment_seconds, profile.fps)
        start = _place(rng, free, length, gap)
        if start is None:
            continue
        frames = (start, start + length)
        cycles = _sample_cycles(rng, str(action), frames, profile.fps)
        look = _sample_look(rng, ACTION_CLASSES[str(action)].shapes)
        decoys.append(
            Performance(look, str(action), frames, cycles, float(rng.uniform(*_EXTENT)), bool(rng.integers(2)))
        )
    return tuple(sorted(decoys, key=lambda decoy: decoy.action_frames))


def _seconds_to_frames(rng: np.random.Generator, seconds: tuple[float, float], fps: int) -> int:
    return max(1, round(rng.uniform(*seconds) * fps))


def plan_dataset(profile: SyntheticProfile, seed: int) -> DatasetPlan:
    """Draws every video and annotation of ``profile``; a pure function of ``(profile, seed)``.

    Each (split, class, target index) has its own random stream, so instances do not depend on how
    many others a profile asks for; a target's decoys draw from a second stream of their own, so the
    target, its moment and its queries are the same whatever ``profile.decoys`` is. Decoys are of the
    split's other classes in the profile. Ids: ``{split}_{class}_t{index:03d}`` for targets,
    ``..._q{j}`` for their queries; a query belongs to exactly one pair.
    """
    videos: list[VideoSpec] = []
    annotations: dict[str, tuple[dict, ...]] = {}
    decoys: dict[str, tuple[dict, ...]] = {}
    for split_index, split in enumerate(SPLITS):
        records, decoy_records = [], []
        classes = CLASS_SPLIT[split][: profile.classes_per_split[split_index]]
        for class_index, action in enumerate(classes):
            others = tuple(name for name in classes if name != action)
            for index in range(profile.targets_per_class[split_index]):
                rng = np.random.default_rng([seed, split_index, class_index, index])
                target_id = f"{split}_{action}_t{index:03d}"
                num_frames = int(rng.integers(profile.target_seconds[0], profile.target_seconds[1] + 1)) * profile.fps
                moment = _seconds_to_frames(rng, profile.moment_seconds, profile.fps)
                start = int(rng.integers(0, num_frames - moment + 1))
                target_decoys = _sample_decoys(
                    np.random.default_rng([seed, split_index, class_index, index, 1]),
                    others,
                    num_frames,
                    (start, start + moment),
                    profile,
                )
                target = _sample_video(
                    rng, target_id, action, num_frames, (start, start + moment), profile, None, target_decoys
                )
                videos.append(target)
                decoy_records.append(_decoy_record(split, target))
                for j in range(profile.queries_per_target):
                    length = _seconds_to_frames(rng, profile.query_seconds, profile.fps)
                    query = _sample_video(rng, f"{target_id}_q{j}", action, length, (0, length), profile, target)
                    videos.append(query)
                    records.append(_record(split, target, query))
        annotations[split], decoys[split] = tuple(records), tuple(decoy_records)
    return DatasetPlan(tuple(videos), MappingProxyType(annotations), MappingProxyType(decoys))


def _record(split: str, target: VideoSpec, query: VideoSpec) -> dict:
    """One pair in the SportsMoments JSON-lines form (times in seconds)."""
    return {
        "qid": query.video_id,
        "vid": target.video_id,
        "duration": target.duration,
        "relevant_windows": [list(target.window)],
        "action_class": target.action,
        "split": split,
    }


def _decoy_record(split: str, target: VideoSpec) -> dict:
    """The decoys of one target (times in seconds), for ``decoys/{split}.jsonl``."""
    return {
        "vid": target.video_id,
        "action_class": target.action,
        "decoy_windows": [list(window) for window in target.decoy_windows],
        "decoy_classes": [decoy.action for decoy in target.decoys],
        "split": split,
    }


# Rendering.


def _fold(values: np.ndarray, low: float, high: float) -> np.ndarray:
    """Reflects ``values`` into ``[low, high]`` as a ball between two walls (identity inside)."""
    width = high - low
    return low + width - np.abs(np.mod(values - low, 2 * width) - width)


def _drift(rng: np.random.Generator, tau: np.ndarray, amplitude: float) -> np.ndarray:
    """Slow aperiodic wandering: three sine waves of 20-100 s periods, zero at ``tau = 0``. ``(T,)``."""
    freq, phase, amp = rng.uniform(0.01, 0.05, 3), rng.uniform(0, 2 * np.pi, 3), amplitude * rng.uniform(0.3, 1, 3)
    return (amp * (np.sin(2 * np.pi * freq * tau[:, None] + phase) - np.sin(phase))).sum(axis=1)


def _wandering_track(rng: np.random.Generator, tau: np.ndarray, start: np.ndarray, margin: float) -> Pose:
    """A shape drifting from ``start = (x, y, angle)`` at ``tau = 0``, kept ``margin`` inside the frame."""
    x = _fold(start[0] + _drift(rng, tau, _DRIFT), margin, 1 - margin)
    y = _fold(start[1] + _drift(rng, tau, _DRIFT), margin, 1 - margin)
    return _pose(tau, x=x, y=y, angle=start[2] + _drift(rng, tau, 0.3))


def _performance_track(act: Performance, spec: VideoSpec, rng: np.random.Generator) -> Pose:
    """The absolute pose ``(T,)`` of a shape of ``spec`` performing ``act``: wandering, the action in
    ``[k0, k1)``, wandering again."""
    k0, k1 = act.action_frames
    rel = ACTION_CLASSES[act.action].motion(np.arange(k1 - k0) * act.cycles / (k1 - k0))
    sign = -1.0 if act.mirror else 1.0
    dx, dy = sign * act.extent * rel.x, act.extent * rel.y
    reach = act.look.size * _REACH * float(np.max(rel.scale * np.sqrt(np.maximum(rel.aspect, 1 / rel.aspect))))
    anchor = []
    for offsets in (dx, dy):
        low, high = reach - offsets.min(), 1 - reach - offsets.max()
        if low > high:
            raise ValueError(
                f"{spec.video_id}: action {act.action!r} with extent {act.extent:.2f} and size "
                f"{act.look.size:.2f} does not fit in the frame"
            )
        anchor.append(rng.uniform(low, high))
    rest = np.array([anchor[0], anchor[1], rng.uniform(0, 2 * np.pi)])
    before = _wandering_track(rng, (np.arange(k0) - k0) / spec.fps, rest, act.look.size * _REACH)
    after = _wandering_track(rng, np.arange(spec.num_frames - k1) / spec.fps, rest, act.look.size * _REACH)
    during = rel._replace(x=anchor[0] + dx, y=anchor[1] + dy, angle=rest[2] + sign * rel.angle)
    return Pose(*(np.concatenate(parts) for parts in zip(before, during, after, strict=True)))


def _background_frames(background: Background, size: int) -> Callable[[float], np.ndarray]:
    """A function of time (s) giving the background ``(H, W, 3)`` float image in [0, 1]."""
    grid = (np.arange(size) + 0.5) / size
    x, y = grid[None, :], grid[:, None]
    low, high = np.asarray(background.colours[0]), np.asarray(background.colours[1])
    if background.kind == "texture":

        def frame(t: float) -> np.ndarray:
            field = sum(np.cos(2 * np.pi * (kx * x + ky * y - v * t) + p) for kx, ky, p, v in background.waves)
            return low + (0.5 + field[..., None] / 6) * (high - low)

        return frame
    if background.kind == "gradient":
        ramp = np.clip(0.5 + np.cos(background.direction) * (x - 0.5) + np.sin(background.direction) * (y - 0.5), 0, 1)
        static = low + ramp[..., None] * (high - low)
    else:
        static = np.broadcast_to(low, (size, size, 3))
    return lambda t: static.copy()


def _signed_distance(shape: str, u: np.ndarray, v: np.ndarray, radius: float) -> np.ndarray:
    """Signed distance (pixels, negative inside) of shape-frame points ``(u, v)`` to the shape's outline."""
    if shape == "circle":
        return np.hypot(u, v) - radius
    if shape == "square":
        return np.maximum(np.abs(u), np.abs(v)) - 0.85 * radius
    if shape == "bar":
        return np.maximum(np.abs(u) - radius, np.abs(v) - 0.4 * radius)
    if shape == "triangle":  # equilateral, apex up, circumradius 1.3 r
        side = 0.866 * np.abs(u) + 0.5 * v
        return np.maximum(-v, side) - 0.65 * radius
    raise ValueError(f"unknown shape {shape!r}, expected one of {SHAPES}")


def _paint(image: np.ndarray, look: Look, pose: Pose, k: int, opacity: float = 1.0) -> None:
    """Draws frame ``k`` of ``pose`` onto ``image (H, W, 3)`` in place, anti-aliased over one pixel."""
    if not pose.visible[k]:
        return
    size = image.shape[0]
    radius = look.size * pose.scale[k] * size
    stretch_x, stretch_y = np.sqrt(pose.aspect[k]), 1 / np.sqrt(pose.aspect[k])
    reach = _REACH * radius * max(stretch_x, stretch_y) + 2
    cx, cy = pose.x[k] * size, pose.y[k] * size
    x0, x1 = max(int(cx - reach), 0), min(int(cx + reach) + 1, size)
    y0, y1 = max(int(cy - reach), 0), min(int(cy + reach) + 1, size)
    if x0 >= x1 or y0 >= y1:
        return
    px, py = np.arange(x0, x1) + 0.5 - cx, (np.arange(y0, y1) + 0.5 - cy)[:, None]
    cos, sin = np.cos(pose.angle[k]), np.sin(pose.angle[k])
    u, v = (cos * px + sin * py) / stretch_x, (cos * py - sin * px) / stretch_y
    alpha = opacity * np.clip(0.5 - _signed_distance(look.shape, u, v, radius), 0, 1)[..., None]
    window = image[y0:y1, x0:x1]
    window += alpha * (np.asarray(look.rgb) - window)


def _moved(pose: Pose, before: int, now: int, size: int) -> bool:
    """Whether the shape's pose at frame ``before`` differs visibly from the one at ``now``."""
    if before < 0:
        return False
    return bool(
        size * np.hypot(pose.x[now] - pose.x[before], pose.y[now] - pose.y[before]) > 0.5
        or abs(pose.angle[now] - pose.angle[before]) > 0.02
        or pose.visible[now] != pose.visible[before]
        or abs(pose.scale[now] / pose.scale[before] - 1) > 0.02
        or abs(pose.aspect[now] / pose.aspect[before] - 1) > 0.02
    )


def render_frames(spec: VideoSpec) -> np.ndarray:
    """Renders ``spec`` to RGB frames ``(T, H, W, 3)`` uint8; frame ``k`` shows time ``k / fps``.

    Every shape leaves a fading trail of its last few poses, like motion blur in a long exposure,
    so that a single frame (features take one every 2 s) still shows how a shape moves; a slowly
    drifting shape's trail hides under the shape. Decoy ``i`` draws from a stream of its own, seeded
    ``(spec.seed, i)``, so that a spec without decoys renders as it did before decoys existed.
    """
    rng = np.random.default_rng(spec.seed)
    actor = _performance_track(spec.performance, spec, rng)
    tau = np.arange(spec.num_frames) / spec.fps
    tracks = [
        (
            look,
            _wandering_track(
                rng, tau, np.array([*rng.uniform(0.15, 0.85, 2), rng.uniform(0, 2 * np.pi)]), look.size * _REACH
            ),
        )
        for look in spec.distractors
    ]
    tracks += [
        (decoy.look, _performance_track(decoy, spec, np.random.default_rng([spec.seed, i])))
        for i, decoy in enumerate(spec.decoys, start=1)
    ]
    tracks.append((spec.actor, actor))
    background = _background_frames(spec.background, spec.size)
    frames = np.empty((spec.num_frames, spec.size, spec.size, 3), dtype=np.uint8)
    for k, t in enumerate(tau):
        image = background(t)
        for look, pose in tracks:
            for age, opacity in zip(range(len(_TRAIL), 0, -1), _TRAIL):
                if _moved(pose, k - age, k, spec.size):
                    _paint(image, look, pose, k - age, opacity)
            _paint(image, look, pose, k)
        frames[k] = np.round(image * 255)
    return frames


def _codec() -> str:
    return "libx264" if "libx264" in av.codec.codecs_available else "mpeg4"


def write_mp4(path: str | Path, frames: np.ndarray, fps: int) -> None:
    """Encodes RGB ``frames (T, H, W, 3)`` uint8 to a yuv420p mp4 (H.264, else MPEG-4 Part 2) atomically."""
    codec = _codec()
    with atomic_open(path) as handle, av.open(handle, mode="w", format="mp4") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.height, stream.width = frames.shape[1:3]
        stream.pix_fmt = "yuv420p"
        stream.codec_context.thread_count = 1
        stream.options = {"crf": "18"} if codec == "libx264" else {"qscale": "3"}
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())


def _profile_identity(profile: SyntheticProfile) -> dict:
    """The profile as ``manifest.json`` records it. ``decoys`` is left out when it is ``(0, 0)``, as it
    was before decoys existed, so that folders rendered then (the same data) are still recognised."""
    fields = dataclasses.asdict(profile)
    if profile.decoys == (0, 0):
        del fields["decoys"]
    return fields


def _claim_root(root: Path, profile: SyntheticProfile, seed: int) -> None:
    """Writes ``manifest.json``, or checks that an existing one describes the same dataset."""
    identity = json.loads(
        json.dumps(
            {"generator": __name__, "version": GENERATOR_VERSION, "seed": seed, "profile": _profile_identity(profile)}
        )
    )
    manifest = root / "manifest.json"
    if manifest.exists():
        found = json.loads(manifest.read_text(encoding="utf-8"))
        if {key: found.get(key) for key in identity} != identity:
            raise ValueError(
                f"{manifest} describes another dataset (generator, version, seed or profile differ "
                f"from {identity}); render into an empty folder"
            )
        return
    write_json(manifest, identity | {"codec": _codec()})


def render_dataset(
    root: str | Path, profile: str | SyntheticProfile = "tiny", seed: int = 0, progress: bool = True
) -> RenderSummary:
    """Renders the synthetic dataset of ``profile`` under ``root``; resumable.

    Videos already present are skipped (each is written to a temporary name and moved into place
    only once complete); ``classes.json``, the annotations and the decoy records (profiles with
    decoys) are rewritten, identically, from ``(profile, seed)``. Annotations are written last, once
    every video exists. Raises
    ``ValueError`` if ``root`` holds a dataset of another profile, seed or generator version.
    """
    if isinstance(profile, str):
        if profile not in PROFILES:
            raise ValueError(f"unknown synthetic profile {profile!r}, expected one of {sorted(PROFILES)}")
        profile = PROFILES[profile]
    root = Path(root)
    (root / "videos").mkdir(parents=True, exist_ok=True)
    (root / "annotations").mkdir(exist_ok=True)
    _claim_root(root, profile, seed)
    plan = plan_dataset(profile, seed)
    classes = {split: list(CLASS_SPLIT[split][:n]) for split, n in zip(SPLITS, profile.classes_per_split, strict=True)}
    write_json(root / "classes.json", classes)
    rendered = skipped = 0
    for spec in tqdm(plan.videos, desc=f"synthetic {profile.name}", unit="video", disable=not progress):
        path = root / "videos" / f"{spec.video_id}.mp4"
        if path.exists():
            skipped += 1
            continue
        write_mp4(path, render_frames(spec), spec.fps)
        rendered += 1
    decoys = {split: root / "decoys" / f"{split}.jsonl" for split in SPLITS} if profile.decoys[1] > 0 else {}
    for split, path in decoys.items():
        path.parent.mkdir(exist_ok=True)
        write_jsonl(path, plan.decoys[split])
    annotations = {}
    for split, records in plan.annotations.items():
        annotations[split] = root / "annotations" / f"{split}.jsonl"
        write_jsonl(annotations[split], records)
    logger.info(
        "synthetic %s (seed %d) in %s: %d videos rendered, %d already there",
        profile.name,
        seed,
        root,
        rendered,
        skipped,
    )
    return RenderSummary(
        root,
        MappingProxyType(annotations),
        MappingProxyType(decoys),
        MappingProxyType({split: len(plan.annotations[split]) for split in SPLITS}),
        rendered,
        skipped,
    )
