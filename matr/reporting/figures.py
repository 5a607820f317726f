"""Figures of the notebooks, drawn with seaborn / matplotlib, and their ``figures.json`` index.

Each plotting function takes data (DataFrames of :mod:`matr.experiments`, arrays) and returns a
``matplotlib.figure.Figure``; it computes nothing the library does not already give. :func:`save`
writes a figure atomically as PNG next to the notebook's other artifacts and returns its
``figures.json`` entry (ARTIFACT CONTRACT of :mod:`matr.reporting.artifacts`); :func:`write_index` writes them.

* :func:`table_bars`: our metrics next to the paper's (ActivityNet-VRL and SportsMoments) per row.
* :func:`training_curves`: per-epoch quantities of training runs, a grid of panels, one colour per run.
* :func:`dataset_figure`: target durations, moment lengths and positions per split.
* :func:`iou_distribution`: the top-1 IoU of every pair, per method.
* :func:`moment_figure`: Fig. 4 of the paper: query frames, target frames, and a timeline with the
  ground truth and each method's top-1 moment.
* :func:`alignment_heatmaps`: the cost matrices and hard alignment paths before and after fusion.
"""

from __future__ import annotations

import io
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from matplotlib.ticker import MaxNLocator

from matr.experiments.tables import PAPER_COLUMNS, PAPER_METRIC
from matr.io import atomic_open, write_json
from matr.reporting.artifacts import FIGURE_KINDS

GROUND_TRUTH_COLOUR = "#2ca02c"
PANEL_SIZE = (5.2, 3.4)


def use_style() -> None:
    """The seaborn theme of every notebook figure."""
    sns.set_theme(context="notebook", style="whitegrid", palette="colorblind")


# --- Saving -------------------------------------------------------------------------------------


def save(
    fig: Figure, folder: str | os.PathLike, name: str, *, title: str, caption: str, kind: str = "figure", dpi: int = 120
) -> dict[str, str]:
    """Write ``fig`` as ``folder/name`` (PNG, atomically); returns its ``figures.json`` entry."""
    if kind not in FIGURE_KINDS:
        raise ValueError(f"figure kind must be one of {FIGURE_KINDS}, got {kind!r}")
    if not name.endswith(".png"):
        raise ValueError(f"figure file name must end in .png, got {name!r}")
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    with atomic_open(Path(folder) / name) as handle:
        handle.write(buffer.getvalue())
    return {"file": name, "title": title, "caption": caption, "kind": kind}


def write_index(folder: str | os.PathLike, entries: Sequence[Mapping[str, str]]) -> Path:
    """Write ``folder/figures.json`` listing ``entries`` (from :func:`save`); each file must exist."""
    folder = Path(folder)
    absent = [entry["file"] for entry in entries if not (folder / entry["file"]).is_file()]
    if absent:
        raise FileNotFoundError(f"figures.json in {folder} would list files that do not exist: {absent}")
    write_json(folder / "figures.json", [dict(entry) for entry in entries])
    return folder / "figures.json"


# --- Tables and curves --------------------------------------------------------------------------


def table_bars(frame: pd.DataFrame, metrics: Sequence[str] = ("mIoU", "R1@0.5")) -> Figure:
    """Horizontal bars per row of a table: ours (with its 95% CI) and the paper's, one panel per metric.

    ``frame``: ``matr.experiments.results.table_frame`` (``label``, each metric, ``"<metric> low"`` /
    ``"<metric> high"`` when there is a CI, ``paper_<column>``). The paper's bars (the columns of
    ``PAPER_COLUMNS`` compared with that metric) appear only where a row has a matching paper row.
    """
    fig, axes = plt.subplots(
        1, len(metrics), figsize=(6 * len(metrics), 0.8 * len(frame) + 1.6), sharey=True, squeeze=False
    )
    rows = np.arange(len(frame))
    for ax, metric in zip(axes[0], metrics):
        series = [("ours", frame[metric])] + [
            (PAPER_COLUMNS[column].removesuffix(f" {metric}"), frame.get(f"paper_{column}"))
            for column, compared in PAPER_METRIC.items()
            if compared == metric and frame.get(f"paper_{column}") is not None
        ]
        height = 0.8 / len(series)
        colours = sns.color_palette("colorblind", len(series))
        for index, ((name, values), colour) in enumerate(zip(series, colours)):
            values = pd.to_numeric(values, errors="coerce")
            offset = rows - 0.4 + height * (index + 0.5)
            error = _ci_error(frame, metric) if index == 0 else None
            ax.barh(offset, values, height=height, color=colour, label=name, xerr=error, capsize=2)
        ax.set(title=metric, xlabel="%", xlim=(0, 100))
        ax.grid(axis="y", visible=False)
    axes[0, 0].set_yticks(rows, list(frame["label"]))
    axes[0, 0].invert_yaxis()  # the table's first row on top (the panels share the axis)
    handles, names = axes[0, 0].get_legend_handles_labels()
    fig.tight_layout()
    fig.legend(handles, names, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=len(names), frameon=False)
    return fig


