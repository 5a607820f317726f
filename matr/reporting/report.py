"""The report: every table with our numbers and their 95% CIs next to the paper's, verdicts, figures, provenance.

:func:`build_report` reads what the notebooks wrote (:mod:`matr.reporting.artifacts`) and writes
``out_dir/README.md`` and ``out_dir/report.html`` from the same blocks (:mod:`matr.reporting.render`).
Its first line names the backbone tag and the data. Sections, in order: glossary (once), results
(each notebook's table, its verdicts and figures, then its further tables), figures, training
curves, choices where the paper is silent (credited to the notebooks whose ``choices.json`` lists
them), provenance (git commit, uncommitted changes, hardware, per-notebook times from
``out_dir/timings.json``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from matr.experiments.tables import METRIC_COLUMNS, PAPER_COLUMNS, PAPER_METRIC, paper_row, reported_results
from matr.io import write_text
from matr.metrics import METRIC_DESCRIPTIONS
from matr.provenance import is_random_init
from matr.reporting import render as r
from matr.reporting.artifacts import (
    EXPECTED_ARTIFACTS,
    NotebookArtifacts,
    ReportError,
    check_consistency,
    load_artifacts,
    missing_artifacts,
    provenance_records,
    read_json,
)
from matr.reporting.sections import (
    EXECUTED_DIR,
    NOT_AVAILABLE,
    TIMINGS_FILE,
    Context,
    choices_blocks,
    curves_blocks,
    figure_grid,
    provenance_blocks,
)


def build_report(
    out_dir: str | os.PathLike,
    artifacts_dir: str | os.PathLike,
    profile: str,
    *,
    expected: Mapping[str, Sequence[str]] = EXPECTED_ARTIFACTS,
    allow_missing: bool = False,
) -> Path:
    """Write ``out_dir/README.md`` and ``out_dir/report.html`` from ``artifacts_dir``; returns the README path.

    Missing expected artifacts raise :class:`ReportError` listing them all, unless ``allow_missing``
    is set: then the report says at its top what was not produced.
    """
    out_dir, artifacts_dir = Path(out_dir), Path(artifacts_dir)
    missing = missing_artifacts(artifacts_dir, expected)
    if missing and not allow_missing:
        listing = "; ".join(f"{stem}: {', '.join(names)}" for stem, names in missing.items())
        raise ReportError(f"missing artifacts in {artifacts_dir}: {listing}")
    paper = reported_results()
    notebooks = load_artifacts(artifacts_dir, paper)
    records = provenance_records(notebooks)
    check_consistency(records, profile)
    context = Context(out_dir, profile, paper, records, read_json(out_dir / TIMINGS_FILE) or {}, missing, expected)
    blocks = report_blocks(notebooks, context)
    write_text(out_dir / "README.md", r.to_markdown(blocks))
    write_text(out_dir / "report.html", r.to_html(blocks, title=f"MATR reproduction report ({profile})"))
    return out_dir / "README.md"


def report_blocks(notebooks: Sequence[NotebookArtifacts], context: Context) -> list[r.Block]:
    """The report's sections, in order (module docstring)."""
    return [
        *_header_blocks(context),
        *_glossary_blocks(notebooks, context),
        *_results_blocks(notebooks, context),
        *_figures_blocks(notebooks, context),
        *curves_blocks(notebooks, context),
        *choices_blocks(notebooks),
        *provenance_blocks(notebooks, context),
    ]


def backbone_statement(tags: Sequence[str], datasets: Sequence[str]) -> r.Text:
    """The report's first line: the backbone tag that produced the numbers, the data, and what that means."""
    data = [part for name in datasets for part in (r.code(name), ", ")][:-1] or ["unknown data"]
    synthetic = bool(datasets) and all(name.startswith("synthetic") for name in datasets)
    if not tags:
        return r.text(r.bold("Backbone: unknown (no provenance was produced)"), "; data: ", *data, ".")
    tag = tags[0]
    if is_random_init(tag):
        meaning = "a random-init CLIP backbone: the numbers are NOT comparable to the paper's"
    elif tag == "openai":
        meaning = "OpenAI CLIP ViT-B/32, frozen, as in the paper"
    else:
        meaning = "an offline backbone, not the paper's CLIP: the numbers are NOT comparable to the paper's"
    where = " (synthetic: the numbers test the method and the code, not the paper's benchmarks)" if synthetic else ""
    return r.text(r.bold("Backbone:"), " ", r.code(tag), f" ({meaning}); data: ", *data, f"{where}.")


