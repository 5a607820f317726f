"""Synthetic data v2 (:mod:`matr.synthetic`): plan, rendering, reference statistics, retrieval diagnostic."""

from __future__ import annotations

import csv
import dataclasses
import json

import numpy as np
import pytest

from matr.data.annotations import load_annotations
from matr.data.sportsmoments import CSV_FIELDS
from matr.features.video import num_windows, probe_video
from matr.io import read_jsonl
from matr.synthetic import (
    CLASS_SPLIT,
    CLASSES,
    SIZES,
    SPLITS,
    SyntheticSize,
    example_pair,
    plan_dataset,
    render_dataset,
)
from matr.synthetic.reference import annotation_statistics
from matr.synthetic.retrieval import dataset_frame_retrieval, frame_retrieval, window_mask
from matr.synthetic.scenes import POOL

MICRO = SyntheticSize("micro", (2, 2, 2), (1, 1, 1), (2, 1, 1), (2, 1, 1), frame_size=32)


@pytest.fixture(scope="module")
def demo_plan():
    return plan_dataset(SIZES["demo"], seed=0)


def test_plan_is_a_pure_function_of_size_and_seed():
    assert plan_dataset(SIZES["tiny"], 3) == plan_dataset(SIZES["tiny"], 3)
    assert plan_dataset(SIZES["tiny"], 3).annotations != plan_dataset(SIZES["tiny"], 4).annotations


def test_splits_are_class_disjoint_and_sized_by_the_size(demo_plan):
    seen = [{record["action_class"] for record in demo_plan.annotations[split]} for split in SPLITS]
    assert not (seen[0] & seen[1]) and not (seen[0] & seen[2]) and not (seen[1] & seen[2])
    assert {split: len(_own_moment_pairs(demo_plan.annotations[split])) for split in SPLITS} == {
        split: SIZES["demo"].pairs(split) for split in SPLITS
    }
    assert len(demo_plan.annotations["test"]) == SIZES["demo"].pairs("test") >= 300


def _own_moment_pairs(records):
    """The pairs whose query has the target's class (ground truth = the target's own moment)."""
    return [r for r in records if r["qid"].split("_q")[0] == r["vid"].split("_t")[0]]


def test_training_targets_have_a_ground_truth_per_query_class(demo_plan):
    decoys = {r["vid"]: r for r in demo_plan.decoys["train"]}
    event_pairs = [r for r in demo_plan.annotations["train"] if r not in _own_moment_pairs([r])]
    assert len(event_pairs) >= len(demo_plan.annotations["train"]) // 4
    for record in event_pairs:
        decoy = decoys[record["vid"]]
        window = record["relevant_windows"][0]
        assert window in decoy["decoy_windows"]
        assert decoy["decoy_classes"][decoy["decoy_windows"].index(window)] == record["action_class"]
        assert record["qid"].split("_q")[0].split("_", 1)[1] == record["action_class"]
    for split in ("val", "test"):
        assert _own_moment_pairs(demo_plan.annotations[split]) == list(demo_plan.annotations[split])


def test_targets_follow_sportsmoments_timings(demo_plan):
    targets = {r["vid"]: r for split in SPLITS for r in _own_moment_pairs(demo_plan.annotations[split])}.values()
    duration = np.array([r["duration"] for r in targets])
    start, end = np.array([r["relevant_windows"][0] for r in targets]).T
    assert 62 <= duration.min() and duration.max() <= 137 and 90 <= np.median(duration) <= 110
    assert 2 <= (end - start).min() and 5 <= np.median(end - start) <= 8
    assert 0.04 <= np.median((end - start) / duration) <= 0.1
    assert 0.4 <= np.median(start / duration) <= 0.52


def test_tiny_halves_its_targets_and_keeps_everything_else():
    tiny = SIZES["tiny"]
    scaled, full = plan_dataset(tiny, 0), plan_dataset(dataclasses.replace(tiny, target_scale=1.0), 0)
    assert tiny.target_scale == 0.5 and SIZES["demo"].target_scale == 1.0
    assert {split: len(scaled.annotations[split]) for split in SPLITS} == {"train": 35, "val": 8, "test": 12}
    pairs = list(zip(scaled.videos, full.videos, strict=True))
    targets = [(a, b) for a, b in pairs if a.video_id.split("_")[-1].startswith("t")]
    assert all(a == b for a, b in pairs if not a.video_id.split("_")[-1].startswith("t"))  # queries
    assert all(abs(2 * a.duration - b.duration) <= 1 for a, b in targets)
    assert all(a.moment[1] - a.moment[0] == pytest.approx(b.moment[1] - b.moment[0]) for a, b in targets)
    assert all(31 <= a.duration <= 69 for a, _ in targets)


def test_targets_are_reused_across_queries_of_their_class(demo_plan):
    records = demo_plan.annotations["test"]
    assert len({r["vid"] for r in records}) * SIZES["demo"].pairs_per_target[2] == len(records)
    assert all(r["qid"].split("_q")[0] == r["vid"].split("_t")[0] for r in records)


def test_decoys_are_other_classes_apart_from_the_moment(demo_plan):
    moments = {
        r["vid"]: r["relevant_windows"][0] for split in SPLITS for r in _own_moment_pairs(demo_plan.annotations[split])
    }
    decoys = [d for split in SPLITS for d in demo_plan.decoys[split]]
    assert sum(len(d["decoy_classes"]) for d in decoys) >= len(decoys)
    for record in decoys:
        start, end = moments[record["vid"]]
        for name, (a, b) in zip(record["decoy_classes"], record["decoy_windows"], strict=True):
            assert name != record["action_class"] and name in CLASS_SPLIT[record["split"]]
            assert b + 2.0 <= start + 1e-6 or a >= end + 2.0 - 1e-6


