"""Executed notebooks as the report keeps them: no widget state, compact images, per-cell seconds.

papermill leaves what the kernel displayed. :func:`clean_executed` removes what does not render
offline or only bloats the copy: the notebook's widget state (``metadata.widgets``), widget views
in outputs (a widget's text repr goes with its view), progress-bar refreshes on stderr (a bar that
ignores ``TQDM_DISABLE``), and it re-encodes each PNG output with at most :data:`PNG_COLOURS`
colours (the figures themselves are kept at full quality as artifacts). Videos that an HTML output
embeds as ``data:`` URIs (the player of :mod:`matr.viewer`) become files in a media folder beside
the copy (``NAME_files/``, named by the tag's ``data-name``) linked by a relative URL: JupyterLab
serves such a link from the notebook's folder, and nbconvert's HTML export of the copy, written
into the same folder, plays it too.
:func:`cell_durations` reads the seconds papermill recorded per cell, for the next run's estimate.
"""

from __future__ import annotations

import base64
import hashlib
import html
import io
import mimetypes
import os
import re
from pathlib import Path
from typing import Any

import nbformat
from PIL import Image

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
PNG_COLOURS = 128
MEDIA_SUFFIX = "_files"
_BAR = re.compile(r"\d+%\|.*\| *[\d.]+[kMG]?/[\d.?]+[kMG]? \[")
_VIDEO_TAG = re.compile(r"<video\b[^>]*>")
_DATA_SRC = re.compile(r'\bsrc="data:(video/[\w.+-]+);base64,([^"]*)"')
_DATA_NAME = re.compile(r'\bdata-name="([^"]*)"')


def clean_executed(path: str | os.PathLike, media_dir: str | os.PathLike | None = None) -> None:
    """Rewrite the executed notebook ``path`` without widget state, with compact PNGs and linked videos.

    Embedded videos go to ``media_dir`` (default ``NAME_files`` beside ``path``); cleaning a clean copy changes nothing.
    """
    path = Path(path)
    media_dir = path.with_name(path.stem + MEDIA_SUFFIX) if media_dir is None else Path(media_dir)
    nb = nbformat.read(path, as_version=4)
    nb.metadata.pop("widgets", None)
    for cell in nb.cells:
        if cell.cell_type == "code":
            outputs = (_clean_output(output, media_dir, path.parent) for output in cell.outputs)
            cell.outputs = [output for output in outputs if output is not None]
    nbformat.write(nb, path)


def _clean_output(output: Any, media_dir: Path, base: Path) -> Any:
    """``output`` without widget view or bar refreshes (None when nothing worth keeping is left)."""
    if output.get("output_type") == "stream" and output.get("name") == "stderr":
        output.text = without_bars(output.text)
        return output if output.text else None
    data = output.get("data")
    if data is None:
        return output
    if data.pop(WIDGET_VIEW, None) is not None and set(data) <= {"text/plain"}:
        return None
    if "image/png" in data:
        data["image/png"] = compact_png(data["image/png"])
    if "text/html" in data:
        data["text/html"] = link_videos(data["text/html"], media_dir, base)
    return output


def link_videos(markup: str, media_dir: Path, base: Path) -> str:
    """``markup`` with each ``<video src="data:...">`` written into ``media_dir`` and linked relative to ``base``."""

    def link(tag: re.Match) -> str:
        source = _DATA_SRC.search(tag.group(0))
        if source is None:
            return tag.group(0)
        named = _DATA_NAME.search(tag.group(0))
        name = html.unescape(named.group(1)) if named else f"video{mimetypes.guess_extension(source.group(1)) or ''}"
        file = _write_media(media_dir, base64.b64decode(source.group(2)), name)
        url = html.escape(Path(os.path.relpath(file, base)).as_posix())
        return tag.group(0).replace(source.group(0), f'src="{url}"')

    return _VIDEO_TAG.sub(link, markup)


def _write_media(media_dir: Path, data: bytes, name: str) -> Path:
    """``data`` as ``media_dir/name`` (a content hash joins the name when another file holds it)."""
    file = media_dir / re.sub(r"[^\w.-]", "_", Path(name).name)
    if file.exists() and file.read_bytes() != data:
        file = media_dir / f"{file.stem}-{hashlib.sha256(data).hexdigest()[:12]}{file.suffix}"
    media_dir.mkdir(parents=True, exist_ok=True)
    file.write_bytes(data)
    return file


def without_bars(text: str) -> str:
    """``text`` as a terminal shows it (each line's last carriage-return segment) without tqdm bar lines."""
    lines = (line.rsplit("\r", 1)[-1] for line in text.split("\n"))
    return "\n".join(line for line in lines if not _BAR.search(line)).strip("\n")


def compact_png(encoded: str, colours: int = PNG_COLOURS) -> str:
    """A base64 PNG re-encoded with a palette of at most ``colours`` (the original when that is not smaller)."""
    raw = base64.b64decode(encoded)
    image = Image.open(io.BytesIO(raw))
    if image.mode == "RGBA":
        palette = image.quantize(colours, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE)
    else:
        palette = image.convert("RGB").quantize(colours, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    buffer = io.BytesIO()
    palette.save(buffer, format="PNG", optimize=True)
    smaller = buffer.getvalue()
    return base64.b64encode(smaller).decode("ascii") + "\n" if len(smaller) < len(raw) else encoded


def cell_durations(path: str | os.PathLike) -> list[float]:
    """Seconds papermill recorded for each cell of the executed notebook ``path`` (0 for cells not run)."""
    nb = nbformat.read(Path(path), as_version=4)
    return [round(float(cell.metadata.get("papermill", {}).get("duration") or 0.0), 3) for cell in nb.cells]