def _header_blocks(context: Context) -> list[r.Block]:
    blocks: list[r.Block] = [
        r.Paragraph(backbone_statement(context.distinct("weights_tag"), context.distinct("dataset"))),
        r.Heading(1, r.text("MATR reproduction report: profile ", r.code(context.profile))),
        r.Paragraph(r.text("Our numbers next to those the MATR paper (ICCV 2025) reports; provenance at the end.")),
    ]
    if (context.out_dir / EXECUTED_DIR).is_dir():
        blocks.append(r.Paragraph(r.text("Executed notebooks: ", r.link(f"{EXECUTED_DIR}/", f"{EXECUTED_DIR}/"), ".")))
    if context.missing:
        items = [r.text(r.code(stem), ": " + ", ".join(names)) for stem, names in context.missing.items()]
        blocks += [
            r.Paragraph(r.text(r.bold("Partial report: these notebooks did not produce their artifacts:"))),
            r.Bullets(tuple(items)),
        ]
    return blocks


# --- Glossary and tables ------------------------------------------------------------------------


def _glossary_blocks(notebooks: Sequence[NotebookArtifacts], context: Context) -> list[r.Block]:
    tables = [table for nb in notebooks for table in nb.tables]
    if not tables:
        return []
    ours = _our_columns(tables)
    theirs = sorted({name for t in tables for name in _paper_columns(t, context, ours)})
    items = [
        r.text(
            "Each of our numbers: the value, then its 95% bootstrap confidence interval over test pairs in brackets."
        ),
        r.text(
            "Rows trained with several seeds: mean ± std across seeds; the interval resamples the seeds as well as the pairs."
        ),
        r.text("pairs: ", METRIC_DESCRIPTIONS["num_pairs"], " (test pairs)."),
        *(r.text(r.code(name), f": {METRIC_DESCRIPTIONS[name]}") for name in ours),
        r.text("AN = ActivityNet-VRL, SM = SportsMoments: the paper's two benchmarks; ", NOT_AVAILABLE, " = no match."),
    ]
    if any(name.endswith("mIoU") for name in theirs):
        items.append(
            r.text(
                "paper mIoU: the paper's column as printed; on ActivityNet-VRL it may be the VRL 'IoU/mean' "
                "(compare with ours ",
                r.code("VRL_IoU_mean"),
                "), not a true mean IoU.",
            )
        )
    return [r.Heading(2, r.text("Glossary")), r.Bullets(tuple(items))]


def _our_columns(tables: Sequence[Mapping[str, Any]]) -> list[str]:
    present = {name for table in tables for row in table["rows"] for name in row["metrics"]} - {"num_pairs"}
    return [name for name in METRIC_COLUMNS if name in present]


def _paper_columns(table: Mapping[str, Any], context: Context, ours: Sequence[str]) -> list[str]:
    paper_rows = context.paper.get(table["table"], [])
    return [
        name
        for name in PAPER_COLUMNS
        if PAPER_METRIC[name] in ours and table["paper_match"] and any(name in row for row in paper_rows)
    ]


def _results_blocks(notebooks: Sequence[NotebookArtifacts], context: Context) -> list[r.Block]:
    blocks: list[r.Block] = [r.Heading(2, r.text("Results"))]
    by_stem = {nb.stem: nb for nb in notebooks}
    stems = sorted(
        {
            *(nb.stem for nb in notebooks if nb.table is not None),
            *(stem for stem, names in context.expected.items() if "table.json" in names),
        }
    )
    for stem in stems:
        nb = by_stem.get(stem)
        if nb is None or nb.table is None:
            blocks += [
                r.Heading(3, r.text(r.code(stem))),
                r.Paragraph(r.text(r.bold("Not produced"), ": this notebook wrote no table.json.")),
            ]
            continue
        blocks += table_blocks(nb, nb.table, context)
        blocks += figure_grid(nb, nb.figures_of("figure"), context)
        for table in nb.extra_tables:
            blocks += table_blocks(nb, table, context)
    return blocks


