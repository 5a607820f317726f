"""The one place that turns a device name (``auto``, ``cpu``, ``cuda``, ``cuda:1``, ``mps``) into a ``torch.device``.

Training, evaluation, CLIP feature extraction and inference all call :func:`resolve_device`, so a
name means the same everywhere: ``auto`` is this process's GPU (``LOCAL_RANK`` under ``torchrun``)
when CUDA is available, else the CPU. A name torch does not know, or a GPU that is not there, raises
:class:`DeviceError` (a ``ValueError``) in one line that says what to pass instead. Importing this
module does not import torch (the command line checks names before it loads anything heavy).
"""

from __future__ import annotations

import os
import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

DEVICE_NAME = re.compile(r"auto|cpu|mps|cuda(:\d+)?")
"""Names :func:`resolve_device` accepts (checked by the command line before torch is imported)."""


class DeviceError(ValueError):
    """A device name that is unknown, or names hardware this machine does not have."""


def resolve_device(name: str | torch.device | None = "auto", *, local_rank: int | None = None) -> torch.device:
    """``name`` as a ``torch.device``; ``auto`` (or ``None``) -> ``cuda:LOCAL_RANK`` if CUDA is available, else ``cpu``.

    ``local_rank`` defaults to the ``LOCAL_RANK`` environment variable (``torchrun``), else 0.
    """
    import torch

    if isinstance(name, torch.device):
        name = str(name)
    if name is None or name == "auto":
        if not torch.cuda.is_available():
            return torch.device("cpu")
        rank = local_rank if local_rank is not None else int(os.environ.get("LOCAL_RANK", "0"))
        return torch.device("cuda", rank)
    if not DEVICE_NAME.fullmatch(name):
        raise DeviceError(f"unknown device {name!r}: expected auto, cpu, cuda, cuda:N or mps")
    device = torch.device(name)
    if device.type == "cuda":
        _check_cuda(name, device)
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise DeviceError(f"device {name!r} is not available on this machine; use auto or cpu")
    return device


def _check_cuda(name: str, device: torch.device) -> None:
    import torch

    if not torch.cuda.is_available():
        raise DeviceError(f"device {name!r} asked for, but this machine has no usable CUDA GPU; use auto or cpu")
    count = torch.cuda.device_count()
    if device.index is not None and device.index >= count:
        raise DeviceError(f"device {name!r} asked for, but this machine has {count} CUDA GPU(s) (cuda:0..{count - 1})")
