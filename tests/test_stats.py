"""matr.stats: bootstrap intervals that cover, are reproducible by seed, and verdicts that follow them."""

import numpy as np
import pytest

from matr.metrics import SCORE_KEYS, per_pair_scores, scores
from matr.stats import (
    VERDICTS,
    bootstrap_ci,
    bootstrap_counts,
    metric_cells,
    metric_table,
    paired_difference,
    percentile_interval,
    resampled_means,
    seed_weights,
    verdict,
)


def test_counts_draw_every_resample_with_replacement_of_all_pairs():
    counts = bootstrap_counts(300, seed=0, n=500)
    assert counts.shape == (500, 300)
    assert (counts.sum(axis=1) == 300).all()
    assert (counts.max(axis=1) > 1).all()  # with replacement: some pair drawn twice in every resample
    assert counts.mean() == pytest.approx(1.0)


def test_the_same_seed_gives_the_same_interval_and_another_seed_another():
    values = np.random.default_rng(1).random(300)
    assert bootstrap_ci(values, seed=7) == bootstrap_ci(values, seed=7)
    assert bootstrap_ci(values, seed=7) != bootstrap_ci(values, seed=8)


def test_the_interval_of_a_mean_covers_the_true_mean_about_95_percent_of_the_time():
    rng = np.random.default_rng(2)
    trials = (rng.random((300, 2000)) < 0.3).astype(float)  # 2000 data sets: a recall of 30% on 300 pairs
    low, high = percentile_interval(resampled_means(trials, bootstrap_counts(300, seed=0, n=2000)))
    coverage = float(np.mean((low <= 0.3) & (0.3 <= high)))
    assert 0.93 <= coverage <= 0.97
    assert bootstrap_ci(trials[:, 0], seed=0, n=2000) == (low[0], high[0])  # the same scheme, one data set


def test_a_custom_statistic_is_resampled_over_pairs():
    values = np.arange(101, dtype=float)
    low, high = bootstrap_ci(values, lambda x: np.median(x, axis=1), seed=0, n=2000)
    assert low < 50 < high and high - low < 30


def test_metric_table_values_equal_the_metrics_and_lie_inside_their_intervals():
    rng = np.random.default_rng(3)
    topk, vrl = rng.random((300, 5)), rng.random(300)
    table = metric_table(topk[:, 0], topk, seed=0, vrl_ious=vrl)
    assert set(table) == set(SCORE_KEYS)
    exact = scores(topk, vrl)
    for key, (value, low, high) in table.items():
        assert value == exact[key], key
        assert low <= value <= high, key
    assert table["R5@0.3"][2] <= 100.0


def test_metric_table_refuses_top1_that_is_not_the_first_rank():
    topk = np.random.default_rng(4).random((10, 5))
    with pytest.raises(ValueError, match="top-1"):
        metric_table(topk[:, 1], topk, seed=0)


def test_several_seeds_give_mean_std_and_an_interval_of_the_seed_mean():
    rng = np.random.default_rng(5)
    topk = rng.random((3, 300, 5))
    cells = metric_cells(topk, seed=0)
    per_seed = [scores(topk[s], topk[s, :, 0])["R1@0.5"] for s in range(3)]
    cell = cells["R1@0.5"]
    assert cell["seeds"] == 3
    assert cell["value"] == pytest.approx(np.mean(per_seed))
    assert cell["std"] == pytest.approx(np.std(per_seed, ddof=1))
    assert cell["ci"][0] <= cell["value"] <= cell["ci"][1]
    single = metric_cells(topk[0], seed=0)["R1@0.5"]
    assert single["std"] is None and single["seeds"] == 1 and single["value"] == per_seed[0]


def test_pooling_seeds_narrows_the_interval_when_seeds_disagree_pair_by_pair():
    rng = np.random.default_rng(6)
    topk = rng.random((5, 300, 5))  # seeds independent per pair: their mean varies less over pairs
    pooled = metric_cells(topk, seed=0)["mIoU"]["ci"]
    single = metric_cells(topk[0], seed=0)["mIoU"]["ci"]
    assert pooled[1] - pooled[0] < 0.7 * (single[1] - single[0])


