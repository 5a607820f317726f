import json
import logging
from pathlib import Path

import numpy as np
import pytest

from matr.data.activitynet_vrl import (
    import_activitynet_vrl,
    load_activitynet_durations,
    load_class_split,
    read_vrl_entries,
    vrl_pairs,
)
from matr.data.records import AnnotationError, save_pairs

FIXTURES = Path(__file__).parent / "fixtures" / "activitynet-vrl"
SPLIT, LENGTHS = FIXTURES / "val.json", FIXTURES / "length.json"


def _entries(**kwargs):
    return read_vrl_entries(SPLIT, LENGTHS, **({"fps": 25.0} | kwargs))


def test_entry_times_follow_the_feature_index_formula_with_fps():
    # Entry 0: id 3l7quTy4c2s, location [0, 67), groundtruth [40, 51). At 25 fps one index is
    # 16 / 25 = 0.64 s.
    entry = _entries()[0]
    assert entry.query_window == pytest.approx((40 * 0.64, 51 * 0.64))
    assert entry.target_window == pytest.approx((0.0, 67 * 0.64))
    assert entry.target_groundtruth == pytest.approx((25.6, 32.64))


def test_entry_times_use_the_given_duration():
    # Entry 1: location [130, 187), groundtruth [32, 49); n_frames 5213; say the video lasts 180 s.
    entry = _entries(durations={"3l7quTy4c2s": 180.0})[1]
    step = 16 * 180.0 / 5213
    assert entry.query_window == pytest.approx(((130 + 32) * step, (130 + 49) * step))
    assert entry.target_window == pytest.approx((130 * step, 187 * step))
    assert entry.target_groundtruth == pytest.approx((32 * step, 49 * step))


def test_pair_record_is_the_query_action_and_the_target_location():
    entries = _entries()
    pair = next(p for p in vrl_pairs(entries, "val") if p.pair_id.startswith("anet-vrl/val/5->"))
    query = entries[5]
    target = entries[int(pair.pair_id.split("->")[1])]
    assert pair.query_video == query.video_id and pair.query_window == pytest.approx(query.query_window)
    assert pair.target_video == target.video_id and pair.target_window == pytest.approx(target.target_window)
    assert pair.duration == pytest.approx(target.target_window[1] - target.target_window[0])
    assert pair.windows == (pytest.approx(target.target_groundtruth),)
    assert pair.action_class == 140 and pair.split == "val"


def test_same_seed_gives_identical_pair_file_bytes(tmp_path):
    first = save_pairs(import_activitynet_vrl(SPLIT, LENGTHS, fps=25.0, seed=3), tmp_path / "a.jsonl")
    second = save_pairs(import_activitynet_vrl(SPLIT, LENGTHS, fps=25.0, seed=3), tmp_path / "b.jsonl")
    assert first.read_bytes() == second.read_bytes()


def test_different_seeds_give_different_pairs():
    entries = _entries()
    first, second = ([p.pair_id for p in vrl_pairs(entries, "val", seed=seed)] for seed in (0, 1))
    assert first != second


@pytest.mark.parametrize("rule", ["location", "groundtruth"])
def test_pairs_share_class_and_split_differ_in_video_and_respect_the_length_rule(rule):
    entries = _entries()
    pairs = vrl_pairs(entries, "val", pairs_per_query=3, length_rule=rule)
    assert pairs
    for pair in pairs:
        query, target = (entries[int(i)] for i in pair.pair_id.rsplit("/", 1)[1].split("->"))
        assert query.label == target.label and pair.split == "val"
        assert query.video_id != target.video_id
        length = target.location_length if rule == "location" else target.groundtruth_length
        assert length >= query.groundtruth_length


def test_location_rule_pairs_every_query_and_excludes_short_windows():
    # Entry 5 (label 140, groundtruth 32 indices): entry 8's location is only 26 indices long.
    pairs = vrl_pairs(_entries(), "val", pairs_per_query=10)
    assert {p.pair_id.split("/")[2].split("->")[0] for p in pairs} == {str(i) for i in range(10)}
    assert {p.pair_id for p in pairs if p.pair_id.startswith("anet-vrl/val/5->")} == {
        "anet-vrl/val/5->0",
        "anet-vrl/val/5->1",
        "anet-vrl/val/5->9",
    }


def test_groundtruth_rule_skips_a_query_without_candidates(caplog):
    with caplog.at_level(logging.INFO):
        pairs = vrl_pairs(_entries(), "val", length_rule="groundtruth")
    assert not [p for p in pairs if p.pair_id.startswith("anet-vrl/val/5->")]
    # Also entries 6 and 7 (label 100), whose longer-or-equal actions are only in their own video.
    assert "3 of 10 queries have no candidate" in caplog.text


def test_pairs_per_query_gives_distinct_targets():
    pairs = vrl_pairs(_entries(), "val", pairs_per_query=2)
    by_query = {}
    for pair in pairs:
        query, target = pair.pair_id.split("/")[2].split("->")
        by_query.setdefault(query, []).append(target)
    assert all(len(targets) == len(set(targets)) <= 2 for targets in by_query.values())
    assert max(len(t) for t in by_query.values()) == 2
    assert len({p.pair_id for p in pairs}) == len(pairs)


