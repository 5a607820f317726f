import json
import logging
from pathlib import Path

import pytest

from matr.data.annotations import load_annotations
from matr.data.records import AnnotationError
from matr.data.sportsmoments import load_class_names, read_sportsmoments_csv, read_sportsmoments_jsonl

FIXTURES = Path(__file__).parent / "fixtures" / "sportsmoments"
HEADER = "query_id,reference_id,reference_segment_start,reference_segment_end,action_class,reference_duration\n"


def test_csv_row_becomes_a_whole_clip_pair_with_the_class_name():
    # val.csv line 2: ezQUPi74IIQ__25_536.mp4,6j1Oj5N7kwE__25_1303.mp4,31.4,35.4,25,84.3
    record = read_sportsmoments_csv(FIXTURES / "val.csv")[0]
    assert record.pair_id == "ezQUPi74IIQ__25_536->6j1Oj5N7kwE__25_1303"
    assert (record.query_video, record.target_video) == ("ezQUPi74IIQ__25_536", "6j1Oj5N7kwE__25_1303")
    assert record.query_window is None and record.target_window is None
    assert record.duration == 84.3 and record.windows == ((31.4, 35.4),)
    assert record.action_class == "free kick" and record.split == "val"


def test_a_query_in_several_rows_gives_distinct_pairs():
    records = read_sportsmoments_csv(FIXTURES / "val.csv")
    pairs = [r.pair_id for r in records if r.query_video == "ezQUPi74IIQ__25_536"]
    assert pairs == ["ezQUPi74IIQ__25_536->6j1Oj5N7kwE__25_1303", "ezQUPi74IIQ__25_536->farmGHpVCek__25_1946"]


def test_exact_repeated_row_is_dropped_with_a_warning(caplog):
    with caplog.at_level(logging.WARNING):
        records = read_sportsmoments_csv(FIXTURES / "val.csv")
    assert len(records) == 7
    assert [r.pair_id for r in records].count("4a5Oou5u3io__2_199->Txq8RoclyKM__2_1659") == 1
    assert "dropped 1 rows repeating an earlier row exactly (lines 9)" in caplog.text


def test_csv_and_jsonl_forms_give_the_same_records():
    # test.csv has reference_duration 133.70000000000073 where the JSON-lines form says 133.7.
    assert read_sportsmoments_jsonl(FIXTURES / "test.jsonl") == read_sportsmoments_csv(FIXTURES / "test.csv")


def test_without_a_class_mapping_the_class_stays_an_id(tmp_path):
    (tmp_path / "val.csv").write_text(HEADER + "a__2_1.mp4,b__2_7.mp4,1,3,2,10\n")
    assert read_sportsmoments_csv(tmp_path / "val.csv")[0].action_class == 2
    names = load_class_names(FIXTURES / "id_class_mapping.json")
    assert read_sportsmoments_csv(tmp_path / "val.csv", class_names=names)[0].action_class == "four"


