"""The whole kit through its command line, on the synthetic ``tiny`` data with random-init CLIP.

render -> extract -> pretrain -> train -> evaluate (MATR and both baselines) -> localize -> search,
each step a ``matr`` command run in this process, chained through one module-scoped folder. The
training settings are those of the ``smoke`` profile (``matr/experiments/profiles/smoke.toml``), so this test is also
the evidence behind ``make report`` on that profile. About 3-5 minutes on 2 CPU cores.

What the evaluation step checks, and what it does not. Issue 9 asked for an assertion that the
trained model beats Video Match on this data for each of 8 seeds; on the synthetic v2 ``tiny``
data it does not hold, so this test does not claim it. Measured (data seed 0, 35 training pairs of
3 classes, some asking for a target's decoy event instead of its moment, 8 validation pairs of 2
unseen classes, the smoke settings, CPU): validation R1@0.5 of the trained heads 0.0 with training
seed 0 (Random 0.0, Video Match 0.0, A_pre R1@0.3 25.0). Before the training pairs of decoy
events were added (one ground truth per target), seeds 0, 1, 5, 6, 7 gave heads 0.0, 0.0, 25.0,
0.0, 0.0. The cause, measured on a feature-level stand-in of the demo data: the heads learn to
ignore the query (swapping in a query of another class leaves their predictions unchanged), and
pre-training at this budget stays at its prior. The test below therefore checks that every
source and baseline is evaluated on the same 8 pairs with finite metrics in range.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from matr.cli import main
from matr.experiments.compose import compose
from matr.experiments.profiles import get_profile

pytestmark = pytest.mark.slow

PROFILE = get_profile("smoke")
RUN = compose(PROFILE, "finetuned", PROFILE.seed)


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
    model_overrides = [
        (f"{section}.{key}", value) for section, table in PROFILE.model.items() for key, value in table.items()
    ]
    overrides = [arg for key, value in model_overrides for arg in ("--set", f"{key}={json.dumps(value)}")]
    drops = ["--lr-drop-epochs", *RUN.train.lr_drop_epochs] if RUN.train.lr_drop_epochs else []
    return [
        "--preset",
        PROFILE.model_preset,
        *overrides,
        "--batch-size",
        RUN.train.batch_size,
        "--lr",
        RUN.train.lr,
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
    out = matr(["render", "--size", PROFILE.data.synthetic, "--out", work / "data", "--seed", PROFILE.seed], capsys)
    assert "pairs: train 35, val 8, test 12" in out
    assert len(list((work / "data" / "videos").glob("*.mp4"))) == 39


def test_extract(work, capsys):
    out = matr(
        [
            "extract",
            "--videos",
            work / "data" / "videos",
            "--store",
            work / "store",
            "--weights",
            PROFILE.data.weights,
            "--seed",
            PROFILE.seed,
            "-q",
        ],
        capsys,
    )
    assert "39 videos extracted" in out and "random-init(seed=0)" in out


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
    assert f"trained on 35 pairs for {PROFILE.finetune_epochs} epochs" in out


def test_every_source_and_baseline_is_scored_on_the_same_validation_pairs(work, capsys):
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
    for metrics in [*scores["matr"].values(), *baselines]:
        assert metrics["num_pairs"] == 8 and metrics["num_missing"] == 0, scores
        assert all(0.0 <= metrics[key] <= 100.0 for key in ("R1@0.5", "R5@0.5", "mIoU", "VRL_IoU_mean")), scores
    assert set(scores["matr"]) == {"heads", "A_pre", "A_post"}
    assert ours["R5@0.3"] >= ours["R1@0.3"] and ours["R1@0.3"] >= ours["R1@0.5"] >= ours["R1@0.7"], scores


def test_localize(work, capsys):
    videos = work / "data" / "videos"
    out = matr(
        [
            "localize",
            "--query",
            videos / "val_red_card_q000.mp4",
            "--target",
            videos / "val_red_card_t000.mp4",
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
    assert result["target_duration"] == pytest.approx(105.0)
    assert 1 <= len(result["moments"]) <= 5
    assert all(0.0 <= m["start"] <= m["end"] <= 105.0 for m in result["moments"])


def test_search_encodes_a_folder_once(work, capsys):
    library = work / "library"
    library.mkdir()
    for name in ("val_red_card_t000", "val_red_card_t001", "test_penalty_t000"):
        shutil.copy(work / "data" / "videos" / f"{name}.mp4", library)
    query = work / "data" / "videos" / "val_red_card_q000.mp4"
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
    assert {m["video_id"] for m in first["moments"]} <= {"val_red_card_t000", "val_red_card_t001", "test_penalty_t000"}
    scores = [m["score"] for m in first["moments"]]
    assert scores == sorted(scores, reverse=True)


def test_search_reads_a_feature_store(work, capsys):
    out = matr(
        [
            "search",
            "--query",
            work / "data" / "videos" / "val_red_card_q000.mp4",
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
    assert result["videos_searched"] == 39 and len(result["moments"]) == 10
