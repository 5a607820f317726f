"""The ``matr`` command line: help, one-line errors with exit status 2, output formats."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers_video import write_video

from matr.checkpoint import save_checkpoint
from matr.cli import build_parser, main
from matr.config import preset
from matr.data import PairRecord, save_pairs
from matr.data.annotations import load_annotations
from matr.features import FeatureStore, VideoFeatures
from matr.inference import check_weights_tag, weights_from_tag
from matr.model import MATR

COMMANDS = ("render", "extract", "pretrain", "train", "evaluate", "localize", "search", "report")
TAG = "random-init(seed=0)"


def run(argv: list[str], capsys) -> tuple[int, str, str]:
    """``main(argv)`` in this process: exit status, stdout, stderr (argparse exits become statuses)."""
    try:
        status = main(argv)
    except SystemExit as exit_:
        status = exit_.code
    out, err = capsys.readouterr()
    return status, out, err


def error_line(err: str) -> str:
    """The one error line of a failed command (log lines, if any, come before it)."""
    lines = [line for line in err.splitlines() if ": error: " in line]
    assert len(lines) == 1, err
    return lines[0]


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("videos")
    return {
        "query": write_video(folder / "query.mp4", 30, fps=10),
        "target": write_video(folder / "target.mp4", 90, fps=10),
    }


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("run") / "last.pt"
    save_checkpoint(path, MATR(preset("smoke")), preset("smoke"), epoch=1, run={"weights_tag": TAG, "clip_length": 2.0})
    return path


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> tuple[Path, Path]:
    """A feature store of 4 random videos and a pair-records file of 2 pairs over them."""
    root = tmp_path_factory.mktemp("data")
    features = FeatureStore(root / "store")
    rng = np.random.default_rng(0)
    for video_id, frames in (("q0", 3), ("t0", 12), ("q1", 4), ("t1", 15)):
        array = rng.standard_normal((frames, 512)).astype(np.float32)
        features.put(
            video_id,
            VideoFeatures(
                array, (np.arange(frames) + 0.5) * 2.0, frames * 2.0, frames * 2.0, 2.0, TAG, "test", f"{video_id}.mp4"
            ),
        )
    records = [
        PairRecord(f"p{i}", f"q{i}", f"t{i}", duration=d, windows=((4.0, 10.0),), action_class=None, split="val")
        for i, d in ((0, 24.0), (1, 30.0))
    ]
    return root / "store", save_pairs(records, root / "val.jsonl")


@pytest.mark.parametrize("command", [None, *COMMANDS])
def test_help_of_every_command_exits_zero(command, capsys):
    status, out, _ = run([command, "--help"] if command else ["--help"], capsys)
    assert status == 0
    assert "usage: matr" in out


def test_every_command_has_a_handler():
    commands = build_parser()._subparsers._group_actions[0].choices
    assert sorted(commands) == sorted(COMMANDS)


def test_missing_video_file_is_one_clear_line(videos, checkpoint, capsys):
    status, _, err = run(
        ["localize", "--query", "nope.mp4", "--target", str(videos["target"]), "--checkpoint", str(checkpoint)], capsys
    )
    assert status == 2
    assert error_line(err) == "matr localize: error: video file nope.mp4 does not exist"
    assert "Traceback" not in err


def test_bad_shard_is_rejected(tmp_path, capsys):
    status, _, err = run(["extract", "--videos", str(tmp_path), "--shard", "3/2"], capsys)
    assert status == 2
    assert "matr extract: error: argument --shard: expected i/n with 0 <= i < n, got '3/2'" in error_line(err)


def test_corrupt_checkpoint_is_named(videos, tmp_path, capsys):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint at all")
    status, _, err = run(
        ["localize", "--query", str(videos["query"]), "--target", str(videos["target"]), "--checkpoint", str(bad)],
        capsys,
    )
    assert status == 2
    assert error_line(err).startswith(f"matr localize: error: {bad}")


def test_unknown_profile_is_rejected(capsys):
    status, _, err = run(["report", "--profile", "nope"], capsys)
    assert status == 2
    assert "invalid choice: 'nope'" in error_line(err)


def test_paper_profile_asks_for_its_data_folder(tmp_path, capsys):
    status, _, err = run(["report", "--profile", "paper", "--workdir", str(tmp_path)], capsys)
    assert status == 2
    assert "profile 'paper' needs a data folder" in error_line(err) and str(tmp_path / "data") in error_line(err)


def test_missing_checkpoint_says_how_to_get_one(videos, monkeypatch, capsys):
    monkeypatch.delenv("MATR_CHECKPOINT", raising=False)
    status, _, err = run(["localize", "--query", str(videos["query"]), "--target", str(videos["target"])], capsys)
    assert status == 2
    assert "no checkpoint: pass --checkpoint PATH" in error_line(err)


def test_malformed_annotations_name_file_and_line(store, tmp_path, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"pair_id": "p0", "query_video": "q0"}\n')
    status, _, err = run(
        [
            "evaluate",
            "--features",
            str(store[0]),
            "--annotations",
            str(bad),
            "--method",
            "random",
            "--out",
            str(tmp_path / "out"),
        ],
        capsys,
    )
    assert status == 2
    assert error_line(err).startswith(f"matr evaluate: error: {bad}, line 1:")


def test_evaluate_baseline_writes_predictions_and_provenance(store, tmp_path, capsys):
    features, annotations = store
    status, out, _ = run(
        [
            "evaluate",
            "--features",
            str(features),
            "--annotations",
            str(annotations),
            "--split",
            "val",
            "--method",
            "video_match",
            "--out",
            str(tmp_path / "vm"),
        ],
        capsys,
    )
    assert status == 0
    assert out.splitlines()[0].split()[:3] == ["source", "R1@0.3", "R1@0.5"]
    metrics = json.loads((tmp_path / "vm" / "metrics.json").read_text())
    assert metrics["metrics"]["video_match"]["num_pairs"] == 2
    expected = {"weights_tag": TAG, "split": "val", "seed": 0, "method": "video_match"}
    assert expected.items() <= metrics["provenance"].items()
    assert metrics["provenance"]["random_init_backbone"] is True
    lines = (tmp_path / "vm" / "predictions.jsonl").read_text().splitlines()
    assert sorted(json.loads(line)["pair_id"] for line in lines) == ["p0", "p1"]


def test_evaluate_checkpoint_reports_every_source(store, checkpoint, tmp_path, capsys):
    features, annotations = store
    status, out, _ = run(
        [
            "evaluate",
            "--features",
            str(features),
            "--annotations",
            str(annotations),
            "--checkpoint",
            str(checkpoint),
            "--source",
            "heads",
            "A_pre",
            "A_post",
            "--out",
            str(tmp_path / "matr"),
            "--device",
            "cpu",
        ],
        capsys,
    )
    assert status == 0
    assert [line.split()[0] for line in out.splitlines()[1:4]] == ["heads", "A_pre", "A_post"]
    provenance = json.loads((tmp_path / "matr" / "metrics.json").read_text())["provenance"]
    assert provenance["checkpoint"] == str(checkpoint) and provenance["weights_tag"] == TAG


def test_localize_json_schema(videos, checkpoint, capsys):
    status, out, _ = run(
        [
            "localize",
            "--query",
            str(videos["query"]),
            "--target",
            str(videos["target"]),
            "--checkpoint",
            str(checkpoint),
            "--json",
            "--top-k",
            "3",
            "--device",
            "cpu",
        ],
        capsys,
    )
    assert status == 0
    result = json.loads(out)
    assert {
        "query",
        "target",
        "target_duration",
        "weights_tag",
        "random_init_backbone",
        "moments",
        "checkpoint",
        "clip_length",
    } <= set(result)
    assert result["weights_tag"] == TAG and result["random_init_backbone"] is True
    assert result["target_duration"] == pytest.approx(9.0)
    moments = result["moments"]
    assert 1 <= len(moments) <= 3 and [m["rank"] for m in moments] == list(range(1, len(moments) + 1))
    assert all(set(m) == {"rank", "start", "end", "score"} and 0 <= m["start"] <= m["end"] <= 9.0 for m in moments)
    assert [m["score"] for m in moments] == sorted((m["score"] for m in moments), reverse=True)


def test_search_refuses_a_store_of_other_weights(videos, checkpoint, tmp_path, capsys):
    other = FeatureStore(tmp_path / "other")
    other.put(
        "v",
        VideoFeatures(
            np.zeros((3, 512), np.float32), np.arange(3) + 0.5, 6.0, 6.0, 2.0, "random-init(seed=5)", "test", "v.mp4"
        ),
    )
    status, _, err = run(
        [
            "search",
            "--query",
            str(videos["query"]),
            "--videos",
            str(tmp_path / "other"),
            "--checkpoint",
            str(checkpoint),
            "--device",
            "cpu",
        ],
        capsys,
    )
    assert status == 2
    assert "'random-init(seed=5)'" in error_line(err) and f"'{TAG}'" in error_line(err)


def test_weights_tags_map_back_to_encoder_settings():
    assert weights_from_tag("openai") == ("openai", 0)
    assert weights_from_tag("random-init(seed=7)") == ("random", 7)
    with pytest.raises(ValueError, match="--weights PATH"):
        weights_from_tag("file:0123456789ab")
    with pytest.raises(ValueError, match="cannot be compared"):
        check_weights_tag("openai", TAG, "checkpoint c.pt")


FIXTURES = Path(__file__).resolve().parent / "fixtures" / "sportsmoments"


def test_annotation_files_of_every_format_give_the_same_pairs(tmp_path):
    from_csv = load_annotations(FIXTURES / "test.csv")
    from_jsonl = load_annotations(FIXTURES / "test.jsonl")
    ours = load_annotations(save_pairs(from_csv, tmp_path / "pairs.jsonl"))
    assert [r.pair_id for r in from_csv] == [r.pair_id for r in from_jsonl] == [r.pair_id for r in ours]
    assert ours == from_csv
    assert {r.split for r in load_annotations(FIXTURES / "val.csv", split="val")} == {"val"}


def test_annotations_of_another_split_or_format_are_refused(tmp_path):
    with pytest.raises(ValueError, match=r"no pairs of split 'train'; the file holds splits \['test'\]"):
        load_annotations(save_pairs(load_annotations(FIXTURES / "test.csv"), tmp_path / "pairs.jsonl"), "train")
    (tmp_path / "pairs.txt").write_text("query,target\n")
    with pytest.raises(ValueError, match=r"unknown annotation format '\.txt'"):
        load_annotations(tmp_path / "pairs.txt")
