"""The ``matr`` command line: help, one-line errors with exit status 2, output formats."""

from __future__ import annotations

import json
import os
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
from matr.experiments.tables import METRIC_COLUMNS
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


def localize_argv(videos: dict[str, Path], checkpoint: Path, *extra: str) -> list[str]:
    """``matr localize`` of the ``videos`` fixture's query in its target with ``checkpoint``, then ``extra``."""
    return [
        "localize",
        "--query",
        str(videos["query"]),
        "--target",
        str(videos["target"]),
        "--checkpoint",
        str(checkpoint),
        *extra,
    ]


def extract_argv(videos: dict[str, Path], store: Path, weights: str) -> list[str]:
    """``matr extract`` of the ``videos`` fixture's folder into ``store`` with CLIP ``weights``."""
    return ["extract", "--videos", str(videos["query"].parent), "--store", str(store), "--weights", weights]


def evaluate_argv(store: tuple[Path, Path], *extra: str) -> list[str]:
    """``matr evaluate`` on the ``store`` fixture's features and annotations, then ``extra``."""
    return ["evaluate", "--features", str(store[0]), "--annotations", str(store[1]), *extra]


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
    assert "--profile 'nope' is not one of" in error_line(err)


def test_render_takes_a_synthetic_size_not_a_profile(tmp_path, capsys):
    status, _, err = run(["render", "--size", "smoke", "--out", str(tmp_path / "d")], capsys)
    assert status == 2
    assert "--size 'smoke' is not one of: demo, tiny" in error_line(err)
    status, _, err = run(["render", "--profile", "tiny"], capsys)
    assert status == 2 and "unrecognized arguments: --profile tiny" in error_line(err)


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
    argv = evaluate_argv(store, "--split", "val", "--method", "video_match", "--out", str(tmp_path / "vm"))
    status, out, _ = run(argv, capsys)
    assert status == 0
    assert out.splitlines()[0].split() == ["source", *METRIC_COLUMNS]
    metrics = json.loads((tmp_path / "vm" / "metrics.json").read_text())
    assert metrics["metrics"]["video_match"]["num_pairs"] == 2
    expected = {"weights_tag": TAG, "split": "val", "seed": 0, "method": "video_match"}
    assert expected.items() <= metrics["provenance"].items()
    assert metrics["provenance"]["random_init_backbone"] is True
    lines = (tmp_path / "vm" / "predictions.jsonl").read_text().splitlines()
    assert sorted(json.loads(line)["pair_id"] for line in lines) == ["p0", "p1"]


def test_evaluate_checkpoint_reports_every_source(store, checkpoint, tmp_path, capsys):
    argv = evaluate_argv(store, "--checkpoint", str(checkpoint), "--source", "heads", "A_pre", "A_post")
    status, out, _ = run([*argv, "--out", str(tmp_path / "matr"), "--device", "cpu"], capsys)
    assert status == 0
    assert [line.split()[0] for line in out.splitlines()[1:4]] == ["heads", "A_pre", "A_post"]
    provenance = json.loads((tmp_path / "matr" / "metrics.json").read_text())["provenance"]
    assert provenance["checkpoint"] == str(checkpoint) and provenance["weights_tag"] == TAG


def test_localize_json_schema(videos, checkpoint, capsys):
    status, out, _ = run(localize_argv(videos, checkpoint, "--json", "--top-k", "3", "--device", "cpu"), capsys)
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


