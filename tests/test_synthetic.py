import dataclasses
import json
from pathlib import Path

import av
import numpy as np
import pytest

from matr.data import synthetic
from matr.data.synthetic import ACTION_CLASSES, CLASS_SPLIT, PROFILES, SPLITS, SyntheticProfile

MICRO = SyntheticProfile("micro", classes_per_split=(1, 1, 1), targets_per_class=(1, 1, 1), queries_per_target=1,
                         target_seconds=(8, 8), moment_seconds=(2.0, 4.0), query_seconds=(2.0, 3.0), distractors=(1, 1))
SMALL = dataclasses.replace(PROFILES["tiny"], name="small", targets_per_class=(1, 1, 1), target_seconds=(10, 12),
                            moment_seconds=(3.0, 6.0), query_seconds=(2.0, 4.0))


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> Path:
    """A rendered dataset with tiny's classes and a third of its videos, shorter."""
    root = tmp_path_factory.mktemp("small")
    synthetic.render_dataset(root, SMALL, seed=0, progress=False)
    return root


def read_annotations(root: Path) -> dict[str, list[dict]]:
    return {split: [json.loads(line) for line in (root / "annotations" / f"{split}.jsonl").read_text().splitlines()]
            for split in SPLITS}


def decode(path: Path) -> np.ndarray:
    with av.open(str(path)) as container:
        return np.stack([frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)])


def test_class_split_is_disjoint_and_covers_every_class():
    names = [name for split in SPLITS for name in CLASS_SPLIT[split]]
    assert len(names) == len(set(names))
    assert set(names) == set(ACTION_CLASSES)


@pytest.mark.parametrize("name", sorted(ACTION_CLASSES))
def test_motion_moves_within_a_cycle_and_rests_at_whole_cycles(name):
    motion = ACTION_CLASSES[name].motion
    rest, moving = motion(np.arange(4.0)), motion(np.linspace(0, 1, 64))
    assert np.allclose(rest.x, 0) and np.allclose(rest.y, 0) and np.allclose(rest.scale, 1)
    assert np.allclose(np.mod(rest.angle + np.pi, 2 * np.pi), np.pi) and np.allclose(rest.aspect, 1)
    assert rest.visible.all()
    change = (np.ptp(moving.x) + np.ptp(moving.y) + np.ptp(moving.scale) + np.ptp(moving.angle)
              + np.ptp(np.log(moving.aspect)) + np.ptp(moving.visible.astype(float)))
    assert change > 0.4


def test_motion_patterns_differ_between_classes():
    phase = np.linspace(0, 2, 97)
    signatures = {name: np.stack(spec.motion(phase)).astype(float) for name, spec in ACTION_CLASSES.items()}
    names = sorted(signatures)
    for i, first in enumerate(names):
        for second in names[i + 1:]:  # some pose field differs by 0.1 on average
            assert np.abs(signatures[first] - signatures[second]).mean(axis=1).max() > 0.1, (first, second)


def test_profile_rejects_sizes_it_cannot_render():
    with pytest.raises(ValueError, match="classes_per_split"):
        dataclasses.replace(MICRO, classes_per_split=(7, 1, 1))
    with pytest.raises(ValueError, match="shortest target"):
        dataclasses.replace(MICRO, moment_seconds=(2.0, 9.0))
    with pytest.raises(ValueError, match="unknown synthetic profile"):
        synthetic.render_dataset("unused", "huge")


def test_tiny_profile_stays_within_the_ci_feature_budget():
    from matr.video import num_windows

    tiny = PROFILES["tiny"]
    targets = sum(c * t for c, t in zip(tiny.classes_per_split, tiny.targets_per_class))
    worst = targets * (num_windows(tiny.target_seconds[1], 2.0)
                       + tiny.queries_per_target * num_windows(tiny.query_seconds[1], 2.0))
    assert worst <= 400


@pytest.mark.parametrize("name", sorted(PROFILES))
def test_plan_has_the_profile_pair_counts_with_unique_ids(name):
    plan = synthetic.plan_dataset(PROFILES[name], seed=0)
    assert {split: len(plan.annotations[split]) for split in SPLITS} == {
        split: PROFILES[name].pairs(split) for split in SPLITS}
    ids = [spec.video_id for spec in plan.videos]
    assert len(ids) == len(set(ids))


def test_annotations_give_the_profile_pair_counts_with_windows_inside_targets(small):
    annotations = read_annotations(small)
    for split in SPLITS:
        assert len(annotations[split]) == SMALL.pairs(split)
        for record in annotations[split]:
            (start, end), = record["relevant_windows"]
            assert 0 <= start < end <= record["duration"]
            assert record["split"] == split
            assert (small / "videos" / f"{record['qid']}.mp4").is_file()
            assert (small / "videos" / f"{record['vid']}.mp4").is_file()
    qids = [record["qid"] for split in SPLITS for record in annotations[split]]
    assert len(qids) == len(set(qids))


