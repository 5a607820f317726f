"""The experiments layer (matr.experiments): profiles and variants as data, config composition,
training entry points, cached evaluation, tables with intervals and verdicts, views and artifacts.

Registry tests check the variants and tables as data against the paper's numbers
(``reported_results.json``). Run tests train on a hand-made working folder: a few pairs of random
CLIP-sized features written straight into a feature store (no video, no CLIP), the ``smoke`` model
for one or two epochs, so a whole table takes seconds.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from matr import experiments as ex
from matr.config import preset
from matr.data import PairRecord, save_pairs
from matr.experiments.compose import compose
from matr.experiments.evaluation import (
    BASELINES,
    MissingCheckpoint,
    cached_evaluation,
    evaluation_dir,
    other_class_queries,
    predictions,
)
from matr.experiments.profiles import load_profile, profile_from_dict
from matr.experiments.runs import checkpoint_path, train_run
from matr.experiments.tables import METRIC_COLUMNS, PAPER_COLUMNS, paper_row, reported_results
from matr.experiments.variants import Variant
from matr.experiments.workspace import Workspace, open_data
from matr.features import FeatureStore, VideoFeatures
from matr.train import TrainConfig

PAPER = reported_results()
SMOKE = ex.get_profile("smoke")
PROFILE = dataclasses.replace(
    SMOKE, pretrain_epochs=1, finetune_epochs=2, train={**SMOKE.train, "batch_size": 4, "device": "cpu"}
)
SPLITS = {"train": 6, "val": 2, "test": 3}


# --- Profiles and composition -------------------------------------------------------------------


def test_smoke_profile_composes_the_settings_it_always_trained_with() -> None:
    run = compose(SMOKE, "scratch", 0)
    assert run.train == TrainConfig(epochs=40, batch_size=8, lr=1e-3, seed=0)
    assert run.model.model.hidden_dim == preset("smoke").model.hidden_dim == 64
    assert run.model.model.align_cost == "contrastive" and run.pretraining is None


def test_pretraining_run_composes_its_pairs_settings_and_seed() -> None:
    run = compose(SMOKE, "pretrain_noaug", 3)
    assert (run.stage, run.train.epochs, run.train.seed) == ("pretrain", 10, 3)
    assert run.pretraining is not None and (run.pretraining.augment, run.pretraining.seed) == (False, 3)


@pytest.mark.parametrize("profile", sorted(ex.PROFILES))
@pytest.mark.parametrize("name", sorted(ex.VARIANTS))
def test_every_variant_composes_under_every_profile(profile: str, name: str) -> None:
    run = compose(ex.get_profile(profile), name, 0)
    assert json.loads(json.dumps(run.to_dict()))["variant"] == name


def test_unknown_key_in_a_profile_table_is_refused_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text('description = "x"\nmodel_preset = "smoke"\n[data]\ndataset = "d"\n[train]\nlearning_rate = 1\n')
    with pytest.raises(ValueError, match=r"bad\.toml: .*learning_rate"):
        load_profile(path)


def test_unknown_top_level_profile_key_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text('description = "x"\nmodel_preset = "smoke"\nscratch = true\n[data]\ndataset = "d"\n')
    with pytest.raises(ValueError, match="scratch"):
        load_profile(path)


def test_profile_choices_are_declared_with_the_profiles_values() -> None:
    from matr.choices import choices_of

    found = {c.name: c.value for c in choices_of(["matr.experiments.profiles"])}
    assert found["train.lr of profile smoke"] == "0.001"
    assert found["model.model.align_cost of profile demo"] == "contrastive"


def test_paper_profile_reads_its_data_from_the_working_folder(tmp_path: Path) -> None:
    profile = ex.notebook_profile("paper", tmp_path, seed=3, device="cpu")
    assert (profile.data.folder, profile.seed, profile.device) == (str(tmp_path / "data"), 3, "cpu")
    assert ex.notebook_profile("smoke", tmp_path, seed=0, device="auto").data.folder is None


def test_training_seeds_start_at_the_profile_seed() -> None:
    profile = dataclasses.replace(SMOKE, seed=5, seeds=3, ablation_seeds=1)
    assert profile.training_seeds() == (5, 6, 7) and profile.training_seeds(ablation=True) == (5,)


def test_ablation_variants_are_those_table1_does_not_need() -> None:
    table1 = set(ex.get_table("table1_main").variants)
    needed = table1 | {ex.get_variant(name).init for name in table1} - {None}
    assert {name for name, v in ex.VARIANTS.items() if not v.ablation} == needed


# --- Variants and tables as data ----------------------------------------------------------------


@pytest.mark.parametrize("key", sorted(ex.TABLES))
def test_paper_match_fields_are_columns_of_the_papers_table(key: str) -> None:
    columns = {name for row in PAPER.get(key, []) for name in row}  # none for a table the paper does not have
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
    found = {row["label"]: paper_row(row, PAPER[key], spec.paper_match) for row in rows}
    assert [label for label, match in found.items() if match is None] == unmatched
    if key != "table1_main":  # every row of the ablation tables has its paper row, each used once
        assert len({json.dumps(match, sort_keys=True) for match in found.values()}) == len(PAPER[key])


@pytest.mark.parametrize("key", sorted(ex.TABLES))
def test_claimed_orderings_agree_with_the_papers_sportsmoments_numbers(key: str) -> None:
    spec = ex.get_table(key)
    for claim in spec.claims:
        a, b = (
            paper_row({"label": x, **dict(spec.row(x).match)}, PAPER.get(key, []), spec.paper_match)
            for x in (claim.a, claim.b)
        )
        if a is not None and b is not None and a["SM_R1"] is not None and b["SM_R1"] is not None:
            assert (a["SM_R1"] - b["SM_R1"]) * claim.sign > 0, claim.text


def test_tables_2_to_5_each_claim_an_ordering() -> None:
    assert all(ex.get_table(key).claims for key in ex.TABLES)


def test_query_use_table_pairs_each_table1_method_with_another_class_query() -> None:
    spec = ex.get_table("query_use")
    assert "query_use" not in PAPER and spec.paper_match == ()
    assert [(row.method, row.queries) for row in spec.rows] == [
        (method, queries)
        for method in ("video_match", "encoder_only", "scratch", "finetuned")
        for queries in ("own", "other")
    ]
    assert set(spec.methods) <= set(ex.get_table("table1_main").methods)  # notebook 04 has trained them
    assert [(spec.row(c.a).method, spec.row(c.a).queries, spec.row(c.b).queries) for c in spec.claims] == [
        (method, "own", "other") for method in spec.methods
    ]
    assert all(c.sign == 1 and c.metric == "R1@0.5" for c in spec.claims)


def test_a_row_with_unknown_queries_is_refused() -> None:
    from matr.experiments.tables import RowSpec

    with pytest.raises(ValueError, match="unknown queries 'mine'"):
        RowSpec("x", "scratch", (), queries="mine")


def _pairs(classes: list[str]) -> list[PairRecord]:
    return [
        PairRecord(f"p{i}", f"q{i}", f"t{i}", 20.0, ((2.0, 8.0 + i),), name, "test", query_window=(0.0, 4.0 + i))
        for i, name in enumerate(classes)
    ]


def test_other_class_queries_swap_only_the_query_for_one_of_another_class() -> None:
    records = _pairs(["a", "a", "b", "c", "c", "c"])
    swapped = other_class_queries(records, seed=0)
    by_query = {r.query_video: r for r in records}
    assert other_class_queries(records, seed=0) == swapped
    for own, other in zip(records, swapped, strict=True):
        donor = by_query[other.query_video]
        assert donor.action_class != own.action_class and other.query_window == donor.query_window
        assert dataclasses.replace(other, query_video=own.query_video, query_window=own.query_window) == own
    draws = {tuple(r.query_video for r in other_class_queries(records, seed)) for seed in range(8)}
    assert len(draws) > 1  # the seed picks the donors


def test_other_class_queries_need_two_classes() -> None:
    with pytest.raises(ValueError, match="at least two classes"):
        other_class_queries(_pairs(["a", "a"]), seed=0)


def test_table5_none_row_trains_without_any_alignment_loss() -> None:
    row = ex.get_table("table5_alignment_methods").row("None")
    model = compose(PROFILE, row.method, 0).model.model
    assert not model.align_pre_active and not model.align_post_active


def test_ablations_of_tables_2_and_5_start_from_random_init() -> None:
    for key in ("table2_dual_alignment", "table5_alignment_methods"):
        assert all(ex.get_variant(name).init is None for name in ex.get_table(key).variants)


def test_encoder_only_variant_has_no_decoder_and_no_alignment() -> None:
    model = compose(PROFILE, "encoder_only", 0).model.model
    assert not model.use_decoder and model.align_method == "none"


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"stage": None}, "neither trained nor initialised"),
        ({"init": "pretrain", "overrides": (("model.align_pre", False),)}, "cannot override"),
        ({"pretraining": (("augment", False),)}, "need stage 'pretrain'"),
    ],
)
def test_inconsistent_variants_are_refused(changes: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Variant("bad", "a bad variant", **changes)


def test_unknown_variant_and_table_names_list_the_known_ones() -> None:
    with pytest.raises(ValueError, match="finetuned"):
        ex.get_variant("finetune")
    with pytest.raises(ValueError, match="table1_main"):
        ex.get_table("table1")


def test_zero_shot_is_evaluated_from_the_shared_pretraining_checkpoint(tmp_path: Path) -> None:
    assert checkpoint_path(tmp_path, compose(PROFILE, "zero_shot", 2)) == tmp_path / "runs/pretrain/seed2/last.pt"
    assert checkpoint_path(tmp_path, compose(PROFILE, "tcc", 0)) == tmp_path / "runs/tcc/seed0/last.pt"


def test_paper_columns_each_compare_with_one_of_our_metrics() -> None:
    from matr.experiments.tables import PAPER_METRIC

    assert set(PAPER_METRIC) == set(PAPER_COLUMNS) and set(PAPER_METRIC.values()) <= set(METRIC_COLUMNS)


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


@pytest.mark.parametrize("name", sorted(ex.PROFILES))
def test_a_profile_reaches_a_child_process_unchanged(name: str) -> None:
    profile = ex.get_profile(name)
    received = profile_from_dict(json.loads(json.dumps(dataclasses.asdict(profile))))
    assert compose(received, "finetuned", 1).to_dict() == compose(profile, "finetuned", 1).to_dict()
    assert received.parallel_runs == profile.parallel_runs


def test_parallel_runs_train_the_weights_of_runs_trained_one_by_one(tmp_path: Path) -> None:
    """Two runs at a time, in child processes, then one alone in this process: the same bits as in sequence."""
    names = ["finetuned", "scratch", "no_pre"]
    alone, together = _write_workdir(tmp_path / "alone"), _write_workdir(tmp_path / "together")
    ex.train_variants(PROFILE, alone, names)
    checkpoints = ex.train_variants(dataclasses.replace(PROFILE, parallel_runs=2), together, names)
    logs = sorted(path.parent.parent.name for path in (together / "runs").rglob("train.log"))
    assert logs == ["pretrain", "scratch"]  # inits' level: pretrain + scratch in children, no_pre here; then finetuned
    for (name, seed), path in checkpoints.items():
        first, second = (torch.load(root / path.relative_to(together), weights_only=True) for root in (alone, together))
        assert first["epoch"] == second["epoch"] == PROFILE.finetune_epochs
        for key, value in first["model"].items():
            assert torch.equal(value, second["model"][key]), f"{name} seed {seed}: {key} differs"


def test_a_failing_child_run_raises_naming_the_run_and_its_log(tmp_path: Path) -> None:
    root = _write_workdir(tmp_path)
    (root / "runs" / "scratch" / "seed0").mkdir(parents=True)
    (root / "runs" / "scratch" / "seed0" / "last.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(RuntimeError, match=r"training run 'scratch' seed 0 failed in its process .*train\.log"):
        ex.train_variants(dataclasses.replace(PROFILE, parallel_runs=2), root, ["scratch", "no_pre"])


def test_evaluating_an_untrained_variant_fails_in_one_line_without_training(tmp_path: Path) -> None:
    root = _write_workdir(tmp_path)
    with pytest.raises(MissingCheckpoint, match=r"no checkpoint .*runs/tcc/seed0/last\.pt: train it first") as error:
        cached_evaluation(PROFILE, root, "tcc", 0)
    assert "\n" not in str(error.value) and not (root / "runs").exists()


def test_trained_variant_is_reused_not_retrained(workdir: Path) -> None:
    checkpoint = train_run(PROFILE, workdir, "finetuned", 0)
    pretrain = workdir / "runs" / "pretrain" / "seed0" / "last.pt"
    assert checkpoint == workdir / "runs" / "finetuned" / "seed0" / "last.pt" and pretrain.is_file()
    stamps = [os.stat(path).st_mtime_ns for path in (checkpoint, pretrain)]
    train_run(PROFILE, workdir, "zero_shot", 0)
    train_run(PROFILE, workdir, "finetuned", 0)
    assert [os.stat(path).st_mtime_ns for path in (checkpoint, pretrain)] == stamps


def test_run_folder_holds_its_whole_config(workdir: Path) -> None:
    train_run(PROFILE, workdir, "finetuned", 0)
    written = json.loads((workdir / "runs" / "finetuned" / "seed0" / "run_config.json").read_text())
    assert written == json.loads(json.dumps(compose(PROFILE, "finetuned", 0).to_dict()))
    assert written["train"]["epochs"] == 2 and written["init"] == "pretrain"


def test_only_main_runs_validate_every_epoch(workdir: Path) -> None:
    ex.train_variants(PROFILE, workdir, ["scratch", "no_pre"])
    curves = ex.curves_frame(PROFILE, workdir, ["scratch", "no_pre"])
    validated = curves.groupby("run")["val_R1@0.5"].apply(lambda values: values.notna().all())
    assert validated.to_dict() == {"no_pre": False, "scratch": True}
    assert list(curves.columns[:2]) == ["run", "epoch"] and len(curves) == 2 * PROFILE.finetune_epochs


def test_evaluation_is_cached_until_the_checkpoint_changes(workdir: Path) -> None:
    ex.train_variants(PROFILE, workdir, ["scratch"])
    folder = cached_evaluation(PROFILE, workdir, "scratch", 0)
    stamp = (folder / "metrics.json").stat().st_mtime_ns
    assert cached_evaluation(PROFILE, workdir, "scratch", 0) == folder
    assert (folder / "metrics.json").stat().st_mtime_ns == stamp
    checkpoint = checkpoint_path(workdir, compose(PROFILE, "scratch", 0))
    os.utime(checkpoint, ns=(stamp + 10**9, stamp + 10**9))
    cached_evaluation(PROFILE, workdir, "scratch", 0)
    assert (folder / "metrics.json").stat().st_mtime_ns != stamp


def test_predictions_keep_per_pair_ious_of_every_ranked_span(workdir: Path) -> None:
    folder = cached_evaluation(PROFILE, workdir, "random", 0)
    found = predictions(folder, "random")
    metrics = json.loads((folder / "metrics.json").read_text())["metrics"]["random"]
    assert metrics["num_pairs"] == len(found) == SPLITS["test"]
    assert all(len(r["ious"]) == len(r["spans"]) == 5 for r in found.values())
    assert np.mean([r["ious"][0] for r in found.values()]) * 100 == pytest.approx(metrics["mIoU"])


def test_table_cells_carry_intervals_and_claims_get_verdicts(workdir: Path) -> None:
    ex.train_variants(PROFILE, workdir, ex.get_table("table4_heads_vs_alignment").variants)
    result = ex.table_result(PROFILE, workdir, "table4_heads_vs_alignment")
    assert [row["predict_from"] for row in result["rows"]] == [
        r["predict_from"] for r in PAPER["table4_heads_vs_alignment"]
    ]
    for row in result["rows"]:
        assert list(row["metrics"]) == list(METRIC_COLUMNS) and row["num_pairs"] == SPLITS["test"]
        for cell in row["metrics"].values():
            assert cell["ci"][0] <= cell["value"] <= cell["ci"][1] and (cell["std"], cell["seeds"]) == (None, 1)
    claims = ex.get_table("table4_heads_vs_alignment").claims
    assert [(v["a"], v["b"]) for v in result["verdicts"]] == [(c.a, c.b) for c in claims]
    assert {v["verdict"] for v in result["verdicts"]} <= {"holds", "reversed", "not distinguishable at this size"}


def test_table_artifact_holds_rows_verdicts_and_the_notebooks_choices(workdir: Path, tmp_path: Path) -> None:
    ex.train_variants(PROFILE, workdir, ex.get_table("table4_heads_vs_alignment").variants)
    result = ex.table_result(PROFILE, workdir, "table4_heads_vs_alignment")
    stem = "07_table4_heads_vs_alignment"
    ex.write_table_artifact(tmp_path, stem, result, profile=PROFILE, workdir=workdir)
    table = json.loads((tmp_path / stem / "table.json").read_text())
    assert table["provenance"]["weights_tag"] == "random-init(seed=0)" and table["verdicts"] == result["verdicts"]
    frame = ex.table_frame(result)
    assert frame.loc[frame["label"] == "prediction heads", "paper_AN_mIoU"].item() == 56.8
    assert (tmp_path / stem / "table.csv").read_text().startswith("label,predict_from,mIoU,mIoU low,mIoU high")
    choices = json.loads((tmp_path / stem / "choices.json").read_text())
    names = {c["name"] for c in choices}
    assert "evaluation split" in names and "soft-DTW smoothing gamma" in names
    assert all(set(c) == {"name", "value", "reason", "module"} for c in choices)


def test_query_use_table_evaluates_each_method_on_the_same_pairs_with_swapped_queries(
    workdir: Path, tmp_path: Path
) -> None:
    spec = ex.get_table("query_use")
    ex.train_variants(PROFILE, workdir, spec.variants)
    result = ex.table_result(PROFILE, workdir, "query_use")
    assert [row["label"] for row in result["rows"]] == [row.label for row in spec.rows]
    assert all(row["num_pairs"] == SPLITS["test"] for row in result["rows"])
    assert [(v["a"], v["b"]) for v in result["verdicts"]] == [(c.a, c.b) for c in spec.claims]
    assert [v["claim"] for v in result["verdicts"]] == [c.text for c in spec.claims]  # no paper numbers to quote
    columns = list(ex.table_frame(result).columns)
    assert "R1@0.5 low" in columns and not [name for name in columns if name.startswith("paper_")]
    own, other = (evaluation_dir(workdir, "video_match", 0, queries=q) for q in ("own", "other"))
    assert other == workdir / "eval/test/other-queries/baselines/video_match/seed0"
    spans = [{k: r["spans"] for k, r in predictions(folder, "video_match").items()} for folder in (own, other)]
    assert spans[0].keys() == spans[1].keys() and spans[0] != spans[1]
    stamp = (other / "metrics.json").stat().st_mtime_ns
    assert cached_evaluation(PROFILE, workdir, "video_match", 0, queries="other") == other
    assert (other / "metrics.json").stat().st_mtime_ns == stamp
    path = ex.write_table_artifact(
        tmp_path, "04_table1_main_results", result, profile=PROFILE, workdir=workdir, main=False
    )
    assert json.loads(path.read_text())["paper_match"] == []
    assert sorted(p.name for p in path.parent.iterdir()) == [
        "table_query_use.csv",
        "table_query_use.json",
        "verdicts_query_use.csv",
    ]


def test_several_seeds_give_mean_and_std_and_video_match_runs_once(workdir: Path) -> None:
    profile = dataclasses.replace(PROFILE, seeds=2)
    ex.train_variants(profile, workdir, ["encoder_only"])
    spec = ex.get_table("table1_main")
    rows = [row for row in spec.rows if row.method in ("random", "video_match", "encoder_only")]
    from matr.experiments.results import row_ious

    shapes = {row.method: row_ious(profile, workdir, row).topk.shape[0] for row in rows}
    assert shapes == {"random": 2, "video_match": 1, "encoder_only": 2}
    assert (workdir / "runs" / "encoder_only" / "seed1" / "last.pt").is_file()


def test_alignment_view_has_one_path_cell_per_query_frame_at_least(workdir: Path) -> None:
    train_run(PROFILE, workdir, "finetuned", 0)
    record = next(iter(open_data(PROFILE, workdir).records("test")))
    view = ex.alignment_view(PROFILE, workdir, record.pair_id)
    m, n = round(record.duration / 2.0), 3
    assert view.cost_pre.shape == view.cost_post.shape == view.path_pre.shape == (m, n)
    assert set(np.unique(view.path_post)) <= {0.0, 1.0} and (view.path_post.sum(axis=0) >= 1).all()
    assert view.ground_truth_frames[1] - view.ground_truth_frames[0] == 3


def test_alignment_view_of_an_untrained_variant_does_not_train(tmp_path: Path) -> None:
    root = _write_workdir(tmp_path)
    record = next(iter(open_data(PROFILE, root).records("test")))
    with pytest.raises(MissingCheckpoint, match="finetuned"):
        ex.alignment_view(PROFILE, root, record.pair_id)
    assert not (root / "runs").exists()


def test_picked_pairs_are_the_best_and_median_by_top1_iou(workdir: Path) -> None:
    train_run(PROFILE, workdir, "finetuned", 0)
    ious = ex.top1_iou_frame(PROFILE, workdir, {"MATR": "finetuned"}).set_index("pair_id")["iou"]
    picks = ex.pick_pairs(PROFILE, workdir)
    assert ious[picks["highest IoU"]] == ious.max()
    assert ious[picks["median IoU"]] == sorted(ious, reverse=True)[len(ious) // 2]


def test_example_without_video_files_has_spans_but_no_frames(workdir: Path) -> None:
    ex.train_variants(PROFILE, workdir, ["finetuned", "encoder_only"])
    pair_id = ex.pick_pairs(PROFILE, workdir)["highest IoU"]
    example = ex.example(PROFILE, workdir, pair_id)
    assert example.query is None and example.target is None
    assert list(example.spans) == list(ex.QUALITATIVE_METHODS)


def test_pairs_summary_counts_pairs_per_split_in_split_order(workdir: Path) -> None:
    summary = ex.summary_frame(ex.pairs_frame(PROFILE, workdir))
    assert summary[["split", "pairs", "classes"]].values.tolist() == [["train", 6, 2], ["val", 2, 2], ["test", 3, 2]]


def test_every_notebooks_choice_modules_import(tmp_path: Path) -> None:
    for stem in ex.NOTEBOOK_MODULES:
        assert json.loads(ex.write_choices(tmp_path, stem).read_text()), stem


def test_baselines_are_evaluated_in_their_own_folder(tmp_path: Path) -> None:
    assert set(BASELINES) == {"random", "video_match"}
    assert evaluation_dir(tmp_path, "random", 1) == tmp_path / "eval/test/baselines/random/seed1"


def test_run_labels_name_curves_by_the_tables_rows() -> None:
    assert ex.run_labels("table2_dual_alignment")["scratch"] == "both stages (MATR)"
    labels = ex.run_labels(["finetuned", "pretrain"])
    assert labels == {
        "finetuned": "MATR Finetuned+V (pre-trained, finetuned)",
        "pretrain": ex.VARIANTS["pretrain"].description,
    }


def test_verdict_claims_quote_the_papers_numbers() -> None:
    from matr.experiments.tables import paper_claim

    spec = ex.get_table("table2_dual_alignment")
    assert paper_claim(spec, spec.claims[0]).endswith("(paper SM R1@0.5: 52.7 vs 48.2)")


def test_plan_lists_the_init_run_first_and_estimates_from_finished_epochs(workdir: Path) -> None:
    train_run(PROFILE, workdir, "finetuned", 0)
    plan = ex.plan_frame(dataclasses.replace(PROFILE, seeds=3), workdir, ["finetuned"])
    assert plan[["run", "seed"]].values.tolist()[:2] == [["pretrain", 0], ["finetuned", 0]]
    done = plan[plan["seed"] == 0]
    assert (done["epochs_done"] == done["epochs"]).all() and (done["estimated_seconds"] == 0).all()
    assert (plan.loc[plan["seed"] == 2, "estimated_seconds"] > 0).all()
