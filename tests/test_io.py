import json

import pytest

from matr.io import (
    BusyError,
    WriteError,
    append_jsonl,
    atomic_open,
    exclusive_lock,
    read_jsonl,
    write_json,
    write_jsonl,
)
from matr.provenance import provenance


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "result.json"
    write_json(path, {"value": 1})
    with pytest.raises(RuntimeError):
        with atomic_open(path) as handle:
            handle.write(b'{"value": ')
            raise RuntimeError("crash in the middle of a write")
    assert json.loads(path.read_text()) == {"value": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["result.json"]


def test_equal_records_give_equal_bytes(tmp_path):
    write_jsonl(tmp_path / "a.jsonl", [{"b": 1, "a": 2}])
    write_jsonl(tmp_path / "b.jsonl", [{"a": 2, "b": 1}])
    assert (tmp_path / "a.jsonl").read_bytes() == (tmp_path / "b.jsonl").read_bytes()
    assert read_jsonl(tmp_path / "a.jsonl") == [{"a": 2, "b": 1}]


def test_a_malformed_line_is_named(tmp_path):
    (tmp_path / "bad.jsonl").write_text('{"a": 1}\n{"a": \n')
    with pytest.raises(ValueError, match=r"bad.jsonl, line 2"):
        read_jsonl(tmp_path / "bad.jsonl")


def test_provenance_flags_a_random_init_backbone():
    assert provenance(weights_tag="random-init(seed=0)")["random_init_backbone"] is True
    record = provenance(weights_tag="openai", seed=3)
    assert record["random_init_backbone"] is False and record["seed"] == 3
    assert {"git_commit", "hardware", "created"} <= set(record)


def test_a_duplicate_key_is_an_error_naming_both_lines(tmp_path):
    path = tmp_path / "predictions.jsonl"
    write_jsonl(path, [{"pair_id": "p0", "source": "heads"}, {"pair_id": "p0", "source": "A_pre"}])
    assert len(read_jsonl(path, key=("pair_id", "source"))) == 2
    with pytest.raises(ValueError, match=r"predictions.jsonl, line 2: duplicate pair_id 'p0' \(first on line 1\)"):
        read_jsonl(path, key="pair_id")


def test_a_name_repeated_inside_one_object_is_an_error(tmp_path):
    (tmp_path / "twice.jsonl").write_text('{"pair_id": "a", "pair_id": "b"}\n')
    with pytest.raises(ValueError, match=r"twice.jsonl, line 1: .*'pair_id' appears twice"):
        read_jsonl(tmp_path / "twice.jsonl")


def test_a_torn_last_line_is_skipped_only_when_asked(tmp_path):
    path = tmp_path / "log.jsonl"
    path.write_text('{"a": 1}\n{"a": ')
    assert read_jsonl(path, torn_tail=True) == [{"a": 1}]
    with pytest.raises(ValueError, match="line 2"):
        read_jsonl(path)


@pytest.mark.parametrize(
    ("tail", "kept"), [('{"a": ', [{"a": 1}, {"a": 3}]), ('{"a": 2}', [{"a": 1}, {"a": 2}, {"a": 3}])]
)
def test_an_append_repairs_a_torn_last_line(tmp_path, tail, kept):
    path = tmp_path / "log.jsonl"
    path.write_text('{"a": 1}\n' + tail)
    append_jsonl(path, {"a": 3})
    assert read_jsonl(path) == kept


def test_write_errors_are_one_line_naming_path_and_remedy(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(WriteError) as raised:
        write_json(blocker / "sub" / "out.json", {})
    assert "\n" not in str(raised.value) and str(blocker / "sub" / "out.json") in str(raised.value)
    assert str(WriteError("x.npy", OSError("6656 requested and 6080 written"))).startswith(
        "cannot write x.npy: the disk is full"
    )


def test_a_locked_file_takes_one_holder(tmp_path):
    with exclusive_lock(tmp_path / ".lock", "the thing"):
        with pytest.raises(BusyError, match="the thing is being written by another process"):
            with exclusive_lock(tmp_path / ".lock", "the thing"):
                pass
