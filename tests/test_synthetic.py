import dataclasses
import hashlib
import json
from pathlib import Path

import av
import numpy as np
import pytest

from matr.data import synthetic
from matr.data.synthetic import ACTION_CLASSES, CLASS_SPLIT, PROFILES, SPLITS, SyntheticProfile

MICRO = SyntheticProfile(
    "micro",
    classes_per_split=(1, 1, 1),
    targets_per_class=(1, 1, 1),
    queries_per_target=1,
    target_seconds=(8, 8),
    moment_seconds=(2.0, 4.0),
    query_seconds=(2.0, 3.0),
    distractors=(1, 1),
)
SMALL = dataclasses.replace(
    PROFILES["tiny"],
    name="small",
    targets_per_class=(1, 1, 1),
    target_seconds=(10, 12),
    moment_seconds=(3.0, 6.0),
    query_seconds=(2.0, 4.0),
    decoys=(1, 1),
)
DECOYED = dataclasses.replace(
    MICRO,
    name="decoyed",
    classes_per_split=(6, 3, 3),
    target_seconds=(16, 16),
    moment_seconds=(2.0, 4.0),
    distractors=(0, 2),
    decoys=(1, 1),
)
DECOY_GAP_S = 2.0
# sha256 of plan_dataset(tiny, seed=0) (annotations and every spec field) as rendered before decoys existed.
TINY_PLAN_DIGEST = "9195f0e6d04cd3d6"


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> Path:
    """A rendered dataset with tiny's classes and a third of its videos, shorter."""
    root = tmp_path_factory.mktemp("small")
    synthetic.render_dataset(root, SMALL, seed=0, progress=False)
    return root


def read_annotations(root: Path) -> dict[str, list[dict]]:
    return {
        split: [json.loads(line) for line in (root / "annotations" / f"{split}.jsonl").read_text().splitlines()]
        for split in SPLITS
    }


def targets(plan: synthetic.DatasetPlan) -> list[synthetic.VideoSpec]:
    return [spec for spec in plan.videos if "_q" not in spec.video_id]


def motion_energy(spec: synthetic.VideoSpec) -> np.ndarray:
    """Mean absolute change per pixel from frame k to k + 1, ``(T - 1,)``."""
    return np.abs(np.diff(synthetic.render_frames(spec).astype(np.float32), axis=0)).mean(axis=(1, 2, 3))


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
    change = (
        np.ptp(moving.x)
        + np.ptp(moving.y)
        + np.ptp(moving.scale)
        + np.ptp(moving.angle)
        + np.ptp(np.log(moving.aspect))
        + np.ptp(moving.visible.astype(float))
    )
    assert change > 0.4


def test_motion_patterns_differ_between_classes():
    phase = np.linspace(0, 2, 97)
    signatures = {name: np.stack(spec.motion(phase)).astype(float) for name, spec in ACTION_CLASSES.items()}
    names = sorted(signatures)
    for i, first in enumerate(names):
        for second in names[i + 1 :]:  # some pose field differs by 0.1 on average
            assert np.abs(signatures[first] - signatures[second]).mean(axis=1).max() > 0.1, (first, second)


def test_profile_rejects_sizes_it_cannot_render():
    with pytest.raises(ValueError, match="classes_per_split"):
        dataclasses.replace(MICRO, classes_per_split=(7, 1, 1))
    with pytest.raises(ValueError, match="shortest target"):
        dataclasses.replace(MICRO, moment_seconds=(2.0, 9.0))
    with pytest.raises(ValueError, match="another class in every split"):
        dataclasses.replace(MICRO, decoys=(1, 1))
    with pytest.raises(ValueError, match="decoys"):
        dataclasses.replace(DECOYED, decoys=(2, 1))
    with pytest.raises(ValueError, match="unknown synthetic profile"):
        synthetic.render_dataset("unused", "huge")


