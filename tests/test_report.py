"""The report (matr.reporting.report, .artifacts, .render, .sections), built from hand-made artifacts.

The artifacts follow the ARTIFACT CONTRACT of :mod:`matr.reporting.artifacts`: metric cells
``{"value", "ci", "std", "seeds"}``, verdicts per claimed ordering, ``choices.json`` entries of
:class:`matr.choices.Choice`. The HTML page is checked as a browser would read it: its visible text,
its images and its links.
"""

from __future__ import annotations

import csv
import html
import json
import re
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from matr.metrics import METRIC_DESCRIPTIONS
from matr.provenance import DIRTY_SUFFIX, git_commit
from matr.reporting.artifacts import EXPECTED_ARTIFACTS, ReportError
from matr.reporting.render import prose
from matr.reporting.report import build_report, format_cell

RANDOM_TAG = "random-init(seed=0)"


# --- Hand-made artifacts ------------------------------------------------------------------------


def _provenance(weights_tag: str, profile: str, dataset: str, commit: str = "abc1234") -> dict[str, Any]:
    return {
        "profile": profile,
        "seed": 0,
        "weights_tag": weights_tag,
        "dataset": dataset,
        "split": "test",
        "git_commit": commit,
        "hardware": {"processor": "x86_64", "cpu_count": 2, "torch": "2.14.1"},
        "created": "2026-01-01T00:00:00+00:00",
    }


def _cell(value: float, low: float, high: float, std: float | None = None, seeds: int = 1) -> dict[str, Any]:
    return {"value": value, "ci": [low, high], "std": std, "seeds": seeds}


def _metrics(miou: float, r1: float, seeds: int = 1) -> dict[str, Any]:
    std = 1.25 if seeds > 1 else None
    return {
        "mIoU": _cell(miou, miou - 2, miou + 2, std, seeds),
        "R1@0.5": _cell(r1, r1 - 3, r1 + 3, std, seeds),
        "VRL_IoU_mean": 4.0,
    }


