"""The whole kit through its command line, on the synthetic ``tiny`` data with random-init CLIP.

render -> extract -> pretrain -> train -> evaluate (MATR and both baselines) -> localize -> search,
each step a ``matr`` command run in this process, chained through one module-scoped folder. The
training settings are those of the ``smoke`` profile (:mod:`matr.profiles`), so this test is also
the evidence behind ``make report`` on that profile. About 3-5 minutes on 2 CPU cores.

What the comparison shows: with random-init CLIP features and 24 training pairs of 3 classes, the
model learns mostly where moments tend to be and how long they are, not what the query shows (its
A_pre / A_post spans stay near zero); that already beats Random and Video Match at R1@0.5 on the
8 validation pairs of 2 unseen classes. Real CLIP features are needed for more.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from matr.cli import main
from matr.profiles import get_profile

pytestmark = pytest.mark.slow

PROFILE = get_profile("smoke")


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("e2e")


def matr(argv: list[str], capsys) -> str:
    """Run ``matr argv``; assert it succeeds; return its stdout."""
    status = main([str(arg) for arg in argv])
    out, err = capsys.readouterr()
    assert status == 0, err
    return out


def training_args() -> list[str]:
    overrides = [arg for key, value in PROFILE.model_overrides for arg in ("--set", f"{key}={json.dumps(value)}")]
    drops = ["--lr-drop-epochs", *PROFILE.lr_drop_epochs] if PROFILE.lr_drop_epochs else []
    return [
        "--preset",
        PROFILE.model_preset,
        *overrides,
        "--batch-size",
        PROFILE.batch_size,
        "--lr",
        PROFILE.lr,
        *drops,
        "--seed",
        PROFILE.seed,
        "--device",
        "cpu",
        "-q",
    ]


def annotations(work: Path, split: str) -> Path:
    return work / "data" / "annotations" / f"{split}.jsonl"


def test_render(work, capsys):
    out = matr(["render", "--profile", PROFILE.synthetic, "--out", work / "data", "--seed", PROFILE.seed], capsys)
    assert "pairs: train 24, val 8, test 8" in out
    assert len(list((work / "data" / "videos").glob("*.mp4"))) == 60


def test_extract(work, capsys):
    out = matr(
        [
            "extract",
            "--videos",
            work / "data" / "videos",
            "--store",
            work / "store",
            "--weights",
            PROFILE.weights,
            "--seed",
            PROFILE.seed,
            "-q",
        ],
        capsys,
    )
    assert "60 videos extracted" in out and "random-init(seed=0)" in out


def test_pretrain(work, capsys):
    out = matr(
        [
            "pretrain",
            "--features",
            work / "store",
            "--annotations",
            annotations(work, "train"),
            "--epochs",
            PROFILE.pretrain_epochs,
            "--out",
            work / "runs" / "pretrain",
            *training_args(),
        ],
        capsys,
    )
    assert f"for {PROFILE.pretrain_epochs} epochs" in out
    assert (work / "runs" / "pretrain" / "last.pt").is_file()


def test_finetune(work, capsys):
    out = matr(
        [
            "train",
            "--features",
            work / "store",
            "--annotations",
            annotations(work, "train"),
            "--val-annotations",
            annotations(work, "val"),
            "--init-from",
            work / "runs" / "pretrain" / "last.pt",
            "--epochs",
            PROFILE.finetune_epochs,
            "--out",
            work / "runs" / "finetune",
            *training_args(),
        ],
        capsys,
    )
    assert f"trained on 24 pairs for {PROFILE.finetune_epochs} epochs" in out


def test_trained_model_beats_random_and_video_match_on_validation(work, capsys):
    common = [
        "evaluate",
        "--features",
        work / "store",
        "--annotations",
        annotations(work, "val"),
        "--split",
        "val",
        "--seed",
        PROFILE.seed,
        "-q",
    ]
    matr(
        [
            *common,
            "--checkpoint",
            work / "runs" / "finetune" / "last.pt",
            "--source",
            "heads",
            "A_pre",
            "A_post",
            "--out",
            work / "eval" / "matr",
            "--device",
            "cpu",
        ],
        capsys,
    )
    for method in ("random", "video_match"):
        matr([*common, "--method", method, "--out", work / "eval" / method], capsys)
    scores = {
        name: json.loads((work / "eval" / name / "metrics.json").read_text())["metrics"]
        for name in ("matr", "random", "video_match")
    }
    ours = scores["matr"]["heads"]
    baselines = [scores["random"]["random"], scores["video_match"]["video_match"]]
    assert ours["num_pairs"] == 8
    assert all(ours["R1@0.5"] > baseline["R1@0.5"] for baseline in baselines), scores


def test_localize(work, capsys):
    videos = work / "data" / "videos"
    out = matr(
        [
            "localize",
            "--query",
            videos / "val_blink_t000_q0.mp4",
            "--target",
            videos / "val_blink_t000.mp4",
            "--checkpoint",
            work / "runs" / "finetune" / "last.pt",
            "--json",
            "--device",
            "cpu",
            "-q",
        ],
        capsys,
    )
    result = json.loads(out)
    assert result["weights_tag"] == "random-init(seed=0)" and result["random_init_backbone"] is True
    assert result["target_duration"] == pytest.approx(24.0)
    assert 1 <= len(result["moments"]) <= 5
    assert all(0.0 <= m["start"] <= m["end"] <= 24.0 for m in result["moments"])


def test_search_encodes_a_folder_once(work, capsys):
    library = work / "library"
    library.mkdir()
    for name in ("val_blink_t000", "val_blink_t001", "test_spiral_t000"):
        shutil.copy(work / "data" / "videos" / f"{name}.mp4", library)
    query = work / "data" / "videos" / "val_blink_t000_q0.mp4"
    argv = [
        "search",
        "--query",
        query,
        "--videos",
        library,
        "--checkpoint",
        work / "runs" / "finetune" / "last.pt",
        "--json",
        "--top-k",
        "4",
        "--device",
        "cpu",
        "-q",
    ]
    first = json.loads(matr(argv, capsys))
    manifest = library / ".matr-features" / "manifest.jsonl"
    stored = manifest.read_text()
    second = json.loads(matr(argv, capsys))
    assert manifest.read_text() == stored  # nothing was decoded or stored again
    assert first["moments"] == second["moments"] and first["videos_searched"] == 3
    assert {m["video_id"] for m in first["moments"]} <= {"val_blink_t000", "val_blink_t001", "test_spiral_t000"}
    scores = [m["score"] for m in first["moments"]]
    assert scores == sorted(scores, reverse=True)


def test_search_reads_a_feature_store(work, capsys):
    out = matr(
        [
            "search",
            "--query",
            work / "data" / "videos" / "val_blink_t000_q0.mp4",
            "--videos",
            work / "store",
            "--checkpoint",
            work / "runs" / "finetune" / "last.pt",
            "--json",
            "--device",
            "cpu",
            "-q",
        ],
        capsys,
    )
    result = json.loads(out)
    assert result["videos_searched"] == 60 and len(result["moments"]) == 10
