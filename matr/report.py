"""The report: every table with our numbers next to the paper's, the figures, training curves and provenance.

:func:`build_report` reads what the notebooks wrote and writes ``out_dir/README.md`` and
``out_dir/report.html`` (the same content; the HTML shows the figures inline through ``<img>``
tags with paths relative to ``out_dir``). Its first line states the CLIP backbone weights tag; for a
random-init backbone it says, in bold, that the numbers are not comparable to the paper's.

ARTIFACT CONTRACT
-----------------
Notebook ``notebooks/NN_name.ipynb`` writes into ``<artifacts>/NN_name/`` (``<artifacts>`` is its
``artifacts`` parameter), each file written atomically with :mod:`matr.io`:

``provenance.json`` (every notebook)
    ``matr.provenance.provenance(profile=profile, seed=seed, weights_tag=..., dataset=..., split=...,
    ...)``: keys ``profile``, ``seed``, ``weights_tag``, ``dataset`` are required, ``split`` where
    the notebook has one (added keys are kept).
``table.json`` (results notebooks)
    ``{"table": key of reported_results.json, e.g. "table2_dual_alignment", "title": str,
    "caption": str, "dataset": str, "split": str, "paper_match": [field, ...],
    "rows": [{"label": str, <each paper_match field>: value, "metrics": {metric: number}}],
    "provenance": provenance(...)}``. Metric names are those of
    :data:`matr.metrics.METRIC_DESCRIPTIONS` (``matr.metrics.evaluate`` output as is, in percent).
    A row is shown next to the paper's row whose ``paper_match`` fields all equal its own (JSON
    values: ``true``, ``"soft-DTW"``, ...); no such row gives "—", several are an error.
    ``"paper_match": []`` compares no row.
``figures.json`` (optional; required from the figures notebook)
    ``[{"file": "x.png", "title": str, "caption": str, "kind": "figure" | "curves"}]``, each file
    next to it. ``kind`` (default ``"figure"``): ``"curves"`` figures go under Training curves,
    others under their notebook's table, or under Figures for notebooks without a table.
``curves.csv`` (optional; required from the training notebooks)
    Training curves: a header ``run,epoch,<quantity>,...`` then one row per run and epoch. The
    report shows each run's last epoch and links the file; plots belong in ``figures.json``.
``choices.json`` (optional)
    ``[{"what": str, "choice": str, "where": str}]``: choices made where the paper is silent.

:data:`EXPECTED_ARTIFACTS` lists the files each planned notebook must write. Every
``provenance.json`` and table provenance must carry the report's profile and one and the same
weights tag, so one report never mixes runs of different settings. Per-notebook wall-clock times
come from ``out_dir/timings.json`` (written by :func:`matr.notebooks.run_notebooks`).
"""

from __future__ import annotations

import csv
import html
import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Any

from matr.io import write_text
from matr.metrics import METRIC_DESCRIPTIONS
from matr.provenance import is_random_init

_TABLE_NOTEBOOK = ("provenance.json", "table.json")
EXPECTED_ARTIFACTS: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "01_data_curation": ("provenance.json",),
        "02_pretraining": ("provenance.json", "curves.csv"),
        "03_finetuning": ("provenance.json", "curves.csv"),
        "04_table1_main_results": _TABLE_NOTEBOOK,
        "05_table2_dual_alignment": _TABLE_NOTEBOOK,
        "06_table3_pretraining": _TABLE_NOTEBOOK,
        "07_table4_heads_vs_alignment": _TABLE_NOTEBOOK,
        "08_table5_alignment_methods": _TABLE_NOTEBOOK,
        "09_qualitative_figures": ("provenance.json", "figures.json"),
    }
)
TIMINGS_FILE = "timings.json"
EXECUTED_DIR = "notebooks"
PROVENANCE_KEYS: tuple[str, ...] = ("profile", "seed", "weights_tag", "dataset")
TABLE_KEYS: tuple[str, ...] = ("table", "title", "caption", "dataset", "split", "paper_match", "rows", "provenance")
OUR_METRICS: tuple[str, ...] = (
    "mIoU",
    "R1@0.5",
    "R1@0.3",
    "R1@0.7",
    "R5@0.3",
    "R5@0.5",
    "R5@0.7",
    "VRL_IoU_mean",
    "num_pairs",
)
PAPER_COLUMNS: Mapping[str, str] = MappingProxyType(
    {
        "AN_mIoU": "paper AN mIoU",
        "AN_R1": "paper AN R1@0.5",
        "SM_mIoU": "paper SM mIoU",
        "SM_R1": "paper SM R1@0.5",
    }
)
FIGURE_KINDS: tuple[str, ...] = ("figure", "curves")
NOT_AVAILABLE = "—"