TABLES = {
    "04_table1_main_results": (
        "table1_main",
        ["method", "variant"],
        [
            {"label": "MATR, trained", "method": "MATR", "variant": "Trained+V", "metrics": _metrics(11.11, 21.0, 3)},
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
QUERY_USE = [  # a further table of notebook 04, not in the paper
    {"label": "VM, own query", "metrics": _metrics(20.0, 30.0)},
    {"label": "VM, other-class query", "metrics": _metrics(5.0, 6.0)},
]
QUERY_VERDICT = {
    "claim": "VM, own query > VM, other-class query",
    "a": "VM, own query",
    "b": "VM, other-class query",
    "metric": "R1@0.5",
    "diff": 24.0,
    "ci": [20.0, 28.0],
    "verdict": "holds",
}
VERDICT = {
    "claim": "both alignments beat **neither",
    "a": "both alignments",
    "b": "no paper row",
    "metric": "R1@0.5",
    "diff": 20.0,
    "ci": [12.5, 27.25],
    "verdict": "holds",
}
CHOICE = {
    "name": "soft-min gamma",
    "value": "0.1",
    "reason": "the paper: `selected empirically`",
    "module": "matr.align",
}


def _table(key: str, paper_match: list[str], rows: list[dict[str, Any]], prov: dict[str, Any]) -> dict[str, Any]:
    return {
        "table": key,
        "title": f"Our {key}",
        "caption": f"Caption of {key}: see :func:`matr.experiments.tables.get_table` and **bold.",
        "dataset": prov["dataset"],
        "split": "test",
        "paper_match": paper_match,
        "rows": [{**row, "num_pairs": 300} for row in rows],
        "verdicts": [VERDICT] if key == "table2_dual_alignment" else [],
        "provenance": prov,
    }


def write_artifacts(
    root: Path,
    weights_tag: str = RANDOM_TAG,
    profile: str = "smoke",
    dataset: str = "synthetic-tiny",
    skip: tuple[str, ...] = (),
    commit: str = "abc1234",
) -> Path:
    """Every planned notebook's artifacts under ``root``; ``skip``: ``"stem/file"`` entries not to write."""
    files: dict[str, Any] = {}
    for stem in EXPECTED_ARTIFACTS:
        files[f"{stem}/provenance.json"] = _provenance(weights_tag, profile, dataset, commit)
    for stem, (key, match, rows) in TABLES.items():
        files[f"{stem}/table.json"] = _table(key, match, rows, _provenance(weights_tag, profile, dataset, commit))
    query_use = _table("query_use", [], QUERY_USE, _provenance(weights_tag, profile, dataset, commit))
    files["04_table1_main_results/table_query_use.json"] = {**query_use, "verdicts": [QUERY_VERDICT]}
    files["09_qualitative_figures/figures.json"] = [
        {"file": "example.png", "title": "A retrieved moment", "caption": "Query and `top-1` moment."}
    ]
    files["03_finetuning/figures.json"] = [
        {"file": "loss.png", "title": "Finetuning loss", "caption": "Per epoch.", "kind": "curves"}
    ]
    files["03_finetuning/choices.json"] = [CHOICE, {**CHOICE, "name": "NMS threshold", "module": "matr.postprocess"}]
    files["05_table2_dual_alignment/choices.json"] = [CHOICE]
    for path, data in files.items():
        if path not in skip:
            (root / path).parent.mkdir(parents=True, exist_ok=True)
            (root / path).write_text(json.dumps(data), encoding="utf-8")
    for png in ("09_qualitative_figures/example.png", "03_finetuning/loss.png"):
        (root / png).write_bytes(b"\x89PNG\r\n\x1a\n")
    for stem in ("02_pretraining", "03_finetuning"):
        if f"{stem}/curves.csv" not in skip:
            with open(root / stem / "curves.csv", "w", newline="", encoding="utf-8") as handle:
                csv.writer(handle).writerows([["run", "epoch", "loss"], ["main", 0, 2.5], ["main", 1, 0.123456]])
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


def _header_of(markdown: str, title: str) -> list[str]:
    section = markdown.split(f"### {title}")[1]
    line = next(line for line in section.splitlines() if line.startswith("| row |"))
    return [cell.strip() for cell in line.strip("|").split("|")]


class _Page(HTMLParser):
    """What a browser shows: visible text, image sources, link targets, scripts."""

    def __init__(self) -> None:
        super().__init__()
        self.text: list[str] = []
        self.images: list[str] = []
        self.links: list[str] = []
        self.scripts = 0
        self._hidden = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        self.images += [values["src"] or ""] if tag == "img" else []
        self.links += [values["href"] or ""] if tag == "a" else []
        self.scripts += tag == "script"
        self._hidden += tag in ("style", "title", "script")

    def handle_endtag(self, tag: str) -> None:
        self._hidden -= tag in ("style", "title", "script")

    def handle_data(self, data: str) -> None:
        if not self._hidden:
            self.text.append(data)


def _page(page: str) -> _Page:
    parsed = _Page()
    parsed.feed(page)
    return parsed


# --- First line ---------------------------------------------------------------------------------


def test_first_line_names_a_random_init_backbone_and_the_data(report_dir: Path) -> None:
    readme, page = _build(report_dir)
    first = readme.splitlines()[0]
    assert first.startswith(f"**Backbone:** `{RANDOM_TAG}`") and "NOT comparable" in first
    assert "data: `synthetic-tiny`" in first
    body = page.split("<body>")[1].lstrip()
    assert body.startswith(f"<p><strong>Backbone:</strong> <code>{html.escape(RANDOM_TAG, quote=False)}</code>")


def test_first_line_names_another_offline_backbone_as_not_the_papers(report_dir: Path) -> None:
    readme, _ = _build(report_dir, weights_tag="dinov2-small:offline", dataset="synthetic-demo")
    first = readme.splitlines()[0]
    assert "`dinov2-small:offline`" in first and "not the paper's CLIP" in first and "`synthetic-demo`" in first


def test_first_line_of_the_papers_backbone_carries_no_warning(report_dir: Path) -> None:
    readme, _ = _build(report_dir, weights_tag="openai", dataset="SportsMoments")
    first = readme.splitlines()[0]
    assert "`openai`" in first and "as in the paper" in first and "not comparable" not in first.lower()


# --- Tables -------------------------------------------------------------------------------------


def test_each_paper_column_stands_right_after_our_same_metric(report_dir: Path) -> None:
    readme, _ = _build(report_dir)
    assert _header_of(readme, "Our table2_dual_alignment") == [
        "row",
        "pairs",
        "ours mIoU",
        "paper AN mIoU",
        "paper SM mIoU",
        "ours R1@0.5",
        "paper AN R1@0.5",
        "paper SM R1@0.5",
        "ours VRL_IoU_mean",
    ]


def test_numbers_carry_their_confidence_interval_and_the_paper_its_row(report_dir: Path) -> None:
    readme, page = _build(report_dir)
    assert _table_row(readme, "both alignments") == [
        "both alignments",
        "300",
        "12.3 [10.3, 14.3]",
        "53.2",
        "56.2",
        "22.0 [19.0, 25.0]",
        "54.8",
        "52.7",
        "4.0",
    ]
    assert _table_row(readme, "no paper row")[3:5] == ["—", "—"]
    assert _table_row(readme, "Random")[3:5] == ["7.3", "—"]
    assert '<td>12.3 [10.3, 14.3]</td><td class="paper">53.2</td>' in page


def test_rows_of_several_seeds_show_mean_and_std(report_dir: Path) -> None:
    readme, _ = _build(report_dir)
    assert _table_row(readme, "MATR, trained")[2] == "11.1 ± 1.2 [9.1, 13.1]"
    assert "Seeds: 3 for MATR, trained; 1 for Random." in readme
    assert format_cell({"value": 50.0, "ci": None, "std": 2.0, "seeds": 1}, "mIoU") == "50.0"


def test_each_claimed_ordering_gets_a_verdict_line(report_dir: Path) -> None:
    readme, _ = _build(report_dir)
    table2 = readme.split("### Our table2_dual_alignment")[1].split("###")[0]
    lines = [line for line in table2.splitlines() if "→" in line]
    assert lines == ["- both alignments beat neither: difference in `R1@0.5` +20.0 [+12.5, +27.2] → **holds**"]
    assert "→" not in readme.split("### Our table1_main")[1].split("###")[0]


def test_the_glossary_appears_once(report_dir: Path) -> None:
    readme, _ = _build(report_dir)
    assert readme.count("## Glossary") == 1
    assert readme.count(METRIC_DESCRIPTIONS["mIoU"]) == 1 and readme.count(METRIC_DESCRIPTIONS["R1@0.5"]) == 1
    assert "95% bootstrap confidence interval" in readme.split("## Results")[0]


def test_wide_tables_scroll_inside_their_own_box(report_dir: Path) -> None:
    _, page = _build(report_dir)
    assert ".scroll{overflow-x:auto" in page
    assert page.count('<div class="scroll"><table>') == page.count("<table>")


def test_a_row_matching_several_paper_rows_is_an_error(report_dir: Path) -> None:
    artifacts = write_artifacts(report_dir / "artifacts")
    path = artifacts / "04_table1_main_results" / "table.json"
    table = json.loads(path.read_text())
    table["paper_match"] = ["method"]  # MATR has three rows in the paper's Table 1
    path.write_text(json.dumps(table))
    with pytest.raises(ReportError, match="'MATR, trained' matches 3 rows"):
        build_report(report_dir, artifacts, "smoke")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda t: t["rows"][0]["metrics"].update({"R1@50": 1.0}), r"row 0: unknown metric.*R1@50"),
        (lambda t: t["rows"][0]["metrics"]["mIoU"].pop("ci"), r"row 0, metric 'mIoU': missing field\(s\) \['ci'\]"),
        (
            lambda t: t["rows"][0]["metrics"]["mIoU"].update(ci=[1.0]),
            r"row 0, metric 'mIoU': 'ci' must be \[low, high\]",
        ),
        (
            lambda t: t["rows"][0]["metrics"]["mIoU"].update(seeds=0),
            r"row 0, metric 'mIoU': 'seeds' must be a positive integer",
        ),
        (lambda t: t["verdicts"].append({**VERDICT, "b": "ghost"}), r"verdict 1: row\(s\) \['ghost'\] are not rows"),
    ],
)
def test_malformed_tables_are_errors_naming_file_and_field(report_dir: Path, change: Any, message: str) -> None:
    artifacts = write_artifacts(report_dir / "artifacts")
    path = artifacts / "05_table2_dual_alignment" / "table.json"
    table = json.loads(path.read_text())
    change(table)
    path.write_text(json.dumps(table))
    with pytest.raises(ReportError, match=r"05_table2_dual_alignment/table\.json, " + message):
        build_report(report_dir, artifacts, "smoke")


