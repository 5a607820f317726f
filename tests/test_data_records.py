import json

import pytest

from matr.data.records import AnnotationError, PairRecord, clip_to_duration, load_pairs, save_pairs


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
        _record("c", windows=(), action_class=None),
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
    with pytest.raises(AnnotationError, match=r"p\.jsonl, line 2: pair_id 'a' already used on line 1"):
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