# --- Issue 12: bad input is one line, before any heavy work ----------------------------------------


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["localize", "--nms-threshold", "-1"], "--nms-threshold: expected a number in [0, 1], got -1"),
        (["localize", "--nms-threshold", "nan"], "--nms-threshold: expected a number in [0, 1], got nan"),
        (["localize", "--clip-length", "inf"], "--clip-length: expected a number in (0, 3600], got inf"),
        (["localize", "--query-start", "-2"], "--query-start: expected a finite number >= 0, got -2"),
        (["localize", "--top-k", "0"], "--top-k: expected an integer >= 1, got 0"),
        (["localize", "--seed", "-1"], f"--seed: expected an integer in [0, {2**32 - 1}], got -1"),
        (["localize", "--device", "bogus"], "--device: expected auto, cpu, cuda, cuda:N or mps, got 'bogus'"),
        (["extract", "--videos", "v", "--device", "bogus"], "--device: expected auto, cpu, cuda, cuda:N or mps"),
        (["extract", "--videos", "v", "--batch-size", "0"], "--batch-size: expected an integer >= 1, got 0"),
        (
            ["train", "--features", "f", "--annotations", "a", "--warmup-epochs", "-3"],
            "expected an integer >= 0, got -3",
        ),
        (
            ["train", "--features", "f", "--annotations", "a", "--lr", "nan"],
            "--lr: expected a number in (0, 1], got nan",
        ),
        (
            ["evaluate", "--features", "f", "--annotations", "a", "--method", "random", "--nms-threshold", "1.5"],
            "[0, 1]",
        ),
        (["search", "--query", "q", "--videos", "v", "--per-video", "0"], "--per-video: expected an integer >= 1"),
    ],
)
def test_numeric_options_are_range_checked_with_the_range_in_the_message(argv, message, capsys):
    if argv[0] == "localize":
        argv = [*argv, "--query", "q.mp4", "--target", "t.mp4"]
    status, _, err = run(argv, capsys)
    assert status == 2
    assert message in error_line(err) and "Traceback" not in err


def test_parsing_imports_neither_torch_nor_open_clip():
    import subprocess
    import sys

    code = (
        "import sys, matr.cli; matr.cli.build_parser(); print(sorted({'torch', 'open_clip', 'av'} & set(sys.modules)))"
    )
    assert (
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "[]"
    )


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks a machine without a GPU")
@pytest.mark.parametrize("command", ["extract", "localize"])
def test_cuda_without_a_gpu_is_one_line(command, videos, checkpoint, tmp_path, capsys):
    argv = {
        "extract": ["extract", "--videos", str(videos["query"].parent), "--store", str(tmp_path / "s")],
        "localize": ["localize", "--query", str(videos["query"]), "--target", str(videos["target"])],
    }[command]
    status, _, err = run(
        [*argv, "--device", "cuda"] + (["--checkpoint", str(checkpoint)] if command == "localize" else []), capsys
    )
    assert status == 2
    assert "device 'cuda' asked for, but this machine has no usable CUDA GPU; use auto or cpu" in error_line(err)


class _RunsCode:
    def __reduce__(self):
        return (os.system, ("touch " + str(_RunsCode.marker),))


def _hostile_files(tmp_path: Path) -> dict[str, Path]:
    _RunsCode.marker = tmp_path / "code-ran"
    (tmp_path / "random.pt").write_bytes(np.random.default_rng(0).bytes(4096))
    torch.save({"state_dict": _RunsCode()}, tmp_path / "code.pt")
    return {"random bytes": tmp_path / "random.pt", "code-carrying": tmp_path / "code.pt"}


def test_hostile_clip_weights_are_refused_in_one_line_without_unsafe_advice(videos, tmp_path, capsys):
    for kind, path in _hostile_files(tmp_path).items():
        argv = extract_argv(videos, tmp_path / "s", str(path))
        status, _, err = run([*argv, "--device", "cpu"], capsys)
        assert status == 2, kind
        assert f"cannot load {path} as ViT-B-32-quickgelu weights" in error_line(err), kind
        assert "weights_only" not in err and "Traceback" not in err, kind
    assert not _RunsCode.marker.exists()


def test_hostile_checkpoints_are_refused_without_unsafe_advice(videos, tmp_path, capsys):
    for kind, path in _hostile_files(tmp_path).items():
        argv = localize_argv(videos, path)
        status, _, err = run([*argv, "--device", "cpu"], capsys)
        assert status == 2, kind
        assert error_line(err).startswith(f"matr localize: error: {path} could not be read as a matr checkpoint"), kind
        assert "weights_only" not in err and "Traceback" not in err, kind
    assert not _RunsCode.marker.exists()


