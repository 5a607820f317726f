"""What the runner shows while the notebook series runs: notebook, cell, elapsed time, time left.

One ``tqdm.auto`` bar per notebook, stepping over its cells; its label names the notebook
(``[3/9] 03_finetuning``) and the running cell (its ``#papermill_description=`` or first line), and
its postfix the time left, estimated from the last run's per-cell seconds in ``timings.json``
(:func:`cell_seconds`). A ticker thread redraws the bar while a long cell runs, so the clock moves.
:class:`ProgressEngine` is papermill's nbclient engine plus these calls.
"""

from __future__ import annotations

import re
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

from papermill.engines import NBClientEngine, papermill_engines
from tqdm.auto import tqdm

ENGINE = "matr-progress"
_DESCRIPTION = re.compile(r"^#\s*papermill_description=(?P<label>.+)$")
_LABEL_CHARS = 48
_BAR = "{desc}{n_fmt}/{total_fmt} cells | {elapsed} elapsed{postfix}"


def cell_seconds(timings: Mapping[str, Any], stem: str) -> list[float] | None:
    """The last run's seconds per cell of notebook ``stem`` (None when ``timings.json`` has none)."""
    cells = timings.get(stem, {}).get("cells")
    return [float(seconds or 0.0) for seconds in cells] if isinstance(cells, list) else None


def cell_label(source: str) -> str:
    """A cell's ``#papermill_description=`` label, else its first non-empty line (shortened)."""
    lines = [line.strip() for line in source.splitlines() if line.strip()]
    if not lines:
        return "(empty cell)"
    described = _DESCRIPTION.match(lines[0])
    if described:
        return described["label"].strip()
    return lines[0] if len(lines[0]) <= _LABEL_CHARS else lines[0][: _LABEL_CHARS - 1] + "…"


def format_seconds(seconds: float) -> str:
    """``"42s"``, ``"3m05s"`` or ``"1h02m"``."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


class NotebookProgress:
    """The bar of one notebook: :meth:`begin`, :meth:`cell_started` per cell, then :meth:`close`.

    ``position``: ``(index, count)`` of the notebook in the series; ``last``: the last run's seconds
    per cell (same cell indices as papermill's, injected parameters included), or None.
    """

    def __init__(self, stem: str, position: tuple[int, int], last: Sequence[float] | None) -> None:
        self.prefix = f"[{position[0]}/{position[1]}] {stem}"
        self.last = list(last) if last is not None else None
        self.bar: Any = None
        self.cell_index, self.cell_start = 0, time.perf_counter()
        self._stop = threading.Event()
        every = 1.0 if sys.stderr.isatty() else 60.0
        self._ticker = threading.Thread(target=self._tick, args=(every,), daemon=True)

    def begin(self, cells: int) -> None:
        """The notebook, ``cells`` cells long (parameters injected), starts; earlier timings of another length are dropped."""
        if self.last is not None and len(self.last) != cells:
            self.last = None
        self.bar = tqdm(total=cells, desc=self.prefix, bar_format=_BAR, leave=True, dynamic_ncols=True)
        self._ticker.start()

    def cell_started(self, index: int, source: str | None) -> None:
        """Cell ``index`` (papermill's index) starts running; ``source``: a code cell's, None for markdown."""
        self.bar.n, self.cell_index, self.cell_start = index, index, time.perf_counter()
        if source is not None:
            self.bar.set_description(f"{self.prefix} · cell {index + 1}: {cell_label(source)}", refresh=False)
            self._refresh()

    def remaining(self) -> float | None:
        """Seconds left by the last run's timings (None without them)."""
        if self.last is None:
            return None
        in_cell = time.perf_counter() - self.cell_start
        return max(self.last[self.cell_index] - in_cell, 0.0) + sum(self.last[self.cell_index + 1 :])

    def close(self) -> None:
        """Stop the clock and leave the bar at its end."""
        if self.bar is None:
            return
        self._stop.set()
        self._ticker.join()
        self.bar.n = self.bar.total
        self.bar.set_description(self.prefix, refresh=False)
        self.bar.set_postfix_str("done", refresh=False)
        self.bar.close()

    def _refresh(self) -> None:
        left = self.remaining()
        self.bar.set_postfix_str(
            "no earlier timings" if left is None else f"about {format_seconds(left)} left (last run)", refresh=False
        )
        self.bar.refresh()

    def _tick(self, every: float) -> None:
        while not self._stop.wait(every):
            self._refresh()


class ProgressEngine(NBClientEngine):
    """papermill's nbclient engine that reports each cell's start to a :class:`NotebookProgress`."""

    @classmethod
    def execute_managed_notebook(
        cls, nb_man: Any, kernel_name: str, progress: NotebookProgress | None = None, **kwargs
    ):
        if progress is not None:
            progress.begin(len(nb_man.nb.cells))
            started = nb_man.cell_start

            def cell_start(cell: Any, cell_index: int | None = None, **options: Any) -> Any:
                progress.cell_started(cell_index or 0, cell.source if cell.cell_type == "code" else None)
                return started(cell, cell_index, **options)

            nb_man.cell_start = cell_start
        return super().execute_managed_notebook(nb_man, kernel_name, **kwargs)


papermill_engines.register(ENGINE, ProgressEngine)
