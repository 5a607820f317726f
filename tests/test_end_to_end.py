"""The whole kit through its command line, on the synthetic ``tiny`` data with random-init CLIP.

render -> extract -> pretrain -> train -> evaluate (MATR and both baselines) -> localize -> search,
each step a ``matr`` command run in this process, chained through one module-scoped folder. The
training settings are those of the ``smoke`` profile (``matr/experiments/profiles/smoke.toml``), so this test is also
the evidence behind ``make report`` on that profile. About 3-5 minutes on 2 CPU cores.

What the evaluation step checks. The trained heads beat Video Match on the 8 validation pairs (2
classes never seen in training) by at least 20 points of R1@0.5 (issue 9 asked for a margin that
holds for every one of 8 training seeds). Measured once offline (2026-11-27, this 2-core CPU, the
smoke settings: alignment losses on the ground-truth moment, ``tiny`` with ~50 s targets, data
seed 0, the same commands with ``--seed`` 0-7): Video Match R1@0.5 0.0 (R1@0.3 50.0, mIoU 22.4);
heads R1@0.5 50.0, 25.0, 25.0, 25.0, 25.0, 25.0, 25.0, 50.0 (mIoU 41.1, 27.3, 26.2, 26.2, 23.3,
26.5, 24.8, 35.5; A_post R1@0.5 37.5-50.0), so the margin is 25-50 points for every seed: 2 to 4 of
8 pairs, coarse, since the validation split is this small. On the earlier ~100 s ``tiny`` targets
the same settings gave heads 25.0 for six seeds, 12.5 and 0.0 for the other two (Video Match 0.0);
with the paper's subsequence alignment loss, heads 0.0 at seed 0 (issue 9). The test also checks
that every source and baseline is evaluated on the same 8 pairs with finite metrics in range.
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
    assert ours["R1@0.5"] >= scores["video_match"]["video_match"]["R1@0.5"] + 20, scores


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
    records = [json.loads(line) for line in annotations(work, "val").read_text().splitlines()]
    duration = next(r["duration"] for r in records if r["vid"] == "val_red_card_t000")  # as rendered
    assert result["weights_tag"] == "random-init(seed=0)" and result["random_init_backbone"] is True
    assert result["target_duration"] == pytest.approx(duration)
    assert 1 <= len(result["moments"]) <= 5
    assert all(0.0 <= m["start"] <= m["end"] <= duration for m in result["moments"])


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
