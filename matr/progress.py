"""Progress bars (``tqdm.auto``): one meaning of a ``progress`` flag for every long job."""

from __future__ import annotations

from typing import Any


def bar_options(progress: bool | None) -> dict[str, Any]:
    """tqdm keyword arguments for a ``progress`` flag: ``True`` keeps tqdm's defaults (so ``TQDM_DISABLE`` still
    hides the bar in a headless run), ``False`` hides it, ``None`` hides it when not writing to a terminal."""
    return {} if progress else {"disable": None if progress is None else True}
