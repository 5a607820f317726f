"""Frame cursor: walks a video stream in presentation order, seeking and skipping where that saves work.

Used by :func:`matr.features.video.iter_frames`; its timestamps are seconds on the stream's clock.

Decoding (``seek=True``, the default) does as little work as the exact answer allows:

* Seek rule: decoding goes forward frame by frame, except when the keyframe at or before the next
  sample time lies beyond the last packet already read; the reader then seeks to that keyframe,
  which skips only packets that no later sample needs. MP4 indexes keyframes by decoding time,
  which B-frames put before the presentation time; the index is read shifted back by that delay, so
  a sample shown just before a keyframe does not seek back into the keyframe interval being
  decoded. Where the seek index does not reach the sample (MPEG-TS, raw streams, Matroska before
  its cues are read), the reader seeks when the sample lies more than ``MIN_SEEK_GAP_S`` seconds
  past the last decoded frame; a file that refuses to seek is decoded forward.
* Skip rule: a packet is decoded with FFmpeg's ``skip_frame="NONREF"``, which drops non-reference
  frames (B-frames that no other frame is predicted from), whenever a packet shown after it, and
  not after the next sample time, has already been read. The frame shown at the sample is then
  never a dropped one, and no kept frame needs a dropped one, so every sample is exactly the frame
  that decoding every frame gives.

``seek=False`` decodes every frame: the baseline, and an escape hatch for files whose seeking is
broken. How much the rules save depends on the keyframe interval ``g``: a sample needs every
reference frame from its keyframe on, so with ``g <= c`` the reference frames of about ``g / 2``
seconds are decoded per ``c``-second window, and with ``g > c`` nearly all of them.

``exact=False`` (approximate, opt-in): each window gets the keyframe shown inside it nearest its
sample time, and only keyframes are decoded (``skip_frame="NONKEY"``); a window that holds no
keyframe gets its exact frame (or, in a file that refuses to seek, the last keyframe shown before
it). With a keyframe every ``c`` seconds or less, that is one decoded frame per window; the frame
may be shown up to ``c / 2`` seconds away from the sample time (its timestamp says where).
"""

from __future__ import annotations

import logging
import math
from collections import deque
from fractions import Fraction

import av

logger = logging.getLogger(__name__)

MIN_SEEK_GAP_S = 5.0
"""Without a seek index, seek only when the next sample lies this many seconds ahead."""