def _ci_error(frame: pd.DataFrame, metric: str) -> np.ndarray | None:
    """``(2, rows)`` distances from the value down to the CI's low end and up to its high end (None without CIs)."""
    if f"{metric} low" not in frame or f"{metric} high" not in frame:
        return None
    value = frame[metric].to_numpy(dtype=float)
    low, high = frame[f"{metric} low"].to_numpy(dtype=float), frame[f"{metric} high"].to_numpy(dtype=float)
    return np.nan_to_num(np.stack([value - low, high - value]).clip(min=0))


def training_curves(
    curves: pd.DataFrame,
    quantities: Sequence[str] = ("train_loss", "val_R1@0.5"),
    *,
    labels: Mapping[str, str] | None = None,
    columns: int = 2,
) -> Figure:
    """A grid of panels (``columns`` wide), one per quantity present in ``curves`` (``run, epoch, ...``).

    Each run keeps one colour in every panel; ``labels`` maps run names to the names the legend
    shows (the table's row names; runs it omits are left out). One legend, below the grid.
    """
    present = [q for q in quantities if q in curves.columns and curves[q].notna().any()]
    if not present:
        raise ValueError(f"none of {list(quantities)} is in the curves; columns: {list(curves.columns)}")
    runs = list(labels) if labels is not None else list(dict.fromkeys(curves["run"]))
    colours = dict(zip(runs, sns.color_palette("colorblind", len(runs))))
    rows = -(-len(present) // columns)
    width = min(columns, len(present))
    fig, axes = plt.subplots(
        rows, width, figsize=(PANEL_SIZE[0] * width, PANEL_SIZE[1] * rows), squeeze=False, constrained_layout=True
    )
    for ax, quantity in zip(axes.flat, present):
        for run in runs:
            points = curves[(curves["run"] == run) & curves[quantity].notna()]
            name = labels[run] if labels is not None else run
            ax.plot(points["epoch"], points[quantity], marker="o", markersize=3, color=colours[run], label=name)
        ax.set(title=quantity, xlabel="epoch", ylabel="")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    for ax in axes.flat[len(present) :]:
        ax.set_axis_off()
    handles, names = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, names, loc="outside lower center", ncol=min(len(names), 3), frameon=False)
    return fig


def dataset_figure(pairs: pd.DataFrame) -> Figure:
    """Per split (rows): target durations, moment length relative to the target, moment centre position."""
    fig, axes = plt.subplots(1, 3, figsize=(15, 0.6 * pairs["split"].nunique() + 2.2), sharey=True)
    panels = (
        ("duration", "target duration (s)"),
        ("relative_length", "moment length / target duration"),
        ("relative_centre", "moment centre / target duration"),
    )
    for ax, (column, label) in zip(axes, panels):
        sns.boxplot(data=pairs, x=column, y="split", color="0.9", showfliers=False, ax=ax)
        sns.stripplot(data=pairs, x=column, y="split", hue="split", legend=False, size=3, alpha=0.6, ax=ax)
        ax.set(xlabel=label, ylabel="")
    fig.tight_layout()
    return fig


def iou_distribution(ious: pd.DataFrame) -> Figure:
    """Top-1 IoU of every pair per method (``method, pair_id, iou`` rows), as box and points."""
    fig, ax = plt.subplots(figsize=(8, 0.55 * ious["method"].nunique() + 1.5))
    sns.boxplot(data=ious, x="iou", y="method", color="0.9", showfliers=False, ax=ax)
    sns.stripplot(data=ious, x="iou", y="method", hue="method", legend=False, size=4, alpha=0.7, ax=ax)
    ax.axvline(0.5, color="0.4", ls="--", lw=1)
    ax.set(
        xlabel="IoU of the top-1 moment with the ground truth (dashed: 0.5, the R1@0.5 threshold)",
        ylabel="",
        xlim=(0, 1),
    )
    fig.tight_layout()
    return fig


# --- One pair -----------------------------------------------------------------------------------


