"""Small test videos written with PyAV whose frames say which frame they are."""

from __future__ import annotations

import os
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

HEIGHT, WIDTH = 48, 64
_BLOCK = 8
_BITS = 12


def barcode(index: int, height: int = HEIGHT, width: int = WIDTH) -> np.ndarray:
    """``(height, width, 3)`` uint8 frame whose top two rows of 8x8 blocks spell ``index`` in binary."""
    image = np.full((height, width, 3), 64, dtype=np.uint8)
    for bit in range(_BITS):
        row, col = divmod(bit, width // _BLOCK)
        value = 255 if index >> bit & 1 else 0
        image[row * _BLOCK : (row + 1) * _BLOCK, col * _BLOCK : (col + 1) * _BLOCK] = value
    return image


def read_barcode(image: np.ndarray) -> int:
    """Inverse of :func:`barcode` on a decoded (lossy) frame."""
    index = 0
    for bit in range(_BITS):
        row, col = divmod(bit, image.shape[1] // _BLOCK)
        block = image[row * _BLOCK : (row + 1) * _BLOCK, col * _BLOCK : (col + 1) * _BLOCK]
        index |= int(block.mean() > 128) << bit
    return index


def count_frames(path: str | os.PathLike, skip_frame: str = "DEFAULT") -> int:
    """Number of frames FFmpeg outputs when decoding ``path`` with ``skip_frame`` (e.g. ``"NONREF"``)."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.codec_context.skip_frame = skip_frame
        return sum(1 for _ in container.decode(stream))


def write_video(
    path: str | os.PathLike,
    num_frames: int,
    *,
    fps: int = 10,
    times_ms: Sequence[int] | None = None,
    codec: str = "libx264",
    gop: int = 10,
    rotation: float | None = None,
    images: Sequence[np.ndarray] | None = None,
    options: dict[str, str] | None = None,
    bframes: int = 0,
) -> Path:
    """Write ``num_frames`` barcode frames (or ``images``) to ``path``, a keyframe every ``gop`` frames.

    Constant ``fps`` by default; ``times_ms`` gives each frame's presentation time in milliseconds
    (variable frame rate). ``rotation`` sets the display matrix (degrees counter-clockwise).
    ``bframes > 0`` (libx264) puts that many B-frames between reference frames, as x264's presets
    from ``superfast`` on do (3), the middle one a reference (``b-pyramid``), the others not.
    """
    container = av.open(str(path), "w", options=options or {})
    stream = container.add_stream(codec, rate=fps)
    first = barcode(0) if images is None else images[0]
    stream.height, stream.width = first.shape[:2]
    stream.pix_fmt = "yuv420p"
    stream.codec_context.gop_size = gop
    if codec == "libx264":
        stream.options = {"crf": "12", "preset": "ultrafast"}
        if bframes:
            stream.options = {"crf": "12", "preset": "medium", "x264-params": f"bframes={bframes}:b-adapt=0"}
    if times_ms is not None:
        stream.codec_context.time_base = Fraction(1, 1000)
    if rotation is not None:
        stream.set_display_rotation(rotation)
    for index in range(num_frames):
        frame = av.VideoFrame.from_ndarray(barcode(index) if images is None else images[index], format="rgb24")
        if times_ms is not None:
            frame.pts, frame.time_base = times_ms[index], Fraction(1, 1000)
        container.mux(stream.encode(frame))
    container.mux(stream.encode(None))
    container.close()
    return Path(path)