def test_tiny_profile_stays_within_the_ci_feature_budget():
    from matr.video import num_windows

    tiny = PROFILES["tiny"]
    targets = sum(c * t for c, t in zip(tiny.classes_per_split, tiny.targets_per_class))
    worst = targets * (
        num_windows(tiny.target_seconds[1], 2.0) + tiny.queries_per_target * num_windows(tiny.query_seconds[1], 2.0)
    )
    assert worst <= 400


@pytest.mark.parametrize("name", sorted(PROFILES))
def test_plan_has_the_profile_pair_counts_with_unique_ids(name):
    plan = synthetic.plan_dataset(PROFILES[name], seed=0)
    assert {split: len(plan.annotations[split]) for split in SPLITS} == {
        split: PROFILES[name].pairs(split) for split in SPLITS
    }
    ids = [spec.video_id for spec in plan.videos]
    assert len(ids) == len(set(ids))


def test_annotations_give_the_profile_pair_counts_with_windows_inside_targets(small):
    annotations = read_annotations(small)
    for split in SPLITS:
        assert len(annotations[split]) == SMALL.pairs(split)
        for record in annotations[split]:
            ((start, end),) = record["relevant_windows"]
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
    profile = dataclasses.replace(
        MICRO, classes_per_split=(6, 3, 3), target_seconds=(16, 16), moment_seconds=(4.0, 8.0), distractors=(0, 2)
    )
    plan = synthetic.plan_dataset(profile, seed=0)
    targets = [spec for spec in plan.videos if not spec.video_id.endswith("_q0")]
    assert {spec.action for spec in targets} == set(ACTION_CLASSES)
    for spec in targets:
        frames = synthetic.render_frames(spec).astype(np.float32)
        energy = np.abs(np.diff(frames, axis=0)).mean(axis=(1, 2, 3))  # energy[k]: frame k -> k + 1
        k0, k1 = spec.action_frames
        inside = energy[k0 : k1 - 1].mean()
        outside = np.concatenate([energy[: max(k0 - 1, 0)], energy[k1:]]).mean()
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
            (row["qid"], row["vid"], tuple(row["relevant_windows"][0]), row["action_class"], split) for row in rows
        ]
    assert "ignoring unknown keys" not in caplog.text


def test_tiny_plan_is_the_one_rendered_before_decoys():
    fields = (
        "video_id",
        "num_frames",
        "fps",
        "size",
        "background",
        "actor",
        "action",
        "action_frames",
        "cycles",
        "extent",
        "mirror",
        "distractors",
        "seed",
    )
    plan = synthetic.plan_dataset(PROFILES["tiny"], seed=0)
    assert all(not spec.decoys for spec in plan.videos)
    videos = [{key: dataclasses.asdict(spec)[key] for key in fields} for spec in plan.videos]
    text = json.dumps(
        {"videos": videos, "annotations": {s: list(r) for s, r in plan.annotations.items()}}, sort_keys=True
    )
    assert hashlib.sha256(text.encode()).hexdigest()[:16] == TINY_PLAN_DIGEST


def test_decoys_leave_targets_moments_and_queries_unchanged():
    with_decoys = synthetic.plan_dataset(DECOYED, seed=0)
    without = synthetic.plan_dataset(dataclasses.replace(DECOYED, decoys=(0, 0)), seed=0)
    assert with_decoys.annotations == without.annotations
    assert any(spec.decoys for spec in with_decoys.videos)
    assert [dataclasses.replace(spec, decoys=()) for spec in with_decoys.videos] == list(without.videos)


def test_decoys_are_other_classes_of_the_split_apart_from_the_moment_and_each_other():
    demo = PROFILES["demo"]
    plan = synthetic.plan_dataset(demo, seed=0)
    for split, count in zip(SPLITS, demo.classes_per_split):
        specs = {spec.video_id: spec for spec in targets(plan) if spec.video_id.startswith(f"{split}_")}
        assert [record["vid"] for record in plan.decoys[split]] == list(specs)
        for record in plan.decoys[split]:
            spec = specs[record["vid"]]
            assert record["decoy_windows"] == [list(window) for window in spec.decoy_windows]
            assert record["decoy_classes"] == [decoy.action for decoy in spec.decoys]
            assert len(spec.decoys) <= demo.decoys[1]
            assert set(record["decoy_classes"]) <= set(CLASS_SPLIT[split][:count]) - {spec.action}
            assert len(set(record["decoy_classes"])) == len(record["decoy_classes"])  # enough classes to differ
            windows = sorted([spec.window, *spec.decoy_windows])
            assert windows[0][0] >= 0 and windows[-1][1] <= spec.duration
            for (_, end), (start, _) in zip(windows, windows[1:]):
                assert start - end >= DECOY_GAP_S
    counts = [len(spec.decoys) for spec in targets(plan)]
    assert np.mean([count >= demo.decoys[0] for count in counts]) > 0.9
    assert max(counts) == demo.decoys[1]


