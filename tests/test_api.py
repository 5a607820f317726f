"""``matr.load`` and the shipped example: the demo checkpoint reproduces its recorded predictions.

``examples/`` holds what a new user tries first (``examples/make_examples.py`` made it; its
``provenance.json`` records the ranked moments the checkpoint gave on the example pair). A change
to the model, the decoding or the CLIP encoder that alters those moments fails here, and the
examples must then be regenerated with the command in ``provenance.json``.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

import matr
from matr.cli import main as matr_cli

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
CHECKPOINT, QUERY, TARGET = EXAMPLES / "demo_checkpoint.pt", EXAMPLES / "query.mp4", EXAMPLES / "target.mp4"
PROVENANCE = json.loads((EXAMPLES / "provenance.json").read_text(encoding="utf-8"))
PROVENANCE_SEED = int(PROVENANCE["weights_tag"].split("seed=")[1].rstrip(")"))
TOLERANCE = 1e-3  # seconds and scores: float32 CPU kernels may differ in the last bits across machines
SHIPPED_LIMIT_BYTES = 5_000_000


@pytest.fixture(scope="module")
def model() -> matr.Model:
    return matr.load(CHECKPOINT, device="cpu")


def _moments(found: list[dict]) -> list[tuple[float, float, float]]:
    return [(m["start"], m["end"], m["score"]) for m in found]


def test_import_matr_is_light() -> None:
    code = "import sys, matr; assert 'torch' not in sys.modules; assert callable(matr.load)"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_shipped_examples_are_small_and_match_their_provenance() -> None:
    assert sum(path.stat().st_size for path in (CHECKPOINT, QUERY, TARGET)) < SHIPPED_LIMIT_BYTES
    for name, digest in PROVENANCE["files"].items():
        assert hashlib.sha256((EXAMPLES / name).read_bytes()).hexdigest() == digest, name
    assert hashlib.sha256(CHECKPOINT.read_bytes()).hexdigest() == PROVENANCE["checkpoint"]["sha256"]
    assert PROVENANCE["command"].startswith("python examples/make_examples.py")


def test_shipped_checkpoint_rebuilds_its_backbone_offline(model: matr.Model) -> None:
    assert model.weights_tag == PROVENANCE["weights_tag"]
    assert model.weights_tag.startswith("random-init")
    assert model.clip_length == PROVENANCE["clip_length"]


def test_shipped_checkpoint_reproduces_its_recorded_predictions(model: matr.Model) -> None:
    found = model.localize(QUERY, TARGET)
    expected = _moments(PROVENANCE["predictions"])
    assert len(found.moments) == len(expected)
    for got, want in zip(found.moments, expected, strict=True):
        assert tuple(got) == pytest.approx(want, abs=TOLERANCE)


def test_localize_command_works_on_the_shipped_example(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["localize", "--query", str(QUERY), "--target", str(TARGET), "--checkpoint", str(CHECKPOINT)]
    assert matr_cli([*argv, "--json", "--device", "cpu"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["weights_tag"] == PROVENANCE["weights_tag"]
    for got, want in zip(_moments(printed["moments"]), _moments(PROVENANCE["predictions"]), strict=True):
        assert got == pytest.approx(want, abs=TOLERANCE)


def test_localize_ranks_moments_inside_the_target(model: matr.Model) -> None:
    found = model.localize(QUERY, TARGET, top_k=3, query_start=0.0, query_end=2.0)
    scores = [m.score for m in found.moments]
    assert len(found.moments) == 3 and scores == sorted(scores, reverse=True)
    assert all(0.0 <= m.start < m.end <= found.target_duration for m in found.moments)
    assert found.query_window == (0.0, 2.0)


def test_search_ranks_moments_across_a_folder(model: matr.Model, tmp_path: Path) -> None:
    hits = model.search(QUERY, EXAMPLES, store=tmp_path / "store", top_k=4, per_video=2).hits
    per_video = {video: sum(hit.video_id == video for hit in hits) for video in ("query", "target")}
    assert 1 <= len(hits) <= 4 and set(per_video) >= {hit.video_id for hit in hits}
    assert per_video["target"] >= 1 and max(per_video.values()) <= 2
    assert [hit.score for hit in hits] == sorted((hit.score for hit in hits), reverse=True)
    assert (tmp_path / "store").is_dir() and not (EXAMPLES / ".matr-features").exists()


def test_a_missing_video_is_named(model: matr.Model, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nope.mp4"):
        model.localize(tmp_path / "nope.mp4", TARGET)


def test_load_refuses_a_backbone_the_checkpoint_was_not_trained_on() -> None:
    with pytest.raises(ValueError, match="random-init"):
        matr.load(CHECKPOINT, device="cpu", weights="random", seed=PROVENANCE_SEED + 1)