def test_every_class_has_a_key_shot_of_its_own():
    keys = [(event.shots[1].texture, event.shots[1].hue) for event in CLASSES.values()]
    assert len(set(keys)) == len(keys)
    assert not set(keys) & {(element.texture, element.hue) for element in POOL.values()}
    assert all(event.shots[0] in POOL.values() and event.shots[2] in POOL.values() for event in CLASSES.values())


def test_size_rejects_more_pairs_per_target_than_queries():
    with pytest.raises(ValueError, match="pairs_per_target"):
        dataclasses.replace(MICRO, pairs_per_target=(3, 1, 1))


def test_rendered_dataset_reads_through_the_sportsmoments_importer(tmp_path):
    summary = render_dataset(tmp_path, MICRO, seed=0, progress=False)
    assert summary.pairs == {"train": 4, "val": 2, "test": 2}
    records = load_annotations(summary.annotations["test"])
    assert len(records) == 2
    for record in records:
        info = probe_video(tmp_path / "videos" / f"{record.target_video}.mp4")
        assert info.duration == pytest.approx(record.duration, abs=1.0)
    assert len(read_jsonl(summary.decoys["test"])) == 2


def test_render_is_resumable_and_refuses_another_dataset(tmp_path):
    first = render_dataset(tmp_path, MICRO, seed=0, progress=False)
    again = render_dataset(tmp_path, MICRO, seed=0, progress=False)
    assert first.rendered > 0 and (again.rendered, again.skipped) == (0, first.rendered)
    with pytest.raises(ValueError, match="another dataset"):
        render_dataset(tmp_path, MICRO, seed=1, progress=False)


def test_render_accepts_a_manifest_written_before_sizes_were_called_sizes(tmp_path):
    render_dataset(tmp_path, MICRO, seed=0, progress=False)
    manifest = tmp_path / "manifest.json"
    legacy = json.loads(manifest.read_text(encoding="utf-8"))
    size = legacy.pop("size")
    legacy["profile"] = {**{k: v for k, v in size.items() if k != "frame_size"}, "size": size["frame_size"]}
    manifest.write_text(json.dumps(legacy), encoding="utf-8")
    assert render_dataset(tmp_path, MICRO, seed=0, progress=False).rendered == 0
    assert json.loads(manifest.read_text(encoding="utf-8"))["size"] == size and "target_scale" not in size
    manifest.write_text(json.dumps(legacy), encoding="utf-8")
    with pytest.raises(ValueError, match="another dataset"):
        render_dataset(tmp_path, dataclasses.replace(MICRO, frame_size=34), seed=0, progress=False)
    with pytest.raises(ValueError, match="another dataset"):
        render_dataset(tmp_path, dataclasses.replace(MICRO, target_scale=0.5), seed=0, progress=False)


def test_dataset_diagnostic_reads_a_rendered_split_and_its_decoys(tmp_path):
    render_dataset(tmp_path, MICRO, seed=0, progress=False)
    frames = {path.stem: num_windows(probe_video(path).duration, 2.0) for path in (tmp_path / "videos").glob("*.mp4")}
    rng = np.random.default_rng(0)
    result = dataset_frame_retrieval(
        lambda video: rng.normal(size=(frames[video], 4)), tmp_path / "annotations" / "train.jsonl"
    )
    assert np.isfinite(result.auc_decoys).any() and len(result.rank) > 0


def test_example_pair_is_small_and_its_moment_lies_in_the_target(tmp_path):
    pair = example_pair(tmp_path)
    assert all(pair[role].stat().st_size < 600_000 for role in ("query", "target"))
    start, end = pair["moment"]
    assert 0 <= start < end <= probe_video(pair["target"]).duration


def test_window_mask_keeps_windows_at_least_half_inside():
    assert window_mask(5, [[2.9, 6.2]]).tolist() == [False, True, True, False, False]


def test_frame_retrieval_ranks_a_planted_moment_first():
    rng = np.random.default_rng(0)
    target = rng.normal(size=(20, 8))
    truth = np.zeros(20, dtype=bool)
    truth[5:8] = True
    target[5:8] = target[5]
    result = frame_retrieval([(target[5:8] + 0.01, target, truth, np.zeros(20, dtype=bool))])
    assert result.summary()["hit@1"] == 1.0 and result.summary()["AUC"] == 1.0
    noise = frame_retrieval([(rng.normal(size=(50, 8)), target, truth, np.zeros(20, dtype=bool))])
    assert 0.3 < noise.summary()["AUC"] < 0.7


def test_annotation_statistics_measure_moments_and_reuse(tmp_path):
    path = tmp_path / "test.csv"
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(CSV_FIELDS)
        writer.writerows([["q1", "t1", 40, 50, 1, 100], ["q2", "t1", 40, 50, 1, 100], ["q1", "t2", 10, 14, 1, 80]])
    stats = annotation_statistics([path])
    assert stats["moment seconds"]["p100"] == 10 and stats["moment seconds"]["p0"] == 4
    assert stats["pairs per target"]["p100"] == 2 and stats["counts"]["targets"] == 2