def test_jsonl_extension_fields_set_class_and_split(tmp_path):
    rows = [
        {
            "qid": "train_bounce_q0",
            "vid": "train_bounce_t0",
            "duration": 20,
            "relevant_windows": [[4, 9]],
            "action_class": "bounce",
            "split": "train",
        },
        {"qid": "val_spin_q0", "vid": "val_spin_t0", "duration": 20, "relevant_windows": [[1, 2]]},
    ]
    (tmp_path / "demo.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    records = read_sportsmoments_jsonl(tmp_path / "demo.jsonl", split="val")
    assert [(r.action_class, r.split) for r in records] == [("bounce", "train"), (None, "val")]
    assert records[0].windows == ((4.0, 9.0),) and records[0].duration == 20.0


def test_end_slightly_past_the_duration_is_clipped(tmp_path):
    (tmp_path / "val.csv").write_text(HEADER + "a__2_1.mp4,b__2_7.mp4,8,10.5,2,10\n")
    assert read_sportsmoments_csv(tmp_path / "val.csv")[0].windows == ((8.0, 10.0),)


@pytest.mark.parametrize(
    "row, message",
    [
        ("a__2_1.mp4,b__2_7.mp4,5,3,2,10", "window end 3 is before its start 5"),
        ("a__2_1.mp4,b__2_7.mp4,5,12,2,10", "window end 12 s is beyond the duration 10 s"),
        ("a__2_1.mp4,b__2_7.mp4,-1,3,2,10", "window start -1 is negative"),
        ("a__2_1.mp4,b__2_7.mp4,1,3,2,ten", "reference_duration must be a number, got 'ten'"),
        ("a__2_1.mp4,b__3_7.mp4,1,3,2,10", "id 'b__3_7' names class 3 but action_class is 2"),
        ("a__99_1.mp4,b__99_7.mp4,1,3,99,10", "unknown action_class 99"),
        ("a__2_1.mp4,b__2_7.mp4,1,3,2,0", "duration must be > 0"),
    ],
)
def test_bad_csv_rows_name_file_and_line(tmp_path, row, message):
    (tmp_path / "val.csv").write_text(HEADER + "a__2_1.mp4,b__2_7.mp4,1,3,2,10\n" + row + "\n")
    with pytest.raises(AnnotationError, match=rf"val\.csv, line 3: {message}"):
        read_sportsmoments_csv(tmp_path / "val.csv", class_names={2: "four", 3: "cover drive"})


def test_repeated_pair_with_other_values_names_both_lines(tmp_path):
    (tmp_path / "val.csv").write_text(HEADER + "a__2_1.mp4,b__2_7.mp4,1,3,2,10\na__2_1.mp4,b__2_7.mp4,1,4,2,10\n")
    with pytest.raises(AnnotationError, match=r"line 3: pair 'a__2_1->b__2_7' repeats line 2 with different values"):
        read_sportsmoments_csv(tmp_path / "val.csv")


def test_missing_columns_are_named(tmp_path):
    (tmp_path / "val.csv").write_text("query_id,reference_id\na,b\n")
    with pytest.raises(AnnotationError, match=r"val\.csv, line 1: missing columns \['reference_segment_start'"):
        read_sportsmoments_csv(tmp_path / "val.csv")


def test_unknown_videos_are_rejected_when_the_known_set_is_given():
    with pytest.raises(AnnotationError, match=r"test\.csv, line 2: unknown video id 'iGGElV40TcU__5_1816'"):
        read_sportsmoments_csv(FIXTURES / "test.csv", known_videos={"MbdWVX2jUhA__5_889"})


@pytest.mark.parametrize(
    "row, message",
    [
        ({"qid": "a", "vid": "b", "duration": 10}, r"missing keys \['relevant_windows'\]"),
        ({"qid": "a", "vid": "b", "duration": 10, "relevant_windows": []}, "relevant_windows must be a non-empty list"),
        ({"qid": "a", "vid": "b", "duration": 10, "relevant_windows": [[1, 2, 3]]}, "a window must be"),
        ({"qid": "a", "vid": "b", "duration": 10, "relevant_windows": [[4, 2]]}, "window end 2 is before its start 4"),
        (
            {"qid": "a", "vid": "b", "duration": 10, "relevant_windows": [[4, 4]]},
            "a ground-truth window must have positive",
        ),
    ],
)
def test_bad_jsonl_rows_name_file_and_line(tmp_path, row, message):
    good = {"qid": "x", "vid": "y", "duration": 10, "relevant_windows": [[1, 2]]}
    (tmp_path / "val.jsonl").write_text(json.dumps(good) + "\n" + json.dumps(row) + "\n")
    with pytest.raises(AnnotationError, match=rf"val\.jsonl, line 2: {message}"):
        read_sportsmoments_jsonl(tmp_path / "val.jsonl")


def test_invalid_json_line_is_named(tmp_path):
    (tmp_path / "val.jsonl").write_text('{"qid": "x"\n')
    with pytest.raises(AnnotationError, match=r"val\.jsonl, line 1: invalid JSON"):
        read_sportsmoments_jsonl(tmp_path / "val.jsonl")


def test_a_header_only_csv_names_the_file_and_line(tmp_path):
    (tmp_path / "empty.csv").write_text(HEADER)
    with pytest.raises(AnnotationError, match=r"empty\.csv, line 1: the file holds no rows"):
        read_sportsmoments_csv(tmp_path / "empty.csv")


def test_durations_that_contradict_the_feature_store_name_the_file_and_line(tmp_path):
    row = {"qid": "a__1_1", "vid": "b__1_2", "duration": 1000.0, "relevant_windows": [[500.0, 600.0]]}
    path = tmp_path / "claims.jsonl"
    path.write_text(json.dumps(row) + "\n")
    with pytest.raises(
        AnnotationError, match=r"claims\.jsonl, line 1: duration 1000 s, but target video 'b__1_2' is 24 s"
    ):
        read_sportsmoments_jsonl(path, durations={"a__1_1": 6.0, "b__1_2": 24.0})
    csv_path = tmp_path / "claims.csv"
    csv_path.write_text(HEADER + "a__1_1.mp4,b__1_2.mp4,500,600,1,1000\n")
    with pytest.raises(AnnotationError, match=r"claims\.csv, line 2: duration 1000 s"):
        load_annotations(csv_path, durations={"b__1_2": 24.0})
    assert read_sportsmoments_jsonl(path, durations={"b__1_2": 999.5})[0].duration == 1000.0
