"""CLIP encoding and the feature store in matr.features (random-init weights, CPU, a handful of frames)."""

from __future__ import annotations

import copy
import hashlib
import json
import time
from pathlib import Path

import numpy as np
import open_clip
import pytest
import torch
from helpers_video import barcode, write_video

from matr.features import (
    BACKBONE,
    FeatureStore,
    VideoFeatures,
    WeightsUnavailableError,
    download_host_reachable,
    encode_frames,
    extract_features,
    is_random_init,
    load_clip_encoder,
    resolve_shard,
    shard_of,
    video_features,
)
from matr.features import clip as clip_module
from matr.features import store as store_module

SECONDS = {"v0": 2, "v1": 3, "v2": 2, "v3": 2, "v4": 3}


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """One intra-op thread: on a small machine shared with other jobs, OpenMP threads mostly wait on each other."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def encoder(one_torch_thread):
    return load_clip_encoder("random", device="cpu", seed=0)


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> dict[str, Path]:
    """Five tiny videos (2-3 s at 10 fps: one or two 2-s windows each), keyed by id."""
    folder = tmp_path_factory.mktemp("videos")
    return {video_id: write_video(folder / f"{video_id}.mp4", 10 * seconds) for video_id, seconds in SECONDS.items()}


@pytest.fixture(scope="module")
def full_store(tmp_path_factory, videos, encoder) -> FeatureStore:
    store = FeatureStore(tmp_path_factory.mktemp("store"))
    extract_features(videos, store, encoder, progress=False)
    return store


def _count_embed_calls(monkeypatch, encoder, fail_after: int | None = None) -> dict[str, int]:
    """Wrap ``encoder.embed`` to count its calls (one per video here); optionally crash on call ``fail_after + 1``."""
    calls = {"count": 0}

    def counting(images):
        if fail_after is not None and calls["count"] >= fail_after:
            raise RuntimeError("simulated crash")
        calls["count"] += 1
        return type(encoder).embed(encoder, images)

    monkeypatch.setattr(encoder, "embed", counting)
    return calls


def test_encode_frames_gives_one_512d_feature_per_frame(encoder):
    frames = [barcode(index) for index in (1, 2, 3)]
    embeddings = encode_frames(encoder, frames)
    assert embeddings.shape == (3, 512) and embeddings.dtype == np.float32
    assert np.isfinite(embeddings).all() and not np.allclose(embeddings[0], embeddings[2])
    np.testing.assert_allclose(encode_frames(encoder, frames, batch_size=2), embeddings, rtol=1e-4, atol=1e-5)


def _visual_state(encoder) -> dict[str, torch.Tensor]:
    return encoder.visual.state_dict()


def _same_weights(first: dict[str, torch.Tensor], second: dict[str, torch.Tensor]) -> bool:
    return first.keys() == second.keys() and all(torch.equal(first[key], second[key]) for key in first)


def test_random_init_is_deterministic_for_a_seed(encoder):
    again = load_clip_encoder("random", device="cpu", seed=0)
    other = load_clip_encoder("random", device="cpu", seed=1)
    assert _same_weights(_visual_state(again), _visual_state(encoder))
    assert not _same_weights(_visual_state(other), _visual_state(encoder))
    assert (encoder.weights_tag, other.weights_tag) == ("random-init(seed=0)", "random-init(seed=1)")
    assert is_random_init(encoder.weights_tag) and not is_random_init("openai")


def test_local_checkpoint_is_loaded_by_path_and_tagged_by_hash(tmp_path):
    model, _, _ = open_clip.create_model_and_transforms(BACKBONE, pretrained=None)
    state = {key: value.half() for key, value in model.state_dict().items()}
    path = tmp_path / "clip.pt"
    torch.save(state, path)
    loaded = load_clip_encoder(path, device="cpu")
    assert loaded.weights_tag == f"file:{hashlib.sha256(path.read_bytes()).hexdigest()[:12]}"
    expected = {key[len("visual.") :]: value.float() for key, value in state.items() if key.startswith("visual.")}
    assert _same_weights(_visual_state(loaded), expected)


def test_checkpoint_that_does_not_fit_is_rejected_naming_the_file(tmp_path):
    path = tmp_path / "other-model.pt"
    torch.save({"weight": torch.zeros(2)}, path)
    with pytest.raises(ValueError, match=r"cannot load .*other-model\.pt"):
        load_clip_encoder(path, device="cpu")


def test_openai_weights_offline_fail_fast_with_instructions(monkeypatch):
    monkeypatch.setattr(clip_module, "_cached_openai_weights", lambda: None)
    began = time.monotonic()
    with pytest.raises(WeightsUnavailableError) as raised:
        load_clip_encoder("openai", device="cpu", download_available=lambda: False)
    assert time.monotonic() - began < 10
    message = str(raised.value)
    assert "path" in message and "'random'" in message and "huggingface.co" in message


def test_download_probe_answers_fast_when_host_is_unreachable(monkeypatch):
    began = time.monotonic()
    assert download_host_reachable("matr-test.invalid", timeout=3.0) is False
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert download_host_reachable() is False
    assert time.monotonic() - began < 10


def test_unknown_weights_are_rejected():
    with pytest.raises(ValueError, match="'openai', 'random' or a checkpoint file"):
        load_clip_encoder("no-such-weights.pt", device="cpu")


def test_video_features_of_a_subclip_carry_the_weights_tag(videos, encoder):
    result = video_features(videos["v1"], encoder, 2.0, start=1.0, end=3.0)
    assert result.features.shape == (1, 512)
    assert result.duration == pytest.approx(2.0) and result.video_duration == pytest.approx(3.0)
    np.testing.assert_allclose(result.timestamps, [1.0])
    assert result.weights_tag == encoder.weights_tag


def test_store_round_trip_is_float16_memmap_matching_encoding(full_store, videos, encoder):
    assert full_store.video_ids() == sorted(SECONDS)
    stored = full_store.load("v1")
    assert isinstance(stored, np.memmap) and stored.dtype == np.float16 and stored.shape == (2, 512)
    fresh = video_features(videos["v1"], encoder).features
    np.testing.assert_allclose(stored, fresh, rtol=2e-3, atol=2e-3)


def test_manifest_records_settings_and_weights_tag(full_store, videos):
    info = full_store.info("v4")
    assert info["weights_tag"] == "random-init(seed=0)" and is_random_init(full_store.weights_tag)
    assert full_store.clip_length == 2.0
    assert info["num_frames"] == 2 and info["duration"] == pytest.approx(3.0)
    assert (info["clip_length"], info["backbone"], info["feature_dim"]) == (2.0, BACKBONE, 512)
    assert info["path"] == str(videos["v4"])
    lines = (full_store.root / "manifest.jsonl").read_text().splitlines()
    assert {json.loads(line)["video_id"] for line in lines} == set(SECONDS)


def test_interrupted_extraction_resumes_without_recomputing(tmp_path, videos, encoder, monkeypatch):
    store = FeatureStore(tmp_path / "store")
    _count_embed_calls(monkeypatch, encoder, fail_after=2)
    with pytest.raises(RuntimeError, match="simulated crash"):
        extract_features(videos, store, encoder, progress=False)
    done = FeatureStore(store.root).video_ids()
    assert len(done) == 2
    written = {video_id: (store.root / f"features/{video_id}.npy").stat().st_mtime_ns for video_id in done}

    calls = _count_embed_calls(monkeypatch, encoder)
    report = extract_features(videos, store, encoder, progress=False)
    assert calls["count"] == len(SECONDS) - 2
    assert sorted(report.skipped) == done and len(report.extracted) == len(SECONDS) - 2
    assert FeatureStore(store.root).video_ids() == sorted(SECONDS)
    assert {video_id: (store.root / f"features/{video_id}.npy").stat().st_mtime_ns for video_id in done} == written


def test_crash_while_writing_an_array_leaves_nothing_behind(tmp_path, monkeypatch):
    store = FeatureStore(tmp_path / "store")
    result = VideoFeatures(
        features=np.ones((2, 512), np.float32),
        timestamps=np.array([1.0, 2.5]),
        duration=3.0,
        video_duration=3.0,
        clip_length=2.0,
        weights_tag="random-init(seed=0)",
        backbone=BACKBONE,
        path="v.mp4",
    )

    def torn_save(file, array):
        file.write(b"\x93NUMPY partial")
        raise OSError("disk full")

    monkeypatch.setattr(store_module.np, "save", torn_save)
    with pytest.raises(OSError, match="disk full"):
        store.put("v", result)
    assert not store.has("v") and list((store.root / "features").iterdir()) == []
    assert not (store.root / "manifest.jsonl").exists()


def test_torn_manifest_line_is_ignored(full_store, tmp_path):
    root = tmp_path / "copy"
    root.mkdir()
    (root / "features").symlink_to(full_store.root / "features")
    text = (full_store.root / "manifest.jsonl").read_text()
    (root / "manifest.jsonl").write_text(text + '{"video_id": "v9", "fi')
    assert FeatureStore(root).video_ids() == sorted(SECONDS)


def test_corrupt_video_is_reported_and_skipped(tmp_path, videos, encoder):
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\x00\x00\x00\x18ftypmp42 definitely not a video")
    chosen = {"v0": videos["v0"], "broken": broken, "v2": videos["v2"]}
    store = FeatureStore(tmp_path / "store")
    report = extract_features(chosen, store, encoder, progress=False)
    assert sorted(report.extracted) == ["v0", "v2"] and list(report.failed) == ["broken"]
    assert str(broken) in report.failed["broken"] and not report.complete
    assert store.video_ids() == ["v0", "v2"]
    assert store.failures()["broken"]["path"] == str(broken)
    assert json.loads((store.root / "failures.jsonl").read_text())["video_id"] == "broken"


def test_two_shards_split_the_videos_and_share_one_store(tmp_path, videos, encoder):
    root = tmp_path / "store"
    reports = [extract_features(videos, root, encoder, shard=(index, 2), progress=False) for index in range(2)]
    first, second = (set(report.extracted) for report in reports)
    assert first and second and not first & second and first | second == set(SECONDS)
    assert all(shard_of(video_id, 2) == 0 for video_id in first)
    assert sorted(path.name for path in root.glob("manifest*")) == ["manifest-0-of-2.jsonl", "manifest-1-of-2.jsonl"]
    assert FeatureStore(root).video_ids() == sorted(SECONDS)


def test_shard_comes_from_torchrun_environment(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert resolve_shard() == (0, 1)
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "3")
    assert resolve_shard() == (1, 3)
    assert resolve_shard((2, 4)) == (2, 4)
    with pytest.raises(ValueError, match="0 <= i < n"):
        resolve_shard((2, 2))


def test_resuming_with_other_weights_is_an_error(full_store, videos, encoder):
    other = copy.copy(encoder)
    other.weights_tag = "openai"
    with pytest.raises(ValueError, match="weights_tag"):
        extract_features(videos, full_store, other, progress=False)
    with pytest.raises(ValueError, match="clip_length"):
        extract_features(videos, full_store, encoder, clip_length=1.0, progress=False)


def test_paths_without_ids_are_keyed_by_unique_stems(tmp_path, videos, encoder):
    report = extract_features([videos["v0"]], tmp_path / "store", encoder, progress=False)
    assert report.extracted == ["v0"]
    with pytest.raises(ValueError, match="unique"):
        extract_features([videos["v0"], tmp_path / "other" / "v0.mp4"], tmp_path / "store", encoder, progress=False)


def test_a_lazy_encoder_knows_its_tag_and_builds_on_first_use(monkeypatch):
    built = []

    def build(seed):
        built.append(seed)
        raise RuntimeError("built")

    monkeypatch.setattr(clip_module, "_random_model", build)
    lazy = load_clip_encoder("random", device="cpu", seed=3, lazy=True)
    assert lazy.weights_tag == "random-init(seed=3)" and not lazy.built and built == []
    with pytest.raises(RuntimeError):
        lazy.build()
    assert built == [3]


def test_random_bytes_as_weights_are_one_line_without_unsafe_advice(tmp_path):
    path = tmp_path / "random.pt"
    path.write_bytes(np.random.default_rng(0).bytes(2048))
    with pytest.raises(ValueError) as raised:
        load_clip_encoder(path, device="cpu")
    assert str(path) in str(raised.value) and "weights_only" not in str(raised.value) and "\n" not in str(raised.value)


def test_a_changed_video_is_re_extracted_and_the_report_says_why(tmp_path, videos, encoder):
    video = tmp_path / "clip.mp4"
    video.write_bytes(videos["v0"].read_bytes())
    store = FeatureStore(tmp_path / "store")
    extract_features({"clip": video}, store, encoder, progress=False)
    assert store.load("clip").shape == (1, 512)
    video.write_bytes(videos["v1"].read_bytes())  # 3 s instead of 2 s: two windows
    report = extract_features({"clip": video}, store, encoder, progress=False)
    assert report.extracted == ["clip"] and "changed since its features were extracted" in report.refreshed["clip"]
    assert FeatureStore(store.root).load("clip").shape == (2, 512)
    assert len(list((store.root / "features").iterdir())) == 1  # the old array is gone


def test_a_store_that_needs_nothing_is_not_locked(full_store, videos, encoder):
    with full_store.writer():  # another writer holds the lock: a run with nothing to do still succeeds
        report = extract_features(videos, FeatureStore(full_store.root), encoder, progress=False)
    assert sorted(report.skipped) == sorted(SECONDS) and not report.extracted


def test_video_features_from_a_store_skip_decoding_and_the_backbone(tmp_path, videos, encoder, monkeypatch):
    fresh = video_features(videos["v1"], encoder, store=tmp_path / "cache")
    monkeypatch.setattr(encoder, "embed", lambda images: pytest.fail("encoded a cached video"))
    cached = video_features(videos["v1"], encoder, store=tmp_path / "cache")
    np.testing.assert_allclose(cached.features, fresh.features, rtol=2e-3, atol=2e-3)
    assert cached.duration == pytest.approx(fresh.duration) and cached.weights_tag == encoder.weights_tag


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_gpu_encoding_matches_the_cpu_within_bf16_precision(encoder):
    frames = [barcode(index) for index in (1, 2, 3)]
    on_gpu = load_clip_encoder("random", device="auto", seed=0)
    assert on_gpu.device.type == "cuda"
    np.testing.assert_allclose(encode_frames(on_gpu, frames), encode_frames(encoder, frames), rtol=0.05, atol=0.05)
