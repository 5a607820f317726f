"""The report builder (matr.report) and the notebook runner (matr.notebooks).

Report tests build a report from hand-made artifacts that follow the ARTIFACT CONTRACT of
``matr.report``. Runner tests write throwaway notebooks with nbformat and execute them on a real
kernel (``python3``, which jupyter_client resolves to the interpreter running the tests, i.e.
``.venv/bin/python``); each kernel start costs about a second, so there are few of them.

How CI passes parameters to pytest-notebook: ``matr.notebooks.prepare_notebook`` injects the smoke
profile's parameters (``notebook_parameters("smoke", workdir=tmp/..., artifacts=tmp/...)``, absolute
paths) into a copy with papermill's ``prepare_only=True``; the ``nb_regression`` fixture executes
that copy with ``exec_cwd`` = the source notebook's folder and ``diff_ignore`` =
``matr.notebooks.NB_DIFF_IGNORE``. ``test_prepared_copy_runs_under_nb_regression`` pins this wiring.
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path
from typing import Any

import nbformat
import pytest

from matr.metrics import METRIC_DESCRIPTIONS
from matr.notebooks import (
    NB_DIFF_IGNORE,
    NotebookFailed,
    discover_notebooks,
    make_report,
    notebook_parameters,
    prepare_notebook,
    run_notebooks,
    select,
)
from matr.report import EXPECTED_ARTIFACTS, ReportError, build_report

RANDOM_TAG = "random-init(seed=0)"


# --- Hand-made artifacts ------------------------------------------------------------------------


def _provenance(weights_tag: str, profile: str, dataset: str, split: str | None = "test") -> dict[str, Any]:
    record = {
        "profile": profile,
        "seed": 0,
        "weights_tag": weights_tag,
        "dataset": dataset,
        "random_init_backbone": weights_tag.startswith("random-init"),
        "git_commit": "abc1234",
        "hardware": {"processor": "x86_64", "cpu_count": 2, "torch": "2.14.1"},
        "created": "2026-01-01T00:00:00+00:00",
    }
    if split is not None:
        record["split"] = split
    return record


def _table(table: str, paper_match: list[str], rows: list[dict[str, Any]], prov: dict[str, Any]) -> dict[str, Any]:
    return {
        "table": table,
        "title": f"Our {table}",
        "caption": f"Caption of {table}.",
        "dataset": prov["dataset"],
        "split": "test",
        "paper_match": paper_match,
        "rows": rows,
        "provenance": prov,
    }


def _metrics(miou: float, r1: float) -> dict[str, float]:
    return {"mIoU": miou, "R1@0.5": r1, "VRL_IoU_mean": 4.0, "num_pairs": 12}


TABLES = {
    "04_table1_main_results": (
        "table1_main",
        ["method", "variant"],
        [
            {"label": "MATR, trained", "method": "MATR", "variant": "Trained+V", "metrics": _metrics(11.11, 21.0)},
            {"label": "Random", "method": "Random", "variant": "-", "metrics": _metrics(3.0, 5.0)},
        ],
    ),
    "05_table2_dual_alignment": (
        "table2_dual_alignment",
        ["pre_fusion", "post_fusion"],
        [
            {"label": "both alignments", "pre_fusion": True, "post_fusion": True, "metrics": _metrics(12.34, 22.0)},
            {"label": "no paper row", "pre_fusion": None, "post_fusion": None, "metrics": _metrics(1.0, 2.0)},
        ],
    ),
    "06_table3_pretraining": (
        "table3_pretraining",
        ["pretraining", "augmentation"],
        [{"label": "scratch", "pretraining": False, "augmentation": None, "metrics": _metrics(13.0, 23.0)}],
    ),
    "07_table4_heads_vs_alignment": (
        "table4_heads_vs_alignment",
        ["predict_from"],
        [{"label": "heads", "predict_from": "prediction heads", "metrics": _metrics(14.0, 24.0)}],
    ),
    "08_table5_alignment_methods": (
        "table5_alignment_methods",
        ["alignment"],
        [{"label": "soft-DTW", "alignment": "soft-DTW", "metrics": _metrics(15.0, 25.0)}],
    ),
}


def write_artifacts(
    root: Path,
    weights_tag: str = RANDOM_TAG,
    profile: str = "smoke",
    dataset: str = "synthetic-tiny",
    skip: tuple[str, ...] = (),
) -> Path:
    """Every planned notebook's artifacts under ``root``; ``skip``: ``"stem/file"`` entries not to write."""
    files: dict[str, Any] = {}
    for stem in EXPECTED_ARTIFACTS:
        files[f"{stem}/provenance.json"] = _provenance(weights_tag, profile, dataset)
    for stem, (key, match, rows) in TABLES.items():
        files[f"{stem}/table.json"] = _table(key, match, rows, _provenance(weights_tag, profile, dataset))
    files["09_qualitative_figures/figures.json"] = [
        {"file": "example.png", "title": "A retrieved moment", "caption": "Query and top-1 moment."}
    ]
    files["03_finetuning/figures.json"] = [
        {"file": "loss.png", "title": "Finetuning loss", "caption": "Per epoch.", "kind": "curves"}
    ]
    files["03_finetuning/choices.json"] = [
        {"what": "checkpoint evaluated", "choice": "the last epoch", "where": "matr.profiles"}
    ]
    for path, data in files.items():
        if path not in skip:
            (root / path).parent.mkdir(parents=True, exist_ok=True)
            (root / path).write_text(json.dumps(data), encoding="utf-8")
    for png in ("09_qualitative_figures/example.png", "03_finetuning/loss.png"):
        (root / png).write_bytes(b"\x89PNG\r\n\x1a\n")
    for stem in ("02_pretraining", "03_finetuning"):
        if f"{stem}/curves.csv" not in skip:
            with open(root / stem / "curves.csv", "w", newline="", encoding="utf-8") as handle:
                writer = csv.writer(handle)
                writer.writerows([["run", "epoch", "loss"], ["main", 0, 2.5], ["main", 1, 0.123456]])
    return root