class ReportError(ValueError):
    """Artifacts are missing, malformed or inconsistent; the message names the files and fields."""


def reported_results() -> dict[str, Any]:
    """The paper's numbers (``matr/resources/reported_results.json``), keyed by table."""
    return json.loads(resources.files("matr").joinpath("resources/reported_results.json").read_text("utf-8"))


# --- Reading artifacts --------------------------------------------------------------------------


@dataclass(frozen=True)
class NotebookArtifacts:
    """What one notebook wrote into ``artifacts/<stem>/`` (module docstring), checked."""

    stem: str
    folder: Path
    provenance: dict[str, Any] | None = None
    table: dict[str, Any] | None = None
    figures: list[dict[str, str]] = field(default_factory=list)
    curves: list[dict[str, str]] | None = None
    choices: list[dict[str, str]] = field(default_factory=list)


def missing_artifacts(
    artifacts_dir: str | os.PathLike, expected: Mapping[str, Sequence[str]] = EXPECTED_ARTIFACTS
) -> dict[str, list[str]]:
    """``stem -> [file, ...]`` of the expected artifact files that do not exist (empty when all do)."""
    root = Path(artifacts_dir)
    missing = {stem: [name for name in names if not (root / stem / name).is_file()] for stem, names in expected.items()}
    return {stem: names for stem, names in missing.items() if names}


def load_artifacts(artifacts_dir: str | os.PathLike, paper: Mapping[str, Any]) -> list[NotebookArtifacts]:
    """Every notebook folder under ``artifacts_dir`` (sorted), each file checked against the contract."""
    root = Path(artifacts_dir)
    folders = sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
    return [_load_folder(folder, paper) for folder in folders]


def _load_folder(folder: Path, paper: Mapping[str, Any]) -> NotebookArtifacts:
    provenance = _optional_json(folder / "provenance.json")
    if provenance is not None:
        _require_keys(provenance, PROVENANCE_KEYS, folder / "provenance.json")
    table = _optional_json(folder / "table.json")
    if table is not None:
        _check_table(table, folder / "table.json", paper)
    figures = _optional_records(folder / "figures.json", ("file", "title", "caption"))
    for figure in figures:
        _check_figure(figure, folder)
    choices = _optional_records(folder / "choices.json", ("what", "choice", "where"))
    return NotebookArtifacts(
        stem=folder.name,
        folder=folder,
        provenance=provenance,
        table=table,
        figures=figures,
        curves=_read_curves(folder / "curves.csv"),
        choices=choices,
    )


def _optional_json(path: Path) -> Any:
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ReportError(f"{path}: not valid JSON ({error.msg}, line {error.lineno})") from error


def _require_keys(record: Any, keys: Sequence[str], where: Path | str) -> None:
    if not isinstance(record, dict):
        raise ReportError(f"{where}: expected a JSON object, got {type(record).__name__}")
    absent = [key for key in keys if key not in record]
    if absent:
        raise ReportError(f"{where}: missing field(s) {absent}; expected {list(keys)}")


def _optional_records(path: Path, keys: Sequence[str]) -> list[dict[str, Any]]:
    """A JSON list of objects with ``keys`` (``[]`` when the file does not exist)."""
    records = _optional_json(path)
    if records is None:
        return []
    if not isinstance(records, list):
        raise ReportError(f"{path}: expected a JSON list, got {type(records).__name__}")
    for index, record in enumerate(records):
        _require_keys(record, keys, f"{path}, entry {index}")
    return records


def _check_figure(figure: dict[str, str], folder: Path) -> None:
    where = folder / "figures.json"
    if figure.get("kind", "figure") not in FIGURE_KINDS:
        raise ReportError(
            f"{where}: figure {figure['file']!r} has kind {figure['kind']!r}; expected one of {FIGURE_KINDS}"
        )
    if not (folder / figure["file"]).is_file():
        raise ReportError(f"{where}: lists {figure['file']!r}, but {folder / figure['file']} does not exist")


