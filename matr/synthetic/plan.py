"""Sizes and the random plan of a synthetic v2 dataset: every video's scene and every pair.

Timings follow SportsMoments' annotation files (``val.csv`` and ``test.csv``, measured by
:func:`matr.synthetic.reference.annotation_statistics`): targets last 77-123 s (5-95 %, median
100 s), moments 2-13 s (median 6-7 s), about 7 % of their target, and start near the middle of it
(start / duration 0.36-0.57, median 0.46). The ``demo`` size keeps these timings; CI's ``tiny`` size
halves every target's duration (:data:`TINY_TARGET_SCALE`), so its moments are about 14 % of their
target: a CI size, not a miniature of SportsMoments. Each target shows one moment plus ``decoys`` events of
other classes of its split and pooled cut-aways during play. As in SportsMoments, targets and
queries are reused across pairs: each class has ``targets_per_class`` targets and
``queries_per_class`` queries, and target ``i`` is paired with queries ``i, i + 1, ...`` (mod the
number of queries), ``pairs_per_target`` of them (SportsMoments: median 6-7 pairs per target).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np

from matr import choices
from matr.synthetic.scenes import CLASS_SPLIT, CLASSES, POOL, EventClass, Look, Scene, Shot

__all__ = ["SIZES", "SPLITS", "DatasetPlan", "SyntheticSize", "VideoSpec", "plan_dataset"]

SPLITS = ("train", "val", "test")

TARGET_SECONDS = choices.declare(
    "synthetic v2: target duration, normal (mean, std) clipped to [low, high] s",
    (100.0, 14.0, 62.0, 137.0),
    "SportsMoments val+test: median 99.7 s, 5-95 % 77-123 s, range 40-187 s",
)
MOMENT_SECONDS = choices.declare(
    "synthetic v2: moment and query duration, log-normal (median, sigma) clipped to [low, high] s",
    (6.5, 0.5, 2.0, 22.0),
    "SportsMoments val+test: median 6-7 s, quartiles 4-10 s, 5-95 % 2-13 s",
)
START_FRACTION = choices.declare(
    "synthetic v2: moment start / target duration, normal (mean, std)",
    (0.46, 0.07),
    "SportsMoments val+test: median 0.46, quartiles 0.42-0.51; moments sit near the middle of targets",
)
SHOT_WEIGHTS = choices.declare(
    "synthetic v2: Dirichlet weights of an event's build-up, key and reaction shots",
    (3.0, 6.0, 3.0),
    "the key shot takes about half of an event, so most moments show it in a 2 s sample",
)
CUTAWAY_EVERY_S = choices.declare(
    "synthetic v2: mean seconds of play between pooled cut-aways (2-6 s each)",
    20.0,
    "cut-aways share the pooled shots of events, so a pooled frame alone is no evidence of a moment",
)
_GAP_S = 2.0  # least time between two events (moment, decoys) of a target: one feature clip


@dataclass(frozen=True)
class SyntheticSize:
    """A named size of a synthetic v2 dataset (:data:`SIZES`): how many classes, videos and pairs each
    split has, and the videos' frame rate and frame size (pixels); per-split tuples are ordered (train, val, test).

    A split has ``classes * targets_per_class * pairs_per_target`` pairs whose ground truth is a
    target's own moment. ``decoys``: inclusive range of how many events of other classes of the split
    a target shows besides its moment. ``event_pairs``: per split, how many queries of a decoy's class
    are also paired with that target, with the decoy's window as their ground truth (0: decoys stay
    distractors only); a target's ground truth then depends on the query. ``target_scale``
    multiplies every target's drawn duration (1: SportsMoments' timings); moments keep their lengths.
    """

    name: str
    classes_per_split: tuple[int, int, int]
    targets_per_class: tuple[int, int, int]
    queries_per_class: tuple[int, int, int]
    pairs_per_target: tuple[int, int, int]
    decoys: tuple[int, int] = (1, 2)
    event_pairs: tuple[int, int, int] = (0, 0, 0)
    fps: int = 1
    frame_size: int = 112  # pixels, square
    target_scale: float = 1.0

    def __post_init__(self) -> None:
        for index, split in enumerate(SPLITS):
            if not 2 <= self.classes_per_split[index] <= len(CLASS_SPLIT[split]):
                raise ValueError(
                    f"synthetic size {self.name!r}: classes_per_split for {split} is {self.classes_per_split[index]}, "
                    f"expected 2..{len(CLASS_SPLIT[split])} (decoys need another class)"
                )
            if not 1 <= self.pairs_per_target[index] <= self.queries_per_class[index]:
                raise ValueError(
                    f"synthetic size {self.name!r}: pairs_per_target must be in 1..queries_per_class ({split})"
                )
            if not 0 <= self.event_pairs[index] <= self.queries_per_class[index]:
                raise ValueError(f"synthetic size {self.name!r}: event_pairs must be in 0..queries_per_class ({split})")
            if self.targets_per_class[index] < 1:
                raise ValueError(f"synthetic size {self.name!r}: targets_per_class must be >= 1 ({split})")
        if not 0 <= self.decoys[0] <= self.decoys[1] or self.fps < 1 or self.frame_size < 32 or self.frame_size % 2:
            raise ValueError(
                f"synthetic size {self.name!r}: decoys must be a range >= 0, fps >= 1, frame_size even and >= 32"
            )
        if not self.target_scale > 0:
            raise ValueError(f"synthetic size {self.name!r}: target_scale must be positive")

    def pairs(self, split: str) -> int:
        """Number of query-target pairs of ``split`` whose ground truth is a target's own moment (the
        pairs of decoy events, ``event_pairs``, come on top and depend on the draw)."""
        index = SPLITS.index(split)
        return self.classes_per_split[index] * self.targets_per_class[index] * self.pairs_per_target[index]


TRAIN_EVENT_PAIRS: int = choices.declare(
    "training pairs per decoy event",
    2,
    "with one ground truth per target, shared by all its pairs, the heads learn where each training target's moment "
    "is and ignore the query (measured by swapping queries: same predictions; validation at chance). Training "
    "pairs therefore also ask for the target's decoy events with queries of their class, so the answer depends on "
    "the query; validation and test pairs keep one moment per target and the decoys as distractors",
)
TINY_TARGET_SCALE: float = choices.declare(
    "synthetic v2 tiny: target duration scale",
    0.5,
    "tiny is CI's size: targets half as long (31-68 s) halve the CLIP frames the smoke series encodes (issue 9: "
    "the series within 5 minutes; measured: the whole series takes 0.70-0.77 of its time before). Moments keep SportsMoments' lengths, so they "
    "cover about 14 % of a tiny target instead of 7 %; the demo size keeps SportsMoments' timings",
)
SIZES: Mapping[str, SyntheticSize] = MappingProxyType(
    {
        p.name: p
        for p in (
            SyntheticSize(
                "tiny",
                (3, 2, 2),
                (3, 2, 2),
                (4, 2, 3),
                (3, 2, 3),
                event_pairs=(TRAIN_EVENT_PAIRS, 0, 0),
                target_scale=TINY_TARGET_SCALE,
            ),
            SyntheticSize("demo", (8, 3, 4), (8, 4, 8), (8, 5, 10), (3, 5, 10), event_pairs=(TRAIN_EVENT_PAIRS, 0, 0)),
        )
    }
)


@dataclass(frozen=True)
class VideoSpec:
    """One video to render: ``num_frames`` at ``fps``, ``frame_size`` pixels square, showing ``scene``.

    ``moment``: the event's ``[start, end]`` in seconds (a query is all moment); ``decoys``: the other
    events of a target as ``(class, start, end)``.
    """

    video_id: str
    action: str
    num_frames: int
    fps: int
    frame_size: int
    scene: Scene
    moment: tuple[float, float]
    decoys: tuple[tuple[str, float, float], ...] = ()

    @property
    def duration(self) -> float:
        return self.num_frames / self.fps


@dataclass(frozen=True)
class DatasetPlan:
    """All videos to render, and per split the annotation records and the decoy records (one per target)."""

    videos: tuple[VideoSpec, ...]
    annotations: Mapping[str, tuple[dict, ...]]
    decoys: Mapping[str, tuple[dict, ...]]


def _clipped_normal(rng: np.random.Generator, mean: float, std: float, low: float, high: float) -> float:
    return float(np.clip(rng.normal(mean, std), low, high))


def _moment_seconds(rng: np.random.Generator) -> float:
    median, sigma, low, high = MOMENT_SECONDS
    return float(np.clip(median * np.exp(rng.normal(0, sigma)), low, high))


def _look(rng: np.random.Generator) -> Look:
    """One instance's nuisances of a close-up (a camera cut redraws them)."""
    size = float(rng.uniform(0.3, 0.42))
    centre = tuple(float(c) for c in rng.uniform(0.6 * size, 1 - 0.6 * size, 2))
    return Look(
        float(rng.uniform(-0.04, 0.04)),
        float(rng.uniform(0.7, 1.0)),
        size,
        centre,
        float(rng.uniform(3, 6)),
        float(rng.uniform(-15, 15)),
    )


