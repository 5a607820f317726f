"""The experiment registry (matr.experiments) and the notebook figures (matr.figures).

Registry tests check the variants and tables as data against the paper's numbers
(``reported_results.json``). Run tests train on a hand-made working folder: a few pairs of random
CLIP-sized features written straight into a feature store (no video, no CLIP), the ``smoke`` model
for one or two epochs, so a whole table takes seconds.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import matplotlib
import numpy as np
import pytest

from matr import experiments as ex
from matr import figures as fx
from matr.data import PairRecord, save_pairs
from matr.features import FeatureStore, VideoFeatures
from matr.metrics import METRIC_DESCRIPTIONS
from matr.pipeline import BASELINES, Workspace
from matr.profiles import PROFILES, get_profile
from matr.report import load_artifacts, reported_results

matplotlib.use("Agg")

PAPER = reported_results()
PROFILE = get_profile("smoke").with_changes(pretrain_epochs=1, finetune_epochs=2, batch_size=4, device="cpu")
SPLITS = {"train": 6, "val": 2, "test": 3}


# --- Registry -----------------------------------------------------------------------------------


@pytest.mark.parametrize("key", sorted(ex.TABLES))
def test_every_table_row_is_a_known_variant_or_baseline(key: str) -> None:
    unknown = [
        row.method for row in ex.get_table(key).rows if row.method not in ex.VARIANTS and row.method not in BASELINES
    ]
    assert unknown == []


@pytest.mark.parametrize("key", sorted(ex.TABLES))
def test_paper_match_fields_are_columns_of_the_papers_table(key: str) -> None:
    columns = {name for row in PAPER[key] for name in row}
    assert set(ex.get_table(key).paper_match) <= columns


@pytest.mark.parametrize(
    "key, unmatched",
    [
        ("table1_main", ["Encoder only, no alignment, no decoder (Trained+V)"]),
        ("table2_dual_alignment", []),
        ("table3_pretraining", []),
        ("table4_heads_vs_alignment", []),
        ("table5_alignment_methods", []),
    ],
)
def test_each_row_meets_the_papers_row_of_its_setting(key: str, unmatched: list[str]) -> None:
    spec = ex.get_table(key)
    rows = [{"label": row.label, **dict(row.match)} for row in spec.rows]
    found = {row["label"]: ex.paper_row(row, PAPER[key], spec.paper_match) for row in rows}
    assert [label for label, match in found.items() if match is None] == unmatched
    if key != "table1_main":  # every row of the ablation tables has its paper row, each used once
        assert len({json.dumps(match, sort_keys=True) for match in found.values()}) == len(PAPER[key])


def test_table1_rows_carry_the_papers_method_and_variant_names() -> None:
    rows = {row.method: dict(row.match) for row in ex.get_table("table1_main").rows}
    assert rows["finetuned"] == {"method": "MATR", "variant": "Finetuned+V"}
    assert rows["scratch"] == {"method": "MATR", "variant": "Trained+V"}
    assert rows["zero_shot"] == {"method": "MATR", "variant": "Zero-shot"}
    assert rows["random"] == {"method": "Random", "variant": "-"}


@pytest.mark.parametrize("profile", sorted(PROFILES))
@pytest.mark.parametrize("name", sorted(ex.VARIANTS))
def test_every_variant_builds_a_valid_model_config_under_every_profile(profile: str, name: str) -> None:
    ex.model_config(get_profile(profile), name)


def test_table5_none_row_trains_without_any_alignment_loss() -> None:
    row = next(row for row in ex.get_table("table5_alignment_methods").rows if row.label == "None")
    model = ex.model_config(PROFILE, row.method).model
    assert not model.align_pre_active and not model.align_post_active


def test_ablations_of_tables_2_and_5_start_from_random_init() -> None:
    for key in ("table2_dual_alignment", "table5_alignment_methods"):
        assert all(ex.get_variant(name).pretraining is None for name in ex.get_table(key).variants)


def test_encoder_only_variant_has_no_decoder_and_no_alignment() -> None:
    model = ex.model_config(PROFILE, "encoder_only").model
    assert not model.use_decoder and model.align_method == "none"


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"pretraining": "kinetics"}, "unknown pre-training run"),
        ({"finetune": False}, "neither pre-trained nor finetuned"),
        ({"pretraining": "pretrain", "overrides": (("model.align_pre", False),)}, "cannot override"),
    ],
)
def test_inconsistent_variants_are_refused(changes: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ex.Variant("bad", "a bad variant", **changes)


def test_unknown_variant_and_table_names_list_the_known_ones() -> None:
    with pytest.raises(ValueError, match="finetuned"):
        ex.get_variant("finetune")
    with pytest.raises(ValueError, match="table1_main"):
        ex.get_table("table1")


def test_zero_shot_is_evaluated_from_the_shared_pretraining_checkpoint(tmp_path: Path) -> None:
    assert ex.checkpoint_path(PROFILE, tmp_path, "zero_shot") == tmp_path / "runs" / "pretrain" / "last.pt"
    assert ex.checkpoint_path(PROFILE, tmp_path, "tcc") == tmp_path / "runs" / "tcc" / "last.pt"


def test_paper_profile_reads_its_data_from_the_working_folder(tmp_path: Path) -> None:
    profile = ex.notebook_profile("paper", tmp_path, seed=3, device="cpu")
    assert (profile.data, profile.seed, profile.device) == (str(tmp_path / "data"), 3, "cpu")
    assert ex.notebook_profile("smoke", tmp_path, seed=0, device="auto").data is None


def test_choices_name_gamma_and_the_table5_shortcut() -> None:
    entries = ex.choices(PROFILE)
    assert all(set(entry) == {"what", "choice", "where"} and all(entry.values()) for entry in entries)
    whats = {entry["what"]: entry["choice"] for entry in entries}
    assert whats["soft-min smoothing gamma"].startswith("0.1")
    assert "without pre-training" in whats["Table 5 training"]
    assert whats["grad_clip = 1.0"] == "max global gradient norm; 0 disables"


# --- Runs on a hand-made working folder ---------------------------------------------------------


def _write_workdir(root: Path) -> Path:
    """Pairs of random features: ``SPLITS`` pairs per split, targets of 10-14 frames, queries of 3."""
    rng = np.random.default_rng(0)
    store = FeatureStore(Workspace(root).features)
    for split, count in SPLITS.items():
        records = []
        for index in range(count):
            target, query = f"{split}_t{index}", f"{split}_q{index}"
            frames = int(rng.integers(10, 15))
            for video, length in ((target, frames), (query, 3)):
                store.put(
                    video,
                    VideoFeatures(
                        rng.normal(size=(length, 512)).astype(np.float32),
                        np.arange(length) * 2.0 + 1.0,
                        2.0 * length,
                        2.0 * length,
                        2.0,
                        "random-init(seed=0)",
                        "ViT-B-32-quickgelu",
                        f"{video}.mp4",
                    ),
                )
            start = float(rng.integers(0, frames - 3)) * 2.0
            records.append(
                PairRecord(
                    f"{query}->{target}",
                    query,
                    target,
                    2.0 * frames,
                    ((start, start + 6.0),),
                    f"class{index % 2}",
                    split,
                )
            )
        save_pairs(records, Workspace(root).data / "annotations" / f"{split}.jsonl")
    return root


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _write_workdir(tmp_path_factory.mktemp("experiments"))


def test_trained_variant_is_reused_not_retrained(workdir: Path) -> None:
    checkpoint = ex.train_variant(PROFILE, workdir, "finetuned")
    assert checkpoint == workdir / "runs" / "finetuned" / "last.pt"
    assert (workdir / "runs" / "pretrain" / "last.pt").is_file()
    stamps = [os.stat(path).st_mtime_ns for path in (checkpoint, workdir / "runs" / "pretrain" / "last.pt")]
    ex.train_variant(PROFILE, workdir, "zero_shot")
    ex.train_variant(PROFILE, workdir, "finetuned")
    assert [os.stat(path).st_mtime_ns for path in (checkpoint, workdir / "runs" / "pretrain" / "last.pt")] == stamps


def test_only_main_runs_validate_every_epoch(workdir: Path) -> None:
    ex.train_variants(PROFILE, workdir, ["scratch", "no_pre"])
    curves = ex.curves_frame(workdir, ["scratch", "no_pre"])
    validated = curves.groupby("run")["val_R1@0.5"].apply(lambda values: values.notna().all())
    assert validated.to_dict() == {"no_pre": False, "scratch": True}
    assert list(curves.columns[:2]) == ["run", "epoch"] and len(curves) == 2 * PROFILE.finetune_epochs


def test_evaluation_is_cached_until_the_checkpoint_changes(workdir: Path) -> None:
    first = ex.evaluate_variant(PROFILE, workdir, "scratch", sources=("heads", "A_post"))
    metrics_file = ex.evaluation_dir(workdir, "scratch") / "metrics.json"
    stamp = metrics_file.stat().st_mtime_ns
    assert ex.evaluate_variant(PROFILE, workdir, "scratch", sources=("A_post",)) == {"A_post": first["A_post"]}
    assert metrics_file.stat().st_mtime_ns == stamp
    checkpoint = ex.checkpoint_path(PROFILE, workdir, "scratch")
    os.utime(checkpoint, ns=(stamp + 10**9, stamp + 10**9))
    ex.evaluate_variant(PROFILE, workdir, "scratch")
    assert metrics_file.stat().st_mtime_ns != stamp


def test_predictions_of_a_baseline_cover_every_test_pair(workdir: Path) -> None:
    metrics = ex.evaluate_baseline_method(PROFILE, workdir, "random")
    predictions = ex.load_predictions(workdir, "random")
    assert metrics["num_pairs"] == len(predictions) == SPLITS["test"]
    assert all(len(spans) == PROFILE.top_k for spans in predictions.values())


def test_unknown_prediction_source_is_refused(workdir: Path) -> None:
    with pytest.raises(ValueError, match="unknown prediction sources"):
        ex.evaluate_variant(PROFILE, workdir, "scratch", sources=("decoder",))


def test_table_artifact_passes_the_reports_contract(workdir: Path, tmp_path: Path) -> None:
    rows = ex.table4(PROFILE, workdir)
    assert [row["predict_from"] for row in rows] == [row["predict_from"] for row in PAPER["table4_heads_vs_alignment"]]
    assert all(set(row["metrics"]) <= set(METRIC_DESCRIPTIONS) for row in rows)
    ex.write_table_artifact(
        tmp_path, "07_table4_heads_vs_alignment", "table4_heads_vs_alignment", rows, profile=PROFILE, workdir=workdir
    )
    [loaded] = load_artifacts(tmp_path, PAPER)
    assert loaded.table["split"] == "test" and loaded.provenance["weights_tag"] == "random-init(seed=0)"
    frame = ex.table_frame(rows, "table4_heads_vs_alignment")
    assert frame.loc[frame["label"] == "prediction heads", "paper_AN_mIoU"].item() == 56.8
    assert (tmp_path / "07_table4_heads_vs_alignment" / "table.csv").read_text().startswith("label,predict_from,mIoU")


def test_alignment_view_has_one_path_cell_per_query_frame_at_least(workdir: Path) -> None:
    record = next(r for r in ex.prepared_data(PROFILE, workdir).records("test"))
    view = ex.alignment_view(PROFILE, workdir, record.pair_id)
    m, n = round(record.duration / 2.0), 3
    assert view.cost_pre.shape == view.cost_post.shape == view.path_pre.shape == (m, n)
    assert set(np.unique(view.path_post)) <= {0.0, 1.0} and (view.path_post.sum(axis=0) >= 1).all()
    assert view.ground_truth_frames[1] - view.ground_truth_frames[0] == 3
    assert len(fx.alignment_heatmaps(view).axes) == 6  # four panels, two colour bars


def test_picked_pairs_are_the_best_and_median_by_top1_iou(workdir: Path) -> None:
    ex.evaluate_variant(PROFILE, workdir, "finetuned")
    ious = ex.top1_ious(PROFILE, workdir, "finetuned")
    picks = ex.pick_pairs(PROFILE, workdir)
    assert ious[picks["highest IoU"]] == ious.max()
    assert ious[picks["median IoU"]] == sorted(ious, reverse=True)[len(ious) // 2]


def test_example_without_video_files_has_spans_but_no_frames(workdir: Path) -> None:
    for method in ex.QUALITATIVE_METHODS.values():
        ex.evaluate_method(PROFILE, workdir, method)
    pair_id = ex.pick_pairs(PROFILE, workdir)["highest IoU"]
    example = ex.example(PROFILE, workdir, pair_id)
    assert example.query is None and example.target is None
    assert list(example.spans) == list(ex.QUALITATIVE_METHODS)
    fig = fx.moment_figure(example)
    assert len(fig.axes) == 1


def test_pairs_summary_counts_pairs_per_split_in_split_order(workdir: Path) -> None:
    summary = ex.summary_frame(ex.pairs_frame(PROFILE, workdir))
    assert summary[["split", "pairs", "classes"]].values.tolist() == [["train", 6, 2], ["val", 2, 2], ["test", 3, 2]]


# --- Figures ------------------------------------------------------------------------------------


def test_saved_figure_is_a_png_listed_in_figures_json(workdir: Path, tmp_path: Path) -> None:
    fig = fx.table_bars(ex.table_frame(ex.table4(PROFILE, workdir), "table4_heads_vs_alignment"))
    entry = fx.save(fig, tmp_path, "bars.png", title="T", caption="C", kind="curves")
    fx.write_index(tmp_path, [entry])
    assert (tmp_path / "bars.png").read_bytes().startswith(b"\x89PNG")
    assert json.loads((tmp_path / "figures.json").read_text()) == [
        {"file": "bars.png", "title": "T", "caption": "C", "kind": "curves"}
    ]


def test_figure_index_refuses_files_that_do_not_exist(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="missing.png"):
        fx.write_index(tmp_path, [{"file": "missing.png", "title": "T", "caption": "C"}])


def test_figure_kind_must_be_one_the_report_knows(tmp_path: Path) -> None:
    fig = fx.training_curves(ex.curves_frame(_write_curves(tmp_path), ["run"]), ("train_loss",))
    with pytest.raises(ValueError, match="kind"):
        fx.save(fig, tmp_path, "x.png", title="T", caption="C", kind="table")


def _write_curves(root: Path) -> Path:
    run = Workspace(root).run("run")
    run.mkdir(parents=True)
    (run / "metrics.jsonl").write_text(
        "".join(json.dumps({"epoch": e, "train_loss": 1.0 / e}) + "\n" for e in (1, 2, 3))
    )
    return root
