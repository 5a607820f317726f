"""The report's figures (matr.reporting.figures): legible grids, one colour per run, labels that match."""

from __future__ import annotations

from types import SimpleNamespace

import matplotlib
import numpy as np
import pandas as pd
import pytest

matplotlib.use("Agg")

from matplotlib.patches import Rectangle  # noqa: E402

from matr.reporting import figures as fx  # noqa: E402

LABELS = {"finetuned": "MATR Finetuned+V", "scratch": "MATR Trained+V", "no_align": "neither stage"}


def _curves() -> pd.DataFrame:
    rows = [
        {"run": run, "epoch": epoch, "train_loss": 5.0 / epoch + shift, "val_R1@0.5": 3.0 * epoch + shift}
        for shift, run in enumerate(LABELS)
        for epoch in range(1, 6)
    ]
    return pd.DataFrame(rows).assign(val_mIoU=lambda frame: frame["val_R1@0.5"] / 2)


def test_curves_are_a_grid_with_one_colour_per_run_and_the_tables_names() -> None:
    fig = fx.training_curves(_curves(), ("train_loss", "val_R1@0.5", "val_mIoU"), labels=LABELS)
    panels = [ax for ax in fig.axes if ax.lines]
    assert len(panels) == 3 and len({round(ax.get_position().x0, 2) for ax in panels}) == 2
    colours = [{line.get_label(): line.get_color() for line in ax.lines} for ax in panels]
    assert all(panel == colours[0] for panel in colours)
    assert len(set(colours[0].values())) == 3
    (legend,) = fig.legends
    assert [text.get_text() for text in legend.get_texts()] == list(LABELS.values())


def test_the_legend_covers_no_panel() -> None:
    fig = fx.training_curves(_curves(), ("train_loss", "val_R1@0.5"), labels=LABELS)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    legend = fig.legends[0].get_window_extent(renderer)
    assert not any(legend.overlaps(ax.get_window_extent(renderer)) for ax in fig.axes if ax.lines)


def test_runs_left_out_of_the_labels_are_not_drawn() -> None:
    fig = fx.training_curves(_curves(), ("train_loss",), labels={"scratch": "MATR Trained+V"})
    assert [line.get_label() for line in fig.axes[0].lines] == ["MATR Trained+V"]


def test_table_bars_draw_our_confidence_interval() -> None:
    frame = pd.DataFrame(
        {
            "label": ["Random", "MATR"],
            "mIoU": [10.0, 50.0],
            "mIoU low": [8.0, 45.0],
            "mIoU high": [13.0, 54.0],
            "paper_AN_mIoU": [7.3, 56.8],
            "paper_SM_mIoU": [None, 59.2],
        }
    )
    fig = fx.table_bars(frame, metrics=("mIoU",))
    (errors,) = [c for c in fig.axes[0].containers if getattr(c, "has_xerr", False)]
    segments = errors.lines[2][0].get_segments()
    assert [tuple(np.round(segment[:, 0], 1)) for segment in segments] == [(8.0, 13.0), (45.0, 54.0)]
    assert [tick.get_text() for tick in fig.axes[0].get_yticklabels()] == ["Random", "MATR"]


@pytest.mark.parametrize("ground_truth", [(4.1, 12.5), (0.0, 3.0), (11.0, 11.0)])
def test_filmstrip_outlines_exactly_the_frames_whose_label_lies_in_the_ground_truth(
    ground_truth: tuple[float, float],
) -> None:
    times = np.array([1.0, 3.0, 5.0, 7.0, 9.0, 11.0, 13.0])
    video = SimpleNamespace(
        frames=np.zeros((len(times), 8, 12, 3), dtype=np.uint8),
        timestamps=times,
        clip_length=2.0,
        duration=14.0,
        path="target.mp4",
    )
    example = SimpleNamespace(
        query=None,
        target=video,
        ground_truth=ground_truth,
        spans={"MATR": (4.0, 10.0)},
        record=SimpleNamespace(duration=14.0, pair_id="p"),
    )
    fig = fx.moment_figure(example)
    strip = fig.axes[0]
    labels = [float(text.get_text().removesuffix("s")) for text in strip.texts]
    outlined = sorted(
        int(round(patch.get_x() + 0.5)) // (12 + 2) for patch in strip.patches if isinstance(patch, Rectangle)
    )
    assert outlined == [i for i, label in enumerate(labels) if ground_truth[0] <= label <= ground_truth[1]]
