"""The ARTIFACT CONTRACT between the notebooks and the report, and the checks that enforce it.

Notebook ``notebooks/NN_name.ipynb`` writes into ``<artifacts>/NN_name/`` (``<artifacts>`` is its
``artifacts`` parameter), each file written atomically with :mod:`matr.io`:

``provenance.json`` (every notebook)
    ``matr.provenance.provenance(profile=..., seed=..., weights_tag=..., dataset=..., split=...)``:
    keys :data:`PROVENANCE_KEYS` are required, ``split`` where the notebook has one.
``table.json`` (results notebooks)
    ``{"table": key of a table of matr.experiments.tables, "title", "caption", "dataset", "split",
    "paper_match": [field, ...], "rows": [{"label", <each paper_match field>: value, "num_pairs": int,
    "metrics": {metric: cell}}], "verdicts": [...] (optional), "provenance": {...}}``. A cell is
    ``{"value": float, "ci": [low, high] | null, "std": float | null, "seeds": int}`` (95% bootstrap
    CI over pairs; ``std`` across seeds when ``seeds > 1``); a bare number is a value without CI.
    Metric names are those of :data:`matr.metrics.METRIC_DESCRIPTIONS`. A row is compared with the
    paper's row whose ``paper_match`` fields all equal its own (``matr.experiments.tables.paper_row``).
    A verdict is ``{"claim", "a", "b", "metric", "diff", "ci": [low, high], "verdict"}``: the paired
    bootstrap of row ``a`` minus row ``b`` for an ordering the paper claims. A table the paper does
    not have (such as ``query_use``) has an empty ``paper_match``.
``table_<key>.json`` (optional, next to ``table.json``)
    A further table of the same notebook, same format; the report shows it after ``table.json``'s.
``figures.json`` (optional; required from the figures notebook)
    ``[{"file": "x.png", "title", "caption", "kind": one of FIGURE_KINDS}]``, each file next to it.
    ``"curves"`` figures go under Training curves, others under their notebook's table.
``curves.csv`` (optional; required from the training notebooks)
    A header ``run,epoch,<quantity>,...`` then one row per run and epoch.
``choices.json`` (optional)
    ``[Choice.as_dict(), ...]`` (:mod:`matr.choices`): the choices where the paper is silent made by
    the modules the notebook uses (``matr.experiments.artifacts.write_choices``); the report credits
    each to every notebook whose folder lists it.

Every ``provenance.json`` and table provenance must carry the report's profile and one and the same
backbone tag, so one report never mixes runs of different settings.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from matr.experiments.tables import TABLES
from matr.metrics import METRIC_DESCRIPTIONS

_TABLE_NOTEBOOK = ("provenance.json", "table.json")
EXPECTED_ARTIFACTS: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "00_try_matr": (),
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
FIGURE_KINDS: tuple[str, ...] = ("figure", "curves")
PROVENANCE_KEYS: tuple[str, ...] = ("profile", "seed", "weights_tag", "dataset")
TABLE_KEYS: tuple[str, ...] = ("table", "title", "caption", "dataset", "split", "paper_match", "rows", "provenance")
CELL_KEYS: tuple[str, ...] = ("value", "ci", "std", "seeds")
VERDICT_KEYS: tuple[str, ...] = ("claim", "a", "b", "metric", "diff", "ci", "verdict")
CHOICE_KEYS: tuple[str, ...] = ("name", "value", "reason", "module")


class ReportError(ValueError):
    """Artifacts are missing, malformed or inconsistent; the message names the files and fields."""


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
    extra_tables: list[dict[str, Any]] = field(default_factory=list)

    @property
    def tables(self) -> list[dict[str, Any]]:
        """``table.json`` then each ``table_<key>.json``, in the order the report shows them."""
        return [] if self.table is None else [self.table, *self.extra_tables]

    def figures_of(self, kind: str) -> list[dict[str, str]]:
        """The figures of ``kind`` (one of :data:`FIGURE_KINDS`)."""
        return [figure for figure in self.figures if figure.get("kind", "figure") == kind]


def missing_artifacts(
    artifacts_dir: str | os.PathLike, expected: Mapping[str, Sequence[str]] = EXPECTED_ARTIFACTS
) -> dict[str, list[str]]:
    """``stem -> [file, ...]`` of the expected artifact files that do not exist (empty when all do)."""
    root = Path(artifacts_dir)
    missing = {stem: [name for name in names if not (root / stem / name).is_file()] for stem, names in expected.items()}
    return {stem: names for stem, names in missing.items() if names}


def load_artifacts(artifacts_dir: str | os.PathLike, paper: Mapping[str, Any]) -> list[NotebookArtifacts]:
    """Every notebook folder under ``artifacts_dir`` (sorted), each file checked against the contract.

    ``paper``: the paper's tables (``matr.experiments.tables.reported_results()``).
    """
    root = Path(artifacts_dir)
    folders = sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
    return [_load_folder(folder, paper) for folder in folders]


def _load_folder(folder: Path, paper: Mapping[str, Any]) -> NotebookArtifacts:
    provenance = read_json(folder / "provenance.json")
    if provenance is not None:
        _require_keys(provenance, PROVENANCE_KEYS, folder / "provenance.json")
    table = read_json(folder / "table.json")
    if table is not None:
        _check_table(table, folder / "table.json", paper)
    extra_tables = [(path, read_json(path)) for path in sorted(folder.glob("table_*.json"))]
    if extra_tables and table is None:
        raise ReportError(f"{extra_tables[0][0]}: a further table needs the notebook's table.json next to it")
    for path, extra in extra_tables:
        _check_table(extra, path, paper)
        if path.name != f"table_{extra['table']}.json":
            raise ReportError(f"{path}: holds table {extra['table']!r}; name it table_{extra['table']}.json")
    figures = _optional_records(folder / "figures.json", ("file", "title", "caption"))
    for figure in figures:
        _check_figure(figure, folder)
    return NotebookArtifacts(
        stem=folder.name,
        folder=folder,
        provenance=provenance,
        table=table,
        figures=figures,
        curves=_read_curves(folder / "curves.csv"),
        choices=_optional_records(folder / "choices.json", CHOICE_KEYS),
        extra_tables=[extra for _, extra in extra_tables],
    )


def read_json(path: Path) -> Any:
    """The JSON in ``path``, or None when the file does not exist; invalid JSON raises :class:`ReportError`."""
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
    records = read_json(path)
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
    if not isinstance(paper.get(table["table"]), list) and table["table"] not in TABLES:
        tables = sorted({*TABLES, *(key for key, value in paper.items() if isinstance(value, list))})
        raise ReportError(f"{where}: table {table['table']!r} is not one of the tables {tables}")
    paper_fields = {name for row in paper.get(table["table"], []) for name in row}
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
    labels = {row["label"] for row in table["rows"]}
    for index, verdict in enumerate(table.get("verdicts", [])):
        _check_verdict(verdict, labels, f"{where}, verdict {index}")


def _check_row(row: Any, match_fields: Sequence[str], where: str) -> None:
    _require_keys(row, ("label", "metrics", *match_fields), where)
    metrics = row["metrics"]
    if not isinstance(metrics, dict):
        raise ReportError(f"{where}: 'metrics' must be an object of metric -> cell")
    unknown = sorted(set(metrics) - set(METRIC_DESCRIPTIONS))
    if unknown:
        raise ReportError(f"{where}: unknown metric(s) {unknown}; known: {sorted(METRIC_DESCRIPTIONS)}")
    for name, cell in metrics.items():
        _check_cell(cell, f"{where}, metric {name!r}")


def _check_cell(cell: Any, where: str) -> None:
    if _is_number(cell):
        return
    _require_keys(cell, CELL_KEYS, where)
    if not _is_number(cell["value"]) or not (cell["std"] is None or _is_number(cell["std"])):
        raise ReportError(f"{where}: 'value' must be a number and 'std' a number or null")
    if cell["ci"] is not None and not _is_interval(cell["ci"]):
        raise ReportError(f"{where}: 'ci' must be [low, high] or null, got {cell['ci']!r}")
    if not isinstance(cell["seeds"], int) or cell["seeds"] < 1:
        raise ReportError(f"{where}: 'seeds' must be a positive integer, got {cell['seeds']!r}")


def _check_verdict(verdict: Any, labels: set[str], where: str) -> None:
    _require_keys(verdict, VERDICT_KEYS, where)
    unknown = [verdict[side] for side in ("a", "b") if verdict[side] not in labels]
    if unknown:
        raise ReportError(f"{where}: row(s) {unknown} are not rows of the table; rows: {sorted(labels)}")
    if not _is_number(verdict["diff"]) or not _is_interval(verdict["ci"]):
        raise ReportError(f"{where}: 'diff' must be a number and 'ci' [low, high]")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_interval(value: Any) -> bool:
    return isinstance(value, list) and len(value) == 2 and all(_is_number(bound) for bound in value)


def _read_curves(path: Path) -> list[dict[str, str]] | None:
    if not path.is_file():
        return None
    with open(path, encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        if reader.fieldnames is None or not {"run", "epoch"} <= set(reader.fieldnames):
            raise ReportError(f"{path}: expected a header starting with run,epoch; got {reader.fieldnames}")
        return list(reader)


def provenance_records(notebooks: Sequence[NotebookArtifacts]) -> list[tuple[str, dict[str, Any]]]:
    """``(where, record)`` of every provenance.json and table provenance."""
    records = []
    for nb in notebooks:
        if nb.provenance is not None:
            records.append((f"{nb.stem}/provenance.json", nb.provenance))
        for table in nb.tables:
            records.append((f"{nb.stem}/{_table_file(nb, table)}", table["provenance"]))
    return records


def _table_file(nb: NotebookArtifacts, table: Mapping[str, Any]) -> str:
    return "table.json" if table is nb.table else f"table_{table['table']}.json"


def check_consistency(records: Sequence[tuple[str, dict[str, Any]]], profile: str) -> None:
    """One profile (``profile``) and one backbone tag across ``records``, or :class:`ReportError`."""
    other_profile = [f"{where} ({record['profile']!r})" for where, record in records if record["profile"] != profile]
    if other_profile:
        raise ReportError(
            f"artifacts of another profile than {profile!r}: {', '.join(other_profile)}; "
            "re-run those notebooks with this profile or build the report elsewhere"
        )
    tags = {record["weights_tag"] for _, record in records}
    if len(tags) > 1:
        listing = ", ".join(f"{where} {record['weights_tag']!r}" for where, record in records)
        raise ReportError(f"artifacts disagree on the backbone tag: {listing}; re-run the whole series")
