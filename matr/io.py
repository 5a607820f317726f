"""Files ``matr`` writes and reads: atomic writes, JSON lines, and write errors in one line.

Each writer writes to a temporary file in the destination folder and moves it into place with
``os.replace`` (atomic on POSIX and Windows), so an interrupted run never leaves a truncated
checkpoint, feature array or results file behind. :func:`append_jsonl` appends one record in one
write and first repairs a torn last line left by a crash or a full disk, so an appended record is
never glued onto a broken one. A write that fails (full disk, read-only folder, no permission)
raises :class:`WriteError`, whose message names the path, what happened and what to do.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

logger = logging.getLogger(__name__)

_ADVICE = {
    errno.ENOSPC: ("the disk is full", "free some space and rerun the same command; what was written before is kept"),
    errno.EDQUOT: ("the disk quota is exceeded", "free some space and rerun the same command"),
    errno.EROFS: ("the file system is read-only", "choose a folder on a writable disk"),
    errno.EACCES: ("permission denied", "choose a folder you may write to"),
    errno.EPERM: ("operation not permitted", "choose a folder you may write to"),
}


class WriteError(OSError):
    """A file could not be written; ``str(error)`` is one line: path, what happened, what to do."""

    def __init__(self, path: str | os.PathLike, error: OSError):
        code = error.errno if error.errno is not None else errno.ENOSPC if "written" in str(error) else None
        what, todo = _ADVICE.get(code, (error.strerror or str(error), "check the path and rerun"))
        super().__init__(code, what, str(path))
        self.message = f"cannot write {path}: {what}; {todo}"

    def __str__(self) -> str:
        return self.message


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike) -> Iterator[BinaryIO]:
    """Open a temporary binary file that replaces ``path`` when the block exits without error.

    An ``OSError`` while creating or writing the file becomes a :class:`WriteError` naming ``path``.
    """
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp creates 0600; give the file normal permissions
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException as error:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        if isinstance(error, OSError) and not isinstance(error, WriteError):
            raise WriteError(path, error) from error
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


def read_jsonl(
    path: str | os.PathLike, *, key: str | tuple[str, ...] | None = None, torn_tail: bool = False
) -> list[Any]:
    """Read a JSON-lines file; a malformed line raises ``ValueError`` naming the file and line.

    ``key``: the field (or fields) that identify a record, e.g. ``("pair_id", "source")``; a second
    record with the same value raises ``ValueError`` naming both lines. A name repeated inside one
    object is an error too (JSON would silently keep the last). ``torn_tail``: a last line without
    its newline that is not valid JSON (a write cut short) is skipped with a warning instead.
    """
    records: list[Any] = []
    seen: dict[Any, int] = {}
    text = Path(path).read_text(encoding="utf-8")
    lines = text.split("\n")
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line, object_pairs_hook=_unique_names)
        except ValueError as error:
            if torn_tail and number == len(lines):
                logger.warning("%s, line %d: torn last line (interrupted write?); ignoring it", path, number)
                continue
            reason = error.msg if isinstance(error, json.JSONDecodeError) else str(error)
            raise ValueError(f"{path}, line {number}: not valid JSON ({reason})") from error
        if key is not None:
            value = _key_of(record, key, path, number)
            if value in seen:
                raise ValueError(
                    f"{path}, line {number}: duplicate {_name(key)} {value!r} (first on line {seen[value]})"
                )
            seen[value] = number
        records.append(record)
    return records


def append_jsonl(path: str | os.PathLike, record: Any) -> None:
    """Append one JSON line in a single write and fsync it, after repairing a torn last line.

    A last line without its newline (a crash or a full disk mid-write) is completed if it is a
    whole record, else cut off. If the append itself fails, the file is cut back to its former
    size, so readers never see half a record, and :class:`WriteError` is raised.
    """
    path = Path(path)
    data = (json.dumps(record, sort_keys=True) + "\n").encode("utf-8")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a+b") as file:
            size = _repair_tail(file, path)
            try:
                file.write(data)
                file.flush()
                os.fsync(file.fileno())
            except OSError:
                with contextlib.suppress(OSError):
                    file.truncate(size)
                raise
    except OSError as error:
        raise WriteError(path, error) from error


class BusyError(RuntimeError):
    """Another process holds the lock of a file or folder that takes one writer at a time."""


@contextlib.contextmanager
def exclusive_lock(path: str | os.PathLike, what: str) -> Iterator[None]:
    """Hold an exclusive lock on the file ``path`` (created if absent) for the block; ``what`` names the resource.

    A second holder gets :class:`BusyError` at once (it does not wait). The lock is the operating
    system's (``flock``), so it is released when its process dies, however that happens.
    """
    import fcntl

    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(path, "a+")  # noqa: SIM115 - closed below, after the block
    except OSError as error:
        raise WriteError(path, error) from error
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise BusyError(
                f"{what} is being written by another process (lock {path}); wait until it ends, or use another folder"
            ) from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _repair_tail(file: BinaryIO, path: Path) -> int:
    """Make ``file`` end in a newline (complete or drop a torn last line); return its size."""
    size = file.seek(0, os.SEEK_END)
    if size == 0:
        return 0
    file.seek(max(0, size - (1 << 20)))
    tail = file.read()
    if tail.endswith(b"\n"):
        return size
    cut = tail.rfind(b"\n")
    torn = tail[cut + 1 :]
    try:
        json.loads(torn)
    except ValueError:
        file.truncate(size - len(torn))
        logger.warning("%s: dropped a torn last line of %d bytes (interrupted write)", path, len(torn))
        return size - len(torn)
    file.write(b"\n")
    return size + 1


def _unique_names(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    names = [name for name, _ in pairs]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ValueError(f"the name {repeated[0]!r} appears twice in one object")
    return dict(pairs)


def _key_of(record: Any, key: str | tuple[str, ...], path: str | os.PathLike, number: int) -> Any:
    fields = (key,) if isinstance(key, str) else key
    if not isinstance(record, dict) or any(name not in record for name in fields):
        raise ValueError(f"{path}, line {number}: expected a JSON object with {_name(key)}")
    values = tuple(record[name] for name in fields)
    return values[0] if isinstance(key, str) else values


def _name(key: str | tuple[str, ...]) -> str:
    return key if isinstance(key, str) else "(" + ", ".join(key) + ")"


def torch_save(obj: Any, path: str | os.PathLike) -> None:
    """Atomically ``torch.save`` an object of tensors and plain Python values."""
    import torch

    with atomic_open(path) as handle:
        torch.save(obj, handle)