def table_blocks(nb: NotebookArtifacts, table: Mapping[str, Any], context: Context) -> list[r.Block]:
    """Title, caption, our numbers next to the paper's, and one verdict line per claimed ordering of ``table``."""
    ours = _our_columns([table])
    theirs = _paper_columns(table, context, ours)
    columns = [(name, [p for p in theirs if PAPER_METRIC[p] == name]) for name in ours]
    header = [r.text("row"), r.text("pairs")]
    for name, paper in columns:
        header += [r.text(f"ours {name}"), *(r.text(PAPER_COLUMNS[p]) for p in paper)]
    rows = []
    for row in table["rows"]:
        match = _match(row, table, context, nb.stem)
        cells = [r.text(row["label"]), r.text(_pairs(row))]
        for name, paper in columns:
            cells += [r.text(format_cell(row["metrics"].get(name), name))]
            cells += [r.text(_paper_number((match or {}).get(p))) for p in paper]
        rows.append(tuple(cells))
    matched = [part for name in table["paper_match"] for part in (r.code(name), ", ")][:-1]
    in_paper = table["table"] in context.paper
    compared = (
        [". Paper rows matched on ", *(matched or ["nothing (no row is compared)"])]
        if in_paper
        else [". Not a table of the paper: no paper numbers"]
    )
    return [
        r.Heading(3, r.prose(table["title"])),
        r.Paragraph(r.prose(table["caption"])),
        r.Paragraph(
            r.text(
                "Ours: dataset ",
                r.code(table["dataset"]),
                ", split ",
                r.code(table["split"]),
                *compared,
                f". {_seeds_sentence(table['rows'])}",
            )
        ),
        r.Table(tuple(header), tuple(rows)),
        *_verdict_blocks(table, in_paper),
    ]


def _seeds_sentence(rows: Sequence[Mapping[str, Any]]) -> str:
    """Which rows were trained with how many seeds, e.g. ``"Seeds: 3 for A, B; 1 for C."``."""
    groups: dict[int, list[str]] = {}
    for row in rows:
        counts = [cell["seeds"] for cell in row["metrics"].values() if isinstance(cell, dict)]
        groups.setdefault(max(counts, default=1), []).append(row["label"])
    if len(groups) == 1:
        (count,) = groups
        return f"Every row: {count} seed{'s' if count > 1 else ''}."
    parts = [f"{count} for {', '.join(labels)}" for count, labels in sorted(groups.items(), reverse=True)]
    return f"Seeds: {'; '.join(parts)}."


def _match(row: Mapping[str, Any], table: Mapping[str, Any], context: Context, stem: str) -> Mapping[str, Any] | None:
    try:
        return paper_row(row, context.paper.get(table["table"], []), table["paper_match"])
    except ValueError as error:
        raise ReportError(f"{stem}/table.json: {error}; add fields to paper_match") from error


def format_cell(cell: Any, name: str) -> str:
    """``value [low, high]``, or ``mean ± std [low, high]`` over seeds; counts as integers; None as —."""
    if cell is None:
        return NOT_AVAILABLE
    if not isinstance(cell, dict):
        cell = {"value": cell, "ci": None, "std": None, "seeds": 1}
    if name == "num_pairs":
        return str(int(cell["value"]))
    text = f"{cell['value']:.1f}"
    if cell["seeds"] > 1 and cell["std"] is not None:
        text += f" ± {cell['std']:.1f}"
    if cell["ci"] is not None:
        text += f" [{cell['ci'][0]:.1f}, {cell['ci'][1]:.1f}]"
    return text


def _pairs(row: Mapping[str, Any]) -> str:
    count = row.get("num_pairs", row["metrics"].get("num_pairs"))
    return NOT_AVAILABLE if count is None else format_cell(count, "num_pairs")


def _paper_number(value: Any) -> str:
    return NOT_AVAILABLE if value is None else f"{float(value):.1f}"


def _verdict_blocks(table: Mapping[str, Any], in_paper: bool) -> list[r.Block]:
    verdicts = table.get("verdicts", [])
    if not verdicts:
        return []
    items = tuple(
        r.text(
            *r.prose(v["claim"]),
            ": difference in ",
            r.code(v["metric"]),
            f" {v['diff']:+.1f} [{v['ci'][0]:+.1f}, {v['ci'][1]:+.1f}] → ",
            r.bold(v["verdict"]),
        )
        for v in verdicts
    )
    intro = r.text(
        "The paper's orderings" if in_paper else "The expected orderings",
        " (first row minus second row), tested by a paired bootstrap over the same test pairs and each row's seeds (95% interval):",
    )
    return [r.Paragraph(intro), r.Bullets(items)]


# --- Figures ------------------------------------------------------------------------------------


def _figures_blocks(notebooks: Sequence[NotebookArtifacts], context: Context) -> list[r.Block]:
    blocks: list[r.Block] = [r.Heading(2, r.text("Figures"))]
    for nb in notebooks:
        figures = nb.figures_of("figure")
        if nb.table is None and figures:
            blocks += [r.Heading(3, r.text(r.code(nb.stem))), *figure_grid(nb, figures, context)]
    for stem, names in context.missing.items():
        if "figures.json" in names:
            blocks += [
                r.Heading(3, r.text(r.code(stem))),
                r.Paragraph(r.text(r.bold("Not produced"), ": this notebook wrote no figures.json.")),
            ]
    return blocks if len(blocks) > 1 else []
