"""MATR's heads can localise *the query's* moment among events of other classes (issue 9's diagnosis).

Planted pairs in feature space, every class new (a class is a random prototype drawn for one pair):
a target holds background frames and three events, each a class prototype plus noise; the query is
another noisy instance of one event's class. Decoys of other classes make an event detector score
about one in three; only a model that compares target and query finds the right one, and it fails
when each query is swapped for the query of another pair. Dropout is 0 (it slows learning beyond
this budget), and the alignment losses are either off (a test of the data path from query to heads)
or aligned with the ground-truth moment (``align_span="moment"``, the demo and smoke profiles'
objective; issue 9 found that the paper's subsequence loss reaches a one-frame "hub" minimum that
removes query use).
"""

from __future__ import annotations

import pytest
import torch
from planted import event_batch, event_pair

from matr.config import override, preset
from matr.losses import MATRLoss
from matr.model import MATR
from matr.postprocess import predict_spans
from matr.span_ops import span_iou


def _recall_at_1(model: MATR, batch: dict) -> float:
    model.eval()
    with torch.no_grad():
        ranked = predict_spans(model(batch), batch, top_k=1)
    top1 = torch.tensor([spans[0][:2] for spans in ranked])
    return 100 * float((span_iou(top1, batch["window"]) >= 0.5).float().mean())


OBJECTIVES = {
    "no alignment loss": {"model.align_method": "none"},
    "moment alignment": {"model.align_cost": "contrastive", "model.align_span": "moment"},
}


@pytest.mark.slow
@pytest.mark.parametrize("objective", OBJECTIVES)
def test_trained_heads_find_the_moment_of_their_own_query_not_of_another(objective: str) -> None:
    """300 steps of 32 new-class pairs; 128 held-out pairs: R1@0.5 own >= 40 and own - other >= 20.

    Measured once (seed 0, 2026-11-27, this 2-core CPU), own / other: no alignment loss 52.3 / 21.1;
    both alignment losses on the ground-truth moment with the contrastive cost (the demo and smoke
    profiles' objective) 88.3 / 20.3. With the smoke preset's own losses (soft-DTW on 1 - cos over
    the whole target, weights 1): 20.3 / 20.3, own == other. (The contrastive cost over the whole
    target also passes at 300 steps, 90.6 / 13.3; its one-frame hub takes over later, see
    tests/test_losses.py and issue 9.)
    """
    torch.manual_seed(0)
    config = override(
        preset("smoke"),
        {"model.transformer_dropout": 0.0, "model.projection_dropout": 0.0, **OBJECTIVES[objective]},
    )
    model, criterion = MATR(config), MATRLoss(config.loss)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-4)
    train_gen, test_gen = torch.Generator().manual_seed(1), torch.Generator().manual_seed(2)
    for _ in range(300):
        model.train()
        batch = event_batch([event_pair(train_gen) for _ in range(32)])
        loss = criterion(model(batch), batch)["loss"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    test_pairs = [event_pair(test_gen) for _ in range(128)]
    own, other = _recall_at_1(model, event_batch(test_pairs)), _recall_at_1(model, event_batch(test_pairs, swap=True))
    assert own >= 40
    assert own - other >= 20
