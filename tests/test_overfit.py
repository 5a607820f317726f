"""End-to-end evidence that the whole path learns: model, losses, NMS, on a planted data set."""

from __future__ import annotations

import pytest
import torch

from matr.config import override, preset
from matr.losses import MATRLoss
from matr.model import MATR
from matr.postprocess import predict_spans
from matr.span_ops import span_iou


def _recall_at_1(model: MATR, batch: dict) -> float:
    """R@1 at IoU 0.5 of the top-1 span predicted by the heads (eval mode)."""
    model.eval()
    with torch.no_grad():
        ranked = predict_spans(model(batch), batch, top_k=1)
    top1 = torch.tensor([spans[0][:2] for spans in ranked])
    return float((span_iou(top1, batch["window"]) >= 0.5).float().mean())


@pytest.mark.slow
def test_smoke_model_overfits_planted_moments(planted_batch) -> None:
    """24 pairs whose query is a noisy resampled copy of a target moment: R@1@0.5 >= 0.9 within 300 steps.

    Full paper objective (foreground BCE, smooth-L1, GIoU, pre- and post-fusion soft-DTW, all
    weights 1). Dropout is switched off: the test is about learnability, not regularisation.
    """
    torch.manual_seed(0)
    config = override(preset("smoke"), {"model.transformer_dropout": 0.0, "model.projection_dropout": 0.0})
    model, criterion = MATR(config), MATRLoss(config.loss)
    batch = planted_batch(num_pairs=24, seed=1)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-4)
    recall = _recall_at_1(model, batch)
    assert recall < 0.5
    for step in range(1, 301):
        model.train()
        loss = criterion(model(batch), batch)["loss"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step % 25 == 0 and (recall := _recall_at_1(model, batch)) >= 0.9:
            break
    assert recall >= 0.9
