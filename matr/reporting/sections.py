"""The report's closing sections: training curves, choices where the paper is silent, provenance.

Each function returns blocks of :mod:`matr.reporting.render` for :func:`matr.reporting.report.report_blocks`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from matr.provenance import DIRTY_SUFFIX
from matr.reporting import render as r
from matr.reporting.artifacts import NotebookArtifacts

TIMINGS_FILE = "timings.json"
EXECUTED_DIR = "notebooks"
NOT_AVAILABLE = "—"


@dataclass(frozen=True)
class Context:
    """What every section needs besides the artifacts."""

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

    def distinct(self, key: str) -> list[str]:
        """The distinct values of ``key`` across the provenance records, sorted."""
        return sorted({str(record[key]) for _, record in self.records if key in record})


def figure_grid(nb: NotebookArtifacts, figures: Sequence[Mapping[str, str]], context: Context) -> list[r.Block]:
    """``figures`` of ``nb`` as one grid block (none when there are none)."""
    if not figures:
        return []
    return [
        r.FigureGrid(
            tuple(
                r.Figure(
                    context.relative(nb.folder / f["file"]),
                    r.prose(f["title"]),
                    r.prose(f["caption"]),
                    png_width(nb.folder / f["file"]),
                )
                for f in figures
            )
        )
    ]


def png_width(path: Path) -> int | None:
    """The pixel width a PNG's header states (None for anything else)."""
    with open(path, "rb") as handle:
        head = handle.read(24)
    if head[:8] != b"\x89PNG\r\n\x1a\n" or head[12:16] != b"IHDR":
        return None
    return int.from_bytes(head[16:20], "big")


def curves_blocks(notebooks: Sequence[NotebookArtifacts], context: Context) -> list[r.Block]:
    """Per training notebook: its curve figures in a grid and each run's last epoch."""
    blocks: list[r.Block] = [r.Heading(2, r.text("Training curves"))]
    for nb in notebooks:
        figures = nb.figures_of("curves")
        if nb.curves is None and not figures:
            continue
        blocks.append(r.Heading(3, r.text(r.code(nb.stem))))
        blocks += figure_grid(nb, figures, context)
        if nb.curves is not None:
            blocks += _last_epochs(nb, context)
    return blocks if len(blocks) > 1 else []


def _last_epochs(nb: NotebookArtifacts, context: Context) -> list[r.Block]:
    link = r.link("curves.csv", context.relative(nb.folder / "curves.csv"))
    if not nb.curves:
        return [r.Paragraph(r.text(link, " holds no epochs."))]
    last: dict[str, dict[str, str]] = {}
    for row in nb.curves:
        last[row["run"]] = row
    header = list(nb.curves[0])
    rows = tuple(tuple(r.text(_curve_value(row.get(name) or "")) for name in header) for row in last.values())
    return [
        r.Paragraph(r.text("Last epoch of each run (every epoch in ", link, "):")),
        r.Table(tuple(r.text(name) for name in header), rows),
    ]


def _curve_value(value: str) -> str:
    try:
        return f"{float(value):.4g}"
    except ValueError:
        return value


def choices_blocks(notebooks: Sequence[NotebookArtifacts]) -> list[r.Block]:
    """One table row per declared choice, credited to every notebook whose ``choices.json`` lists it."""
    credited: dict[tuple[str, str], tuple[dict[str, str], list[str]]] = {}
    for nb in notebooks:
        for choice in nb.choices:
            credited.setdefault((choice["module"], choice["name"]), (choice, []))[1].append(nb.stem)
    if not credited:
        return []
    rows = tuple(
        (
            r.prose(choice["name"]),
            r.prose(str(choice["value"])),
            r.prose(choice["reason"]),
            r.text(r.code(choice["module"])),
            r.text(*[part for stem in stems for part in (r.code(stem), ", ")][:-1]),
        )
        for _, (choice, stems) in sorted(credited.items())
    )
    header = tuple(r.text(name) for name in ("choice", "value", "why", "made in", "used by"))
    intro = r.text(
        "Where the paper gives no value or method, the code declares its choice next to where it is made (",
        r.code("matr.choices"),
        "); each is listed with the notebooks that use it.",
    )
    return [r.Heading(2, r.text("Choices where the paper is silent")), r.Paragraph(intro), r.Table(header, rows)]


