"""The moment player's markup and the whole-video timeline figure (``matr.viewer``)."""

from __future__ import annotations

import base64
import re
from pathlib import Path

import pytest
from matplotlib.patches import Rectangle

from matr import viewer
from matr.features import probe_video
from matr.postprocess import RankedSpan

TARGET = Path(__file__).resolve().parents[1] / "examples" / "target.mp4"
MOMENTS = [RankedSpan(4.0, 9.5, 0.9), RankedSpan(12.0, 16.0, 0.5), RankedSpan(0.0, 3.0, 0.1)]


def test_player_has_one_seeking_button_per_moment_in_rank_order() -> None:
    markup = viewer.player_html(TARGET, MOMENTS)
    starts = re.findall(r'data-start="([\d.]+)"', markup)
    ends = re.findall(r'data-end="([\d.]+)"', markup)
    assert [float(s) for s in starts] == [m.start for m in MOMENTS]
    assert [float(e) for e in ends] == [m.end for m in MOMENTS]
    assert markup.count("currentTime=") == len(MOMENTS) and "<video" in markup
    assert 'data-name="target.mp4"' in markup  # executed copies name the file they keep the video in


def test_small_videos_are_embedded_and_large_ones_linked(monkeypatch: pytest.MonkeyPatch) -> None:
    embedded = viewer.video_source(TARGET)
    assert embedded.startswith("data:video/mp4;base64,")
    assert base64.b64decode(embedded.split(",", 1)[1]) == TARGET.read_bytes()
    monkeypatch.chdir(TARGET.parent.parent)
    assert viewer.video_source(TARGET, embed_limit=10) == "examples/target.mp4"


def test_player_output_carries_the_widget_and_an_html_fallback() -> None:
    bundle = viewer.moment_player(TARGET, MOMENTS)._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle
    assert bundle["text/html"] == viewer.player_html(TARGET, MOMENTS)


def test_a_missing_video_is_named() -> None:
    with pytest.raises(FileNotFoundError, match="nope.mp4"):
        viewer.player_html("nope.mp4", MOMENTS)


def test_timeline_shows_every_thumbnail_and_outlines_those_inside_the_top_moment() -> None:
    duration = probe_video(TARGET).duration
    moments = [RankedSpan(0.3 * duration, 0.6 * duration, 0.9), *MOMENTS[1:]]
    fig = viewer.moment_timeline(TARGET, moments, ground_truth=(0.1 * duration, 0.2 * duration), thumbnails=6)
    strip, bars = fig.axes
    labels = [float(text.get_text().rstrip("s")) for text in strip.texts]
    outlined = [patch for patch in strip.patches if isinstance(patch, Rectangle) and not patch.get_fill()]
    assert len(strip.images) == 6 and len(labels) == 6
    assert len(outlined) == sum(moments[0].start <= t <= moments[0].end for t in labels) > 0
    assert len(bars.patches) >= len(moments)
    assert bars.get_xlim() == pytest.approx((0.0, duration))
