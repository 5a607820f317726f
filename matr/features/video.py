"""Sparse video decoding: one frame every ``clip_length`` seconds (paper: 2 s), by timestamp.

Conventions (shared with :mod:`matr.span_ops`; the choices where the paper is silent are declared
below with :func:`matr.choices.declare`):

* Window ``i`` covers ``[i * c, (i + 1) * c)`` seconds, ``c = clip_length``; its frame is the last
  frame whose presentation time is ``<= t_i``, the window's sample time (the first frame when
  ``t_i`` precedes every frame).
* A video of duration ``D`` has ``M = num_windows(D, c)`` windows, at least one.
* ``D`` is the container's duration; when the container stores none, the video stream's; when
  neither is stored, the end of the last video packet (its pts plus its duration), found by
  demuxing the file once without decoding it. A clip ``[start, end]`` is sampled exactly like a
  video that begins at ``start``, and its timestamps are relative to ``start``.
* Errors: a missing, empty, corrupt or truncated file, or one without video frames, raises
  :class:`VideoDecodeError` naming the file. A packet the decoder rejects mid-stream is skipped
  (as FFmpeg's command line does) and logged. Truncation is detected when a sample time falls
  inside the duration that the video stream claims but after the last decodable frame (plus
  ``TRUNCATION_TOLERANCE_S``); a stream that claims no duration cannot be checked.

Decoding goes by the seek and skip rules of :mod:`matr.features.cursor` (``seek=True``, the default);
``seek=False`` decodes every frame, and ``exact=False`` samples keyframes (approximate, opt-in).

``threads`` sets FFmpeg's decoder threads (frame and slice threading): ``0`` lets FFmpeg choose
(one per core, plus one), ``1`` decodes on the calling thread (for data-loader workers that
already keep every core busy).
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np

from matr.choices import declare
from matr.features.cursor import FrameCursor, stream_time_base

logger = logging.getLogger(__name__)

declare(
    "frame of each window",
    "the frame shown at the window centre (i + 0.5) c, by presentation time",
    "the paper samples one frame every 2 s without saying which; by time, variable frame rate needs no special case",
)
declare(
    "final partial window",
    "kept when it has content, sampled at the middle of its content",
    "its centre may lie past the end of the video; dropping it would lose up to c seconds",
)
_CONTENT_EPS_S = declare(
    "window start tolerance (s)", 1e-3, "a last window starting within 1 ms of the end is container rounding"
)
declare("time origin", "the container's start time", "timestamps then match what a player shows and annotations use")
declare(
    "frame orientation",
    "upright (display-matrix rotation applied), pixel aspect ratio not corrected",
    "phone videos store their rotation as metadata",
)
TRUNCATION_TOLERANCE_S = declare(
    "truncation tolerance (s)", 0.5, "a sample this far past the last decodable frame, inside the claimed duration"
)
_AV_TIME_BASE = Fraction(1, av.time_base)

Size = int | tuple[int, int] | None
"""Output size: ``None`` keeps the display size, an ``int`` sets the shorter side (aspect kept),
``(height, width)`` is exact."""


class VideoDecodeError(ValueError):
    """A video file is missing, empty, corrupt, truncated or holds no video frames."""

    def __init__(self, path: str | os.PathLike, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"cannot decode video {self.path}: {reason}")


@dataclass(frozen=True)
class VideoInfo:
    """What a video's headers say (``probe_video``): nothing is decoded.

    ``duration`` is in seconds, ``duration_source`` one of ``"container"``, ``"stream"``,
    ``"packets"``; ``stream_end`` is the end (seconds) the video stream claims, or ``None``.
    ``width``/``height`` are the coded size, before any rotation.
    """

    path: str
    duration: float
    duration_source: str
    width: int
    height: int
    fps: float | None
    codec: str
    stream_end: float | None


@dataclass(frozen=True)
class SampledVideo:
    """Frames sampled from a video, or from a clip ``[start, start + duration]`` of it.

    ``frames`` is ``(M, H, W, 3)`` uint8 RGB, upright; ``timestamps`` ``(M,)`` float64 are the
    presentation times (seconds) of those frames relative to ``start`` (negative for a frame shown
    since before ``start``); ``duration`` is the length of what was sampled, after clamping the
    clip's end to the video; ``video_duration`` that of the whole file.
    """

    frames: np.ndarray
    timestamps: np.ndarray
    duration: float
    video_duration: float
    clip_length: float
    start: float
    path: str

    @property
    def num_frames(self) -> int:
        """``M``, the number of windows (one frame each)."""
        return int(self.frames.shape[0])


def num_windows(duration: float, clip_length: float) -> int:
    """Number ``M >= 1`` of ``clip_length``-second windows of a ``duration``-second video."""
    if not clip_length > 0:
        raise ValueError(f"clip_length must be positive, got {clip_length}")
    return max(1, math.ceil((duration - _CONTENT_EPS_S) / clip_length))


def window_bounds(duration: float, clip_length: float) -> np.ndarray:
    """``[start, end]`` (seconds) of each window's content: ``(M, 2)``; a final partial window ends at ``duration``."""
    starts = np.arange(num_windows(duration, clip_length), dtype=np.float64) * clip_length
    ends = np.maximum(np.minimum(starts + clip_length, duration), starts)
    return np.stack([starts, ends], axis=1)