@pytest.fixture
def report_dir(tmp_path: Path) -> Path:
    return tmp_path / "report"


def _build(report_dir: Path, **artifact_options: Any) -> tuple[str, str]:
    write_artifacts(report_dir / "artifacts", **artifact_options)
    readme = build_report(report_dir, report_dir / "artifacts", artifact_options.get("profile", "smoke"))
    return readme.read_text(encoding="utf-8"), (report_dir / "report.html").read_text(encoding="utf-8")


def _table_row(markdown: str, label: str) -> list[str]:
    line = next(line for line in markdown.splitlines() if line.startswith(f"| {label} |"))
    return [cell.strip() for cell in line.strip("|").split("|")]


# --- Report -------------------------------------------------------------------------------------


def test_random_init_backbone_is_stated_in_bold_on_the_first_line(report_dir: Path) -> None:
    readme, page = _build(report_dir)
    first = readme.splitlines()[0]
    assert first.startswith(f"**Backbone weights: `{RANDOM_TAG}`") and first.endswith("**")
    assert "random-init CLIP backbone on synthetic demo data" in first and "NOT comparable" in first
    body = page.split("<body>")[1].lstrip()
    assert body.startswith("<p><strong>Backbone weights: <code>random-init(seed=0)</code>")


def test_openai_backbone_first_line_states_the_tag_without_warning(report_dir: Path) -> None:
    readme, _ = _build(report_dir, weights_tag="openai", dataset="SportsMoments")
    first = readme.splitlines()[0]
    assert "`openai`" in first
    assert "**" not in first and "not comparable" not in first.lower()


def test_paper_numbers_stand_next_to_ours_in_matched_rows(report_dir: Path) -> None:
    readme, page = _build(report_dir)
    # columns: row, ours mIoU, ours R1@0.5, ours VRL_IoU_mean, ours num_pairs, paper AN/SM mIoU/R1
    assert _table_row(readme, "both alignments") == [
        "both alignments",
        "12.3",
        "22.0",
        "4.0",
        "12",
        "53.2",
        "54.8",
        "56.2",
        "52.7",
    ]
    assert _table_row(readme, "no paper row")[-4:] == ["—"] * 4
    assert _table_row(readme, "MATR, trained")[-4:] == ["53.2", "54.8", "56.2", "52.7"]
    assert _table_row(readme, "Random")[-4:] == ["7.3", "16.2", "—", "—"]
    assert "<td>12.3</td><td>22.0</td><td>4.0</td><td>12</td><td>53.2</td>" in page


def test_each_column_says_which_metric_it_is(report_dir: Path) -> None:
    readme, _ = _build(report_dir)
    assert f"ours mIoU: {METRIC_DESCRIPTIONS['mIoU']}" in readme
    assert f"ours R1@0.5: {METRIC_DESCRIPTIONS['R1@0.5']}" in readme
    assert "VRL 'IoU/mean'" in readme