@pytest.mark.parametrize("command", ["train", "evaluate"])
def test_out_naming_an_existing_file_is_one_line_and_the_file_is_kept(command, store, tmp_path, capsys):
    features, annotations = store
    out = tmp_path / "results.txt"
    out.write_text("keep me")
    extra = ["--method", "random"] if command == "evaluate" else ["--epochs", "1", "--preset", "smoke"]
    argv = [command, "--features", str(features), "--annotations", str(annotations), "--out", str(out), *extra]
    status, _, err = run([*argv, "--device", "cpu"], capsys)
    assert status == 2
    assert f"--out {out} is an existing file, not a folder" in error_line(err)
    assert out.read_text() == "keep me"


@pytest.mark.parametrize(("command", "resumable"), [("extract", True), ("localize", False)])
def test_ctrl_c_is_one_line_and_exit_130(command, resumable, monkeypatch, tmp_path, capsys):
    from matr import commands

    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(commands, f"cmd_{command}", interrupted)
    argv = {"extract": ["--videos", str(tmp_path)], "localize": ["--query", "q", "--target", "t"]}[command]
    status, _, err = run([command, *argv], capsys)
    assert status == 130 and "Traceback" not in err
    expected = "interrupted; rerun the same command to resume" if resumable else "interrupted"
    assert error_line(err) == f"matr {command}: error: {expected}"


@pytest.mark.skipif(os.geteuid() != 0, reason="a read-only bind mount needs root")
def test_extract_into_a_read_only_store_is_one_line(videos, tmp_path, capsys):
    import subprocess

    (tmp_path / "store").mkdir()
    (tmp_path / "view").mkdir()
    subprocess.run(["mount", "--bind", str(tmp_path / "store"), str(tmp_path / "view")], check=True)
    try:
        subprocess.run(["mount", "-o", "remount,ro,bind", str(tmp_path / "view")], check=True)
        argv = extract_argv(videos, tmp_path / "view", "random")
        status, _, err = run([*argv, "--device", "cpu"], capsys)
    finally:
        subprocess.run(["umount", str(tmp_path / "view")], check=True)
    assert status == 2 and "Traceback" not in err
    assert f"cannot write {tmp_path / 'view'}" in error_line(err) and "the file system is read-only" in error_line(err)


def test_localize_with_a_store_reuses_features_and_notices_a_replaced_video(
    videos, checkpoint, tmp_path, monkeypatch, capsys
):
    from matr.features import clip

    target = tmp_path / "target.mp4"
    target.write_bytes(videos["target"].read_bytes())
    argv = ["localize", "--query", str(videos["query"]), "--target", str(target), "--checkpoint", str(checkpoint)]
    argv += ["--store", str(tmp_path / "cache"), "--json", "--device", "cpu"]
    first_status, first, _ = run(argv, capsys)
    assert first_status == 0

    def no_backbone(seed):
        raise AssertionError("the CLIP backbone was built although every feature is cached")

    monkeypatch.setattr(clip, "_random_model", no_backbone)
    status, again, _ = run(argv, capsys)
    assert status == 0 and json.loads(again)["moments"] == json.loads(first)["moments"]

    monkeypatch.undo()
    write_video(target, 150, fps=10)  # a longer video under the same name
    status, replaced, _ = run(argv, capsys)
    assert status == 0 and json.loads(replaced)["target_duration"] == pytest.approx(15.0)


def test_annotations_that_contradict_the_stored_videos_are_refused_naming_file_and_line(store, tmp_path, capsys):
    claims = [PairRecord("p0", "q0", "t0", duration=1000.0, windows=((500.0, 600.0),), action_class=None, split="val")]
    path = save_pairs(claims, tmp_path / "claims.jsonl")
    argv = ["evaluate", "--features", str(store[0]), "--annotations", str(path), "--method", "random"]
    status, _, err = run([*argv, "--out", str(tmp_path / "out")], capsys)
    assert status == 2 and not (tmp_path / "out").exists()
    assert error_line(err).startswith(f"matr evaluate: error: {path}, line 1")


def test_report_defaults_to_the_profile_of_make_report(monkeypatch, tmp_path, capsys):
    from matr.reporting import runner

    asked = {}
    monkeypatch.setattr(runner, "make_report", lambda profile, **options: asked.update(profile=profile) or "r.md")
    status, out, _ = run(["report", "--workdir", str(tmp_path), "--out", str(tmp_path / "reports")], capsys)
    assert status == 0 and asked["profile"] == runner.DEFAULT_PROFILE == "demo" and "report written to r.md" in out