def sample_times(duration: float, clip_length: float) -> np.ndarray:
    """Time (seconds) at which each window's frame is taken, the middle of its content: ``(M,)``.

    That is the window centre ``(i + 0.5) * c``, except for a final partial window.
    """
    return window_bounds(duration, clip_length).mean(axis=1)


def probe_video(path: str | os.PathLike) -> VideoInfo:
    """Read a video's duration, size and frame rate from its headers; raise :class:`VideoDecodeError`."""
    with _open(path) as container:
        stream = container.streams.video[0]
        time_base = stream_time_base(stream)
        origin = _origin(container, stream)
        stream_end = None
        if stream.duration is not None and stream.duration > 0:
            stream_end = float(((stream.start_time or 0) + stream.duration) * time_base) - origin
        container_duration = None
        if container.duration is not None and container.duration > 0:
            container_duration = float(container.duration * _AV_TIME_BASE)
        duration, source = resolve_duration(
            container_duration, stream_end, lambda: _packet_end(container, stream, str(path)) - origin
        )
        rate = stream.average_rate or stream.guessed_rate
        return VideoInfo(
            path=str(path),
            duration=duration,
            duration_source=source,
            width=stream.codec_context.width,
            height=stream.codec_context.height,
            fps=float(rate) if rate else None,
            codec=stream.codec_context.name,
            stream_end=stream_end,
        )


def resolve_duration(
    container_duration: float | None, stream_duration: float | None, packet_end: Callable[[], float]
) -> tuple[float, str]:
    """Pick a video's duration: the container's, else the video stream's, else ``packet_end()``.

    Returns ``(seconds, source)``; ``packet_end`` is only called when it is needed (it reads the
    whole file).
    """
    if container_duration is not None:
        return container_duration, "container"
    if stream_duration is not None:
        return stream_duration, "stream"
    return packet_end(), "packets"


def clip_bounds(info: VideoInfo, start: float = 0.0, end: float | None = None) -> tuple[float, float]:
    """``(start, duration)`` in seconds of the clip ``[start, end]`` of a video, ``end`` clamped to it."""
    if start == 0 and end is None:
        return 0.0, max(info.duration, 0.0)
    clamped_end = info.duration if end is None else min(float(end), info.duration)
    if start < 0 or not clamped_end > start:
        raise ValueError(
            f"clip [{start}, {end}] of {info.path} is empty or outside the video (duration {info.duration:.3f} s)"
        )
    return float(start), clamped_end - float(start)


