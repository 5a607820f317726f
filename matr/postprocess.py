"""Inference: from model outputs to ranked moments in seconds (paper section 3.2, "Inference").

Every real target frame i proposes the span ``[t_i - d_L c, t_i + d_R c]`` (clipped to the video)
scored by its foreground probability sigmoid(fg_logit_i). Greedy 1-D NMS at IoU 0.7 keeps the
best-scored span first, so the top-1 prediction is the span of the most confident frame, as in
the paper. When a span is suppressed is a choice where the paper is silent, declared below.

For Table 4, ``source="A_pre"`` / ``"A_post"`` turns the target span [s, e] of a hard alignment
into the single prediction ``[s c, (e + 1) c]`` seconds, clipped to the duration, score 1.
"""

from __future__ import annotations

from typing import Literal, NamedTuple

import torch
from torch import Tensor

from matr import choices
from matr.span_ops import clip_spans, offsets_to_spans, span_iou

Source = Literal["heads", "A_pre", "A_post"]
NMS_THRESHOLD = 0.7  # paper 3.2
TOP_K = 5  # ranked moments kept per pair: R5 needs five
choices.declare(
    "NMS suppression",
    "IoU with a kept span strictly above the threshold",
    "the torchvision convention; the paper gives the threshold (0.7), not the comparison",
)
choices.declare(
    "hard-alignment span in seconds",
    "[s c, (e + 1) c], clipped to the duration, score 1",
    "Table 4 reads a prediction off A^pre / A^post; frame e covers [e c, (e + 1) c)",
)


class RankedSpan(NamedTuple):
    """One predicted moment: start and end in seconds, and its score."""

    start: float
    end: float
    score: float


def nms_1d(spans: Tensor, scores: Tensor, threshold: float = NMS_THRESHOLD, max_keep: int | None = None) -> Tensor:
    """Greedy non-maximum suppression of spans (K, 2) with scores (K,).

    Returns the indices of the kept spans (long, at most ``max_keep``), best score first. A span
    is dropped when its IoU with an already kept span is > ``threshold``.
    """
    order = torch.argsort(scores, descending=True, stable=True)
    iou = span_iou(spans[order].unsqueeze(1), spans[order].unsqueeze(0))  # (K, K) in score order
    suppressed = torch.zeros(len(order), dtype=torch.bool, device=spans.device)
    keep: list[int] = []
    for i in range(len(order)):
        if max_keep is not None and len(keep) == max_keep:
            break
        if not suppressed[i]:
            keep.append(i)
            suppressed |= iou[i] > threshold
    return order[torch.tensor(keep, dtype=torch.long, device=order.device)]


def alignment_spans(start: Tensor, end: Tensor, clip_length: float, duration: Tensor) -> Tensor:
    """Hard-alignment target span (inclusive frame indices, (B,)) -> seconds (B, 2), clipped."""
    spans = torch.stack([start.float() * clip_length, (end.float() + 1.0) * clip_length], dim=-1)
    return clip_spans(spans, duration.to(spans.dtype))


def rank_frame_spans(
    fg_logits: Tensor,
    offsets: Tensor,
    length: int,
    clip_length: float,
    duration: float,
    top_k: int = TOP_K,
    nms_threshold: float = NMS_THRESHOLD,
) -> list[RankedSpan]:
    """Ranked moments of one pair from its head outputs (M,) and (M, 2); only the first ``length`` frames count."""
    scores = torch.sigmoid(fg_logits[:length].float())
    spans = clip_spans(offsets_to_spans(offsets[:length].float(), clip_length), duration)
    keep = nms_1d(spans, scores, nms_threshold, max_keep=top_k)
    return [RankedSpan(float(s), float(e), float(p)) for (s, e), p in zip(spans[keep].tolist(), scores[keep].tolist())]


def predict_spans(
    outputs: dict, batch: dict, top_k: int = TOP_K, nms_threshold: float = NMS_THRESHOLD, source: Source = "heads"
) -> list[list[RankedSpan]]:
    """Ranked moments (seconds) for every pair of a batch, best first.

    ``source="heads"``: NMS over per-frame spans, at most ``top_k`` per pair. ``"A_pre"`` /
    ``"A_post"``: the single span of that hard alignment (the model computes both in eval mode).
    """
    clip_length = float(batch["clip_length"])
    duration = batch["duration"].detach().cpu().float()
    if source in ("A_pre", "A_post"):
        alignment = outputs[source]
        if alignment is None:
            raise ValueError(f"outputs[{source!r}] is None: run the model in eval mode to compute it")
        spans = alignment_spans(alignment.start.cpu(), alignment.end.cpu(), clip_length, duration)
        return [[RankedSpan(float(s), float(e), 1.0)] for s, e in spans.tolist()]
    if source != "heads":
        raise ValueError(f"source must be 'heads', 'A_pre' or 'A_post', got {source!r}")
    fg_logits, offsets = outputs["fg_logits"].detach().cpu(), outputs["offsets"].detach().cpu()
    lengths = batch["target_lengths"].tolist()
    return [
        rank_frame_spans(fg_logits[b], offsets[b], lengths[b], clip_length, float(duration[b]), top_k, nms_threshold)
        for b in range(len(lengths))
    ]
