"""matr: a reproducibility kit for MATR (Moment Alignment TRansformer, ICCV 2025).

``import matr`` is light (no PyTorch): :func:`load` and :class:`Model` come from :mod:`matr.api`
on first use::

    model = matr.load("examples/demo_checkpoint.pt")
    model.localize("examples/query.mp4", "examples/target.mp4").moments
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"
__all__ = ["Model", "load", "__version__"]

_LAZY = {"load": "matr.api", "Model": "matr.api"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'matr' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])