def iter_frames(
    video: VideoInfo | str | os.PathLike,
    clip_length: float = 2.0,
    *,
    start: float = 0.0,
    end: float | None = None,
    size: Size = None,
    seek: bool = True,
    exact: bool = True,
    threads: int = 0,
) -> Iterator[tuple[float, np.ndarray]]:
    """Yield ``(timestamp, frame)`` for each window of the clip ``[start, end]`` (whole video by default).

    ``frame`` is ``(H, W, 3)`` uint8 RGB, upright, resized to ``size``; every frame has the size of
    the first. ``timestamp`` is its presentation time in seconds relative to ``start``. Frames are
    produced one at a time, so memory stays bounded on long videos. ``seek``, ``exact`` (``False``:
    approximate keyframe sampling, needs ``seek``) and ``threads`` are described in the module
    docstring.
    """
    if not exact and not seek:
        raise ValueError("exact=False needs seek=True: approximate sampling jumps from keyframe to keyframe")
    if threads < 0:
        raise ValueError(f"threads must be >= 0 (0: FFmpeg's choice), got {threads}")
    info = video if isinstance(video, VideoInfo) else probe_video(video)
    clip_start, clip_duration = clip_bounds(info, start, end)
    windows = window_bounds(clip_duration, clip_length)
    with _open(info.path, threads) as container:
        stream = container.streams.video[0]
        origin = _origin(container, stream)
        zero = origin + clip_start
        cursor = FrameCursor(container, stream, seek=seek)
        shape: tuple[int, int] | None = None
        for (low, high), target in zip(zero + windows, zero + windows.mean(axis=1)):
            try:
                found = None if exact else cursor.keyframe_in(low, high, target)
                found = found or cursor.frame_at(target)
            except av.FFmpegError as error:
                raise VideoDecodeError(info.path, f"decoding failed near {target - origin:.2f} s ({error})") from error
            if found is None:
                raise VideoDecodeError(info.path, "no video frame could be decoded")
            if cursor.exhausted:
                _check_not_truncated(info, cursor.decoded_end - origin, target - origin)
            frame_time, frame = found
            shape = shape or _output_shape(frame, size)
            yield frame_time - zero, _to_rgb(frame, shape)
        if cursor.rejected_packets:
            logger.warning("%s: skipped %d packets the decoder rejected", info.path, cursor.rejected_packets)


def sample_frames(
    path: str | os.PathLike, clip_length: float = 2.0, *, start: float = 0.0, end: float | None = None, **decoding: Any
) -> SampledVideo:
    """Decode one frame per ``clip_length`` window of a video (or of its clip ``[start, end]``).

    ``decoding``: ``size``, ``seek``, ``exact`` and ``threads`` of :func:`iter_frames`. Returns all
    frames at once; use :func:`iter_frames` to bound memory on long videos.
    """
    info = probe_video(path)
    clip_start, clip_duration = clip_bounds(info, start, end)
    pairs = list(iter_frames(info, clip_length, start=start, end=end, **decoding))
    return SampledVideo(
        frames=np.stack([frame for _, frame in pairs]),
        timestamps=np.array([t for t, _ in pairs], dtype=np.float64),
        duration=clip_duration,
        video_duration=info.duration,
        clip_length=float(clip_length),
        start=clip_start,
        path=str(path),
    )


def upright(image: np.ndarray, rotation: float) -> np.ndarray:
    """Apply a display-matrix ``rotation`` (degrees counter-clockwise, as FFmpeg reports it) to ``(H, W, C)``.

    Rotations are rounded to a multiple of 90 degrees.
    """
    turns = round(rotation / 90) % 4
    return np.ascontiguousarray(np.rot90(image, k=turns)) if turns else image


