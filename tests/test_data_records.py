import json

import pytest

from matr.data.records import (
    AnnotationError,
    PairRecord,
    check_against_store,
    clip_to_duration,
    evaluation_inputs,
    load_pairs,
    save_pairs,
)


def _record(pair_id="p0", **changes):
    fields = dict(
        pair_id=pair_id,
        query_video="q",
        target_video="t",
        duration=10.0,
        windows=((2.0, 4.5),),
        action_class="goal",
        split="val",
    )
    fields.update(changes)
    return PairRecord(**fields)


def _records():
    return [
        _record("a", query_window=(1.25, 3.0)),
        _record("b", target_window=(5.0, 15.0), windows=((0.1, 9.9),), action_class=7),
        _record("c", windows=(), action_class=None, feature_step=0.5333333333333333),
    ]


def test_saved_pairs_load_back_equal(tmp_path):
    path = save_pairs(_records(), tmp_path / "pairs.jsonl")
    assert load_pairs(path) == _records()


def test_saving_twice_gives_identical_bytes(tmp_path):
    first = save_pairs(_records(), tmp_path / "a.jsonl").read_bytes()
    reloaded = load_pairs(tmp_path / "a.jsonl")
    assert save_pairs(reloaded, tmp_path / "b.jsonl").read_bytes() == first


def test_lines_have_sorted_keys_and_rounded_times(tmp_path):
    save_pairs([_record(duration=10.123456789, windows=((1 / 3, 2 / 3),))], tmp_path / "p.jsonl")
    line = (tmp_path / "p.jsonl").read_text()
    data = json.loads(line)
    assert list(data) == sorted(data)
    assert data["duration"] == 10.123457 and data["windows"] == [[0.333333, 0.666667]]
    assert line.endswith("\n") and line.count("\n") == 1


def test_saving_duplicate_pair_ids_fails(tmp_path):
    with pytest.raises(ValueError, match="'a' occurs more than once"):
        save_pairs([_record("a"), _record("a")], tmp_path / "p.jsonl")


def test_loading_duplicate_pair_ids_names_both_lines(tmp_path):
    line = json.dumps(_record("a").to_json())
    (tmp_path / "p.jsonl").write_text(f"{line}\n{line}\n")
    with pytest.raises(AnnotationError, match=r"p\.jsonl, line 2: pair 'a' repeats line 1 \(pair ids must be unique\)"):
        load_pairs(tmp_path / "p.jsonl")


def test_loading_an_invalid_record_names_file_and_line(tmp_path):
    good = _record("a").to_json()
    bad = dict(good, pair_id="b", windows=[[5.0, 3.0]])
    (tmp_path / "p.jsonl").write_text(json.dumps(good) + "\n" + json.dumps(bad) + "\n")
    with pytest.raises(AnnotationError, match=r"p\.jsonl, line 2: window end 3 is before its start 5"):
        load_pairs(tmp_path / "p.jsonl")


def test_loading_unknown_keys_fails(tmp_path):
    (tmp_path / "p.jsonl").write_text(json.dumps(dict(_record().to_json(), extra=1)) + "\n")
    with pytest.raises(AnnotationError, match=r"line 1: unknown keys \['extra'\]"):
        load_pairs(tmp_path / "p.jsonl")


@pytest.mark.parametrize(
    "changes, message",
    [
        (dict(windows=((4.0, 2.0),)), "before its start"),
        (dict(windows=((2.0, 10.5),)), "outside the target clip"),
        (dict(duration=0.0), "duration must be > 0"),
        (dict(target_window=(5.0, 12.0)), "differs from the target_window"),
        (dict(query_window=(3.0, 3.0)), "query_window"),
        (dict(pair_id=""), "pair_id must be a non-empty string"),
        (dict(action_class=1.5), "action_class"),
    ],
)
def test_invalid_records_are_rejected(changes, message):
    with pytest.raises(ValueError, match=message):
        _record(**changes)


def test_small_overrun_is_clipped_and_large_one_rejected():
    assert clip_to_duration((9.0, 10.8), 10.0) == (9.0, 10.0)
    with pytest.raises(ValueError, match="beyond the duration 10 s"):
        clip_to_duration((9.0, 11.5), 10.0)


def test_feature_step_round_trips_unrounded_and_old_files_without_it_still_load(tmp_path):
    step = 16 * 100.0 / 3000
    path = save_pairs([_record("a", feature_step=step)], tmp_path / "p.jsonl")
    assert load_pairs(path)[0].feature_step == step
    old = {k: v for k, v in _record("b").to_json().items() if k != "feature_step"}
    (tmp_path / "old.jsonl").write_text(json.dumps(old) + "\n")
    assert load_pairs(tmp_path / "old.jsonl")[0].feature_step is None


def test_a_zero_length_ground_truth_window_is_refused():
    with pytest.raises(ValueError, match="positive length"):
        _record(windows=((3.0, 3.0),))
    with pytest.raises(ValueError, match="feature_step"):
        _record(feature_step=0.0)


def test_a_target_window_beyond_the_stored_video_names_the_file_and_line(tmp_path):
    clip = _record("b", target_video="long", target_window=(100.0, 124.0), duration=24.0)
    path = save_pairs([_record("a"), clip], tmp_path / "p.jsonl")
    with pytest.raises(AnnotationError, match=r"p\.jsonl, line 2: target_window of video 'long' ends at 124 s, beyond"):
        load_pairs(path, durations={"t": 10.0, "long": 24.0})
    assert len(load_pairs(path, durations={"long": 124.5})) == 2  # within the tolerance


def test_check_against_store_names_the_source_and_the_record():
    records = [_record("a"), _record("b", duration=1000.0, windows=((500.0, 600.0),), target_video="long")]
    with pytest.raises(AnnotationError, match=r"ann\.jsonl, record 2 \(pair 'b'\): duration 1000 s, but target"):
        check_against_store(records, {"long": 24.0, "t": 10.0}, "ann.jsonl")
    check_against_store(records, {"t": 10.5}, "ann.jsonl")  # absent videos are not checked
    with pytest.raises(AnnotationError, match="query_window of video 'q'"):
        check_against_store([_record("c", query_window=(1.0, 40.0))], {"q": 24.0}, "ann.jsonl")


def test_evaluation_inputs_refuse_pairs_without_ground_truth_and_name_the_columns():
    with pytest.raises(AnnotationError, match=r"pairs\.csv: evaluation needs .* 1 of 2 pairs .*gt_start and gt_end"):
        evaluation_inputs([_record("a"), _record("c", windows=())], "pairs.csv")
    truth, steps = evaluation_inputs([_record("a"), _record("b", feature_step=0.5)], "x")
    assert truth == {"a": ((2.0, 4.5),), "b": ((2.0, 4.5),)} and steps == {"b": 0.5}