def test_a_row_matching_several_paper_rows_is_an_error(report_dir: Path) -> None:
    artifacts = write_artifacts(report_dir / "artifacts")
    path = artifacts / "04_table1_main_results" / "table.json"
    table = json.loads(path.read_text())
    table["paper_match"] = ["method"]  # MATR has three rows in the paper's Table 1
    path.write_text(json.dumps(table))
    with pytest.raises(ReportError, match="'MATR, trained' matches 3 rows"):
        build_report(report_dir, artifacts, "smoke")


def test_an_unknown_metric_is_an_error_naming_the_file(report_dir: Path) -> None:
    artifacts = write_artifacts(report_dir / "artifacts")
    path = artifacts / "08_table5_alignment_methods" / "table.json"
    table = json.loads(path.read_text())
    table["rows"][0]["metrics"]["R1@50"] = 1.0
    path.write_text(json.dumps(table))
    with pytest.raises(ReportError, match=r"08_table5_alignment_methods/table\.json, row 0: unknown metric.*R1@50"):
        build_report(report_dir, artifacts, "smoke")


def test_missing_artifacts_raise_an_error_naming_each(report_dir: Path) -> None:
    artifacts = write_artifacts(
        report_dir / "artifacts", skip=("05_table2_dual_alignment/table.json", "09_qualitative_figures/figures.json")
    )
    with pytest.raises(ReportError) as caught:
        build_report(report_dir, artifacts, "smoke")
    assert "05_table2_dual_alignment: table.json" in str(caught.value)
    assert "09_qualitative_figures: figures.json" in str(caught.value)
    assert not (report_dir / "README.md").exists()


def test_partial_report_marks_what_was_not_produced(report_dir: Path) -> None:
    artifacts = write_artifacts(report_dir / "artifacts", skip=("05_table2_dual_alignment/table.json",))
    readme = build_report(report_dir, artifacts, "smoke", allow_missing=True).read_text()
    assert "`05_table2_dual_alignment`: table.json" in readme
    assert "### `05_table2_dual_alignment`\n\n**Not produced**" in readme
    assert "both alignments" not in readme


def test_artifacts_of_another_profile_are_refused(report_dir: Path) -> None:
    artifacts = write_artifacts(report_dir / "artifacts", profile="smoke")
    with pytest.raises(ReportError, match="another profile than 'demo'"):
        build_report(report_dir, artifacts, "demo")


def test_artifacts_with_different_weights_tags_are_refused(report_dir: Path) -> None:
    artifacts = write_artifacts(report_dir / "artifacts")
    (artifacts / "01_data_curation" / "provenance.json").write_text(
        json.dumps(_provenance("openai", "smoke", "synthetic-tiny"))
    )
    with pytest.raises(ReportError, match="disagree on the backbone weights tag"):
        build_report(report_dir, artifacts, "smoke")


def test_figures_are_linked_by_path_relative_to_the_report(report_dir: Path) -> None:
    readme, page = _build(report_dir)
    assert "![A retrieved moment](artifacts/09_qualitative_figures/example.png)" in readme
    assert '<img src="artifacts/09_qualitative_figures/example.png"' in page
    training = readme.split("## Training curves")[1]
    assert "(artifacts/03_finetuning/loss.png)" in training


def test_training_curves_show_each_runs_last_epoch(report_dir: Path) -> None:
    readme, _ = _build(report_dir)
    assert _table_row(readme.split("### `03_finetuning`")[1], "main") == ["main", "1", "0.1235"]


def test_choices_where_the_paper_is_silent_are_listed(report_dir: Path) -> None:
    readme, _ = _build(report_dir)
    assert "**checkpoint evaluated**: the last epoch (matr.profiles; `03_finetuning`)" in readme


def test_provenance_lists_commit_seed_data_hardware_and_notebook_times(report_dir: Path) -> None:
    report_dir.mkdir()
    (report_dir / "timings.json").write_text(
        json.dumps(
            {"04_table1_main_results": {"seconds": 12.5, "finished": "2026-01-01T00:10:00+00:00", "profile": "smoke"}}
        )
    )
    readme, _ = _build(report_dir)
    provenance = readme.split("## Provenance")[1]
    for text in (
        "git commit: `abc1234`",
        "seed: `0`",
        f"weights tag: `{RANDOM_TAG}`",
        "dataset: `synthetic-tiny`; split: `test`",
        "hardware: processor x86_64, cpu_count 2",
    ):
        assert text in provenance
    assert _table_row(provenance, "04_table1_main_results")[:2] == ["04_table1_main_results", "12.5"]
    assert _table_row(provenance, "01_data_curation")[1] == "—"


