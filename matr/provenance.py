"""Where a result came from: code version, machine and the run's own settings.

Every metrics file, report table and checkpoint that ``matr`` writes carries one of these records,
so a number can always be traced to the commit, backbone weights and data that produced it.
"""

from __future__ import annotations

import datetime as _dt
import platform
import subprocess
from pathlib import Path
from typing import Any

import torch

import matr

RANDOM_INIT_PREFIX = "random-init"
DIRTY_SUFFIX = "-dirty"
OUTPUT_FOLDERS: tuple[str, ...] = ("reports", "runs")


def git_commit(path: Path | None = None) -> str:
    """The commit of the checkout holding ``matr``, or ``unknown``.

    :data:`DIRTY_SUFFIX` is appended when the tree has uncommitted changes: modified or untracked
    (not ignored) files outside :data:`OUTPUT_FOLDERS`, which a report run itself rewrites.
    """
    where = path or Path(matr.__file__).resolve().parent
    excluded = [f":(top,exclude){folder}" for folder in OUTPUT_FOLDERS]
    try:
        commit = _git(where, "rev-parse", "HEAD")
        dirty = _git(where, "status", "--porcelain", "--", ":(top)", *excluded)
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit + (DIRTY_SUFFIX if dirty else "")


def _git(where: Path, *args: str) -> str:
    result = subprocess.run(["git", *args], cwd=where, capture_output=True, text=True, check=True, timeout=10)
    return result.stdout.strip()


def hardware() -> dict[str, Any]:
    """The machine: CPU, core count, GPU name (if any), Python and PyTorch versions."""
    info: dict[str, Any] = {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "matr": matr.__version__,
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
        info["gpu_count"] = torch.cuda.device_count()
    return info


def is_random_init(weights_tag: str) -> bool:
    """Whether a backbone weights tag denotes an untrained (random-init) CLIP backbone."""
    return weights_tag.startswith(RANDOM_INIT_PREFIX)


def provenance(**run: Any) -> dict[str, Any]:
    """A provenance record: ``run`` (config, seed, weights tag, dataset, split, ...) plus code and machine.

    A ``weights_tag`` that denotes a random-init backbone adds ``"random_init_backbone": True`` so
    that no reader can mistake such a result for one from real CLIP features.
    """
    record = dict(run)
    if "weights_tag" in run:
        record["random_init_backbone"] = is_random_init(str(run["weights_tag"]))
    record.update(
        git_commit=git_commit(),
        hardware=hardware(),
        created=_dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
    )
    return record
