"""Checkpoints: model weights, optimiser state, progress and the full config in one safe file.

A checkpoint is a ``torch.save`` of plain containers, tensors and numbers only, written atomically
and read back with ``torch.load(..., weights_only=True)``: loading never unpickles code. Its
``format`` field tells a ``matr`` checkpoint from any other file, so a foreign or corrupt file gives
a :class:`CheckpointError` that names it instead of a stack trace from deep inside PyTorch.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from matr.config import MATRConfig
from matr.io import torch_save

FORMAT = "matr-checkpoint"
VERSION = 1


class CheckpointError(ValueError):
    """A file that is missing, unreadable, or not a ``matr`` checkpoint."""


def save_checkpoint(path: str | os.PathLike, model: nn.Module, config: MATRConfig, **extra: Any) -> None:
    """Atomically write ``model``'s weights, ``config`` and ``extra`` (epoch, optimiser state, ...)."""
    torch_save(
        {
            "format": FORMAT,
            "version": VERSION,
            "config": config.to_dict(),
            "model": unwrap(model).state_dict(),
            **extra,
        },
        path,
    )


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Read and validate a checkpoint on the CPU (``weights_only=True``)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many types for corrupt or code-carrying files
        raise CheckpointError(f"{path} could not be read as a matr checkpoint: {refusal_reason(error)}") from error
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        keys = sorted(data) if isinstance(data, dict) else type(data).__name__
        raise CheckpointError(f"{path} is not a matr checkpoint (expected format {FORMAT!r}; found {keys})")
    if data.get("version") != VERSION:
        raise CheckpointError(f"{path} has checkpoint version {data.get('version')}, this matr reads {VERSION}")
    return data


def refusal_reason(error: Exception) -> str:
    """Why ``torch.load(..., weights_only=True)`` refused a file, in a few words.

    torch's own message is not passed on: for a file that carries code it advises loading with
    ``weights_only=False``, which would run that code.
    """
    if "weights_only" in str(error) or "Weights only load failed" in str(error):
        return "it holds objects other than tensors and plain values (refused: loading it could run code)"
    return f"not a file written by torch.save ({type(error).__name__}: {str(error).splitlines()[0][:120] if str(error) else 'no detail'})"


def checkpoint_config(data: dict[str, Any], path: str | os.PathLike = "checkpoint") -> MATRConfig:
    """The ``MATRConfig`` stored in a loaded checkpoint."""
    try:
        return MATRConfig.from_dict(data["config"])
    except (KeyError, ValueError) as error:
        raise CheckpointError(f"{path}: invalid config in checkpoint: {error}") from error


def load_weights(model: nn.Module, data: dict[str, Any], path: str | os.PathLike = "checkpoint") -> None:
    """Load a checkpoint's weights into ``model``; a mismatching architecture raises ``CheckpointError``."""
    try:
        unwrap(model).load_state_dict(data["model"])
    except (KeyError, RuntimeError) as error:
        raise CheckpointError(f"{path}: weights do not fit this model: {error}") from error


def load_model(path: str | os.PathLike, device: torch.device | str = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """Build the MATR model a checkpoint describes, load its weights, put it in eval mode on ``device``."""
    from matr.model import MATR

    data = load_checkpoint(path)
    model = MATR(checkpoint_config(data, path))
    load_weights(model, data, path)
    return model.to(device).eval(), data


def unwrap(model: nn.Module) -> nn.Module:
    """The bare module inside a ``DistributedDataParallel`` wrapper (or the module itself)."""
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model