def test_split_classes_are_disjoint_and_match_classes_json(small):
    classes = json.loads((small / "classes.json").read_text())
    annotations = read_annotations(small)
    for split in SPLITS:
        assert {record["action_class"] for record in annotations[split]} == set(classes[split])
    assert not set(classes["train"]) & set(classes["val"])
    assert not set(classes["train"]) & set(classes["test"])
    assert not set(classes["val"]) & set(classes["test"])


def test_videos_decode_with_the_profile_size_fps_and_duration(small):
    durations = {}
    for record in read_annotations(small)["val"]:
        durations[record["vid"]] = record["duration"]
    for video_id, duration in durations.items():
        frames = decode(small / "videos" / f"{video_id}.mp4")
        assert frames.shape == (round(duration * 8), 128, 128, 3)
        with av.open(str(small / "videos" / f"{video_id}.mp4")) as container:
            assert container.streams.video[0].average_rate == 8
            assert container.duration / av.time_base == pytest.approx(duration)
    assert not list(small.rglob("*.tmp"))


def test_target_moves_more_inside_the_moment_than_outside():
    profile = dataclasses.replace(MICRO, classes_per_split=(6, 3, 3), target_seconds=(16, 16),
                                  moment_seconds=(4.0, 8.0), distractors=(0, 2))
    plan = synthetic.plan_dataset(profile, seed=0)
    targets = [spec for spec in plan.videos if not spec.video_id.endswith("_q0")]
    assert {spec.action for spec in targets} == set(ACTION_CLASSES)
    for spec in targets:
        frames = synthetic.render_frames(spec).astype(np.float32)
        energy = np.abs(np.diff(frames, axis=0)).mean(axis=(1, 2, 3))  # energy[k]: frame k -> k + 1
        k0, k1 = spec.action_frames
        inside = energy[k0:k1 - 1].mean()
        outside = np.concatenate([energy[:max(k0 - 1, 0)], energy[k1:]]).mean()
        assert inside > 1.5 * outside, (spec.action, inside, outside)


def test_queries_are_other_instances_not_copies_of_the_target_moment(small):
    plan = synthetic.plan_dataset(SMALL, seed=0)
    specs = {spec.video_id: spec for spec in plan.videos}
    for record in read_annotations(small)["test"]:
        target, query = specs[record["vid"]], specs[record["qid"]]
        assert query.action == target.action
        for a, b in ((query.actor.hsv[0], target.actor.hsv[0]), (query.background.hue, target.background.hue)):
            assert min(abs(a - b), 1 - abs(a - b)) >= 0.2 - 1e-9
        moment = decode(small / "videos" / f"{target.video_id}.mp4")[target.action_frames[0]].astype(float)
        first = decode(small / "videos" / f"{query.video_id}.mp4")[0].astype(float)
        assert np.abs(moment - first).mean() > 10


def test_same_seed_renders_identical_annotations_and_frames(tmp_path):
    for name in ("a", "b"):
        synthetic.render_dataset(tmp_path / name, MICRO, seed=3, progress=False)
    for split in SPLITS:
        path = Path("annotations", f"{split}.jsonl")
        assert (tmp_path / "a" / path).read_bytes() == (tmp_path / "b" / path).read_bytes()
    videos = sorted(p.name for p in (tmp_path / "a" / "videos").iterdir())
    assert len(videos) == 6
    for name in videos:
        assert np.array_equal(decode(tmp_path / "a" / "videos" / name), decode(tmp_path / "b" / "videos" / name))
    other = synthetic.plan_dataset(MICRO, seed=4).annotations
    assert other != synthetic.plan_dataset(MICRO, seed=3).annotations


def test_rerun_skips_complete_videos_and_renders_missing_ones(tmp_path):
    first = synthetic.render_dataset(tmp_path, MICRO, seed=0, progress=False)
    assert (first.rendered, first.skipped) == (6, 0)
    mtimes = {p: p.stat().st_mtime_ns for p in (tmp_path / "videos").iterdir()}
    again = synthetic.render_dataset(tmp_path, MICRO, seed=0, progress=False)
    assert (again.rendered, again.skipped) == (0, 6)
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "videos").iterdir()} == mtimes
    missing = next(iter(mtimes))
    missing.unlink()
    resumed = synthetic.render_dataset(tmp_path, MICRO, seed=0, progress=False)
    assert (resumed.rendered, resumed.skipped) == (1, 5) and missing.is_file()


def test_folder_of_another_seed_is_refused(tmp_path):
    synthetic.render_dataset(tmp_path, MICRO, seed=0, progress=False)
    with pytest.raises(ValueError, match="manifest.json"):
        synthetic.render_dataset(tmp_path, MICRO, seed=1, progress=False)


def test_sportsmoments_importer_reads_the_demo_annotations(small, caplog):
    from matr.data.sportsmoments import read_sportsmoments_jsonl

    videos = {path.stem for path in (small / "videos").iterdir()}
    for split, rows in read_annotations(small).items():
        records = read_sportsmoments_jsonl(small / "annotations" / f"{split}.jsonl", known_videos=videos)
        assert [(r.query_video, r.target_video, r.windows[0], r.action_class, r.split) for r in records] == [
            (row["qid"], row["vid"], tuple(row["relevant_windows"][0]), row["action_class"], split) for row in rows]
    assert "ignoring unknown keys" not in caplog.text