def _check_table(table: Any, where: Path, paper: Mapping[str, Any]) -> None:
    _require_keys(table, TABLE_KEYS, where)
    _require_keys(table["provenance"], PROVENANCE_KEYS, f"{where}, provenance")
    if table["table"] not in paper or not isinstance(paper[table["table"]], list):
        tables = sorted(key for key, value in paper.items() if isinstance(value, list))
        raise ReportError(
            f"{where}: table {table['table']!r} is not in reported_results.json; expected one of {tables}"
        )
    paper_fields = {name for row in paper[table["table"]] for name in row}
    unknown_fields = [name for name in table["paper_match"] if name not in paper_fields]
    if unknown_fields:
        raise ReportError(
            f"{where}: paper_match field(s) {unknown_fields} are not columns of the paper's "
            f"{table['table']}; its columns: {sorted(paper_fields)}"
        )
    if not isinstance(table["rows"], list) or not table["rows"]:
        raise ReportError(f"{where}: 'rows' must be a non-empty list")
    for index, row in enumerate(table["rows"]):
        _check_row(row, table["paper_match"], f"{where}, row {index}")


def _check_row(row: Any, match_fields: Sequence[str], where: str) -> None:
    _require_keys(row, ("label", "metrics", *match_fields), where)
    metrics = row["metrics"]
    if not isinstance(metrics, dict):
        raise ReportError(f"{where}: 'metrics' must be an object of metric -> number")
    unknown = sorted(set(metrics) - set(METRIC_DESCRIPTIONS))
    if unknown:
        raise ReportError(f"{where}: unknown metric(s) {unknown}; known: {sorted(METRIC_DESCRIPTIONS)}")
    not_numbers = sorted(
        name for name, value in metrics.items() if isinstance(value, bool) or not isinstance(value, (int, float))
    )
    if not_numbers:
        raise ReportError(f"{where}: metric(s) {not_numbers} are not numbers")


