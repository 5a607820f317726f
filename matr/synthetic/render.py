"""Rendering a synthetic v2 dataset to mp4 files and SportsMoments JSON-lines annotations.

Layout under ``root``: ``videos/{video_id}.mp4``, ``annotations/{split}.jsonl``, ``decoys/{split}.jsonl``
(one line per target: ``vid``, ``action_class``, ``decoy_windows``, ``decoy_classes``, ``split``),
``classes.json`` and ``manifest.json`` (generator, version, seed, size). Features sample one
frame every 2 s, so the sizes render at 1 fps: the frames at odd seconds are the ones decoded.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

import av
import numpy as np
from tqdm.auto import tqdm

from matr.io import atomic_open, write_json, write_jsonl
from matr.synthetic.plan import SIZES, SPLITS, SyntheticSize, VideoSpec, plan_dataset
from matr.synthetic.scenes import CLASS_SPLIT, draw_frames

__all__ = ["GENERATOR", "RenderSummary", "example_pair", "render_dataset", "render_frames", "write_mp4"]

logger = logging.getLogger(__name__)

GENERATOR = "matr.synthetic"
VERSION = 2


@dataclass(frozen=True)
class RenderSummary:
    """What :func:`render_dataset` did: annotation and decoy files and pair count per split, videos
    rendered and skipped."""

    root: Path
    annotations: Mapping[str, Path]
    decoys: Mapping[str, Path]
    pairs: Mapping[str, int]
    rendered: int
    skipped: int


def render_frames(spec: VideoSpec, fps: int | None = None) -> np.ndarray:
    """RGB frames ``(T, H, W, 3)`` uint8 of ``spec`` at ``fps`` (default ``spec.fps``); frame ``k`` shows ``k / fps`` s."""
    fps = fps or spec.fps
    count = max(1, round(spec.duration * fps))
    return draw_frames(spec.scene, np.arange(count) / fps, spec.frame_size)


def write_mp4(path: str | Path, frames: np.ndarray, fps: int) -> None:
    """Encodes RGB ``frames (T, H, W, 3)`` uint8 to an H.264 (else MPEG-4) yuv420p mp4, atomically."""
    codec = "libx264" if "libx264" in av.codec.codecs_available else "mpeg4"
    with atomic_open(path) as handle, av.open(handle, mode="w", format="mp4") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.height, stream.width = frames.shape[1:3]
        stream.pix_fmt = "yuv420p"
        stream.codec_context.thread_count = 1
        stream.options = {"crf": "20", "preset": "veryfast"} if codec == "libx264" else {"qscale": "4"}
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())


def _size(size: str | SyntheticSize) -> SyntheticSize:
    if isinstance(size, SyntheticSize):
        return size
    if size not in SIZES:
        raise ValueError(f"unknown synthetic v2 size {size!r}, expected one of {sorted(SIZES)}")
    return SIZES[size]


def _read_manifest(path: Path) -> dict:
    """A manifest's contents; one written before sizes were called sizes (key ``profile``, frame size
    ``size``) is read in today's words: it describes the same dataset."""
    found = json.loads(path.read_text(encoding="utf-8"))
    if "profile" in found and "size" not in found:
        size = dict(found.pop("profile"))
        size["frame_size"] = size.pop("size", None)
        found["size"] = size
    return found


def _size_record(size: SyntheticSize) -> dict:
    """``size`` as the manifest records it: ``target_scale`` only when it is not 1, so that manifests
    written before sizes had one still describe their dataset."""
    record = dataclasses.asdict(size)
    if record["target_scale"] == 1.0:
        del record["target_scale"]
    return record


def _claim_root(root: Path, size: SyntheticSize, seed: int) -> None:
    """Writes ``manifest.json``, or checks that an existing one describes the same dataset (and brings it up to date)."""
    identity = json.loads(
        json.dumps({"generator": GENERATOR, "version": VERSION, "seed": seed, "size": _size_record(size)})
    )
    manifest = root / "manifest.json"
    if manifest.exists():
        found = _read_manifest(manifest)
        if {key: found.get(key) for key in identity} != identity:
            raise ValueError(f"{manifest} describes another dataset than {identity}; render into an empty folder")
    write_json(manifest, identity)


def render_dataset(
    root: str | Path, size: str | SyntheticSize = "tiny", seed: int = 0, progress: bool = True
) -> RenderSummary:
    """Renders the v2 dataset of ``size`` (a name of :data:`~matr.synthetic.plan.SIZES` or a size) under ``root``; resumable.

    Videos already there are skipped (each is written under a temporary name, then moved into place);
    annotations are written last. Raises ``ValueError`` if ``root`` holds another dataset.
    """
    size, root = _size(size), Path(root)
    (root / "videos").mkdir(parents=True, exist_ok=True)
    _claim_root(root, size, seed)
    plan = plan_dataset(size, seed)
    write_json(root / "classes.json", {s: list(CLASS_SPLIT[s][:n]) for s, n in zip(SPLITS, size.classes_per_split)})
    missing = [spec for spec in plan.videos if not (root / "videos" / f"{spec.video_id}.mp4").exists()]
    for spec in tqdm(missing, desc=f"synthetic v2 {size.name}", unit="video", disable=not progress):
        write_mp4(root / "videos" / f"{spec.video_id}.mp4", render_frames(spec), spec.fps)
    rendered, skipped = len(missing), len(plan.videos) - len(missing)
    decoys = {split: root / "decoys" / f"{split}.jsonl" for split in SPLITS}
    annotations = {split: root / "annotations" / f"{split}.jsonl" for split in SPLITS}
    for split in SPLITS:
        decoys[split].parent.mkdir(exist_ok=True)
        write_jsonl(decoys[split], plan.decoys[split])
        annotations[split].parent.mkdir(exist_ok=True)
        write_jsonl(annotations[split], plan.annotations[split])
    logger.info(
        "synthetic v2 %s (seed %d) in %s: %d videos rendered, %d there", size.name, seed, root, rendered, skipped
    )
    pairs = {split: len(plan.annotations[split]) for split in SPLITS}
    return RenderSummary(
        root, MappingProxyType(annotations), MappingProxyType(decoys), MappingProxyType(pairs), rendered, skipped
    )


def example_pair(folder: str | Path, seed: int = 0, fps: int = 4, frame_size: int = 128) -> dict:
    """Renders one test pair of the ``tiny`` size as two small mp4 files (a few hundred KB) in ``folder``.

    Returns ``{"query": path, "target": path, "moment": [start, end], "action_class": name}``; the
    target's moment (seconds) is the ground truth of the query. ``fps`` and ``frame_size`` only change how
    smooth and sharp the files look: the scene is the same at any rate.
    """
    plan = plan_dataset(SIZES["tiny"], seed)
    record = plan.annotations["test"][0]
    specs = {spec.video_id: spec for spec in plan.videos}
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for role, video_id in (("query", record["qid"]), ("target", record["vid"])):
        spec = dataclasses.replace(specs[video_id], frame_size=frame_size)
        paths[role] = folder / f"{video_id}.mp4"
        write_mp4(paths[role], render_frames(spec, fps), fps)
    return {**paths, "moment": record["relevant_windows"][0], "action_class": record["action_class"]}
