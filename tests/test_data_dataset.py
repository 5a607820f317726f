import math

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from matr.baselines import video_match_batch
from matr.config import ModelConfig, preset
from matr.data.dataset import (
    FrameLimits,
    InMemoryFeatures,
    PairDataset,
    batch_frame_targets,
    collate_pairs,
    frame_range,
    resample_frames,
)
from matr.data.records import PairRecord
from matr.model import MATR
from matr.span_ops import frame_targets

C = 2.0


def _ramp(frames: int, offset: float = 0.0, dim: int = 3) -> np.ndarray:
    """Features whose every value in row ``i`` is ``offset + i``, so slices are easy to read."""
    return np.repeat(offset + np.arange(frames, dtype=np.float16)[:, None], dim, axis=1)


def _source(**videos):
    return InMemoryFeatures({name: _ramp(n) for name, n in videos.items()}, clip_length=C)


def _record(pair_id="p", windows=((10.0, 20.0),), duration=100.0, **changes):
    fields = dict(
        pair_id=pair_id,
        query_video="q",
        target_video="t",
        duration=duration,
        windows=windows,
        action_class=1,
        split="val",
    )
    return PairRecord(**(fields | changes))


def _rows(tensor):
    return tensor[:, 0].tolist()


def test_query_clip_takes_the_frames_whose_centres_fall_inside():
    # Centres 1, 3, 5, 7, 9, ...: [3, 9] holds those of frames 1..4.
    item = PairDataset([_record(query_window=(3.0, 9.0))], _source(q=10, t=50))[0]
    assert _rows(item["query"]) == [1, 2, 3, 4]


def test_a_window_without_a_centre_takes_the_frame_of_its_midpoint():
    assert frame_range((4.2, 4.8), 10, C) == (2, 3)


def test_whole_videos_are_used_when_no_clip_is_given():
    item = PairDataset([_record()], _source(q=7, t=50))[0]
    assert _rows(item["query"]) == list(range(7)) and _rows(item["target"]) == list(range(50))
    assert item["duration"] == 100.0 and item["target_start"] == 0.0
    assert item["window"].tolist() == [10.0, 20.0]


def test_target_clip_snaps_to_the_frame_grid_and_shifts_the_window():
    # target_window [5, 21]: centres 5..21 are frames 2..10, whose first starts at 4 s. The window
    # [2, 6] after 5 s is [7, 11] in the video, [3, 7] after 4 s.
    record = _record(target_window=(5.0, 21.0), duration=16.0, windows=((2.0, 6.0),))
    item = PairDataset([record], _source(q=5, t=20))[0]
    assert _rows(item["target"]) == list(range(2, 11))
    assert item["target_start"] == 4.0 and item["duration"] == 17.0
    assert item["window"].tolist() == [3.0, 7.0]


def test_collate_pads_and_builds_the_contract_batch():
    records = [
        _record("a", windows=((10.0, 20.0),)),
        _record("b", target_video="u", query_window=(0.0, 4.0), windows=((0.0, 3.0),), duration=9.0),
    ]
    batch = collate_pairs([PairDataset(records, _source(q=6, t=50, u=5))[i] for i in range(2)])
    assert batch["target"].shape == (2, 50, 3) and batch["query"].shape == (2, 6, 3)
    assert batch["target"].dtype == torch.float16, "every item's features are float16: the batch keeps it"
    assert batch["target_mask"].dtype == torch.bool
    assert batch["target_lengths"].tolist() == [50, 5] and batch["query_lengths"].tolist() == [6, 2]
    assert batch["target_mask"][1].tolist() == [True] * 5 + [False] * 45
    assert batch["query_mask"][1].tolist() == [True] * 2 + [False] * 4
    assert not batch["target"][1, 5:].any() and not batch["query"][1, 2:].any()
    fg, offsets = frame_targets((0.0, 3.0), 5, C)
    assert torch.equal(batch["foreground"][1, :5], fg) and torch.equal(batch["offsets"][1, :5], offsets)
    assert not batch["foreground"][1, 5:].any() and not batch["offsets"][1, 5:].any()
    assert batch["foreground"][0].nonzero().flatten().tolist() == [5, 6, 7, 8, 9]
    assert batch["window"].tolist() == [[10.0, 20.0], [0.0, 3.0]]
    assert batch["duration"].tolist() == [100.0, 9.0] and batch["pair_id"] == ["a", "b"]
    assert batch["clip_length"] == C and batch["target_lengths"].dtype == torch.long