def test_decoys_that_do_not_fit_are_left_out():
    # 8 s targets, 2 s moment and decoys, 2 s gaps: one decoy fits iff the moment leaves 4 s on a side.
    cramped = dataclasses.replace(
        DECOYED,
        classes_per_split=(2, 2, 2),
        targets_per_class=(8, 1, 1),
        target_seconds=(8, 8),
        moment_seconds=(2.0, 2.0),
        decoys=(2, 2),
    )
    fitted = set()
    for spec in targets(synthetic.plan_dataset(cramped, seed=0)):
        start, end = spec.window
        fits = start >= 2 * DECOY_GAP_S or spec.duration - end >= 2 * DECOY_GAP_S
        assert len(spec.decoys) == int(fits), (spec.video_id, spec.window, spec.decoy_windows)
        fitted.add(fits)
    assert fitted == {True, False}


def test_decoy_windows_move_like_the_moment():
    plan = synthetic.plan_dataset(DECOYED, seed=0)
    for spec in targets(plan):
        assert len(spec.decoys) == 1 and spec.decoys[0].action != spec.action
        energy = motion_energy(spec)
        acting = np.zeros(len(energy) + 1, dtype=bool)
        for k0, k1 in (spec.action_frames, spec.decoys[0].action_frames):
            acting[max(k0 - 1, 0) : k1 + 1] = True
        outside = energy[~acting[:-1]].mean()
        (k0, k1), (d0, d1) = spec.action_frames, spec.decoys[0].action_frames
        moment, decoy = energy[k0 : k1 - 1].mean(), energy[d0 : d1 - 1].mean()
        assert decoy > 1.5 * outside and moment > 1.5 * outside, (spec.decoys[0].action, decoy, moment, outside)


def test_same_seed_plans_and_renders_the_same_decoys():
    first, again = synthetic.plan_dataset(DECOYED, seed=5), synthetic.plan_dataset(DECOYED, seed=5)
    assert first.decoys == again.decoys and first.videos == again.videos
    assert synthetic.plan_dataset(DECOYED, seed=6).decoys != first.decoys
    spec = targets(first)[0]
    assert np.array_equal(synthetic.render_frames(spec), synthetic.render_frames(again.videos[0]))


def test_decoy_records_are_written_beside_the_annotations_not_among_them(small):
    plan = synthetic.plan_dataset(SMALL, seed=0)
    assert sorted(path.name for path in (small / "annotations").iterdir()) == sorted(f"{s}.jsonl" for s in SPLITS)
    for split in SPLITS:
        rows = [json.loads(line) for line in (small / "decoys" / f"{split}.jsonl").read_text().splitlines()]
        assert rows == [json.loads(json.dumps(record)) for record in plan.decoys[split]]
    assert any(spec.decoys for spec in plan.videos)


def test_manifest_of_a_profile_without_decoys_is_the_one_written_before_decoys(tmp_path):
    synthetic.render_dataset(tmp_path, MICRO, seed=0, progress=False)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    written_before = json.loads(json.dumps(dataclasses.asdict(MICRO)))
    del written_before["decoys"]
    assert manifest["profile"] == written_before
    with pytest.raises(ValueError, match="manifest.json"):
        synthetic.render_dataset(
            tmp_path, dataclasses.replace(MICRO, classes_per_split=(2, 2, 2), decoys=(1, 1)), seed=0, progress=False
        )