def test_same_artifacts_give_the_same_report(report_dir: Path) -> None:
    first, _ = _build(report_dir)
    second = build_report(report_dir, report_dir / "artifacts", "smoke").read_text()
    assert first == second


# --- Runner: finding and selecting notebooks (no kernel) ----------------------------------------

PARAMETERS_CELL = (
    'profile: str = "smoke"\nworkdir: str = "."\nartifacts: str = "."\nseed: int = 0\ndevice: str = "auto"'
)


def write_notebook(path: Path, *cells: str, parameters: str = PARAMETERS_CELL) -> Path:
    """A notebook with a markdown cell, a ``parameters`` cell, then code ``cells``."""
    notebook = nbformat.v4.new_notebook()
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    parameters_cell = nbformat.v4.new_code_cell(parameters)
    parameters_cell.metadata["tags"] = ["parameters"]
    notebook.cells = [
        nbformat.v4.new_markdown_cell(f"# {path.stem}"),
        parameters_cell,
        *(nbformat.v4.new_code_cell(source) for source in cells),
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(notebook, path)
    return path


LOG_CELL = (
    "import os, sys\nfrom pathlib import Path\n"
    "with open(Path(workdir) / 'log.txt', 'a') as f:\n"
    "    f.write(f'{Path(os.getcwd()).name} {profile} {seed} {sys.executable}\\n')"
)


def _series(folder: Path, *names: str) -> list[Path]:
    return [write_notebook(folder / f"{name}.ipynb", LOG_CELL) for name in names]


def test_notebooks_are_discovered_in_numeric_order(tmp_path: Path) -> None:
    _series(tmp_path, "10_late", "02_early", "01_first")
    (tmp_path / "scratch.ipynb").write_text("{}")
    assert [p.name for p in discover_notebooks(tmp_path)] == ["01_first.ipynb", "02_early.ipynb", "10_late.ipynb"]


def test_select_by_number_stem_or_name(tmp_path: Path) -> None:
    series = _series(tmp_path, "01_data", "02_train", "03_table")
    assert select(series, from_="02") == series[1:]
    assert select(series, only="03_table,1") == [series[0], series[2]]
    assert select(series, only=["train"]) == [series[1]]
    with pytest.raises(ValueError, match="no notebook '04'.*available: 01_data, 02_train, 03_table"):
        select(series, only="04")


def test_unknown_parameter_is_refused_before_any_notebook_runs(tmp_path: Path) -> None:
    first = write_notebook(tmp_path / "nb" / "01_a.ipynb", LOG_CELL)
    second = write_notebook(tmp_path / "nb" / "02_b.ipynb", LOG_CELL, parameters='workdir: str = "."')
    with pytest.raises(ValueError, match=r"02_b.ipynb: unknown parameter\(s\) \['seed'\]"):
        run_notebooks([first, second], tmp_path / "out", {"workdir": str(tmp_path), "seed": 3})
    assert not (tmp_path / "log.txt").exists() and not (tmp_path / "out").exists()


def test_notebook_parameters_use_absolute_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    parameters = notebook_parameters("smoke", "runs/smoke", "reports/artifacts", seed=3)
    assert parameters == {
        "profile": "smoke",
        "workdir": str(tmp_path / "runs/smoke"),
        "artifacts": str(tmp_path / "reports/artifacts"),
        "seed": 3,
        "device": "auto",
    }


# --- Runner: executing on a real kernel ---------------------------------------------------------


def test_notebooks_run_in_order_in_their_folder_with_injected_parameters(tmp_path: Path) -> None:
    series = _series(tmp_path / "nb", "01_a", "02_b")
    runs = run_notebooks(series, tmp_path / "out", {"workdir": str(tmp_path), "profile": "demo", "seed": 7})
    assert (tmp_path / "log.txt").read_text().splitlines() == [f"nb demo 7 {sys.executable}"] * 2
    assert [run.executed for run in runs] == [tmp_path / "out" / "notebooks" / f"{n}.ipynb" for n in ("01_a", "02_b")]
    executed = nbformat.read(runs[0].executed, as_version=4)
    assert "injected-parameters" in executed.cells[2].metadata["tags"]
    timings = json.loads((tmp_path / "out" / "timings.json").read_text())
    assert set(timings) == {"01_a", "02_b"} and timings["01_a"]["profile"] == "demo"
    assert not list((tmp_path / "out" / "notebooks").glob(".*"))


def test_failing_notebook_stops_the_run_naming_notebook_and_cell(tmp_path: Path) -> None:
    first = write_notebook(tmp_path / "nb" / "01_ok.ipynb", LOG_CELL)
    failing = write_notebook(tmp_path / "nb" / "02_fails.ipynb", "x = 1", "raise ValueError(f'boom {seed}')")
    last = write_notebook(tmp_path / "nb" / "03_never.ipynb", LOG_CELL)
    out = tmp_path / "out" / "notebooks"
    with pytest.raises(NotebookFailed) as caught:
        run_notebooks([first, failing, last], tmp_path / "out", {"workdir": str(tmp_path), "seed": 5})
    message = str(caught.value)
    assert "02_fails.ipynb failed at cell 3" in message and "ValueError: boom 5" in message
    assert caught.value.cell_index == 3 and caught.value.executed_copy == out / "failed" / "02_fails.ipynb"
    assert (out / "01_ok.ipynb").is_file() and (out / "failed" / "02_fails.ipynb").is_file()
    assert not (out / "02_fails.ipynb").exists() and not (out / "03_never.ipynb").exists()
    assert len((tmp_path / "log.txt").read_text().splitlines()) == 1
    assert set(json.loads((tmp_path / "out" / "timings.json").read_text())) == {"01_ok"}


def test_rerunning_one_notebook_updates_only_its_timing(tmp_path: Path) -> None:
    series = _series(tmp_path / "nb", "01_a", "02_b")
    timings = tmp_path / "out" / "timings.json"
    timings.parent.mkdir()
    timings.write_text(json.dumps({"01_a": {"seconds": 123.0}, "02_b": {"seconds": 456.0}}))
    run_notebooks(select(series, only="2"), tmp_path / "out", {"workdir": str(tmp_path)})
    merged = json.loads(timings.read_text())
    assert merged["01_a"] == {"seconds": 123.0} and merged["02_b"]["seconds"] < 456.0


PROVENANCE_CELL = (
    "import json\nfrom pathlib import Path\n"
    "folder = Path(artifacts) / '01_data_curation'\nfolder.mkdir(parents=True)\n"
    "record = {'profile': profile, 'seed': seed, 'weights_tag': 'random-init(seed=0)', "
    "'dataset': 'synthetic-tiny', 'workdir': workdir}\n"
    "(folder / 'provenance.json').write_text(json.dumps(record))"
)


def test_make_report_runs_the_selection_and_builds_a_partial_report(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # the defaults: notebooks/, reports/, runs/<profile>
    write_notebook(tmp_path / "notebooks" / "01_data_curation.ipynb", PROVENANCE_CELL)
    write_notebook(tmp_path / "notebooks" / "02_pretraining.ipynb", "raise RuntimeError('not selected')")
    readme = make_report("smoke", only="1")
    text = readme.read_text()
    assert text.startswith(f"**Backbone weights: `{RANDOM_TAG}`")
    assert "`02_pretraining`: provenance.json, curves.csv" in text
    record = json.loads((tmp_path / "reports/artifacts/01_data_curation/provenance.json").read_text())
    assert record["workdir"] == str(tmp_path / "runs" / "smoke") and record["seed"] == 0
    assert set(json.loads((tmp_path / "reports" / "timings.json").read_text())) == {"01_data_curation"}
    assert (tmp_path / "reports" / "notebooks" / "01_data_curation.ipynb").is_file()


def test_prepared_copy_runs_under_nb_regression(tmp_path: Path, nb_regression: Any) -> None:
    notebook = write_notebook(tmp_path / "nb" / "01_a.ipynb", LOG_CELL, "print('hello')")
    parameters = notebook_parameters("smoke", tmp_path / "work", tmp_path / "artifacts", seed=2)
    (tmp_path / "work").mkdir()
    prepared = prepare_notebook(notebook, tmp_path / "prepared", parameters)
    nb_regression.diff_ignore = NB_DIFF_IGNORE
    nb_regression.exec_cwd = str(notebook.parent)
    nb_regression.check(str(prepared))
    assert (tmp_path / "work" / "log.txt").read_text().split()[:3] == ["nb", "smoke", "2"]