def test_pair_without_ground_truth_has_no_foreground():
    batch = collate_pairs([PairDataset([_record(windows=())], _source(q=3, t=8))[0]])
    assert all(math.isnan(v) for v in batch["window"][0].tolist())
    assert not batch["foreground"].any() and not batch["offsets"].any()


def test_long_query_is_resampled_over_its_whole_length():
    item = PairDataset([_record()], _source(q=10, t=50), limits=FrameLimits(max_query_frames=4))[0]
    assert _rows(item["query"]) == [1, 3, 6, 8]


@pytest.mark.parametrize("limits", [{"max_query_frames": 0}, {"max_target_frames": 2.5}])
def test_frame_limits_must_be_positive_ints(limits: dict) -> None:
    with pytest.raises(ValueError, match="must be a positive int or None"):
        FrameLimits(**limits)


def test_frame_limits_of_a_model_config_are_its_own() -> None:
    config = ModelConfig(max_query_frames=7, max_target_frames=33)
    assert FrameLimits.of(config) == FrameLimits(max_query_frames=7, max_target_frames=33)


def test_resampling_repeats_frames_when_stretching():
    assert _rows(torch.from_numpy(resample_frames(_ramp(3), 6))) == [0, 0, 1, 1, 2, 2]


def test_crop_keeps_the_ground_truth_and_is_fixed_in_evaluation():
    # Window [40, 50] holds the centres of frames 20..24.
    dataset = PairDataset(
        [_record(windows=((40.0, 50.0),))], _source(q=3, t=100), limits=FrameLimits(max_target_frames=10)
    )
    item = dataset[0]
    start = int(item["target"][0, 0])
    assert len(item["target"]) == 10 and 15 <= start <= 20
    assert item["target_start"] == start * C and item["duration"] == 10 * C
    assert item["window"].tolist() == [40.0 - start * C, 50.0 - start * C]
    assert collate_pairs([item])["foreground"].sum() == 5
    dataset.set_epoch(5)
    assert torch.equal(dataset[0]["target"], item["target"])


def test_training_crops_move_between_epochs_and_repeat_for_the_same_epoch():
    dataset = PairDataset(
        [_record(windows=((40.0, 50.0),))], _source(q=3, t=100), limits=FrameLimits(max_target_frames=10), train=True
    )
    starts = []
    for epoch in range(12):
        dataset.set_epoch(epoch)
        starts.append(dataset[0]["target_start"])
        assert dataset[0]["target_start"] == starts[-1]
    assert len(set(starts)) > 1 and all(30.0 <= s <= 40.0 for s in starts)


def test_crop_of_a_ground_truth_longer_than_the_limit_lies_inside_it():
    dataset = PairDataset(
        [_record(windows=((10.0, 90.0),))], _source(q=3, t=100), limits=FrameLimits(max_target_frames=8)
    )
    batch = collate_pairs([dataset[0]])
    assert batch["foreground"].sum() == 8 and batch["window"][0].tolist() == [0.0, 16.0]


class _RecordingArray:
    """Stands for a memory map: records the slices taken and refuses to be read whole."""

    def __init__(self, frames: int) -> None:
        self.data, self.slices = _ramp(frames), []

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, key: slice) -> np.ndarray:
        self.slices.append((key.start, key.stop))
        return self.data[key]

    def __array__(self, *args, **kwargs):
        raise AssertionError("the whole array was read")


def test_only_the_rows_of_the_clips_are_read():
    query, target = _RecordingArray(40), _RecordingArray(1000)
    source = InMemoryFeatures({"q": query, "t": target}, clip_length=C)
    record = _record(query_window=(3.0, 9.0), target_window=(5.0, 21.0), duration=16.0, windows=((2.0, 6.0),))
    PairDataset([record], source)[0]
    assert query.slices == [(1, 5)] and target.slices == [(2, 11)]


def test_memory_mapped_float16_features_stay_float16_and_mixed_dtypes_pad_as_float32(tmp_path):
    np.save(tmp_path / "t.npy", _ramp(20, dim=512))
    source = InMemoryFeatures({"t": np.load(tmp_path / "t.npy", mmap_mode="r"), "q": _ramp(4, dim=512)}, C)
    item = PairDataset([_record(duration=40.0)], source)[0]
    assert item["target"].dtype == torch.float16, "items keep the stored dtype"
    batch = collate_pairs([item])
    assert batch["target"].dtype == torch.float16 and batch["target"].shape == (1, 20, 512)
    assert batch["target"][0, :, 0].tolist() == list(range(20))
    other = {**item, "pair_id": "x", "target": item["target"][:5].float()}
    mixed = collate_pairs([item, other])
    assert mixed["target"].dtype == torch.float32 and mixed["query"].dtype == torch.float16
    assert mixed["target"][0, :, 0].tolist() == list(range(20)) and mixed["target"][1, :5, 0].tolist() == list(range(5))


