"""Tests of matr.align: soft-DTW, hard alignment, Drop-DTW and TCC against plain references."""

from __future__ import annotations

import math

import pytest
import torch

from matr.align import (
    AlignmentLoss,
    HardAlignment,
    alignment_cost,
    contrastive_cost,
    cosine_cost,
    drop_dtw,
    hard_alignment,
    soft_dtw,
    tcc_loss,
)
from matr.align.drop_dtw import percentile_drop_cost

INF = math.inf
LENGTHS = (torch.tensor([7, 3, 1, 5, 2, 7]), torch.tensor([4, 2, 3, 1, 4, 1]))  # (m, n) per pair, M=7, N=4


# ---------------------------------------------------------------------------------------------
# Plain float64 double-loop references (autograd through scalar ops gives their gradients).
# ---------------------------------------------------------------------------------------------


def _softmin(values: list[torch.Tensor], gamma: float) -> torch.Tensor:
    return -gamma * torch.logsumexp(-torch.stack(values) / gamma, dim=0)


def reference_soft_dtw(C: torch.Tensor, m: int, n: int, gamma: float, subsequence: bool) -> torch.Tensor:
    """The recursion of the spec, one cell at a time, with true infinities."""
    inf = C.new_tensor(INF)
    zero = C.new_tensor(0.0)
    R = [[inf] * (n + 1) for _ in range(m + 1)]
    R[0][0] = zero
    for i in range(1, m + 1):
        R[i][0] = zero if subsequence else inf
    for i in range(1, m + 1):
        for j in range(1, n + 1):
            R[i][j] = C[i - 1, j - 1] + _softmin([R[i - 1][j - 1], R[i - 1][j], R[i][j - 1]], gamma)
    return _softmin([R[i][n] for i in range(1, m + 1)], gamma) if subsequence else R[m][n]


def reference_hard_dtw(C: torch.Tensor, m: int, n: int, subsequence: bool) -> float:
    R = [[INF] * (n + 1) for _ in range(m + 1)]
    R[0][0] = 0.0
    for i in range(1, m + 1):
        R[i][0] = 0.0 if subsequence else INF
    for i in range(1, m + 1):
        for j in range(1, n + 1):
            R[i][j] = float(C[i - 1, j - 1]) + min(R[i - 1][j - 1], R[i - 1][j], R[i][j - 1])
    return min(R[i][n] for i in range(1, m + 1)) if subsequence else R[m][n]


def reference_drop_dtw(C: torch.Tensor, m: int, n: int, gamma: float, delta: float) -> torch.Tensor:
    inf = C.new_tensor(INF)
    R = [[inf] * (n + 1) for _ in range(m + 1)]
    D = [[inf] * (n + 1) for _ in range(m + 1)]
    R[0][0] = C.new_tensor(0.0)
    for i in range(1, m + 1):
        R[i][0] = C.new_tensor(i * delta)
    for i in range(1, m + 1):
        for j in range(1, n + 1):
            D[i][j] = C[i - 1, j - 1] + _softmin([R[i - 1][j - 1], D[i - 1][j], D[i][j - 1]], gamma)
            R[i][j] = _softmin([D[i][j], R[i - 1][j] + delta], gamma)
    return R[m][n]


def reference_batch(fn, C: torch.Tensor, lengths, *args) -> torch.Tensor:
    tl, ql = lengths
    return torch.stack([fn(C[b], int(tl[b]), int(ql[b]), *args) for b in range(C.shape[0])])


def random_cost(B: int = 6, M: int = 7, N: int = 4, seed: int = 0, dtype=torch.float64) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.rand(B, M, N, generator=gen, dtype=dtype)