def test_a_further_table_follows_its_notebooks_table_without_paper_columns(report_dir: Path) -> None:
    readme, _ = _build(report_dir)
    results = readme.split("## Results")[1]
    assert results.index("### Our table1_main") < results.index("### Our query_use") < results.index("### Our table2")
    assert _header_of(readme, "Our query_use") == ["row", "pairs", "ours mIoU", "ours R1@0.5", "ours VRL_IoU_mean"]
    section = results.split("### Our query_use")[1].split("###")[0]
    assert "Not a table of the paper: no paper numbers" in section and "The expected orderings" in section
    assert [line for line in section.splitlines() if "→" in line] == [
        "- VM, own query > VM, other-class query: difference in `R1@0.5` +24.0 [+20.0, +28.0] → **holds**"
    ]


def test_a_further_table_must_be_named_after_its_key(report_dir: Path) -> None:
    artifacts = write_artifacts(report_dir / "artifacts")
    folder = artifacts / "04_table1_main_results"
    (folder / "table_query_use.json").rename(folder / "table_swap.json")
    with pytest.raises(ReportError, match=r"table_swap\.json: holds table 'query_use'; name it table_query_use\.json"):
        build_report(report_dir, artifacts, "smoke")


# --- Completeness and consistency ---------------------------------------------------------------


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