def test_all_candidates_are_kept_without_a_limit():
    # Counted by hand from the fixture (location lengths vs groundtruth lengths, other videos):
    # label 140: entries 0, 1, 5, 8, 9 have 3 candidates each; label 100: entries 2, 3, 6, 7 have
    # 3 and entry 4 (the only one of its video) has 4.
    assert len(vrl_pairs(_entries(), "val", pairs_per_query=None)) == 15 + 16


def test_missing_duration_names_the_video_and_entry():
    with pytest.raises(AnnotationError, match=r"val\.json, entry 0: no duration for video '3l7quTy4c2s'"):
        read_vrl_entries(SPLIT, LENGTHS, durations={})


def _write(tmp_path, entries, lengths=None):
    split, length = tmp_path / "val.json", tmp_path / "length.json"
    split.write_text(json.dumps(entries))
    length.write_text(json.dumps(lengths or {"vid": {"n_feat": 41, "n_frames": 660}}))
    return split, length


def _raw(**changes):
    return {"id": "vid", "label": 1, "location": [0, 41], "groundtruth": [2, 5]} | changes


@pytest.mark.parametrize(
    "entry, message",
    [
        (_raw(groundtruth=[5, 2]), r"groundtruth \[5, 2\] must satisfy 0 <= start < end"),
        (_raw(location=[10, 42]), "location .* ends beyond the video's 41 features"),
        (_raw(location=[10, 20], groundtruth=[5, 12]), "groundtruth .* ends beyond the location window of length 10"),
        (_raw(id="other"), "unknown video id 'other': not in length.json"),
        (_raw(label="x"), "label must be an integer"),
        ({"id": "vid"}, "expected an object with keys"),
    ],
)
def test_malformed_entries_name_file_and_entry(tmp_path, entry, message):
    split, length = _write(tmp_path, [_raw(), entry])
    with pytest.raises(AnnotationError, match=rf"val\.json, entry 1: {message}"):
        read_vrl_entries(split, length, fps=25.0)


def test_duplicate_entries_are_rejected(tmp_path):
    split, length = _write(tmp_path, [_raw(), _raw(groundtruth=[2, 6]), _raw(label=2)])
    with pytest.raises(AnnotationError, match=r"entry 2: duplicate of entry 0"):
        read_vrl_entries(split, length, fps=25.0)


def test_last_feature_past_the_end_is_clipped_within_tolerance(tmp_path):
    # 41 features cover 656 frames but the video has 640: 16 frames (0.64 s at 25 fps) too many.
    split, length = _write(tmp_path, [_raw()], {"vid": {"n_feat": 41, "n_frames": 640}})
    entry = read_vrl_entries(split, length, fps=25.0)[0]
    assert entry.target_window == (0.0, pytest.approx(640 / 25))


def test_windows_far_past_the_duration_are_rejected(tmp_path):
    # 41 features cover 656 frames but the video has 600: 2.24 s too many at 25 fps.
    split, length = _write(tmp_path, [_raw()], {"vid": {"n_feat": 41, "n_frames": 600}})
    with pytest.raises(AnnotationError, match=r"entry 0: location end 26.24 s is beyond the duration 24 s"):
        read_vrl_entries(split, length, fps=25.0)


def test_invalid_json_names_the_line(tmp_path):
    (tmp_path / "val.json").write_text('[{"id": "vid",\n "label": }]')
    with pytest.raises(AnnotationError, match=r"val\.json, line 2 column"):
        read_vrl_entries(tmp_path / "val.json", LENGTHS, fps=25.0)


def test_class_split_has_disjoint_160_20_20_classes():
    split = load_class_split(FIXTURES / "perm.npy")
    assert [len(split[name]) for name in ("train", "val", "test")] == [160, 20, 20]
    assert sorted(np.concatenate(list(split.values())).tolist()) == list(range(200))


def test_activitynet_metadata_durations_are_read(tmp_path):
    path = tmp_path / "activity_net.v1-3.min.json"
    path.write_text(json.dumps({"database": {"a": {"duration": 12.5, "annotations": []}}, "taxonomy": []}))
    assert load_activitynet_durations(path) == {"a": 12.5}


def test_pairs_carry_the_targets_feature_step_and_their_windows_recover_its_indices():
    entries = _entries(durations={"3l7quTy4c2s": 180.0})
    for pair in vrl_pairs(entries, "val"):
        target = entries[int(pair.pair_id.split("->")[1])]
        assert pair.feature_step == target.step
        start, end = (round(t / pair.feature_step) for t in pair.windows[0])
        assert (start, end) == target.groundtruth
        assert abs(pair.windows[0][1] - end * pair.feature_step) <= 1e-6  # on the grid, to the records' 1 µs
    assert entries[1].step == 16 * 180.0 / 5213