def planted(B: int = 5, M: int = 40, N: int = 12, d: int = 32, noise: float = 0.1, seed: int = 0, slow: bool = True):
    """Target features and queries that are noisy copies of target frames s..e.

    With ``slow`` the moment is shorter than the query and its frames are repeated (slow motion);
    otherwise the query is the moment frame for frame. Returns ``Et (B, M, d)``, ``Eq (B, N, d)``,
    lengths and the planted ``(s, e)`` per pair; padding holds garbage.
    """
    gen = torch.Generator().manual_seed(seed)
    Et = 100 * torch.randn(B, M, d, generator=gen)
    Eq = 100 * torch.randn(B, N, d, generator=gen)
    tl = torch.randint(max(N, M // 2), M + 1, (B,), generator=gen)
    ql = torch.randint(3, N + 1, (B,), generator=gen)
    spans = []
    for b in range(B):
        m, n = int(tl[b]), int(ql[b])
        length = int(torch.randint(2, n + 1, (1,), generator=gen)) if slow else n
        s = int(torch.randint(0, m - length + 1, (1,), generator=gen))
        Et[b, :m] = torch.randn(m, d, generator=gen)
        index = torch.linspace(s, s + length - 1, n).round().long()  # every moment frame, some repeated
        Eq[b, :n] = Et[b, index] + noise * torch.randn(n, d, generator=gen)
        spans.append((s, s + length - 1))
    return Et, Eq, (tl, ql), spans


def garbage_pad(x: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    """``x`` in the leading corner of a tensor of ``shape`` filled with NaN, inf and huge values."""
    out = torch.full(shape, 1e30, dtype=x.dtype)
    flat = out.view(-1)
    flat[::3] = float("nan")
    flat[1::3] = -float("inf")
    out[tuple(slice(0, s) for s in x.shape)] = x
    return out


def padding_is_zero(x: torch.Tensor, m: int, n: int) -> bool:
    """Whether ``x (M', N', ...)`` is exactly zero outside ``[:m, :n]``."""
    outside = torch.ones(x.shape[:2], dtype=torch.bool)
    outside[:m, :n] = False
    return bool((x[outside] == 0).all())


# ---------------------------------------------------------------------------------------------
# soft_dtw
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("subsequence", [True, False])
@pytest.mark.parametrize("gamma", [1.0, 0.1, 0.01])
def test_soft_dtw_matches_double_loop_reference(subsequence: bool, gamma: float) -> None:
    C = random_cost(seed=1).requires_grad_()
    value = soft_dtw(C, *LENGTHS, gamma=gamma, subsequence=subsequence)
    (grad,) = torch.autograd.grad(value.sum(), C)
    C_ref = C.detach().clone().requires_grad_()
    expected = reference_batch(reference_soft_dtw, C_ref, LENGTHS, gamma, subsequence)
    (expected_grad,) = torch.autograd.grad(expected.sum(), C_ref)
    torch.testing.assert_close(value, expected, rtol=1e-6, atol=1e-12)
    torch.testing.assert_close(grad, expected_grad, rtol=1e-6, atol=1e-12)


@pytest.mark.parametrize("subsequence", [True, False])
def test_soft_dtw_passes_gradcheck(subsequence: bool) -> None:
    C = random_cost(B=3, M=5, N=4, seed=2).requires_grad_()
    lengths = (torch.tensor([5, 2, 4]), torch.tensor([4, 3, 1]))
    assert torch.autograd.gradcheck(lambda c: soft_dtw(c, *lengths, gamma=0.3, subsequence=subsequence), (C,))


def test_soft_dtw_gradient_is_weighted_by_the_upstream_gradient() -> None:
    C = random_cost(seed=3).requires_grad_()
    weights = torch.tensor([2.0, -1.0, 0.0, 0.5, 3.0, 1.0], dtype=torch.float64)
    (grad,) = torch.autograd.grad((soft_dtw(C, *LENGTHS) * weights).sum(), C)
    (unit,) = torch.autograd.grad(soft_dtw(C, *LENGTHS).sum(), C)
    torch.testing.assert_close(grad, unit * weights[:, None, None])


def test_soft_dtw_ignores_padding_values_and_gives_it_zero_gradient() -> None:
    tl, ql = LENGTHS
    C = random_cost(seed=4)
    padded = garbage_pad(C, (6, 11, 9)).requires_grad_()
    for subsequence in (True, False):
        value = soft_dtw(padded, tl, ql, subsequence=subsequence)
        (grad,) = torch.autograd.grad(value.sum(), padded)
        for b in range(6):
            m, n = int(tl[b]), int(ql[b])
            alone = C[b : b + 1, :m, :n].clone().requires_grad_()
            v = soft_dtw(alone, tl[b : b + 1], ql[b : b + 1], subsequence=subsequence)
            (g,) = torch.autograd.grad(v.sum(), alone)
            torch.testing.assert_close(value[b], v[0], rtol=1e-12, atol=1e-12)
            torch.testing.assert_close(grad[b, :m, :n], g[0], rtol=1e-12, atol=1e-12)
            assert padding_is_zero(grad[b], m, n)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("subsequence", [True, False])
def test_compiled_cpu_soft_dtw_agrees_with_the_pytorch_dp(dtype: torch.dtype, subsequence: bool) -> None:
    """The CPU's compiled loops (blocks of pairs sorted by size, their own exp and log) against the
    PyTorch DP that CUDA without Triton runs, on more pairs than one block, with garbage padding."""
    from matr.align.dtw import _CompiledSoftDTW, _SoftDTW

    gen = torch.Generator().manual_seed(12)
    B, M, N = 37, 30, 9
    tl, ql = torch.randint(1, M + 1, (B,), generator=gen), torch.randint(1, N + 1, (B,), generator=gen)
    C = 3 * torch.rand(B, M, N, generator=gen, dtype=dtype)
    C.masked_fill_(torch.arange(M)[None, :, None] >= tl[:, None, None], float("nan"))
    C.masked_fill_(torch.arange(N)[None, None, :] >= ql[:, None, None], -float("inf"))
    upstream = torch.rand(B, generator=gen, dtype=dtype)
    results = []
    for function in (_CompiledSoftDTW, _SoftDTW):
        leaf = C.clone().requires_grad_()
        value = function.apply(leaf, tl, ql, 0.05, subsequence)
        (grad,) = torch.autograd.grad((value * upstream).sum(), leaf)
        results.append((value, grad))
    (value, grad), (expected, expected_grad) = results
    tolerance = 1e-12 if dtype == torch.float64 else 1e-5
    torch.testing.assert_close(value, expected, rtol=tolerance, atol=tolerance)
    torch.testing.assert_close(grad, expected_grad, rtol=tolerance, atol=tolerance)
    assert bool((grad[torch.isnan(C) | torch.isinf(C)] == 0).all())


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_low_precision_input_is_computed_in_float32(dtype: torch.dtype) -> None:
    C = random_cost(dtype=torch.float32, seed=5).to(dtype).requires_grad_()
    value = soft_dtw(C, *LENGTHS)
    (grad,) = torch.autograd.grad(value.sum(), C)
    assert value.dtype == torch.float32 and grad.dtype == dtype
    assert torch.isfinite(value).all() and torch.isfinite(grad).all()
    torch.testing.assert_close(value, soft_dtw(C.detach().float(), *LENGTHS))
    assert hard_alignment(C, *LENGTHS).matrix.dtype == torch.float32


@pytest.mark.parametrize("gamma", [0.1, 0.01])
def test_float32_agrees_with_float64(gamma: float) -> None:
    gen = torch.Generator().manual_seed(11)
    C = 2 * torch.rand(6, 60, 20, generator=gen, dtype=torch.float64)
    lengths = (torch.randint(10, 61, (6,), generator=gen), torch.randint(3, 21, (6,), generator=gen))
    C64, C32 = C.clone().requires_grad_(), C.float().requires_grad_()
    v64, v32 = soft_dtw(C64, *lengths, gamma=gamma), soft_dtw(C32, *lengths, gamma=gamma)
    (g64,), (g32,) = torch.autograd.grad(v64.sum(), C64), torch.autograd.grad(v32.sum(), C32)
    torch.testing.assert_close(v32.double(), v64, rtol=1e-6, atol=0.0)
    torch.testing.assert_close(g32.double(), g64, rtol=0.0, atol=1e-3)  # E lies in [0, 1]


def test_length_one_sequences_give_finite_values_and_gradients() -> None:
    C = random_cost(B=3, M=4, N=3, seed=6, dtype=torch.float32).requires_grad_()
    lengths = (torch.tensor([1, 1, 4]), torch.tensor([1, 3, 1]))
    for gamma in (1.0, 0.01):
        for subsequence in (True, False):
            value = soft_dtw(C, *lengths, gamma=gamma, subsequence=subsequence)
            (grad,) = torch.autograd.grad(value.sum(), C)
            assert torch.isfinite(value).all() and torch.isfinite(grad).all()
    # One target frame: every query frame must match it; the value is the sum of their costs.
    torch.testing.assert_close(soft_dtw(C, *lengths, subsequence=False)[1], C[1, 0, :3].sum())


def test_soft_dtw_tends_to_hard_dtw_as_gamma_shrinks() -> None:
    C = random_cost(seed=7)
    for subsequence in (True, False):
        hard = torch.tensor(
            [reference_hard_dtw(C[b], int(LENGTHS[0][b]), int(LENGTHS[1][b]), subsequence) for b in range(6)],
            dtype=torch.float64,
        )
        gaps = [(soft_dtw(C, *LENGTHS, gamma=g, subsequence=subsequence) - hard).abs().max() for g in (1.0, 0.1, 1e-3)]
        assert gaps[0] > gaps[1] > gaps[2] and gaps[2] < 1e-2


def test_soft_dtw_rejects_bad_lengths() -> None:
    C = random_cost()
    with pytest.raises(ValueError, match="target_lengths"):
        soft_dtw(C, torch.tensor([8, 1, 1, 1, 1, 1]), LENGTHS[1])
    with pytest.raises(ValueError, match="query_lengths"):
        soft_dtw(C, LENGTHS[0], torch.tensor([0, 1, 1, 1, 1, 1]))
    with pytest.raises(ValueError, match="gamma"):
        soft_dtw(C, *LENGTHS, gamma=0.0)


# ---------------------------------------------------------------------------------------------
# hard_alignment
# ---------------------------------------------------------------------------------------------


def test_planted_query_is_recovered() -> None:
    Et, Eq, lengths, spans = planted()
    alignment = hard_alignment(cosine_cost(Et, Eq), *lengths)
    assert isinstance(alignment, HardAlignment)
    assert alignment.start.tolist() == [s for s, _ in spans]
    assert alignment.end.tolist() == [e for _, e in spans]
    for b, (s, e) in enumerate(spans):
        rows = alignment.matrix[b].sum(1).nonzero()[:, 0]
        assert rows.min() == s and rows.max() == e and len(rows) == e - s + 1  # contiguous span


def test_hard_path_is_monotone_and_optimal() -> None:
    C = random_cost(seed=8)
    tl, ql = LENGTHS
    for subsequence in (True, False):
        alignment = hard_alignment(C, tl, ql, subsequence=subsequence)
        for b in range(6):
            m, n = int(tl[b]), int(ql[b])
            cells = alignment.matrix[b].nonzero().tolist()
            assert all(0 <= i < m and 0 <= j < n for i, j in cells)
            steps = {(i2 - i1, j2 - j1) for (i1, j1), (i2, j2) in zip(cells, cells[1:], strict=False)}
            assert steps <= {(1, 1), (1, 0), (0, 1)}
            assert cells[-1][1] == n - 1 and (cells[0][1] == 0 if subsequence else cells[0] == [0, 0])
            assert not subsequence or cells[-1][0] == alignment.end[b]
            assert cells[0][0] == alignment.start[b]
            cost = float((alignment.matrix[b] * C[b]).sum())
            assert cost == pytest.approx(reference_hard_dtw(C[b], m, n, subsequence), abs=1e-12)


def test_hard_alignment_breaks_ties_deterministically() -> None:
    C = torch.zeros(1, 3, 2)
    lengths = (torch.tensor([3]), torch.tensor([2]))
    sub = hard_alignment(C, *lengths)  # earliest end row, then the free start: both frames on row 0
    assert sub.matrix[0].tolist() == [[1.0, 1.0], [0.0, 0.0], [0.0, 0.0]]
    assert (sub.start.item(), sub.end.item()) == (0, 0)
    full = hard_alignment(C, *lengths, subsequence=False)  # diagonal first, then up
    assert full.matrix[0].tolist() == [[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]]


def test_hard_alignment_ignores_padding() -> None:
    Et, Eq, (tl, ql), _ = planted(seed=1)
    C = cosine_cost(Et, Eq)
    padded = garbage_pad(C, (C.shape[0], C.shape[1] + 3, C.shape[2] + 2))
    a, p = hard_alignment(C, tl, ql), hard_alignment(padded, tl, ql)
    assert torch.equal(a.start, p.start) and torch.equal(a.end, p.end)
    assert torch.equal(a.matrix, p.matrix[:, : C.shape[1], : C.shape[2]]) and p.matrix.sum() == a.matrix.sum()


def test_expected_alignment_concentrates_on_the_hard_path() -> None:
    Et, Eq, lengths, _ = planted(B=3, M=24, N=8, noise=0.3, seed=2)
    C = cosine_cost(Et, Eq).double()
    path = hard_alignment(C, *lengths).matrix
    outside = []
    for gamma in (1.0, 0.1, 0.01):
        Cg = C.clone().requires_grad_()
        (E,) = torch.autograd.grad(soft_dtw(Cg, *lengths, gamma=gamma).sum(), Cg)  # expected alignment
        assert (E >= 0).all()
        outside.append(float((E * (1 - path)).sum() / E.sum()))
    assert outside[0] > outside[1] > outside[2] and outside[2] < 1e-3


# ---------------------------------------------------------------------------------------------
# cosine_cost
# ---------------------------------------------------------------------------------------------


def test_cosine_cost_passes_gradcheck() -> None:
    gen = torch.Generator().manual_seed(10)
    Et = torch.randn(2, 4, 6, generator=gen, dtype=torch.float64).requires_grad_()
    Eq = torch.randn(2, 3, 6, generator=gen, dtype=torch.float64).requires_grad_()
    assert torch.autograd.gradcheck(cosine_cost, (Et, Eq))


def test_cosine_cost_matches_pairwise_cosine_and_survives_zero_vectors() -> None:
    gen = torch.Generator().manual_seed(9)
    Et = torch.randn(2, 5, 8, generator=gen, dtype=torch.float64)
    Eq = torch.randn(2, 3, 8, generator=gen, dtype=torch.float64)
    expected = 1 - torch.nn.functional.cosine_similarity(Et[:, :, None], Eq[:, None], dim=-1)
    torch.testing.assert_close(cosine_cost(Et, Eq), expected)
    Et[0, 1] = 0.0
    Et.requires_grad_()
    C = cosine_cost(Et, Eq)
    (grad,) = torch.autograd.grad(C.sum(), Et)
    assert torch.allclose(C[0, 1], torch.ones(3, dtype=torch.float64)) and torch.isfinite(grad).all()


# ---------------------------------------------------------------------------------------------
# contrastive_cost
# ---------------------------------------------------------------------------------------------


def test_contrastive_cost_is_a_log_softmax_over_the_real_target_frames() -> None:
    Et, Eq, (tl, ql), _ = planted(B=3, M=12, N=5, d=8, seed=12)
    C = contrastive_cost(Et, Eq, tl, temperature=0.2)
    assert C.shape == (3, 12, 5)
    for b in range(3):
        m = int(tl[b])
        cos = torch.nn.functional.cosine_similarity(Et[b, :m, None], Eq[b, None], dim=-1)  # (m, N)
        torch.testing.assert_close(C[b, :m], -torch.log_softmax(cos / 0.2, dim=0))
        assert (C[b, m:] == 0).all()
    assert (C >= 0).all()


def test_contrastive_cost_passes_gradcheck() -> None:
    gen = torch.Generator().manual_seed(13)
    Et = torch.randn(2, 5, 6, generator=gen, dtype=torch.float64).requires_grad_()
    Eq = torch.randn(2, 3, 6, generator=gen, dtype=torch.float64).requires_grad_()
    tl = torch.tensor([5, 2])
    assert torch.autograd.gradcheck(lambda t, q: contrastive_cost(t, q, tl, temperature=0.5), (Et, Eq))


def test_contrastive_soft_dtw_ignores_padding_and_gives_it_zero_gradient() -> None:
    Et, Eq, (tl, ql), _ = planted(B=3, M=16, N=6, seed=14)  # padding holds large finite garbage
    Et.requires_grad_()
    Eq.requires_grad_()
    loss = AlignmentLoss("soft_dtw", cost="contrastive")
    value = loss(Et, Eq, tl, ql)
    grad_t, grad_q = torch.autograd.grad(value.sum(), (Et, Eq))
    for b in range(3):
        m, n = int(tl[b]), int(ql[b])
        alone = loss(Et[b : b + 1, :m], Eq[b : b + 1, :n], tl[b : b + 1], ql[b : b + 1])
        torch.testing.assert_close(value[b : b + 1], alone)
        assert (grad_t[b, m:] == 0).all() and (grad_q[b, n:] == 0).all()
    assert torch.isfinite(grad_t).all() and torch.isfinite(grad_q).all()


def test_identical_features_minimise_the_cosine_soft_dtw_but_not_the_contrastive_one() -> None:
    """The collapse: every frame equal makes every cosine cost 0, below any planted alignment."""
    Et, Eq, lengths, _ = planted(seed=15)
    same = torch.randn(Et.shape[-1], generator=torch.Generator().manual_seed(16))
    Et_same, Eq_same = same.expand_as(Et).clone(), same.expand_as(Eq).clone()
    for cost, collapse_wins in (("cosine", True), ("contrastive", False)):
        loss = AlignmentLoss("soft_dtw", cost=cost)
        planted_value, collapsed_value = loss(Et, Eq, *lengths), loss(Et_same, Eq_same, *lengths)
        assert bool((collapsed_value < planted_value).all()) == collapse_wins, cost


def test_planted_query_is_recovered_with_the_contrastive_cost() -> None:
    Et, Eq, lengths, spans = planted(seed=17)
    alignment = hard_alignment(contrastive_cost(Et, Eq, lengths[0]), *lengths)
    assert alignment.start.tolist() == [s for s, _ in spans]
    assert alignment.end.tolist() == [e for _, e in spans]


def test_alignment_cost_dispatches_and_rejects_unknown_names() -> None:
    Et, Eq, (tl, _), _ = planted(B=2, M=10, N=4, seed=18)
    torch.testing.assert_close(alignment_cost("cosine", Et, Eq, tl), cosine_cost(Et, Eq))
    torch.testing.assert_close(alignment_cost("contrastive", Et, Eq, tl, 0.3), contrastive_cost(Et, Eq, tl, 0.3))
    with pytest.raises(ValueError, match="unknown cost 'l2'"):
        alignment_cost("l2", Et, Eq, tl)
    with pytest.raises(ValueError, match="temperature"):
        contrastive_cost(Et, Eq, tl, temperature=0.0)


# ---------------------------------------------------------------------------------------------
# drop_dtw
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("gamma", [1.0, 0.1, 0.01])
def test_drop_dtw_matches_double_loop_reference(gamma: float) -> None:
    C = random_cost(seed=10).requires_grad_()
    value = drop_dtw(C, *LENGTHS, gamma=gamma, drop_cost=0.4)
    (grad,) = torch.autograd.grad(value.sum(), C)
    C_ref = C.detach().clone().requires_grad_()
    expected = reference_batch(reference_drop_dtw, C_ref, LENGTHS, gamma, 0.4)
    (expected_grad,) = torch.autograd.grad(expected.sum(), C_ref)
    torch.testing.assert_close(value, expected, rtol=1e-6, atol=1e-12)
    torch.testing.assert_close(grad, expected_grad, rtol=1e-6, atol=1e-12)


def test_drop_dtw_passes_gradcheck_with_a_constant_drop_cost() -> None:
    C = random_cost(B=3, M=5, N=3, seed=11).requires_grad_()
    lengths = (torch.tensor([5, 1, 3]), torch.tensor([3, 2, 1]))
    assert torch.autograd.gradcheck(lambda c: drop_dtw(c, *lengths, gamma=0.3, drop_cost=0.5), (C,))


def test_percentile_drop_cost_is_the_quantile_of_real_costs() -> None:
    C = random_cost(seed=12)
    tl, ql = LENGTHS
    delta = percentile_drop_cost(garbage_pad(C, (6, 9, 5)), tl, ql, 0.3)
    expected = torch.stack([C[b, : tl[b], : ql[b]].flatten().quantile(0.3) for b in range(6)])
    torch.testing.assert_close(delta, expected)


def test_drop_dtw_prefers_the_planted_order_to_the_reversed_one() -> None:
    Et, Eq, lengths, _ = planted(seed=3)
    reversed_query = Eq.clone()
    for b, n in enumerate(lengths[1].tolist()):
        reversed_query[b, :n] = Eq[b, :n].flip(0)  # same frames, wrong order
    assert (drop_dtw(cosine_cost(Et, Eq), *lengths) < drop_dtw(cosine_cost(Et, reversed_query), *lengths)).all()


def test_drop_dtw_ignores_padding_and_keeps_gradients_finite() -> None:
    tl, ql = torch.tensor([7, 1, 4]), torch.tensor([4, 3, 1])
    C = random_cost(B=3, seed=13, dtype=torch.float32)
    padded = garbage_pad(C, (3, 10, 6)).requires_grad_()
    value = drop_dtw(padded, tl, ql)
    (grad,) = torch.autograd.grad(value.sum(), padded)
    torch.testing.assert_close(value, drop_dtw(C, tl, ql))
    assert torch.isfinite(grad).all()
    assert all(padding_is_zero(grad[b], int(tl[b]), int(ql[b])) for b in range(3))


# ---------------------------------------------------------------------------------------------
# tcc_loss
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("variant", ["regression", "classification"])
def test_tcc_is_lower_for_a_planted_query_than_for_an_unrelated_one(variant: str) -> None:
    Et, Eq, lengths, _ = planted(seed=4, slow=False)  # repeated frames would make the cycle ambiguous
    unrelated = torch.randn(Eq.shape, generator=torch.Generator().manual_seed(5))
    aligned = tcc_loss(Et, Eq, *lengths, variant=variant)
    assert (aligned < tcc_loss(Et, unrelated, *lengths, variant=variant)).all()


def test_tcc_ignores_padding_and_keeps_gradients_finite() -> None:
    Et, Eq, (tl, ql), _ = planted(B=3, M=12, N=5, seed=6)
    tl[1], ql[2] = 1, 1
    Et_pad = garbage_pad(Et, (3, 15, Et.shape[2])).requires_grad_()
    Eq_pad = garbage_pad(Eq, (3, 7, Eq.shape[2])).requires_grad_()
    for variant in ("regression", "classification"):
        value = tcc_loss(Et_pad, Eq_pad, tl, ql, variant=variant)
        grad_t, grad_q = torch.autograd.grad(value.sum(), (Et_pad, Eq_pad))
        trimmed = [
            tcc_loss(Et[b : b + 1, : tl[b]], Eq[b : b + 1, : ql[b]], tl[b : b + 1], ql[b : b + 1], variant=variant)
            for b in range(3)
        ]
        torch.testing.assert_close(value, torch.cat(trimmed))
        assert torch.isfinite(grad_t).all() and torch.isfinite(grad_q).all()
        for b in range(3):
            assert (grad_t[b, tl[b] :] == 0).all() and (grad_q[b, ql[b] :] == 0).all()


# ---------------------------------------------------------------------------------------------
# AlignmentLoss
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["soft_dtw", "drop_dtw", "tcc"])
def test_alignment_loss_dispatches_with_a_uniform_call(method: str) -> None:
    Et, Eq, lengths, _ = planted(B=3, M=16, N=6, seed=7)
    Et.requires_grad_()
    loss = AlignmentLoss(method, gamma=0.1)(Et, Eq, *lengths)
    (grad,) = torch.autograd.grad(loss.sum(), Et)
    assert loss.shape == (3,) and loss.dtype == torch.float32
    assert torch.isfinite(loss).all() and torch.isfinite(grad).all()
    if method == "soft_dtw":
        torch.testing.assert_close(loss, soft_dtw(cosine_cost(Et, Eq), *lengths, gamma=0.1))


@pytest.mark.parametrize("method, dp", [("soft_dtw", soft_dtw), ("drop_dtw", drop_dtw)])
def test_alignment_loss_runs_its_dp_on_the_requested_cost(method: str, dp) -> None:
    Et, Eq, lengths, _ = planted(B=3, M=16, N=6, seed=19)
    loss = AlignmentLoss(method, cost="contrastive", temperature=0.3)(Et, Eq, *lengths)
    torch.testing.assert_close(loss, dp(contrastive_cost(Et, Eq, lengths[0], 0.3), *lengths, gamma=0.1))
    assert not torch.allclose(loss, AlignmentLoss(method)(Et, Eq, *lengths))


@pytest.mark.parametrize(
    "options, message", [({"method": "none"}, "unknown method 'none'"), ({"cost": "l2"}, "unknown cost 'l2'")]
)
def test_alignment_loss_rejects_an_unknown_method_or_cost_when_built(options: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        AlignmentLoss(**options)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu() -> None:
    Et, Eq, lengths, _ = planted(B=4, M=30, N=10, seed=8)
    C = cosine_cost(Et, Eq).requires_grad_()
    Cc = C.detach().cuda().requires_grad_()
    cpu, gpu = soft_dtw(C, *lengths), soft_dtw(Cc, *(x.cuda() for x in lengths))
    torch.testing.assert_close(gpu.cpu(), cpu, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(
        torch.autograd.grad(gpu.sum(), Cc)[0].cpu(), torch.autograd.grad(cpu.sum(), C)[0], rtol=1e-4, atol=1e-6
    )
    a, b = hard_alignment(C, *lengths), hard_alignment(Cc, *(x.cuda() for x in lengths))
    assert torch.equal(a.start, b.start.cpu()) and torch.equal(a.end, b.end.cpu())


def test_align_declares_its_paper_silent_choices() -> None:
    from matr.choices import choices_of

    names = {choice.name for choice in choices_of(["matr.align"])}
    assert {"soft-DTW boundary", "hard-alignment ties", "Drop-DTW drop cost percentile", "TCC variant"} <= names
