"""The feature store under faults: torn manifests, two writers, changed sources, full and read-only disks."""

from __future__ import annotations

import contextlib
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

from matr.features import FeatureStore, StaleFeaturesError, VideoFeatures
from matr.io import BusyError, WriteError

TAG = "random-init(seed=0)"
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs or a read-only bind mount needs root")


def fake(path: str | Path = "v.mp4", frames: int = 3, tag: str = TAG, clip_length: float = 2.0) -> VideoFeatures:
    """Features of a ``frames``-frame video, as extraction would give them (no decoding)."""
    array = np.random.default_rng(frames).standard_normal((frames, 512)).astype(np.float32)
    duration = frames * clip_length
    return VideoFeatures(
        array, (np.arange(frames) + 0.5) * clip_length, duration, duration, clip_length, tag, "b", str(path)
    )


def put(store: FeatureStore, video_id: str, features: VideoFeatures, shard: tuple[int, int] = (0, 1)) -> None:
    with store.writer(shard):
        store.put(video_id, features, shard)


@contextlib.contextmanager
def mounted(*command: str) -> None:
    """Run a ``mount`` command for the block and unmount its target afterwards."""
    subprocess.run(["mount", *command], check=True)
    try:
        yield
    finally:
        subprocess.run(["umount", command[-1]], check=True)


def test_an_append_after_a_tear_at_any_byte_is_seen_by_readers(tmp_path):
    seed = tmp_path / "seed"
    put(FeatureStore(seed), "a", fake(frames=2))
    put(FeatureStore(seed), "b", fake(frames=3))
    lines = (seed / "manifest.jsonl").read_bytes().splitlines(keepends=True)
    for cut in range(len(lines[1])):
        root = tmp_path / f"cut{cut}"
        (root / "features").mkdir(parents=True)
        for name in ("a", "b"):
            (root / "features" / f"{name}.npy").write_bytes((seed / "features" / f"{name}.npy").read_bytes())
        (root / "manifest.jsonl").write_bytes(lines[0] + lines[1][:cut])
        (root / "settings.json").write_bytes((seed / "settings.json").read_bytes())
        put(FeatureStore(root), "c", fake(frames=4))
        whole = cut == len(lines[1]) - 1  # everything but the newline: the record is kept
        assert FeatureStore(root).video_ids() == (["a", "b", "c"] if whole else ["a", "c"]), cut
        assert (root / "manifest.jsonl").read_bytes().endswith(b"\n")


def test_a_second_writer_of_a_store_gets_a_clear_error(tmp_path):
    store = FeatureStore(tmp_path / "store")
    with store.writer():
        with pytest.raises(BusyError, match=r"feature store .*store.* is being written by another process"):
            with FeatureStore(tmp_path / "store").writer():
                pass
    put(store, "v", fake())  # the lock is free again
    assert store.video_ids() == ["v"]


def test_settings_are_checked_at_every_append(tmp_path):
    first, second = FeatureStore(tmp_path / "store"), FeatureStore(tmp_path / "store")
    put(first, "a", fake(tag=TAG), shard=(0, 2))
    with pytest.raises(ValueError, match=r"random-init\(seed=1\)"):
        put(second, "b", fake(tag="random-init(seed=1)"), shard=(1, 2))
    assert FeatureStore(tmp_path / "store").video_ids() == ["a"]


def test_a_changed_source_is_refused_when_read(tmp_path):
    video = tmp_path / "clip.mp4"
    video.write_bytes(b"x" * 100)
    store = FeatureStore(tmp_path / "store")
    put(store, "clip", fake(video))
    assert store.stale("clip") is None and store.load("clip").shape == (3, 512)
    video.write_bytes(b"y" * 5000)
    assert "100 -> 5000 bytes" in store.stale("clip")
    with pytest.raises(StaleFeaturesError, match=r"clip.mp4 changed since its features were extracted.*matr extract"):
        store.load("clip")


def test_a_touched_source_is_stale_too(tmp_path):
    video = tmp_path / "clip.mp4"
    video.write_bytes(b"x" * 100)
    store = FeatureStore(tmp_path / "store")
    put(store, "clip", fake(video))
    os.utime(video, ns=(0, 0))
    assert "was modified after its features were extracted" in store.stale("clip")


def test_a_failed_write_is_one_line_and_keeps_the_store_valid(tmp_path, monkeypatch):
    store = FeatureStore(tmp_path / "store")
    put(store, "a", fake())

    def full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(np, "save", full)
    with pytest.raises(WriteError) as raised:
        put(store, "b", fake())
    message = str(raised.value)
    assert "\n" not in message and "b.npy" in message and "the disk is full" in message and "rerun" in message
    assert FeatureStore(store.root).video_ids() == ["a"]


@needs_root
def test_a_full_disk_is_one_line_and_the_store_resumes_after_space_is_freed(tmp_path):
    disk = tmp_path / "disk"
    disk.mkdir()
    with mounted("-t", "tmpfs", "-o", "size=256k", "tmpfs", str(disk)):
        store = FeatureStore(disk / "store")
        put(store, "a", fake(frames=2))
        filler = disk / "filler"
        with pytest.raises(OSError), open(filler, "wb") as file:
            while True:
                file.write(b"\0" * 4096)
                file.flush()
        with pytest.raises(WriteError, match=r"cannot write .*: the disk is full; free some space"):
            put(store, "b", fake(frames=40))
        assert FeatureStore(store.root).video_ids() == ["a"]
        filler.unlink()
        put(store, "b", fake(frames=40))
        assert FeatureStore(store.root).video_ids() == ["a", "b"]


@needs_root
def test_a_read_only_store_serves_reads_and_refuses_writes_in_one_line(tmp_path):
    store_dir, view = tmp_path / "store", tmp_path / "view"
    put(FeatureStore(store_dir), "a", fake())
    view.mkdir()
    with mounted("--bind", str(store_dir), str(view)):
        subprocess.run(["mount", "-o", "remount,ro,bind", str(view)], check=True)
        readonly = FeatureStore(view)
        assert readonly.video_ids() == ["a"] and readonly.load("a").shape == (3, 512)
        with pytest.raises(WriteError, match=r"cannot write .*view.*: the file system is read-only; choose a folder"):
            put(readonly, "b", fake())