class FrameCursor:
    """Walks one stream's decoded frames in presentation order, seeking and skipping where that saves work.

    Times are seconds on the stream's clock. The seek and skip rules are those of the module docstring.
    """

    def __init__(self, container: av.container.InputContainer, stream: av.video.stream.VideoStream, *, seek: bool):
        self._container = container
        self._stream = stream
        self._seek = seek
        self._skip_nonref = seek
        self._time_base = stream_time_base(stream)
        self._first_time = float((stream.start_time or 0) * self._time_base)
        rate = stream.average_rate or stream.guessed_rate
        self._frame_interval = float(1 / rate) if rate else 0.0
        self._index_delay = _index_delay(stream)
        self._target_pts: int | None = None
        self._keyframes_only = False
        self.rejected_packets = 0
        self._reset()

    def _reset(self) -> None:
        self._packets = self._container.demux(self._stream)
        self._decoded: deque[av.VideoFrame] = deque()
        self._shown: tuple[float, av.VideoFrame] | None = None
        self._ahead: tuple[float, av.VideoFrame] | None = None
        self._read_position: int | None = None
        self._latest_pts: int | None = None
        self._last_end: float | None = None
        self.exhausted = False
        self.decoded_end = -math.inf

    def frame_at(self, t: float) -> tuple[float, av.VideoFrame] | None:
        """``(time, frame)`` of the frame shown at ``t``; ``None`` if the stream has none."""
        self._target_pts = self._pts(t)
        if self._keyframes_only:
            self._keyframes_only = False
            if self._seek:
                self._seek_before(t)
        if self._seek and self._should_seek(t):
            self._seek_before(t)
        while True:
            if self._ahead is not None:
                if self._ahead[0] > t:
                    return self._shown or self._ahead
                self._shown, self._ahead = self._ahead, None
            self._ahead = self._next_frame()
            if self._ahead is None:
                return self._shown

    def keyframe_in(self, low: float, high: float, t: float) -> tuple[float, av.VideoFrame] | None:
        """``(time, frame)`` of the keyframe shown in ``[low, high)`` nearest ``t``; ``None`` if there is none.

        Only keyframes are decoded, so a later :meth:`frame_at` seeks back to recover the others;
        to keep that rare, nothing is decoded unless the seek index has a keyframe in the window.
        """
        if not self._indexed_keyframe_in(low, high):
            return None
        self._keyframes_only = True
        if self._seek and self._should_seek(low):
            self._seek_before(low)
        best = None
        while True:
            if self._ahead is None:
                self._ahead = self._next_frame()
            if self._ahead is None or self._ahead[0] >= high:
                return best
            time, frame = self._shown = self._ahead
            self._ahead = None
            if time >= low and frame.key_frame and (best is None or abs(time - t) < abs(best[0] - t)):
                best = (time, frame)

    def _indexed_keyframe_in(self, low: float, high: float) -> bool:
        """Whether the seek index lists a keyframe shown in ``[low, high)`` (presentation times estimated)."""
        index = self._stream.index_entries
        entry = index.search_timestamp(self._pts(high) - self._index_delay - 1, backward=True)
        return entry >= 0 and index[entry].timestamp + self._index_delay >= self._pts(low)

    def _should_seek(self, t: float) -> bool:
        """The seek rule of the module docstring.

        The index is trusted when it reaches within ``MIN_SEEK_GAP_S`` of ``t`` (Matroska's grows
        as cues are read); positions compare the index's timestamps with the largest packet
        timestamp read so far.
        """
        if self._ahead is not None and self._ahead[0] > t:
            return False
        target = self._pts(t)
        index = self._stream.index_entries
        if len(index) > 1 and index[len(index) - 1].timestamp >= self._pts(t - MIN_SEEK_GAP_S):
            entry = index.search_timestamp(target - self._index_delay, backward=True)
            position = self._read_position if self._read_position is not None else index[0].timestamp
            return entry >= 0 and index[entry].timestamp > position
        position = self._last_end if self._last_end is not None else self._first_time
        return t - position > MIN_SEEK_GAP_S

    def _seek_before(self, t: float) -> None:
        """Seek to a keyframe whose first frame is shown at or before ``t``.

        Indexes are often keyed by decoding time, so a seek can land on a keyframe shown after
        ``t``; then seek again from further back, doubling the step, down to the start of the
        stream. A file that refuses to seek is decoded forward instead.
        """
        step = 0.0
        while True:
            seek_time = max(t - step, self._first_time)
            try:
                self._container.seek(self._pts(seek_time), stream=self._stream, backward=True)
            except av.FFmpegError as error:
                logger.debug("seeking failed (%s); decoding forward", error)
                self._seek = False
                return
            self._reset()
            self._ahead = self._next_frame()
            if (self._ahead is not None and self._ahead[0] <= t) or seek_time <= self._first_time:
                return
            step = max(2 * step, 1.0)

    def _next_frame(self) -> tuple[float, av.VideoFrame] | None:
        while not self._decoded:
            if self.exhausted:
                return None
            packet = next(self._packets, None)
            if packet is None:
                self.exhausted = True
                continue
            self._decode(packet)
        frame = self._decoded.popleft()
        if frame.pts is not None:
            time = float(frame.pts * self._time_base)
        else:
            time = self._last_end if self._last_end is not None else self._first_time
        duration = float(frame.duration * self._time_base) if frame.duration else self._frame_interval
        self._last_end = time + duration
        self.decoded_end = max(self.decoded_end, self._last_end)
        return time, frame

    def _decode(self, packet: av.Packet) -> None:
        """Send one packet to the decoder under the skip rule; a packet it rejects is counted and dropped.

        While decoding keyframes only, ``decoded_end`` follows the packets read, so that the
        frames dropped unseen do not look like a truncated file.
        """
        self._stream.codec_context.skip_frame = self._skip_mode(packet)
        stamp = packet.pts if packet.pts is not None else packet.dts
        if stamp is not None:
            self._read_position = stamp if self._read_position is None else max(self._read_position, stamp)
        if packet.pts is not None:
            self._latest_pts = packet.pts if self._latest_pts is None else max(self._latest_pts, packet.pts)
            if self._keyframes_only:
                end = float((packet.pts + (packet.duration or 0)) * self._time_base)
                self.decoded_end = max(self.decoded_end, end)
        try:
            self._decoded.extend(packet.decode())
        except av.InvalidDataError:
            self.rejected_packets += 1

    def _skip_mode(self, packet: av.Packet) -> str:
        """FFmpeg ``skip_frame`` for ``packet``: the skip rule, evaluated before ``packet`` counts as read."""
        if self._keyframes_only:
            return "NONKEY"
        latest, target = self._latest_pts, self._target_pts
        if not self._skip_nonref or packet.pts is None or latest is None or target is None:
            return "DEFAULT"
        return "NONREF" if packet.pts < latest <= target else "DEFAULT"

    def _pts(self, seconds: float) -> int:
        return math.floor(seconds / self._time_base)


def stream_time_base(stream: av.video.stream.VideoStream) -> Fraction:
    return stream.time_base or Fraction(1, 90000)


def _index_delay(stream: av.video.stream.VideoStream) -> int:
    """Ticks by which the seek index runs ahead of presentation time: B-frames' decoding delay in MP4.

    MP4 indexes keyframes by decoding time, and the first keyframe is shown at the stream's start;
    indexes keyed by presentation time (Matroska) give 0.
    """
    index = stream.index_entries
    if len(index) == 0 or stream.start_time is None:
        return 0
    return max(0, stream.start_time - index[0].timestamp)