def test_float16_batches_give_the_model_and_video_match_what_float32_batches_give():
    rng = np.random.default_rng(0)
    features = {"t": rng.standard_normal((40, 512)), "q": rng.standard_normal((6, 512))}
    source = InMemoryFeatures({name: array.astype(np.float16) for name, array in features.items()}, C)
    batch = collate_pairs([PairDataset([_record(duration=80.0)], source)[0]])
    as_float32 = {k: v.float() if torch.is_tensor(v) and v.dtype == torch.float16 else v for k, v in batch.items()}
    assert batch["target"].dtype == batch["query"].dtype == torch.float16
    torch.manual_seed(0)
    model = MATR(preset("smoke")).eval()
    with torch.no_grad():
        half, full = model(batch), model(as_float32)
    assert half["fg_logits"].dtype == torch.float32
    assert torch.equal(half["fg_logits"], full["fg_logits"]) and torch.equal(half["offsets"], full["offsets"])
    assert video_match_batch(batch) == video_match_batch(as_float32)


def test_records_with_several_windows_are_refused():
    with pytest.raises(ValueError, match="pair 'p' has 2 ground-truth windows"):
        PairDataset([_record(windows=((1.0, 2.0), (5.0, 6.0)))], _source(q=3, t=8))


def test_collate_refuses_mixed_clip_lengths():
    items = [PairDataset([_record()], InMemoryFeatures({"q": _ramp(3), "t": _ramp(50)}, c))[0] for c in (1.0, 2.0)]
    with pytest.raises(ValueError, match="mix clip lengths"):
        collate_pairs(items)


def test_data_loader_batches_with_collate_pairs():
    records = [_record(f"p{i}", windows=((2.0 * i, 2.0 * i + 4),)) for i in range(5)]
    loader = DataLoader(PairDataset(records, _source(q=4, t=30)), batch_size=2, collate_fn=collate_pairs)
    batches = list(loader)
    assert [len(b["pair_id"]) for b in batches] == [2, 2, 1]
    assert batches[2]["pair_id"] == ["p4"]


def _tricky_windows(rng: np.random.Generator, count: int) -> list[tuple[float, float]]:
    """Windows on frame centres, between them, shorter than a frame, past the end, in float32."""
    windows = []
    for _ in range(count):
        start = float(rng.choice([rng.uniform(-3, 40), rng.integers(0, 20) * C + C / 2, rng.integers(0, 20) * C]))
        length = float(rng.choice([0.0, rng.uniform(0, 0.9 * C), rng.uniform(0, 30), C]))
        window = np.float32([start, start + length])
        windows.append((float(window[0]), float(window[1])))
    return windows


def test_frame_range_is_the_foreground_rule_of_frame_targets():
    rng = np.random.default_rng(0)
    for window in _tricky_windows(rng, 300):
        frames = int(rng.integers(1, 25))
        inside = frame_targets(window, frames, C)[0].nonzero().flatten().tolist()
        first, stop = frame_range(window, frames, C)
        assert list(range(first, stop)) == inside, window


def test_batch_targets_equal_the_per_pair_targets():
    rng = np.random.default_rng(1)
    windows = _tricky_windows(rng, 64)
    lengths = torch.from_numpy(rng.integers(1, 25, size=64))
    batch = torch.tensor(windows, dtype=torch.float32)
    batch[5] = math.nan  # a pair without ground truth
    foreground, offsets = batch_frame_targets(batch, lengths, 25, C)
    for b, window in enumerate(windows):
        m = int(lengths[b])
        if b == 5:
            assert not foreground[b].any() and not offsets[b].any()
            continue
        fg, off = frame_targets(window, m, C)
        assert torch.equal(foreground[b, :m], fg) and torch.equal(offsets[b, :m], off), window
        assert not foreground[b, m:].any() and not offsets[b, m:].any()


def test_each_video_is_opened_once_per_dataset():
    opened = []

    class Counting(InMemoryFeatures):
        def load(self, video_id: str) -> np.ndarray:
            opened.append(video_id)
            return super().load(video_id)

    records = [_record(f"p{i}") for i in range(4)]
    dataset = PairDataset(records, Counting({"q": _ramp(5), "t": _ramp(50)}, C))
    for i in range(4):
        dataset[i]
    assert sorted(opened) == ["q", "t"]
