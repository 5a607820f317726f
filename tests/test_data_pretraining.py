import numpy as np
import pytest
import torch

from matr.data.dataset import FrameLimits, InMemoryFeatures, collate_pairs
from matr.data.pretraining import PretrainConfig, PretrainingDataset, augment

C = 2.0
VIDEOS = {f"v{i}": 20 + 7 * i for i in range(6)}


def _source():
    rng = np.random.default_rng(0)
    return InMemoryFeatures({name: rng.normal(size=(n, 8)).astype(np.float16) for name, n in VIDEOS.items()}, C)


def _dataset(**config):
    return PretrainingDataset(list(VIDEOS), _source(), PretrainConfig(**config))


def test_each_clip_yields_an_original_and_one_augmented_copy():
    dataset = _dataset()
    assert len(dataset) == 2 * len(VIDEOS)
    ids = [dataset[i]["pair_id"] for i in range(len(dataset))]
    assert ids[0] == "pretrain/v0" and ids[1].startswith("pretrain/v0+")
    assert len(set(ids)) == len(ids)
    assert len(_dataset(augment=False)) == len(VIDEOS)


def test_query_is_the_target_at_the_recorded_window():
    dataset = _dataset(augment=False)
    for index in range(len(dataset)):
        item, sample = dataset[index], dataset.sample(index)
        assert item["window"].tolist() == [sample.first * C, sample.stop * C]
        assert torch.equal(item["query"], item["target"][sample.first : sample.stop])
        assert item["duration"] == len(item["target"]) * C and item["target_start"] == 0.0


def test_foreground_frames_are_exactly_the_query_frames():
    dataset = _dataset(augment=False)
    batch = collate_pairs([dataset[i] for i in range(len(dataset))])
    for b in range(len(dataset)):
        sample = dataset.sample(b)
        assert batch["foreground"][b].nonzero().flatten().tolist() == list(range(sample.first, sample.stop))


def test_clip_lengths_follow_the_configured_range():
    dataset = _dataset(augment=False, min_clip_seconds=6.0, max_clip_fraction=0.4)
    for epoch in range(5):
        dataset.set_epoch(epoch)
        for index, frames in enumerate(VIDEOS.values()):
            sample = dataset.sample(index)
            assert 3 <= sample.stop - sample.first <= int(0.4 * frames)


def test_video_shorter_than_the_minimum_clip_is_its_own_query():
    source = InMemoryFeatures({"short": np.ones((1, 8), np.float16)}, C)
    item = PretrainingDataset(["short"], source, PretrainConfig(augment=False))[0]
    assert item["window"].tolist() == [0.0, 2.0] and len(item["query"]) == 1


def _pair(augmentation, **config):
    dataset = _dataset(augmentations=(augmentation,), **config)
    return dataset[2], dataset[3]


def test_reverse_flips_the_frame_order():
    original, copy = _pair("reverse")
    assert copy["pair_id"] == "pretrain/v1+reverse"
    assert torch.equal(copy["query"], original["query"].flip(0))
    assert torch.equal(copy["window"], original["window"]) and torch.equal(copy["target"], original["target"])


def test_noise_is_gaussian_scaled_by_the_clip_std():
    dataset = PretrainingDataset(
        ["long"],
        InMemoryFeatures({"long": np.random.default_rng(1).normal(3.0, 2.0, size=(400, 64)).astype(np.float32)}, C),
        PretrainConfig(augmentations=("noise",), noise_sigma=0.5),
    )
    original, copy = dataset[0], dataset[1]
    residual = (copy["query"] - original["query"]).numpy()
    assert copy["query"].shape == original["query"].shape
    assert abs(residual.mean()) < 0.05
    assert residual.std() == pytest.approx(0.5 * original["query"].numpy().std(), rel=0.05)


def test_slow_repeats_every_frame():
    original, copy = _pair("slow", slow_factor=0.5)
    assert torch.equal(copy["query"], original["query"].repeat_interleave(2, dim=0))


def test_fast_keeps_every_other_frame():
    clip = np.arange(6, dtype=np.float32)[:, None].repeat(4, axis=1)
    fast = augment(clip, "fast", PretrainConfig(fast_factor=2.0), np.random.default_rng(0))
    assert fast[:, 0].tolist() == [1.0, 3.0, 5.0]
    original, copy = _pair("fast")
    assert len(copy["query"]) == int(len(original["query"]) / 2 + 0.5)


def test_all_augmentations_are_drawn():
    dataset = _dataset()
    drawn = set()
    for epoch in range(6):
        dataset.set_epoch(epoch)
        drawn |= {dataset.sample(2 * v + 1).augmentation for v in range(len(VIDEOS))}
    assert drawn == {"reverse", "noise", "slow", "fast"}


def test_same_seed_and_epoch_give_identical_items():
    first, second = _dataset(seed=4), _dataset(seed=4)
    for index in range(len(first)):
        a, b = first[index], second[index]
        assert a["pair_id"] == b["pair_id"] and torch.equal(a["query"], b["query"])
        assert torch.equal(a["window"], b["window"])


def test_clips_change_with_the_epoch_and_the_seed():
    def windows(dataset):
        return [dataset[i]["window"].tolist() for i in range(0, len(dataset), 2)]

    dataset = _dataset(seed=4)
    base = windows(dataset)
    dataset.set_epoch(1)
    assert windows(dataset) != base
    assert windows(_dataset(seed=5)) != base


def test_augmentation_switch_keeps_the_same_clips():
    with_aug, without = _dataset(seed=2), _dataset(seed=2, augment=False)
    for video in range(len(VIDEOS)):
        assert with_aug.sample(2 * video) == without.sample(video)


def test_target_crop_keeps_the_query_window():
    dataset = PretrainingDataset(
        list(VIDEOS),
        _source(),
        PretrainConfig(augment=False, max_clip_fraction=0.2),
        limits=FrameLimits(max_target_frames=12),
    )
    for index in range(len(dataset)):
        item = dataset[index]
        first, stop = (round(t / C) for t in item["window"].tolist())
        assert len(item["target"]) <= 12
        assert torch.equal(item["query"], item["target"][first:stop])


@pytest.mark.parametrize(
    "changes, message",
    [
        (dict(min_clip_seconds=0), "min_clip_seconds"),
        (dict(max_clip_fraction=1.5), "max_clip_fraction"),
        (dict(augmentations=("blur",)), "augmentations"),
        (dict(slow_factor=2.0), "slow_factor"),
        (dict(fast_factor=0.5), "fast_factor"),
    ],
)
def test_invalid_config_is_rejected(changes, message):
    with pytest.raises(ValueError, match=message):
        PretrainConfig(**changes)