def test_artifacts_with_different_backbone_tags_are_refused(report_dir: Path) -> None:
    artifacts = write_artifacts(report_dir / "artifacts")
    (artifacts / "01_data_curation" / "provenance.json").write_text(
        json.dumps(_provenance("openai", "smoke", "synthetic-tiny"))
    )
    with pytest.raises(ReportError, match="disagree on the backbone tag"):
        build_report(report_dir, artifacts, "smoke")


# --- The page a browser shows -------------------------------------------------------------------


def test_no_raw_markup_reaches_the_page(report_dir: Path) -> None:
    _, page = _build(report_dir)
    visible = "".join(_page(page).text)
    assert "Caption of table1_main" in visible and "matr.experiments.tables.get_table" in visible
    for mark in ("**", "`", ":func:"):
        assert mark not in visible, mark


def test_prose_turns_roles_backticks_and_bold_into_spans_and_drops_stray_marks() -> None:
    spans = prose("see :func:`f` and ``g`` or `h`, **bold** and **stray")
    assert [(s.kind, s.text) for s in spans] == [
        ("plain", "see "),
        ("code", "f"),
        ("plain", " and "),
        ("code", "g"),
        ("plain", " or "),
        ("code", "h"),
        ("plain", ", "),
        ("bold", "bold"),
        ("plain", " and stray"),
    ]


def test_every_image_and_link_is_a_relative_path_that_exists(report_dir: Path) -> None:
    _, page = _build(report_dir)
    parsed = _page(page)
    assert parsed.images and parsed.scripts == 0
    for target in parsed.images + parsed.links:
        assert not re.match(r"^[a-z]+:|^/", target), target
        assert (report_dir / target).exists(), target


def test_figures_sit_in_grids_under_their_section(report_dir: Path) -> None:
    readme, page = _build(report_dir)
    assert "![A retrieved moment](artifacts/09_qualitative_figures/example.png)" in readme
    assert "(artifacts/03_finetuning/loss.png)" in readme.split("## Training curves")[1]
    assert '<div class="grid">\n<figure>\n<img src="artifacts/09_qualitative_figures/example.png"' in page


def test_training_curves_show_each_runs_last_epoch(report_dir: Path) -> None:
    readme, _ = _build(report_dir)
    assert _table_row(readme.split("### `03_finetuning`")[1], "main") == ["main", "1", "0.1235"]


# --- Choices and provenance ---------------------------------------------------------------------


def test_choices_are_credited_to_every_notebook_that_lists_them(report_dir: Path) -> None:
    readme, _ = _build(report_dir)
    choices = readme.split("## Choices where the paper is silent")[1].split("## Provenance")[0]
    assert _table_row(choices, "soft-min gamma") == [
        "soft-min gamma",
        "0.1",
        "the paper: `selected empirically`",
        "`matr.align`",
        "`03_finetuning`, `05_table2_dual_alignment`",
    ]
    assert _table_row(choices, "NMS threshold")[-2:] == ["`matr.postprocess`", "`03_finetuning`"]


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
        "git commit: `abc1234` (a clean working tree)",
        "seed: `0`",
        f"backbone tag: `{RANDOM_TAG}`",
        "dataset: `synthetic-tiny`; split: `test`",
        "hardware: processor x86_64, cpu_count 2",
    ):
        assert text in provenance
    assert _table_row(provenance, "04_table1_main_results")[:2] == ["04_table1_main_results", "12.5"]
    assert _table_row(provenance, "01_data_curation")[1] == "—"


def test_provenance_says_when_the_tree_had_uncommitted_changes(report_dir: Path) -> None:
    readme, _ = _build(report_dir, commit="abc1234-dirty")
    assert "git commit: `abc1234-dirty` (dirty: the working tree had uncommitted changes" in readme


def test_same_artifacts_give_the_same_report(report_dir: Path) -> None:
    first, _ = _build(report_dir)
    second = build_report(report_dir, report_dir / "artifacts", "smoke").read_text()
    assert first == second


def test_commit_is_marked_dirty_by_code_changes_but_not_by_the_reports_a_run_writes(tmp_path: Path) -> None:
    def git(*args: str) -> None:
        subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=tmp_path, check=True)

    git("init", "-q")
    (tmp_path / "reports").mkdir()
    (tmp_path / "reports" / "README.md").write_text("old")
    git("add", "-A")
    git("commit", "-q", "-m", "first")
    (tmp_path / "reports" / "README.md").write_text("regenerated")
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "features.npy").write_text("x")
    clean = git_commit(tmp_path)
    (tmp_path / "new_module.py").write_text("x = 1")
    assert re.fullmatch(r"[0-9a-f]{40}", clean) and git_commit(tmp_path) == clean + DIRTY_SUFFIX