def provenance_blocks(notebooks: Sequence[NotebookArtifacts], context: Context) -> list[r.Block]:
    """Commit (and whether the tree had uncommitted changes), profile, seeds, data, hardware, times."""

    def listed(key: str) -> list[r.Span | str]:
        values = [part for value in context.distinct(key) for part in (r.code(value), ", ")][:-1]
        return values or [NOT_AVAILABLE]

    hardware = sorted(
        {
            ", ".join(f"{k} {v}" for k, v in record["hardware"].items())
            for _, record in context.records
            if isinstance(record.get("hardware"), dict)
        }
    )
    items = (
        r.text("git commit: ", *listed("git_commit"), _commit_note(context.distinct("git_commit"))),
        r.text("profile: ", r.code(context.profile)),
        r.text("seed: ", *listed("seed")),
        r.text("backbone tag: ", *listed("weights_tag")),
        r.text("dataset: ", *listed("dataset"), "; split: ", *listed("split")),
        *(r.text(f"hardware: {line}") for line in hardware or [NOT_AVAILABLE]),
        r.text(f"artifacts created: {_span(context.distinct('created'))}"),
    )
    return [
        r.Heading(2, r.text("Provenance")),
        r.Bullets(items),
        _timings_table(notebooks, context),
        r.Paragraph(r.text(f"Seconds: wall-clock time of each notebook's last successful run ({TIMINGS_FILE}).")),
    ]


def _commit_note(commits: Sequence[str]) -> str:
    notes = []
    if any(commit.endswith(DIRTY_SUFFIX) for commit in commits):
        notes.append(
            f"{DIRTY_SUFFIX.lstrip('-')}: the working tree had uncommitted changes when the artifacts were made"
        )
    if len({commit.removesuffix(DIRTY_SUFFIX) for commit in commits}) > 1:
        notes.append("the artifacts come from more than one commit")
    return f" ({'; '.join(notes)})" if notes else " (a clean working tree)" if commits else ""


def _timings_table(notebooks: Sequence[NotebookArtifacts], context: Context) -> r.Table:
    by_stem = {nb.stem: nb for nb in notebooks}
    rows, total = [], 0.0
    for stem in sorted({*by_stem, *context.expected, *context.timings}):
        timing = context.timings.get(stem, {})
        record = (by_stem[stem].provenance if stem in by_stem else None) or {}
        total += float(timing.get("seconds", 0.0))
        executed = context.out_dir / EXECUTED_DIR / f"{stem}.ipynb"
        name = r.link(stem, context.relative(executed)) if executed.is_file() else stem
        rows.append(
            (r.text(name),)
            + tuple(
                r.text(value)
                for value in (
                    _seconds(timing.get("seconds")),
                    str(timing.get("finished", NOT_AVAILABLE)),
                    str(record.get("split", NOT_AVAILABLE)),
                    _short_commit(str(record.get("git_commit", NOT_AVAILABLE))),
                )
            )
        )
    rows.append((r.text(r.bold("total")), r.text(_seconds(total)), r.text(), r.text(), r.text()))
    header = tuple(r.text(name) for name in ("notebook", "seconds", "finished", "split", "git commit"))
    return r.Table(header, tuple(rows))


def _short_commit(commit: str) -> str:
    """The first 12 hex digits of a commit, keeping its dirty mark."""
    dirty = commit.endswith(DIRTY_SUFFIX)
    return commit.removesuffix(DIRTY_SUFFIX)[:12] + (DIRTY_SUFFIX if dirty else "")


def _span(values: Sequence[str]) -> str:
    if not values:
        return NOT_AVAILABLE
    return values[0] if len(values) == 1 else f"{values[0]} to {values[-1]}"


def _seconds(value: Any) -> str:
    return NOT_AVAILABLE if value is None else f"{float(value):.1f}"