def _event_shots(rng: np.random.Generator, event: EventClass, start: float, end: float) -> list[Shot]:
    """The build-up, key and reaction shots of ``event`` in ``[start, end)``."""
    bounds = start + (end - start) * np.concatenate([[0], np.cumsum(rng.dirichlet(SHOT_WEIGHTS))])
    return [Shot(float(a), float(b), element, _look(rng)) for a, b, element in zip(bounds, bounds[1:], event.shots)]


def _place(rng: np.random.Generator, free: list[tuple[float, float]], length: float) -> float | None:
    """A start, uniform over where ``length`` s fits in the ``free`` ranges (then split, keeping
    :data:`_GAP_S` either side); ``None`` when it fits nowhere."""
    room = [(index, a, b - length) for index, (a, b) in enumerate(free) if b - length > a]
    if not room:
        return None
    widths = np.array([last - first for _, first, last in room])
    pick = int(rng.choice(len(room), p=widths / widths.sum()))
    index, first, last = room[pick]
    start = float(rng.uniform(first, last))
    a, b = free[index]
    free[index : index + 1] = [(a, start - _GAP_S), (start + length + _GAP_S, b)]
    return start


def _scene(rng: np.random.Generator, sport: str, shots: list[Shot]) -> Scene:
    """A venue of ``sport`` with fresh nuisances, showing ``shots``."""
    players = tuple(
        tuple(float(v) for v in rng.uniform((0, 0.1, 0.02, 0), (1, 0.9, 0.1, 6.3))) for _ in range(rng.integers(2, 9))
    )
    return Scene(
        sport,
        float(rng.uniform(-0.04, 0.04)),
        float(rng.uniform(0.2, 0.45)),
        float(rng.uniform(0.8, 1.15)),
        (float(rng.uniform()), float(rng.uniform())),
        players,
        tuple(sorted(shots, key=lambda shot: shot.start)),
        int(rng.integers(2**63)),
    )


