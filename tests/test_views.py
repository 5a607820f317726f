"""matr.experiments.views.span_summary: the numbers the qualitative notebook's captions quote."""

import pandas as pd
import pytest

from matr.experiments import span_summary


def test_span_summary_counts_one_frame_spans_and_hits_per_source() -> None:
    lengths = pd.DataFrame(
        {
            "source": ["A_post", "A_post", "A_post", "A_post", "heads", "heads"],
            "pair_id": ["a", "b", "c", "d", "a", "b"],
            "length": [2.0, 2.0, 1.0, 8.0, 6.0, 10.0],
            "ground_truth": [6.0, 6.0, 4.0, 8.0, 6.0, 6.0],
            "iou": [0.1, 0.0, 0.25, 0.9, 0.5, 0.4],
        }
    )
    summary = span_summary(lengths, clip_length=2.0)
    assert list(summary.index) == ["A_post", "heads"]
    assert summary.loc["A_post", "one-frame spans (%)"] == pytest.approx(75.0)
    assert summary.loc["heads", "one-frame spans (%)"] == 0.0
    assert summary.loc["A_post", "R1@0.5 (%)"] == pytest.approx(25.0)
    assert summary.loc["heads", "R1@0.5 (%)"] == pytest.approx(50.0)  # IoU 0.5 counts (inclusive)
    assert summary.loc["A_post", "median span (s)"] == pytest.approx(2.0)
    assert summary.loc["A_post", "median ground truth (s)"] == pytest.approx(6.0)
