"""One-dimensional span utilities: the temporal counterpart of DETR's ``box_ops``.

Conventions used everywhere in ``matr``:

* A *span* is ``(start, end)`` in seconds (or in frame units where a function says so),
  stored in the last dimension of a tensor of shape ``(..., 2)``. It is the closed interval
  ``[start, end]`` with ``end >= start``; its length is ``end - start``.
* Target frame ``i`` (0-based) of a video sampled every ``clip_length`` seconds covers
  ``[i * c, (i + 1) * c)`` and sits at its *centre* ``t_i = (i + 0.5) * c``.
* Frame ``i`` is *foreground* for a ground-truth window ``[s, e]`` when ``s <= t_i <= e``. A window
  so short that it contains no centre marks the one frame that contains its midpoint, so every
  window has at least one foreground frame.
* Boundary *offsets* are distances from the frame centre to the window's start and end, in
  frame units (seconds / c): ``d_L = (t_i - s) / c`` and ``d_R = (e - t_i) / c``.
"""

from __future__ import annotations

import torch
from torch import Tensor


def span_length(spans: Tensor) -> Tensor:
    """Length of each span: ``(..., 2) -> (...)``, clamped at zero."""
    return (spans[..., 1] - spans[..., 0]).clamp(min=0)


def span_intersection(a: Tensor, b: Tensor) -> Tensor:
    """Length of the overlap of broadcastable spans ``a (..., 2)`` and ``b (..., 2)`` -> ``(...)``."""
    left = torch.maximum(a[..., 0], b[..., 0])
    right = torch.minimum(a[..., 1], b[..., 1])
    return (right - left).clamp(min=0)


def span_iou(a: Tensor, b: Tensor) -> Tensor:
    """Temporal IoU of broadcastable spans ``(..., 2)`` -> ``(...)``.

    Touching spans have IoU 0; two zero-length spans (union 0) have IoU 0 by convention.
    """
    inter = span_intersection(a, b)
    union = span_length(a) + span_length(b) - inter
    return torch.where(union > 0, inter / union.clamp(min=torch.finfo(union.dtype).tiny), torch.zeros_like(union))


def generalized_span_iou(a: Tensor, b: Tensor) -> Tensor:
    """Generalised IoU (Rezatofighi et al., 2019) of broadcastable spans -> ``(...)``, in ``[-1, 1]``."""
    inter = span_intersection(a, b)
    union = span_length(a) + span_length(b) - inter
    hull = torch.maximum(a[..., 1], b[..., 1]) - torch.minimum(a[..., 0], b[..., 0])
    eps = torch.finfo(union.dtype).eps
    iou = inter / union.clamp(min=eps)
    return iou - (hull - union) / hull.clamp(min=eps)


def frame_centers(num_frames: int, clip_length: float, device: torch.device | None = None) -> Tensor:
    """Centres ``t_i = (i + 0.5) * c`` of ``num_frames`` frames, in seconds: ``(num_frames,)``."""
    return (torch.arange(num_frames, device=device, dtype=torch.float32) + 0.5) * clip_length


def frame_targets(window: tuple[float, float], num_frames: int, clip_length: float) -> tuple[Tensor, Tensor]:
    """Per-frame training targets of one ground-truth ``window`` (seconds).

    Returns ``foreground (num_frames,)`` as float 0/1 and ``offsets (num_frames, 2)``, the left and
    right distances (frame units) from every frame centre to the window's start and end. Offsets
    are defined at every frame; losses use them on foreground frames only.
    """
    start, end = float(window[0]), float(window[1])
    if not end >= start:
        raise ValueError(f"window end {end} is before its start {start}")
    centers = frame_centers(num_frames, clip_length)
    foreground = (centers >= start) & (centers <= end)
    if num_frames > 0 and not bool(foreground.any()):
        middle = int(min(max((start + end) / 2 // clip_length, 0), num_frames - 1))
        foreground[middle] = True
    offsets = torch.stack([(centers - start) / clip_length, (end - centers) / clip_length], dim=-1)
    return foreground.float(), offsets


def offsets_to_spans(offsets: Tensor, clip_length: float) -> Tensor:
    """Spans in seconds predicted at every frame: ``offsets (..., M, 2)`` in frame units -> ``(..., M, 2)``."""
    centers = frame_centers(offsets.shape[-2], clip_length, device=offsets.device)
    start = centers - offsets[..., 0] * clip_length
    end = centers + offsets[..., 1] * clip_length
    return torch.stack([start, end], dim=-1)


def clip_spans(spans: Tensor, duration: Tensor | float) -> Tensor:
    """Clamp spans ``(..., 2)`` into ``[0, duration]`` (``duration`` broadcast over the last dim)."""
    duration = torch.as_tensor(duration, dtype=spans.dtype, device=spans.device).unsqueeze(-1)
    return torch.minimum(spans.clamp(min=0), duration)
