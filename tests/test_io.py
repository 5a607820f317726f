import json

import pytest

from matr.io import atomic_open, read_jsonl, write_json, write_jsonl
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
