"""What the synthetic broadcasts show: venues, the shots of an event, and how a frame is drawn.

A SportsMoments target is a broadcast of one match: long stretches of play, cut-aways (crowd,
scoreboard, replay banners) and, once, the moment. CLIP recognises an event in a single frame
(a red card, the net of a goal); a random-init CLIP tower sees colour and texture statistics of
its image patches and little of where they are (measured: ``benchmarks/bench_frame_retrieval.py``).
So here each event class is three *shots* in a fixed order (build-up, key, reaction): its key shot
is a close-up of a large textured object whose (texture, hue) belongs to that class alone, while
build-up and reaction shots come from a pool shared by all classes and also appear as cut-aways
during play. A single frame of the key shot tells the class; the order of the pooled shots around
it is what alignment can use. Every instance redraws the nuisances (venue colours, camera, the
object's hue, size, place, stripe frequency and angle, players, brightness, noise).

:func:`draw_frames` is a pure function of ``(Scene, t)``; any frame rate renders the same story.
"""

from __future__ import annotations

import colorsys
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np

from matr import choices

__all__ = ["CLASSES", "CLASS_SPLIT", "POOL", "SPORTS", "Element", "EventClass", "Look", "Scene", "Shot", "draw_frames"]

TEXTURES = ("solid", "stripes", "checker", "dots", "rings")


@dataclass(frozen=True)
class Element:
    """A close-up object: a texture (one of :data:`TEXTURES`), a base hue in [0, 1), its saturation,
    and the stripe angle in degrees (``stripes`` only)."""

    texture: str
    hue: float
    saturation: float = 0.85
    angle: float = 0.0


@dataclass(frozen=True)
class EventClass:
    """An action class: its sport and its three shots in order (build-up, key, reaction)."""

    name: str
    sport: str
    shots: tuple[Element, Element, Element]


# Shared shots: the build-up and reaction of every class, and the cut-aways of play.
POOL: Mapping[str, Element] = MappingProxyType(
    {
        "crowd": Element("dots", 0.08, 0.35),
        "scoreboard": Element("checker", 0.15, 0.9),
        "replay": Element("stripes", 0.6, 0.5, angle=0.0),
        "closeup": Element("solid", 0.05, 0.45),
    }
)

SPORTS: Mapping[str, tuple[float, float]] = MappingProxyType({"pitch": (0.33, 0.6), "oval": (0.22, 0.45)})
"""Venue of each sport: field hue and saturation (stands are dark blue-grey in both)."""


def _event(name: str, sport: str, before: str, key: Element, after: str) -> EventClass:
    return EventClass(name, sport, (POOL[before], key, POOL[after]))


CLASSES: Mapping[str, EventClass] = MappingProxyType(
    {
        c.name: c
        for c in (
            _event("goal", "pitch", "replay", Element("rings", 0.0), "crowd"),
            _event("corner_kick", "pitch", "closeup", Element("stripes", 0.75, angle=90.0), "scoreboard"),
            _event("yellow_card", "pitch", "closeup", Element("solid", 0.16), "crowd"),
            _event("header", "pitch", "crowd", Element("dots", 0.58), "replay"),
            _event("boundary_four", "oval", "scoreboard", Element("checker", 0.95), "crowd"),
            _event("bowled", "oval", "replay", Element("stripes", 0.1, angle=45.0), "closeup"),
            _event("catch", "oval", "crowd", Element("rings", 0.5), "scoreboard"),
            _event("run_out", "oval", "closeup", Element("dots", 0.85), "replay"),
            _event("red_card", "pitch", "closeup", Element("solid", 0.98), "replay"),
            _event("save", "pitch", "scoreboard", Element("checker", 0.4), "closeup"),
            _event("six", "oval", "crowd", Element("stripes", 0.3, angle=135.0), "scoreboard"),
            _event("penalty", "pitch", "replay", Element("dots", 0.0), "crowd"),
            _event("offside", "pitch", "crowd", Element("stripes", 0.55, angle=90.0), "closeup"),
            _event("stumping", "oval", "scoreboard", Element("rings", 0.68), "replay"),
            _event("lbw", "oval", "closeup", Element("checker", 0.72), "crowd"),
        )
    }
)

# Class-disjoint split, both sports in each; a size takes the first k classes of each split.
CLASS_SPLIT: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "train": ("goal", "boundary_four", "corner_kick", "bowled", "yellow_card", "catch", "header", "run_out"),
        "val": ("red_card", "six", "save"),
        "test": ("penalty", "stumping", "offside", "lbw"),
    }
)

NOISE = choices.declare(
    "synthetic v2: pixel noise (std, in [0, 1] units)",
    0.03,
    "fixed per scene: keeps flat regions from being exactly flat without costing the encoder",
)


@dataclass(frozen=True)
class Look:
    """How one instance shows an element: hue offset, value, size and centre (fractions of the frame
    side), texture frequency (cycles per side) and angle offset (degrees)."""

    hue_shift: float
    value: float
    size: float
    centre: tuple[float, float]
    frequency: float
    angle: float