def moment_figure(example: Any, *, title: str | None = None) -> Figure:
    """Fig. 4 style: the query's frames, the target's frames and a timeline of the moments.

    ``example``: a :class:`matr.experiments.Example` (frames may be None: then only the timeline).
    The ground truth is the first bar and a shaded band; each method's top-1 span follows, with its
    start and end in brackets.
    """
    strips = [
        (name, video) for name, video in (("query", example.query), ("target", example.target)) if video is not None
    ]
    heights = [1.0] * len(strips) + [0.45 * (len(example.spans) + 1) + 0.6]
    fig, axes = plt.subplots(
        len(heights), 1, figsize=(11, sum(heights) * 1.25), gridspec_kw={"height_ratios": heights}, squeeze=False
    )
    for ax, (name, video) in zip(axes[:, 0], strips):
        _filmstrip(ax, video, example.ground_truth if name == "target" else None)
        seconds = video.duration
        ax.set_title(f"{name}: {Path(video.path).stem}, {seconds:.1f} s", loc="left", fontsize="medium")
    _timeline(axes[-1, 0], example)
    fig.suptitle(title or f"pair {example.record.pair_id}", x=0.01, ha="left")
    fig.tight_layout()
    return fig


def _filmstrip(ax: plt.Axes, video: Any, highlight: tuple[float, float] | None) -> None:
    """Frames side by side, each labelled with the time it shows; with ``highlight``, frames whose
    time lies inside that span get a green outline (label and outline by the same time)."""
    frames = video.frames  # (K, H, W, 3)
    k, h, w, _ = frames.shape
    gap = max(2, w // 24)
    strip = np.full((h, k * (w + gap) - gap, 3), 255, dtype=np.uint8)
    for i, frame in enumerate(frames):
        strip[:, i * (w + gap) : i * (w + gap) + w] = frame
    ax.imshow(strip)
    ax.set_axis_off()
    for i, t in enumerate(np.maximum(video.timestamps, 0.0)):
        shown = round(float(t), 1)
        ax.text(i * (w + gap) + w / 2, h + 2, f"{shown:.1f}s", ha="center", va="top", fontsize="x-small")
        if highlight is not None and round(highlight[0], 1) <= shown <= round(highlight[1], 1):
            ax.add_patch(Rectangle((i * (w + gap) - 0.5, -0.5), w, h, fill=False, lw=3, ec=GROUND_TRUTH_COLOUR))


def _timeline(ax: plt.Axes, example: Any) -> None:
    bars = [("ground truth", example.ground_truth), *example.spans.items()]
    colours = [GROUND_TRUTH_COLOUR, *sns.color_palette("colorblind", len(example.spans))]
    duration = example.record.duration
    ax.axvspan(*example.ground_truth, color=GROUND_TRUTH_COLOUR, alpha=0.12, lw=0)
    for row, ((_label, (start, end)), colour) in enumerate(zip(bars, colours)):
        ax.broken_barh([(start, max(end - start, duration * 0.003))], (row - 0.35, 0.7), color=colour)
        ax.text(min(end, duration) + duration * 0.01, row, f"[{start:.1f}, {end:.1f}]", va="center", fontsize="small")
    ax.set_yticks(range(len(bars)), [label for label, _ in bars])
    ax.set_ylim(len(bars) - 0.5, -0.5)
    ax.set_xlim(0, duration * 1.12)
    ax.set_xlabel("target time (s)")
    ax.grid(axis="y", visible=False)


def alignment_heatmaps(view: Any) -> Figure:
    """Cost matrices (top) and hard alignment paths (bottom) before and after fusion.

    ``view``: a :class:`matr.experiments.AlignmentView`; target frames are rows, query frames
    columns, and the ground-truth target frames lie between the two green lines.
    """
    fig, axes = plt.subplots(2, 2, figsize=(10, 8))
    panels = (
        (view.cost_pre, "cost before fusion (E_t, E_q)", "mako_r", True),
        (view.cost_post, "cost after fusion (E_t^g, E_q^g)", "mako_r", True),
        (view.path_pre, "hard alignment A_pre", "Greys", False),
        (view.path_post, "hard alignment A_post", "Greys", False),
    )
    first, stop = view.ground_truth_frames
    for ax, (matrix, title, cmap, colour_bar) in zip(axes.flat, panels):
        rows, columns = matrix.shape
        sns.heatmap(
            matrix,
            cmap=cmap,
            cbar=colour_bar,
            ax=ax,
            xticklabels=max(1, columns // 10),
            yticklabels=max(1, rows // 12),
            vmin=None if colour_bar else 0,
            vmax=None if colour_bar else 1,
        )
        ax.tick_params(axis="y", labelrotation=0)
        for row in (first, stop):
            ax.axhline(row, color=GROUND_TRUTH_COLOUR, lw=2)
        ax.set(title=title, xlabel="query frame j", ylabel="target frame i")
    fig.suptitle(
        f"pair {view.pair_id}: ground-truth target frames [{first}, {stop}) between the green lines "
        f"({view.clip_length:g} s per frame)",
        fontsize="medium",
    )
    fig.tight_layout()
    return fig