def test_seeds_that_disagree_widen_the_interval_beyond_the_pairs_spread():
    seed_levels = np.array([0.1, 0.5, 0.9])  # every pair has the same IoU under a seed: pairs alone give no width
    topk = np.broadcast_to(seed_levels[:, None, None], (3, 300, 5)).copy()
    cell = metric_cells(topk, seed=0)["mIoU"]
    assert cell["value"] == pytest.approx(50.0)
    assert cell["ci"][0] < 35 and cell["ci"][1] > 65
    assert metric_cells(topk[1], seed=0)["mIoU"]["ci"] == pytest.approx([50.0, 50.0])


def test_seed_weights_draw_seeds_with_replacement_and_one_seed_always():
    weights = seed_weights(3, seed=0, n=500)
    assert weights.shape == (500, 3) and np.allclose(weights.sum(axis=1), 1.0)
    assert set(np.unique(weights * 3)) <= {0.0, 1.0, 2.0, 3.0} and (weights == 0).any()
    assert np.array_equal(weights, seed_weights(3, seed=0, n=500).copy())
    assert np.array_equal(seed_weights(1, seed=0, n=4), np.ones((4, 1)))


def test_a_difference_one_seed_carries_is_not_distinguishable():
    a = np.repeat([[1.0], [0.0], [0.5]], 300, axis=1)  # three seeds, mean 0.5, each the same on every pair
    b = np.full(300, 0.4)
    diff, low, high = paired_difference(a, b, seed=0)
    assert diff == pytest.approx(0.1)
    assert low < 0 < high
    assert verdict(diff, low, high, claimed_sign=+1) == "not distinguishable at this size"


def test_a_paired_difference_is_narrower_than_an_unpaired_one_for_correlated_methods():
    rng = np.random.default_rng(7)
    base = rng.random(300)
    a, b = base + 0.02 + 0.05 * rng.standard_normal(300), base + 0.05 * rng.standard_normal(300)
    diff, low, high = paired_difference(a, b, seed=0)
    assert diff == pytest.approx(a.mean() - b.mean())
    unpaired = resampled_means(a, bootstrap_counts(300, 1)) - resampled_means(b, bootstrap_counts(300, 2))
    unpaired_low, unpaired_high = percentile_interval(unpaired)
    assert high - low < 0.3 * (unpaired_high - unpaired_low)
    assert low > 0  # a 0.02 gain on shared pairs is visible when paired ...
    assert unpaired_low < 0  # ... and drowned by the pairs' spread when not


def test_paired_difference_refuses_different_pairs():
    with pytest.raises(ValueError, match="same pairs"):
        paired_difference(np.zeros(10), np.zeros(11), seed=0)


def test_a_paired_difference_of_recall_columns_is_in_percentage_points():
    rng = np.random.default_rng(8)
    a, b = rng.random((300, 5)), rng.random((300, 5)) * 0.5
    column_a = per_pair_scores(a, a[:, 0])["R1@0.5"]
    column_b = per_pair_scores(b, b[:, 0])["R1@0.5"]
    diff, low, high = paired_difference(column_a, column_b, seed=0)
    assert diff == pytest.approx(scores(a, a[:, 0])["R1@0.5"] - scores(b, b[:, 0])["R1@0.5"])
    assert verdict(diff, low, high, claimed_sign=+1) == "holds"
    assert verdict(diff, low, high, claimed_sign=-1) == "reversed"


@pytest.mark.parametrize(
    ("interval", "sign", "expected"),
    [
        ((1.0, 2.0), 1, "holds"),
        ((1.0, 2.0), -1, "reversed"),
        ((-2.0, -1.0), -1, "holds"),
        ((-2.0, -1.0), 1, "reversed"),
        ((-1.0, 2.0), 1, "not distinguishable at this size"),
        ((0.0, 2.0), 1, "not distinguishable at this size"),
        ((-2.0, 0.0), -1, "not distinguishable at this size"),
    ],
)
def test_verdict_follows_the_side_of_zero_the_interval_lies_on(interval, sign, expected):
    low, high = interval
    assert verdict((low + high) / 2, low, high, sign) == expected
    assert expected in VERDICTS


def test_verdict_refuses_a_claim_without_a_sign_and_a_nan_interval():
    with pytest.raises(ValueError, match="claimed_sign"):
        verdict(1.0, 0.5, 1.5, 0)
    with pytest.raises(ValueError, match="finite"):
        verdict(float("nan"), 0.5, 1.5, 1)
