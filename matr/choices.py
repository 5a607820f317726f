"""Choices where the paper is silent, declared as data next to the code that makes them.

A module declares each such choice once, at module level, where the value is used::

    GAMMA = choices.declare("soft-DTW temperature gamma", 0.1, "the paper gives no value")

:func:`declare` returns the value unchanged, so the constant stays the single home of the number;
:func:`declared` lists every choice of the modules imported so far, and :func:`choices_of` those of
given modules, which the report renders and credits to the notebooks that use those modules.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any, TypeVar

_T = TypeVar("_T")


@dataclass(frozen=True)
class Choice:
    """One choice where the paper is silent: what, which value, why, and the module that makes it."""

    name: str
    value: str
    reason: str
    module: str

    def as_dict(self) -> dict[str, str]:
        return {"name": self.name, "value": self.value, "reason": self.reason, "module": self.module}


_REGISTRY: dict[tuple[str, str], Choice] = {}


def declare(name: str, value: _T, reason: str, *, module: str | None = None) -> _T:
    """Record a choice of the calling module and return ``value`` unchanged.

    ``module`` defaults to the caller's ``__name__``. Declaring the same name twice in one module
    replaces the earlier entry (a re-imported module), so the registry never holds duplicates.
    """
    if not name or not reason:
        raise ValueError("a choice needs a name and a reason")
    if module is None:
        frame = inspect.currentframe()
        caller = frame.f_back if frame is not None else None
        module = caller.f_globals.get("__name__", "?") if caller is not None else "?"
    _REGISTRY[(module, name)] = Choice(name=name, value=_format(value), reason=reason, module=module)
    return value


def declared() -> list[Choice]:
    """Every choice declared so far, sorted by module then name."""
    return sorted(_REGISTRY.values(), key=lambda choice: (choice.module, choice.name))


def choices_of(modules: tuple[str, ...] | list[str]) -> list[Choice]:
    """The declared choices of ``modules`` (a module name also selects its submodules)."""
    prefixes = tuple(modules)
    return [c for c in declared() if c.module in prefixes or c.module.startswith(tuple(m + "." for m in prefixes))]


def _format(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (tuple, list)):
        return ", ".join(_format(item) for item in value)
    return str(value)
