"""Look at ranked moments: an HTML5 player that jumps to a moment on click, and a timeline of thumbnails.

:func:`moment_player` shows a target video with one button per ranked moment; a click seeks the
player to the moment's start and plays it up to its end. The buttons are plain HTML with inline
handlers inside an ``ipywidgets.HTML`` widget, and the same markup is also the output's
``text/html`` fallback: JupyterLab renders the widget, while an exported HTML page (nbconvert, or a
notebook saved without widget state) renders the fallback, so the player works in both and needs no
kernel. Small videos are embedded as ``data:`` URIs, so the page works offline and when moved; the
``<video>`` tag names its file in ``data-name``, so that the report's executed copies can keep the
video as a file beside the notebook instead (:func:`matr.reporting.executed.clean_executed`).

:func:`moment_timeline` draws a whole target video as thumbnails on a time axis, with the ranked
moments as bars underneath (and the ground truth, when known): a prediction on the whole video.
"""

from __future__ import annotations

import base64
import html
import mimetypes
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from matr.features.video import probe_video, sample_frames
from matr.postprocess import RankedSpan

# Presentation only (no bearing on any result): a data: URI keeps the player working offline and in
# exported HTML, larger files are linked so notebooks stay small; 12 thumbnails show the scenes of a
# minutes-long video while each stays legible at 100 % zoom.
EMBED_LIMIT_BYTES = 20_000_000
THUMBNAILS = 12
PLAYER_CLASS = "matr-player"
MOMENT_CLASS = "matr-moment"
_SEEK = (
    "var v=this.closest('.{player}').querySelector('video');"
    "v.dataset.end='{end}';v.currentTime={start};var p=v.play();if(p){{p.catch(function(){{}});}}"
)
_STOP_AT_END = "if(this.dataset.end&&this.currentTime>=+this.dataset.end){this.pause();delete this.dataset.end;}"


class MomentPlayer:
    """An ``ipywidgets.HTML`` player whose output also carries its markup as ``text/html`` (module docstring)."""

    def __init__(self, markup: str) -> None:
        import ipywidgets

        self.html = markup
        self.widget = ipywidgets.HTML(markup)

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any]:
        bundle = self.widget._repr_mimebundle_(**kwargs) or {}
        return {**bundle, "text/html": self.html}


def moment_player(
    video: str | os.PathLike, moments: Sequence[RankedSpan], *, width: int = 480, title: str | None = None
) -> MomentPlayer:
    """A player of ``video`` with one button per moment (``moments`` in seconds, best first)."""
    return MomentPlayer(player_html(video, moments, width=width, title=title))


def player_html(
    video: str | os.PathLike, moments: Sequence[RankedSpan], *, width: int = 480, title: str | None = None
) -> str:
    """The player's markup: a ``<video>`` and a button per moment (``rank. start-end s (score)``)."""
    buttons = "".join(
        f'<button class="{MOMENT_CLASS}" type="button" data-start="{m.start:.3f}" data-end="{m.end:.3f}" '
        f'onclick="{html.escape(_SEEK.format(player=PLAYER_CLASS, start=f"{m.start:.3f}", end=f"{m.end:.3f}"))}" '
        'style="margin:2px 4px 2px 0;cursor:pointer">'
        f"{rank}. {m.start:.1f}&ndash;{m.end:.1f} s ({m.score:.2f})</button>"
        for rank, m in enumerate(moments, start=1)
    )
    heading = f"<div><b>{html.escape(title)}</b></div>" if title else ""
    return (
        f'<div class="{PLAYER_CLASS}">{heading}'
        f'<video controls preload="metadata" width="{width}" data-name="{html.escape(Path(video).name)}" '
        f'src="{video_source(video)}" '
        f'ontimeupdate="{html.escape(_STOP_AT_END)}"></video>'
        f"<div>Ranked moments (click to play): {buttons}</div></div>"
    )


def video_source(video: str | os.PathLike, embed_limit: int = EMBED_LIMIT_BYTES) -> str:
    """A ``data:`` URI of ``video`` up to ``embed_limit`` bytes, else its path relative to the working folder."""
    path = Path(video)
    if not path.is_file():
        raise FileNotFoundError(f"video {path} does not exist")
    if path.stat().st_size <= embed_limit:
        mime = mimetypes.guess_type(path.name)[0] or "video/mp4"
        return f"data:{mime};base64,{base64.b64encode(path.read_bytes()).decode('ascii')}"
    return html.escape(Path(os.path.relpath(path.resolve(), Path.cwd())).as_posix())