@dataclass(frozen=True)
class Shot:
    """A stretch ``[start, end)`` seconds of a broadcast showing ``element`` (``None``: play)."""

    start: float
    end: float
    element: Element | None = None
    look: Look | None = None


@dataclass(frozen=True)
class Scene:
    """Everything a broadcast shows: the venue (sport, field hue shift, horizon height, brightness),
    the players' kit hues and random phases, and the shots in time order."""

    sport: str
    field_shift: float
    horizon: float
    brightness: float
    kits: tuple[float, float]
    players: tuple[tuple[float, float, float, float], ...]  # (x0, y0, speed, phase) each
    shots: tuple[Shot, ...]
    seed: int


def _hsv(hue: float, saturation: float, value: float) -> np.ndarray:
    return np.asarray(colorsys.hsv_to_rgb(hue % 1.0, np.clip(saturation, 0, 1), np.clip(value, 0, 1)))


def _stands_and_field(scene: Scene, size: int) -> np.ndarray:
    """The static venue ``(H, W, 3)``: stands above the horizon, the field below with mowing stripes."""
    grid = (np.arange(size) + 0.5) / size
    x, y = grid[None, :], grid[:, None]
    hue, saturation = SPORTS[scene.sport]
    field = _hsv(hue + scene.field_shift, saturation, 0.55) * (0.92 + 0.08 * (np.sin(2 * np.pi * 4 * x) > 0))[..., None]
    return np.where((y < scene.horizon)[..., None], _hsv(0.62, 0.25, 0.3), field)


def _draw_players(image: np.ndarray, scene: Scene, t: float) -> None:
    """Paints the players (small rectangles in their team's kit) at ``t`` seconds, in place."""
    size = image.shape[0]
    for index, (x0, y0, speed, phase) in enumerate(scene.players):
        px = 0.1 + 0.8 * (0.5 + 0.5 * np.sin(2 * np.pi * speed * t + phase + x0 * 6))
        py = scene.horizon + (1 - scene.horizon) * y0
        left, top = int((px - 0.025) * size), int((py - 0.05) * size)
        image[max(top, 0) : top + max(1, int(0.1 * size)), max(left, 0) : left + max(1, int(0.05 * size))] = _hsv(
            scene.kits[index % 2], 0.8, 0.85
        )


def _texture(element: Element, look: Look, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Where the element's foreground colour shows, for object coordinates ``u, v`` in [-1, 1]."""
    f = look.frequency
    if element.texture == "solid":
        return np.ones(np.broadcast_shapes(u.shape, v.shape), dtype=bool)
    if element.texture == "stripes":
        angle = np.deg2rad(element.angle + look.angle)
        return np.sin(np.pi * f * (np.cos(angle) * v + np.sin(angle) * u)) > 0
    if element.texture == "checker":
        return np.sin(np.pi * f * u) * np.sin(np.pi * f * v) > 0
    if element.texture == "dots":
        return np.hypot(np.mod(u * f / 2, 1) - 0.5, np.mod(v * f / 2, 1) - 0.5) < 0.3
    if element.texture == "rings":
        return np.sin(np.pi * f * np.hypot(u, v)) > 0
    raise ValueError(f"unknown texture {element.texture!r}, expected one of {TEXTURES}")


def _close_up(image: np.ndarray, element: Element, look: Look) -> np.ndarray:
    """``image`` with the element drawn as a textured square of side ``2 * look.size``."""
    size = image.shape[0]
    grid = (np.arange(size) + 0.5) / size
    u = (grid[None, :] - look.centre[0]) / look.size
    v = (grid[:, None] - look.centre[1]) / look.size
    inside = (np.abs(u) <= 1) & (np.abs(v) <= 1)
    colour = _hsv(element.hue + look.hue_shift, element.saturation, look.value)
    painted = np.where(_texture(element, look, u, v)[..., None], colour, 0.3 * colour)
    return np.where(inside[..., None], painted, image)


def draw_frames(scene: Scene, times: np.ndarray, size: int) -> np.ndarray:
    """The frames at ``times`` seconds: RGB ``(T, size, size, 3)`` uint8. Noise is fixed per scene."""
    venue = _stands_and_field(scene, size)
    noise = np.random.default_rng(scene.seed).normal(0, NOISE, venue.shape)
    frames = np.empty((len(times), size, size, 3), dtype=np.uint8)
    for k, t in enumerate(times):
        image = venue.copy()
        _draw_players(image, scene, float(t))
        shot = next((shot for shot in scene.shots if shot.start <= t < shot.end), None)
        if shot is not None and shot.element is not None and shot.look is not None:
            image = _close_up(image, shot.element, shot.look)
        frames[k] = np.round(np.clip(image * scene.brightness + noise, 0, 1) * 255)
    return frames