def _target(
    rng: np.random.Generator, video_id: str, action: str, others: tuple[str, ...], size: SyntheticSize
) -> VideoSpec:
    """A broadcast of ``action``'s sport: its moment near the middle, decoys of ``others``, cut-aways."""
    mean, std, low, high = TARGET_SECONDS
    num_frames = round(_clipped_normal(rng, mean, std, low, high) * size.target_scale * size.fps)
    duration = num_frames / size.fps
    length = _moment_seconds(rng)
    start = _clipped_normal(rng, *START_FRACTION, 0.0, 1.0 - length / duration) * duration
    shots = _event_shots(rng, CLASSES[action], start, start + length)
    free = [(0.0, start - _GAP_S), (start + length + _GAP_S, duration)]
    same_sport = [name for name in others if CLASSES[name].sport == CLASSES[action].sport] or list(others)
    decoys = []
    for _ in range(int(rng.integers(size.decoys[0], size.decoys[1] + 1))):
        name, decoy_length = str(rng.choice(same_sport)), _moment_seconds(rng)
        decoy_start = _place(rng, free, decoy_length)
        if decoy_start is not None:
            shots += _event_shots(rng, CLASSES[name], decoy_start, decoy_start + decoy_length)
            decoys.append((name, decoy_start, decoy_start + decoy_length))
    for _ in range(rng.poisson(duration / CUTAWAY_EVERY_S)):
        cut_length = float(rng.uniform(2, 6))
        cut_start = _place(rng, free, cut_length)
        if cut_start is not None:
            element = POOL[str(rng.choice(list(POOL)))]
            shots.append(Shot(cut_start, cut_start + cut_length, element, _look(rng)))
    scene = _scene(rng, CLASSES[action].sport, shots)
    return VideoSpec(
        video_id,
        action,
        num_frames,
        size.fps,
        size.frame_size,
        scene,
        (start, start + length),
        tuple(sorted(decoys, key=lambda d: d[1])),
    )