def _read_curves(path: Path) -> list[dict[str, str]] | None:
    if not path.is_file():
        return None
    with open(path, encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        if reader.fieldnames is None or not {"run", "epoch"} <= set(reader.fieldnames):
            raise ReportError(f"{path}: expected a header starting with run,epoch; got {reader.fieldnames}")
        return list(reader)


def _read_timings(out_dir: Path) -> dict[str, dict[str, Any]]:
    return _optional_json(out_dir / TIMINGS_FILE) or {}


# --- Consistency --------------------------------------------------------------------------------


def _provenance_records(notebooks: Sequence[NotebookArtifacts]) -> list[tuple[str, dict[str, Any]]]:
    """``(where, record)`` of every provenance.json and table provenance."""
    records = []
    for nb in notebooks:
        if nb.provenance is not None:
            records.append((f"{nb.stem}/provenance.json", nb.provenance))
        if nb.table is not None:
            records.append((f"{nb.stem}/table.json", nb.table["provenance"]))
    return records


def _check_consistency(records: Sequence[tuple[str, dict[str, Any]]], profile: str) -> None:
    other_profile = [f"{where} ({record['profile']!r})" for where, record in records if record["profile"] != profile]
    if other_profile:
        raise ReportError(
            f"artifacts of another profile than {profile!r}: {', '.join(other_profile)}; "
            "re-run those notebooks with this profile or build the report elsewhere"
        )
    tags = {record["weights_tag"] for _, record in records}
    if len(tags) > 1:
        listing = ", ".join(f"{where} {record['weights_tag']!r}" for where, record in records)
        raise ReportError(f"artifacts disagree on the backbone weights tag: {listing}; re-run the whole series")


def _distinct(records: Sequence[tuple[str, dict[str, Any]]], key: str) -> list[str]:
    return sorted({str(record[key]) for _, record in records if key in record})


# --- Building -----------------------------------------------------------------------------------


def build_report(
    out_dir: str | os.PathLike,
    artifacts_dir: str | os.PathLike,
    profile: str,
    *,
    expected: Mapping[str, Sequence[str]] = EXPECTED_ARTIFACTS,
    allow_missing: bool = False,
) -> Path:
    """Write ``out_dir/README.md`` and ``out_dir/report.html`` from ``artifacts_dir``; returns the README path.

    Missing expected artifacts raise :class:`ReportError` listing them all, unless
    ``allow_missing`` is set: then the report says at its top what was not produced.
    """
    out_dir, artifacts_dir = Path(out_dir), Path(artifacts_dir)
    missing = missing_artifacts(artifacts_dir, expected)
    if missing and not allow_missing:
        listing = "; ".join(f"{stem}: {', '.join(names)}" for stem, names in missing.items())
        raise ReportError(f"missing artifacts in {artifacts_dir}: {listing}")
    paper = reported_results()
    notebooks = load_artifacts(artifacts_dir, paper)
    records = _provenance_records(notebooks)
    _check_consistency(records, profile)
    context = _Context(
        out_dir=out_dir,
        profile=profile,
        paper=paper,
        records=records,
        timings=_read_timings(out_dir),
        missing=missing,
        expected=expected,
    )
    blocks = render_blocks(notebooks, context)
    write_text(out_dir / "README.md", to_markdown(blocks))
    write_text(out_dir / "report.html", to_html(blocks, title=f"MATR reproduction report ({profile})"))
    return out_dir / "README.md"


@dataclass(frozen=True)
class _Context:
    out_dir: Path
    profile: str
    paper: Mapping[str, Any]
    records: Sequence[tuple[str, dict[str, Any]]]
    timings: Mapping[str, Mapping[str, Any]]
    missing: Mapping[str, Sequence[str]]
    expected: Mapping[str, Sequence[str]]

    def relative(self, path: Path) -> str:
        """``path`` relative to the report folder, with forward slashes (for links and <img>)."""
        return Path(os.path.relpath(path, self.out_dir)).as_posix()


# Blocks: the report's content once, rendered to Markdown and to HTML. Text uses three inline
# marks of Markdown, which the HTML renderer translates: **bold**, `code`, [text](href).


@dataclass(frozen=True)
class Heading:
    level: int
    text: str


@dataclass(frozen=True)
class Paragraph:
    text: str


@dataclass(frozen=True)
class Bullets:
    items: Sequence[str]


@dataclass(frozen=True)
class Table:
    header: Sequence[str]
    rows: Sequence[Sequence[str]]


@dataclass(frozen=True)
class Figure:
    src: str
    title: str
    caption: str


Block = Heading | Paragraph | Bullets | Table | Figure


def render_blocks(notebooks: Sequence[NotebookArtifacts], context: _Context) -> list[Block]:
    """The report's sections, in order: weights line, results tables, figures, curves, choices, provenance."""
    return [
        *_header_blocks(context),
        *_results_blocks(notebooks, context),
        *_figures_blocks(notebooks, context),
        *_curves_blocks(notebooks, context),
        *_choices_blocks(notebooks),
        *_provenance_blocks(notebooks, context),
    ]


def weights_statement(tags: Sequence[str], datasets: Sequence[str]) -> str:
    """The report's first line: which backbone weights produced the numbers, and what that means."""
    data = ", ".join(f"`{name}`" for name in datasets) or "unknown data"
    synthetic = bool(datasets) and all(name.startswith("synthetic") for name in datasets)
    if not tags:
        return (
            "**Backbone weights: unknown (no provenance was produced), so these numbers are not comparable to "
            "the paper's.**"
        )
    tag = tags[0]
    if is_random_init(tag):
        where = f"synthetic demo data ({data})" if synthetic else data
        return (
            f"**Backbone weights: `{tag}`. These numbers come from a random-init CLIP backbone on {where} and are "
            "NOT comparable to the paper's.**"
        )
    line = f"Backbone weights: `{tag}`"
    line += " (OpenAI CLIP ViT-B/32, frozen, as in the paper)." if tag == "openai" else "."
    if synthetic:
        line += f" Data: {data}, synthetic: the numbers test the code; they are not the paper's benchmarks."
    return line


def _header_blocks(context: _Context) -> list[Block]:
    blocks: list[Block] = [
        Paragraph(weights_statement(_distinct(context.records, "weights_tag"), _distinct(context.records, "dataset"))),
        Heading(1, f"MATR reproduction report: profile `{context.profile}`"),
        Paragraph(
            "Our numbers next to those the MATR paper (ICCV 2025) reports. Executed notebooks: "
            f"[{EXECUTED_DIR}/]({EXECUTED_DIR}/); provenance at the end."
        ),
    ]
    if context.missing:
        items = [f"`{stem}`: {', '.join(names)}" for stem, names in context.missing.items()]
        blocks += [
            Paragraph("**Partial report: these notebooks did not produce their artifacts (not produced):**"),
            Bullets(items),
        ]
    return blocks


def _results_blocks(notebooks: Sequence[NotebookArtifacts], context: _Context) -> list[Block]:
    blocks: list[Block] = [Heading(2, "Results")]
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
            blocks += [Heading(3, f"`{stem}`"), Paragraph("**Not produced**: this notebook wrote no table.json.")]
            continue
        blocks += _table_blocks(nb, context)
        blocks += [_figure(nb, figure, context) for figure in nb.figures if figure.get("kind", "figure") == "figure"]
    return blocks


def _table_blocks(nb: NotebookArtifacts, context: _Context) -> list[Block]:
    table = nb.table
    paper_rows = context.paper[table["table"]]
    ours = [name for name in OUR_METRICS if any(name in row["metrics"] for row in table["rows"])]
    theirs = [name for name in PAPER_COLUMNS if any(name in row for row in paper_rows)]
    rows = []
    for row in table["rows"]:
        match = _paper_row(row, paper_rows, table["paper_match"], f"{nb.stem}/table.json")
        rows.append(
            [
                row["label"],
                *(_number(row["metrics"].get(name), name) for name in ours),
                *(_number(match.get(name) if match else None, name) for name in theirs),
            ]
        )
    matched_on = ", ".join(f"`{name}`" for name in table["paper_match"]) or "nothing (no row is compared)"
    return [
        Heading(3, table["title"]),
        Paragraph(table["caption"]),
        Paragraph(
            f"Ours: dataset `{table['dataset']}`, split `{table['split']}`. Paper: `{table['table']}` of "
            f"reported_results.json (AN = ActivityNet-VRL, SM = SportsMoments), rows matched on {matched_on}; "
            f"{NOT_AVAILABLE} = no matching row or not reported."
        ),
        Table(["row", *(f"ours {name}" for name in ours), *(PAPER_COLUMNS[name] for name in theirs)], rows),
        Bullets(_column_legend(ours, theirs)),
    ]


def _paper_row(
    row: Mapping[str, Any], paper_rows: Sequence[Mapping[str, Any]], fields: Sequence[str], where: str
) -> Mapping[str, Any] | None:
    """The paper's row whose ``fields`` all equal ``row``'s, or None; several matches are an error."""
    if not fields:
        return None
    hits = [paper for paper in paper_rows if all(name in paper and paper[name] == row[name] for name in fields)]
    if len(hits) > 1:
        raise ReportError(
            f"{where}: row {row['label']!r} matches {len(hits)} rows of the paper's table on "
            f"{list(fields)}; add fields to paper_match"
        )
    return hits[0] if hits else None


def _column_legend(ours: Sequence[str], theirs: Sequence[str]) -> list[str]:
    items = [f"ours {name}: {METRIC_DESCRIPTIONS[name]}" for name in ours]
    if any(name.endswith("mIoU") for name in theirs):
        items.append(
            'paper AN/SM mIoU: the paper\'s "mIoU" column as printed; on ActivityNet-VRL it may be the '
            "VRL 'IoU/mean' (compare with ours VRL_IoU_mean), not a true mean IoU"
        )
    if any(name.endswith("R1") for name in theirs):
        items.append("paper AN/SM R1@0.5: the paper's R@1 at IoU 0.5, in %")
    return items


def _number(value: Any, name: str) -> str:
    if value is None:
        return NOT_AVAILABLE
    return str(int(value)) if name == "num_pairs" else f"{float(value):.1f}"


def _figure(nb: NotebookArtifacts, figure: Mapping[str, str], context: _Context) -> Figure:
    return Figure(src=context.relative(nb.folder / figure["file"]), title=figure["title"], caption=figure["caption"])


def _figures_blocks(notebooks: Sequence[NotebookArtifacts], context: _Context) -> list[Block]:
    blocks: list[Block] = [Heading(2, "Figures")]
    for nb in notebooks:
        figures = [f for f in nb.figures if f.get("kind", "figure") == "figure"]
        if nb.table is None and figures:
            blocks += [Heading(3, f"`{nb.stem}`"), *(_figure(nb, figure, context) for figure in figures)]
    for stem, names in context.missing.items():
        if "figures.json" in names:
            blocks += [Heading(3, f"`{stem}`"), Paragraph("**Not produced**: this notebook wrote no figures.json.")]
    return blocks if len(blocks) > 1 else []


def _curves_blocks(notebooks: Sequence[NotebookArtifacts], context: _Context) -> list[Block]:
    blocks: list[Block] = [Heading(2, "Training curves")]
    for nb in notebooks:
        figures = [f for f in nb.figures if f.get("kind") == "curves"]
        if nb.curves is None and not figures:
            continue
        blocks.append(Heading(3, f"`{nb.stem}`"))
        blocks += [_figure(nb, figure, context) for figure in figures]
        if nb.curves is not None:
            blocks += _last_epochs(nb, context)
    return blocks if len(blocks) > 1 else []


def _last_epochs(nb: NotebookArtifacts, context: _Context) -> list[Block]:
    link = f"[curves.csv]({context.relative(nb.folder / 'curves.csv')})"
    if not nb.curves:
        return [Paragraph(f"{link} holds no epochs.")]
    last: dict[str, dict[str, str]] = {}
    for row in nb.curves:
        last[row["run"]] = row
    header = list(nb.curves[0])
    return [
        Paragraph(f"Last epoch of each run (every epoch in {link}):"),
        Table(header, [[_curve_value(row.get(name, "")) for name in header] for row in last.values()]),
    ]


def _curve_value(text: str) -> str:
    try:
        return f"{float(text):.4g}"
    except ValueError:
        return text


def _choices_blocks(notebooks: Sequence[NotebookArtifacts]) -> list[Block]:
    items = [f"**{c['what']}**: {c['choice']} ({c['where']}; `{nb.stem}`)" for nb in notebooks for c in nb.choices]
    return [Heading(2, "Choices where the paper is silent"), Bullets(items)] if items else []


def _provenance_blocks(notebooks: Sequence[NotebookArtifacts], context: _Context) -> list[Block]:
    records = context.records

    def listed(key: str) -> str:
        return ", ".join(f"`{value}`" for value in _distinct(records, key)) or NOT_AVAILABLE

    hardware = sorted(
        {
            ", ".join(f"{k} {v}" for k, v in record["hardware"].items())
            for _, record in records
            if isinstance(record.get("hardware"), dict)
        }
    )
    items = [
        f"git commit: {listed('git_commit')}",
        f"profile: `{context.profile}`",
        f"seed: {listed('seed')}",
        f"backbone weights tag: {listed('weights_tag')}",
        f"dataset: {listed('dataset')}; split: {listed('split')}",
        *(f"hardware: {line}" for line in hardware or [NOT_AVAILABLE]),
        f"artifacts created: {_span(_distinct(records, 'created'))}",
    ]
    return [
        Heading(2, "Provenance"),
        Bullets(items),
        _timings_table(notebooks, context),
        Paragraph(f"Seconds: wall-clock time of each notebook's last successful run ({TIMINGS_FILE})."),
    ]


def _timings_table(notebooks: Sequence[NotebookArtifacts], context: _Context) -> Table:
    by_stem = {nb.stem: nb for nb in notebooks}
    stems = sorted({*by_stem, *context.expected, *context.timings})
    rows, total = [], 0.0
    for stem in stems:
        timing = context.timings.get(stem, {})
        record = (by_stem[stem].provenance if stem in by_stem else None) or {}
        total += float(timing.get("seconds", 0.0))
        executed = context.out_dir / EXECUTED_DIR / f"{stem}.ipynb"
        name = f"[{stem}]({context.relative(executed)})" if executed.is_file() else stem
        rows.append(
            [
                name,
                _seconds(timing.get("seconds")),
                str(timing.get("finished", NOT_AVAILABLE)),
                str(record.get("split", NOT_AVAILABLE)),
                str(record.get("git_commit", NOT_AVAILABLE)),
            ]
        )
    rows.append(["**total**", _seconds(total), "", "", ""])
    return Table(["notebook", "seconds", "finished", "split", "git commit"], rows)


def _span(values: Sequence[str]) -> str:
    if not values:
        return NOT_AVAILABLE
    return values[0] if len(values) == 1 else f"{values[0]} to {values[-1]}"


def _seconds(value: Any) -> str:
    return NOT_AVAILABLE if value is None else f"{float(value):.1f}"


# --- Rendering ----------------------------------------------------------------------------------


def to_markdown(blocks: Sequence[Block]) -> str:
    """GitHub-flavoured Markdown of ``blocks``."""
    return "\n\n".join(_markdown(block) for block in blocks) + "\n"


def _markdown(block: Block) -> str:
    if isinstance(block, Heading):
        return "#" * block.level + " " + block.text
    if isinstance(block, Paragraph):
        return block.text
    if isinstance(block, Bullets):
        return "\n".join(f"- {item}" for item in block.items)
    if isinstance(block, Table):
        lines = [_markdown_row(block.header), "|" + "|".join("---" for _ in block.header) + "|"]
        return "\n".join(lines + [_markdown_row(row) for row in block.rows])
    return f"**{block.title}**\n\n![{block.title}]({block.src})\n\n{block.caption}"


def _markdown_row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(str(cell).replace("|", "\\|").replace("\n", " ") for cell in cells) + " |"


_STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:72rem;margin:2rem auto;padding:0 1rem;line-height:1.45}"
    "table{border-collapse:collapse;margin:1rem 0}th,td{border:1px solid #bbb;padding:.25rem .5rem}"
    "td{text-align:right}td:first-child{text-align:left}th{background:#f0f0f0}"
    "img{max-width:100%}figure{margin:1rem 0}figcaption{color:#444}code{background:#f4f4f4}"
)


