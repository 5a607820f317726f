"""Crash-safe file writing: every file ``matr`` produces appears whole or not at all.

Each writer writes to a temporary file in the destination folder and moves it into place with
``os.replace`` (atomic on POSIX and Windows), so an interrupted run never leaves a truncated
checkpoint, feature array or results file behind.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

import torch


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike) -> Iterator[BinaryIO]:
    """Open a temporary binary file that replaces ``path`` when the block exits without error."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp creates 0600; give the file normal permissions
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_text(path: str | os.PathLike, text: str) -> None:
    """Atomically write ``text`` (UTF-8) to ``path``."""
    with atomic_open(path) as handle:
        handle.write(text.encode("utf-8"))


def write_json(path: str | os.PathLike, data: Any) -> None:
    """Atomically write ``data`` as indented, key-sorted JSON."""
    write_text(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def write_jsonl(path: str | os.PathLike, records: Iterable[Any]) -> None:
    """Atomically write one JSON object per line (keys sorted, so equal data gives equal bytes)."""
    write_text(path, "".join(json.dumps(r, sort_keys=True) + "\n" for r in records))


def read_jsonl(path: str | os.PathLike) -> list[Any]:
    """Read a JSON-lines file; a malformed line raises ``ValueError`` naming the file and line."""
    records = []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as error:
                raise ValueError(f"{path}, line {number}: not valid JSON ({error.msg})") from error
    return records


def torch_save(obj: Any, path: str | os.PathLike) -> None:
    """Atomically ``torch.save`` an object of tensors and plain Python values."""
    with atomic_open(path) as handle:
        torch.save(obj, handle)