def _query(rng: np.random.Generator, video_id: str, action: str, size: SyntheticSize) -> VideoSpec:
    """Another instance of ``action``: the event alone, in a venue of its own."""
    num_frames = max(1, round(_moment_seconds(rng) * size.fps))
    duration = num_frames / size.fps
    scene = _scene(rng, CLASSES[action].sport, _event_shots(rng, CLASSES[action], 0.0, duration))
    return VideoSpec(video_id, action, num_frames, size.fps, size.frame_size, scene, (0.0, duration))


def _pair(split: str, target: VideoSpec, query: VideoSpec, window: tuple[float, float]) -> dict:
    """One pair in the SportsMoments JSON-lines form (times in seconds)."""
    return {
        "vid": target.video_id,
        "action_class": query.action,
        "split": split,
        "qid": query.video_id,
        "duration": target.duration,
        "relevant_windows": [[round(t, 3) for t in window]],
    }


def _event_pairs(
    split: str, target: VideoSpec, queries: Mapping[str, list[VideoSpec]], count: int, i: int
) -> list[dict]:
    """``count`` pairs per decoy event of ``target`` whose class shows once in it, its window as ground truth."""
    classes = [name for name, _, _ in target.decoys]
    events = [(name, (a, b)) for name, a, b in target.decoys if classes.count(name) == 1]
    return [
        _pair(split, target, queries[name][(i + j) % len(queries[name])], window)
        for name, window in events
        for j in range(count)
    ]


def _target_records(split: str, target: VideoSpec, queries: list[VideoSpec]) -> tuple[list[dict], dict]:
    """The pairs of ``target`` with ``queries`` (its own moment as ground truth) and its decoy record."""
    common = {"vid": target.video_id, "action_class": target.action, "split": split}
    pairs = [_pair(split, target, q, target.moment) for q in queries]
    decoys = common | {
        "decoy_windows": [[round(a, 3), round(b, 3)] for _, a, b in target.decoys],
        "decoy_classes": [name for name, _, _ in target.decoys],
    }
    return pairs, decoys


def plan_dataset(size: SyntheticSize, seed: int) -> DatasetPlan:
    """Draws every video and pair of ``size``; a pure function of ``(size, seed)``.

    Each (split, class, video) has its own random stream, so an instance does not depend on how many
    others a size asks for. Ids: ``{split}_{class}_t{i:03d}`` (targets), ``{split}_{class}_q{j:03d}``
    (queries).
    """
    videos: list[VideoSpec] = []
    annotations: dict[str, tuple[dict, ...]] = {}
    decoys: dict[str, tuple[dict, ...]] = {}
    for s, split in enumerate(SPLITS):
        records, decoy_records = [], []
        classes = CLASS_SPLIT[split][: size.classes_per_split[s]]
        queries = {
            action: [
                _query(np.random.default_rng([seed, s, c, 1, j]), f"{split}_{action}_q{j:03d}", action, size)
                for j in range(size.queries_per_class[s])
            ]
            for c, action in enumerate(classes)
        }
        for c, action in enumerate(classes):
            others = tuple(name for name in classes if name != action)
            videos += queries[action]
            for i in range(size.targets_per_class[s]):
                target = _target(
                    np.random.default_rng([seed, s, c, 0, i]), f"{split}_{action}_t{i:03d}", action, others, size
                )
                videos.append(target)
                own = queries[action]
                paired = [own[(i + j) % len(own)] for j in range(size.pairs_per_target[s])]
                pairs, decoy_record = _target_records(split, target, paired)
                records += pairs + _event_pairs(split, target, queries, size.event_pairs[s], i)
                decoy_records.append(decoy_record)
        annotations[split], decoys[split] = tuple(records), tuple(decoy_records)
    return DatasetPlan(tuple(videos), MappingProxyType(annotations), MappingProxyType(decoys))
