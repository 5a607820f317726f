"""Tests of the compiled CPU paths of matr.align: Drop-DTW (matr.align._cpu_drop) and its drop cost against
the PyTorch reference, and the buffers the compiled soft-DTW and Drop-DTW reuse across calls."""

from __future__ import annotations

import pytest
import torch

from matr.align import drop_dtw
from matr.align.drop_dtw import _CompiledDropDTW, _DropDTW, percentile_drop_cost


def padded_costs(
    B: int, M: int, N: int, dtype: torch.dtype, seed: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Random costs in ``[0, 3)`` with NaN on padded target rows and ``-inf`` on padded query
    columns, and random lengths in ``[1, M]``, ``[1, N]``."""
    gen = torch.Generator().manual_seed(seed)
    tl, ql = torch.randint(1, M + 1, (B,), generator=gen), torch.randint(1, N + 1, (B,), generator=gen)
    C = 3 * torch.rand(B, M, N, generator=gen, dtype=dtype)
    C.masked_fill_(torch.arange(M)[None, :, None] >= tl[:, None, None], float("nan"))
    C.masked_fill_(torch.arange(N)[None, None, :] >= ql[:, None, None], -float("inf"))
    return C, tl, ql


def both_paths(
    C: torch.Tensor, tl: torch.Tensor, ql: torch.Tensor, delta: torch.Tensor, gamma: float, seed: int
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """``(value, grad)`` of the compiled path and of the PyTorch DP, with a random upstream gradient."""
    upstream = torch.rand(C.shape[0], generator=torch.Generator().manual_seed(seed), dtype=C.dtype)
    results = []
    for function in (_CompiledDropDTW, _DropDTW):
        leaf = C.clone().requires_grad_()
        value = function.apply(leaf, tl, ql, delta, gamma)
        (grad,) = torch.autograd.grad((value * upstream).sum(), leaf)
        results.append((value, grad))
    return results


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("gamma", [1.0, 0.05])
def test_compiled_cpu_drop_dtw_agrees_with_the_pytorch_dp(dtype: torch.dtype, gamma: float) -> None:
    """More pairs than one block (and a partial last block), a drop cost per pair from the costs'
    percentile, garbage padding: same values and gradients, and exactly zero gradient on padding."""
    C, tl, ql = padded_costs(37, 30, 9, dtype, seed=21)
    delta = percentile_drop_cost(C, tl, ql, 0.2)
    (value, grad), (expected, expected_grad) = both_paths(C, tl, ql, delta, gamma, seed=22)
    tolerance = 1e-12 if dtype == torch.float64 else 1e-5
    assert value.dtype == dtype and grad.dtype == dtype
    torch.testing.assert_close(value, expected, rtol=tolerance, atol=tolerance)
    torch.testing.assert_close(grad, expected_grad, rtol=tolerance, atol=tolerance)
    assert bool((grad[torch.isnan(C) | torch.isinf(C)] == 0).all())
    assert bool((grad >= 0).all()) and float(grad.sum()) > 0


@pytest.mark.parametrize(
    "lengths, shape",
    [
        (([1], [1]), (1, 1, 1)),  # one cell
        (([1, 4, 4], [3, 1, 3]), (3, 4, 3)),  # a single target frame, a single query frame, full
        (([2, 9], [7, 2]), (2, 9, 7)),  # queries longer than targets
    ],
)
def test_compiled_cpu_drop_dtw_edge_lengths(lengths, shape) -> None:
    B, M, N = shape
    tl, ql = torch.tensor(lengths[0]), torch.tensor(lengths[1])
    C = torch.rand(B, M, N, generator=torch.Generator().manual_seed(23), dtype=torch.float64)
    delta = torch.full((B,), 0.3, dtype=torch.float64)
    (value, grad), (expected, expected_grad) = both_paths(C, tl, ql, delta, 0.1, seed=24)
    torch.testing.assert_close(value, expected, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(grad, expected_grad, rtol=1e-12, atol=1e-12)
    assert torch.isfinite(grad).all()


def test_drop_dtw_takes_the_compiled_path_on_cpu_and_splits_blocks_across_threads() -> None:
    """``drop_dtw`` on CPU tensors is the compiled path, and the result does not depend on how many
    threads share out the blocks."""
    C, tl, ql = padded_costs(70, 20, 8, torch.float32, seed=25)
    delta = percentile_drop_cost(C, tl, ql, 0.05)
    threads = torch.get_num_threads()
    results = []
    try:
        for count in (1, 3):
            torch.set_num_threads(count)
            leaf = C.clone().requires_grad_()
            value = drop_dtw(leaf, tl, ql, gamma=0.1)
            results.append((value, *torch.autograd.grad(value.sum(), leaf)))
    finally:
        torch.set_num_threads(threads)
    compiled = _CompiledDropDTW.apply(C, tl, ql, delta, 0.1)
    assert torch.equal(results[0][0], compiled)
    assert torch.equal(results[0][0], results[1][0]) and torch.equal(results[0][1], results[1][1])


def sorted_quantile(costs: torch.Tensor, q: float) -> torch.Tensor:
    """Linear-interpolation quantile from the sorted values, with the interpolation the kit uses."""
    values = costs.flatten().sort().values
    position = q * (torch.tensor(len(values), dtype=values.dtype) - 1)
    lo, hi = int(position.floor()), int(position.ceil())
    return values[lo] + (position - lo) * (values[hi] - values[lo])


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_percentile_drop_cost_on_cpu_is_each_pairs_quantile(dtype: torch.dtype) -> None:
    """The CPU's selection per pair gives the quantile of the sorted real costs exactly (and
    ``torch.quantile``'s to rounding), at the ends of ``[0, 1]`` and for a single real cell too;
    padding (NaN, -inf) is never read."""
    C, tl, ql = padded_costs(19, 12, 5, dtype, seed=26)
    tl[0], ql[0] = 1, 1
    for q in (0.0, 0.05, 0.5, 1.0):
        delta = percentile_drop_cost(C, tl, ql, q)
        real = [C[b, : tl[b], : ql[b]] for b in range(len(tl))]
        assert torch.equal(delta, torch.stack([sorted_quantile(costs, q) for costs in real]))
        torch.testing.assert_close(delta, torch.stack([costs.flatten().quantile(q) for costs in real]))


@pytest.mark.parametrize("method", ["soft_dtw", "drop_dtw"])
def test_reused_buffers_never_overwrite_live_weights_or_gradients(method: str) -> None:
    """The compiled paths reuse their buffers across calls (matr.align._cpu_dp.empty): a graph kept
    for a second backward pass, and a gradient still held, survive other calls in between."""
    from matr.align import soft_dtw

    dp = soft_dtw if method == "soft_dtw" else drop_dtw
    C, tl, ql = padded_costs(40, 25, 8, torch.float32, seed=27)
    leaf = C.clone().requires_grad_()
    value = dp(leaf, tl, ql)
    (first,) = torch.autograd.grad(value.sum(), leaf, retain_graph=True)
    kept = first.clone()
    for seed in (28, 29):  # other calls, of the same and of a smaller size
        other, other_tl, other_ql = padded_costs(40 if seed == 28 else 7, 25, 8, torch.float32, seed=seed)
        other = other.requires_grad_()
        torch.autograd.grad(dp(other, other_tl, other_ql).sum(), other)
    (second,) = torch.autograd.grad(value.sum(), leaf)
    assert torch.equal(first, kept) and torch.equal(second, kept)