def to_html(blocks: Sequence[Block], *, title: str) -> str:
    """A standalone HTML page of ``blocks``; figures are ``<img>`` tags with the blocks' relative paths."""
    body = "\n".join(_html(block) for block in blocks)
    return (
        f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n<title>{html.escape(title)}</title>\n'
        f"<style>{_STYLE}</style>\n</head>\n<body>\n{body}\n</body>\n</html>\n"
    )


def _html(block: Block) -> str:
    if isinstance(block, Heading):
        return f"<h{block.level}>{_inline(block.text)}</h{block.level}>"
    if isinstance(block, Paragraph):
        return f"<p>{_inline(block.text)}</p>"
    if isinstance(block, Bullets):
        return "<ul>\n" + "\n".join(f"<li>{_inline(item)}</li>" for item in block.items) + "\n</ul>"
    if isinstance(block, Table):
        head = "".join(f"<th>{_inline(cell)}</th>" for cell in block.header)
        rows = "\n".join(
            "<tr>" + "".join(f"<td>{_inline(str(cell))}</td>" for cell in row) + "</tr>" for row in block.rows
        )
        return f"<table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n{rows}\n</tbody>\n</table>"
    return (
        f'<figure>\n<img src="{html.escape(block.src)}" alt="{html.escape(block.title)}">\n'
        f"<figcaption><strong>{_inline(block.title)}</strong> {_inline(block.caption)}</figcaption>\n</figure>"
    )


_CODE = re.compile(r"`([^`]+)`")
_BOLD = re.compile(r"\*\*(.+?)\*\*")
_LINK = re.compile(r"\[([^\]]+)\]\(([^)\s]+)\)")


def _inline(text: str) -> str:
    """HTML of a text with the inline Markdown marks of the blocks (code, bold, links)."""
    codes: list[str] = []

    def stash(match: re.Match[str]) -> str:
        codes.append(f"<code>{match.group(1)}</code>")
        return f"\0{len(codes) - 1}\0"

    text = _CODE.sub(stash, html.escape(text, quote=False))  # code spans are left as they are
    text = _LINK.sub(lambda m: f'<a href="{m.group(2)}">{m.group(1)}</a>', text)
    text = _BOLD.sub(r"<strong>\1</strong>", text)
    return re.sub(r"\0(\d+)\0", lambda m: codes[int(m.group(1))], text)
