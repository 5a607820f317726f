import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from planted import planted_pairs

from matr.checkpoint import CheckpointError, load_checkpoint, load_model, save_checkpoint
from matr.config import override, preset
from matr.data import PairDataset
from matr.io import read_jsonl
from matr.model import MATR
from matr.train import TrainConfig, fit

HERE = Path(__file__).resolve().parent
NO_DROPOUT = {"model.transformer_dropout": 0.0, "model.projection_dropout": 0.0}


@pytest.fixture
def data():
    source, records = planted_pairs(num_pairs=8, seed=1)
    val_source, val_records = planted_pairs(num_pairs=4, seed=2, split="val")
    return PairDataset(records, source), PairDataset(val_records, val_source)


def quick(**changes) -> TrainConfig:
    return TrainConfig(**{"epochs": 2, "batch_size": 4, "lr": 1e-3, "device": "cpu", **changes})


def weights(path: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(path)["model"]


def test_fit_writes_checkpoints_and_a_log_per_epoch(data, tmp_path):
    train_set, val_set = data
    result = fit(preset("smoke"), quick(), train_set, tmp_path, val_set=val_set, progress=False)
    log = read_jsonl(tmp_path / "metrics.jsonl")
    assert [r["epoch"] for r in log] == [1, 2]
    assert {"train_loss", "train_fg", "train_align_pre", "val_R1@0.5", "val_mIoU", "lr"} <= set(log[-1])
    assert load_checkpoint(result.last_checkpoint)["epoch"] == 2
    assert load_checkpoint(result.best_checkpoint)["metrics"]["val_R1@0.5"] == result.best_score


def test_resume_ends_with_the_weights_of_an_uninterrupted_run(data, tmp_path):
    train_set, _ = data
    fit(preset("smoke"), quick(epochs=3), train_set, tmp_path / "straight", progress=False)
    fit(preset("smoke"), quick(epochs=1), train_set, tmp_path / "resumed", progress=False)
    fit(preset("smoke"), quick(epochs=3), train_set, tmp_path / "resumed", progress=False)
    straight, resumed = weights(tmp_path / "straight" / "last.pt"), weights(tmp_path / "resumed" / "last.pt")
    assert all(torch.equal(straight[k], resumed[k]) for k in straight)
    assert [r["epoch"] for r in read_jsonl(tmp_path / "resumed" / "metrics.jsonl")] == [1, 2, 3]


def test_same_seed_same_weights_other_seed_other_weights(data, tmp_path):
    train_set, _ = data
    for name, seed in (("a", 0), ("b", 0), ("c", 1)):
        fit(preset("smoke"), quick(epochs=1, seed=seed), train_set, tmp_path / name, progress=False)
    a, b, c = (weights(tmp_path / n / "last.pt") for n in "abc")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_resume_with_other_settings_is_refused(data, tmp_path):
    train_set, _ = data
    fit(preset("smoke"), quick(epochs=1), train_set, tmp_path, progress=False)
    with pytest.raises(CheckpointError, match="other training settings"):
        fit(preset("smoke"), quick(epochs=2, lr=5e-4), train_set, tmp_path, progress=False)
    with pytest.raises(CheckpointError, match="another model/loss config"):
        fit(override(preset("smoke"), {"model.use_decoder": False}), quick(), train_set, tmp_path, progress=False)


def test_finetuning_starts_from_the_pretraining_weights(data, tmp_path):
    train_set, _ = data
    config = override(preset("smoke"), NO_DROPOUT)
    pretrained = MATR(config)
    torch.nn.init.constant_(pretrained.type_embed, 0.5)
    save_checkpoint(tmp_path / "pre.pt", pretrained, config)
    fit(config, quick(epochs=1, lr=1e-12), train_set, tmp_path / "ft", init_from=tmp_path / "pre.pt", progress=False)
    finetuned = weights(tmp_path / "ft" / "last.pt")
    assert torch.allclose(finetuned["type_embed"], torch.full_like(finetuned["type_embed"], 0.5), atol=1e-6)


def test_finetuning_from_another_architecture_is_refused(data, tmp_path):
    train_set, _ = data
    save_checkpoint(tmp_path / "pre.pt", MATR(preset("smoke")), preset("smoke"))
    other = override(preset("smoke"), {"model.hidden_dim": 32})
    with pytest.raises(CheckpointError, match="model config differs"):
        fit(other, quick(), train_set, tmp_path / "ft", init_from=tmp_path / "pre.pt", progress=False)


def test_corrupt_and_foreign_checkpoints_give_clear_errors(tmp_path):
    (tmp_path / "corrupt.pt").write_bytes(b"this is not a checkpoint")
    torch.save({"state_dict": {}}, tmp_path / "foreign.pt")
    with pytest.raises(CheckpointError, match="could not be read as a matr checkpoint"):
        load_checkpoint(tmp_path / "corrupt.pt")
    with pytest.raises(CheckpointError, match="is not a matr checkpoint"):
        load_checkpoint(tmp_path / "foreign.pt")
    with pytest.raises(CheckpointError, match="does not exist"):
        load_model(tmp_path / "missing.pt")


def test_checkpoints_carrying_code_are_not_unpickled(tmp_path):
    torch.save({"format": "matr-checkpoint", "version": 1, "payload": os.getcwd}, tmp_path / "code.pt")
    with pytest.raises(CheckpointError, match="could not be read"):
        load_checkpoint(tmp_path / "code.pt")


@pytest.mark.slow
def test_two_gloo_processes_under_torchrun_agree_with_one_process(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(HERE), "OMP_NUM_THREADS": "1"}
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        str(HERE / "ddp_worker.py"),
        str(tmp_path / "ddp"),
        "4",
        "2",
    ]
    subprocess.run(command, check=True, env=env, timeout=300, capture_output=True)
    subprocess.run(
        [sys.executable, str(HERE / "ddp_worker.py"), str(tmp_path / "single"), "8", "2"],
        check=True,
        env=env,
        timeout=300,
        capture_output=True,
    )
    ddp, single = weights(tmp_path / "ddp" / "last.pt"), weights(tmp_path / "single" / "last.pt")
    assert all(torch.allclose(ddp[k], single[k], atol=1e-4, rtol=1e-3) for k in single)
    assert not torch.equal(single["type_embed"], MATR(preset("smoke")).type_embed.detach())


def test_one_progress_bar_per_run_and_one_log_line_per_epoch(data, tmp_path, capsys, caplog):
    train_set, val_set = data
    with caplog.at_level("INFO", logger="matr.train"):
        fit(preset("smoke"), quick(), train_set, tmp_path, val_set=val_set, progress=True)
    lines = [r.getMessage() for r in caplog.records if r.name == "matr.train" and r.getMessage().startswith("epoch")]
    assert len(lines) == 2 and lines[0].startswith("epoch 1/2: loss=")
    assert all("fg=" in line and "val R1@0.5=" in line for line in lines)
    bars = capsys.readouterr().err
    assert "predict" not in bars, "validation leaves no bar of its own"
    assert bars.count("\n") == 1, "one bar, left once when the run ends"
    assert "4/4" in bars.split("\r")[-1], "one bar over both epochs' steps (2 x 2 batches)"