def moment_timeline(
    video: str | os.PathLike,
    moments: Sequence[RankedSpan],
    *,
    ground_truth: tuple[float, float] | None = None,
    thumbnails: int = THUMBNAILS,
    title: str | None = None,
) -> Figure:
    """The whole ``video`` as ``thumbnails`` frames on a time axis, the ranked ``moments`` as bars below.

    Each thumbnail spans its window ``[i T / n, (i + 1) T / n]`` of the video's ``T`` seconds and
    is labelled with the time of the frame it shows; it is outlined when that time falls inside the
    top-1 moment. ``ground_truth`` (seconds) is shaded green behind the bars.
    """
    if thumbnails < 1:
        raise ValueError(f"thumbnails must be >= 1, got {thumbnails}")
    duration = probe_video(video).duration
    sampled = sample_frames(video, duration / thumbnails, size=96)
    fig = Figure(figsize=(12, 2.4 + 0.32 * max(len(moments), 1)), layout="constrained")
    strip, bars = fig.subplots(
        2, 1, sharex=True, gridspec_kw={"height_ratios": [2.0, 0.45 + 0.3 * max(len(moments), 1)]}
    )
    _draw_thumbnails(strip, sampled.frames, sampled.timestamps, duration, moments[:1])
    _draw_moments(bars, moments, duration)
    if ground_truth is not None:
        bars.axvspan(*ground_truth, color="tab:green", alpha=0.2, lw=0, label="ground truth")
        bars.legend(loc="lower right", bbox_to_anchor=(1.0, 1.0), fontsize=8, frameon=False, borderaxespad=0.1)
    bars.set_xlim(0, duration)
    bars.set_xlabel("target time (s)")
    if title:
        fig.suptitle(title)
    return fig


def _draw_thumbnails(
    ax: Any, frames: np.ndarray, times: np.ndarray, duration: float, top: Sequence[RankedSpan]
) -> None:
    """``frames (n, H, W, 3)`` side by side over ``[0, duration]``; those shown inside ``top[0]`` outlined."""
    step = duration / len(frames)
    for i, (frame, time) in enumerate(zip(frames, times, strict=True)):
        left = i * step
        ax.imshow(frame, extent=(left, left + step, 0, 1), aspect="auto", interpolation="bilinear")
        inside = bool(top) and top[0].start <= time <= top[0].end
        if inside:
            ax.add_patch(_outline(left, step))
        ax.text(left + step / 2, -0.04, f"{time:.1f}s", ha="center", va="top", fontsize=8, transform=ax.transData)
    ax.set_ylim(0, 1)
    ax.set_yticks([])
    ax.tick_params(axis="x", labelbottom=False)
    for spine in ax.spines.values():
        spine.set_visible(False)


def _outline(left: float, width: float) -> Any:
    from matplotlib.patches import Rectangle

    return Rectangle((left, 0.0), width, 1.0, fill=False, edgecolor="tab:red", linewidth=2.5)


def _draw_moments(ax: Any, moments: Sequence[RankedSpan], duration: float) -> None:
    """One bar per moment, rank 1 on top, labelled with its score."""
    for rank, moment in enumerate(moments, start=1):
        color = "tab:red" if rank == 1 else "tab:blue"
        ax.barh(rank, moment.end - moment.start, left=moment.start, height=0.6, color=color, alpha=0.85)
        right = moment.end < 0.75 * duration  # the label goes where there is room
        ax.text(
            moment.end + 0.01 * duration if right else moment.start - 0.01 * duration,
            rank,
            f"{moment.start:.1f}-{moment.end:.1f} s ({moment.score:.2f})",
            ha="left" if right else "right",
            va="center",
            fontsize=8,
        )
    ax.set_ylim(len(moments) + 0.6, 0.4)
    ax.set_yticks(range(1, len(moments) + 1), [f"#{rank}" for rank in range(1, len(moments) + 1)])
    ax.set_ylabel("rank")
