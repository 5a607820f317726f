"""Executed notebooks as the report keeps them: no widget state, compact images, per-cell seconds.

papermill leaves what the kernel displayed. :func:`clean_executed` removes what does not render
offline or only bloats the copy: the notebook's widget state (``metadata.widgets``), widget views
in outputs (a widget's text repr goes with its view), progress-bar refreshes on stderr (a bar that
ignores ``TQDM_DISABLE``), and it re-encodes each PNG output with at most :data:`PNG_COLOURS`
colours (the figures themselves are kept at full quality as artifacts).
:func:`cell_durations` reads the seconds papermill recorded per cell, for the next run's estimate.
"""

from __future__ import annotations

import base64
import io
import os
import re
from pathlib import Path
from typing import Any

import nbformat
from PIL import Image

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
PNG_COLOURS = 128
_BAR = re.compile(r"\d+%\|.*\| *[\d.]+[kMG]?/[\d.?]+[kMG]? \[")


def clean_executed(path: str | os.PathLike) -> None:
    """Rewrite the executed notebook ``path`` without widget state and with compact PNG outputs."""
    nb = nbformat.read(Path(path), as_version=4)
    nb.metadata.pop("widgets", None)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = [output for output in map(_clean_output, cell.outputs) if output is not None]
    nbformat.write(nb, Path(path))


def _clean_output(output: Any) -> Any:
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
    return output


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