def _open(path: str | os.PathLike, threads: int = 0) -> av.container.InputContainer:
    """Open a file holding a video stream, decoded with ``threads`` threads, or raise :class:`VideoDecodeError`."""
    file = Path(path)
    if not file.is_file():
        raise VideoDecodeError(path, "no such file")
    if file.stat().st_size == 0:
        raise VideoDecodeError(path, "the file is empty (0 bytes)")
    try:
        container = av.open(str(file))
    except (av.FFmpegError, OSError, UnicodeDecodeError) as error:
        raise VideoDecodeError(path, f"not a readable video container ({error})") from error
    if not container.streams.video:
        container.close()
        raise VideoDecodeError(path, "the file has no video stream")
    stream = container.streams.video[0]
    stream.thread_type = "AUTO"
    stream.codec_context.thread_count = threads
    return container


def _origin(container: av.container.InputContainer, stream: av.video.stream.VideoStream) -> float:
    """Time (seconds, stream clock) that counts as 0: the container's start, else the stream's."""
    if container.start_time is not None:
        return float(container.start_time * _AV_TIME_BASE)
    return float((stream.start_time or 0) * stream_time_base(stream))


def _packet_end(container: av.container.InputContainer, stream: av.video.stream.VideoStream, path: str) -> float:
    """End time (seconds, stream clock) of the last video packet, demuxing the file without decoding it.

    Packets without timestamps (raw elementary streams) add up their durations instead.
    """
    time_base = stream_time_base(stream)
    end, total, count = None, 0, 0
    try:
        for packet in container.demux(stream):
            if packet.size == 0:
                continue
            count += 1
            total += packet.duration or 0
            if packet.pts is not None:
                packet_end = packet.pts + (packet.duration or 0)
                end = packet_end if end is None else max(end, packet_end)
    except av.FFmpegError as error:
        raise VideoDecodeError(path, f"reading packets failed ({error})") from error
    if count == 0:
        raise VideoDecodeError(path, "the video stream holds no packets")
    return float((end if end is not None else (stream.start_time or 0) + total) * time_base)


def _check_not_truncated(info: VideoInfo, decoded_end: float, sample_time: float) -> None:
    """Raise when a sample inside the stream's claimed duration lies past the last decodable frame."""
    if info.stream_end is None:
        return
    if decoded_end + TRUNCATION_TOLERANCE_S < min(sample_time, info.stream_end):
        raise VideoDecodeError(
            info.path,
            f"frames end at {decoded_end:.2f} s but the video stream claims {info.stream_end:.2f} s: "
            "the file looks truncated",
        )


def _rotation(frame: av.VideoFrame) -> int:
    return round(frame.rotation / 90) % 4 * 90


def _output_shape(frame: av.VideoFrame, size: Size) -> tuple[int, int]:
    """``(height, width)`` of the upright output frame for a requested ``size``."""
    height, width = (frame.width, frame.height) if _rotation(frame) % 180 else (frame.height, frame.width)
    if size is None:
        return height, width
    if isinstance(size, int):
        if size <= 0:
            raise ValueError(f"size must be positive, got {size}")
        scale = size / min(height, width)
        return max(1, round(height * scale)), max(1, round(width * scale))
    out_height, out_width = size
    if out_height <= 0 or out_width <= 0:
        raise ValueError(f"size must be positive, got {size}")
    return int(out_height), int(out_width)


def _to_rgb(frame: av.VideoFrame, shape: tuple[int, int]) -> np.ndarray:
    """Upright ``(H, W, 3)`` uint8 RGB image of ``frame``, resized (bicubic) to ``shape``."""
    rotation = _rotation(frame)
    height, width = (shape[1], shape[0]) if rotation % 180 else shape
    if (height, width) == (frame.height, frame.width):
        image = frame.to_ndarray(format="rgb24")
    else:
        image = frame.to_ndarray(format="rgb24", width=width, height=height, interpolation="BICUBIC")
    return upright(image, rotation)
