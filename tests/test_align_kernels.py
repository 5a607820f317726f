"""The Triton kernels of matr.align (the GPU path) against the float64 references, on the CPU under
Triton's interpreter (``TRITON_INTERPRET=1``, small sizes). On a CUDA machine the same kernels are
compiled; ``test_cuda_matches_cpu`` in test_align.py covers that path."""

from __future__ import annotations

import importlib
import os

import pytest
import torch
from test_align import (
    LENGTHS,
    garbage_pad,
    padding_is_zero,
    random_cost,
    reference_batch,
    reference_drop_dtw,
    reference_hard_dtw,
    reference_soft_dtw,
)

from matr.align import hard_alignment
from matr.align.drop_dtw import _TritonDropDTW
from matr.align.dtw import _TritonSoftDTW

# The interpreter computes in float32 like the GPU; values are sums of about m + n costs.
TOLERANCE = {"rtol": 1e-5, "atol": 1e-5}


@pytest.fixture(scope="module")
def kernels():
    """``matr.align.kernels`` built for the interpreter; rebuilt as it was afterwards."""
    pytest.importorskip("triton")
    previous = os.environ.get("TRITON_INTERPRET")
    os.environ["TRITON_INTERPRET"] = "1"
    module = importlib.reload(importlib.import_module("matr.align.kernels"))
    yield module
    if previous is None:
        del os.environ["TRITON_INTERPRET"]
    else:
        os.environ["TRITON_INTERPRET"] = previous
    importlib.reload(module)


def value_and_grad(function, C: torch.Tensor, *args) -> tuple[torch.Tensor, torch.Tensor]:
    """Value of ``function.apply(C, *args)`` and the gradient of ``(value * weights).sum()``, with
    weights that are not all 1 (the upstream gradient must scale each pair's gradient)."""
    C = C.detach().clone().requires_grad_()
    value = function.apply(C, *args)
    weights = torch.linspace(-1.0, 2.0, C.shape[0], dtype=value.dtype)
    (grad,) = torch.autograd.grad((value * weights).sum(), C)
    return value.detach(), grad


def reference_value_and_grad(fn, C: torch.Tensor, lengths, *args) -> tuple[torch.Tensor, torch.Tensor]:
    C = C.detach().double().requires_grad_()
    value = reference_batch(fn, C, lengths, *args)
    weights = torch.linspace(-1.0, 2.0, C.shape[0], dtype=torch.float64)
    (grad,) = torch.autograd.grad((value * weights).sum(), C)
    return value.detach(), grad


@pytest.mark.parametrize("subsequence, gamma", [(True, 1.0), (True, 0.1), (False, 0.1)])
def test_triton_soft_dtw_matches_the_float64_reference(kernels, subsequence: bool, gamma: float) -> None:
    C = random_cost(seed=1, dtype=torch.float32)
    value, grad = value_and_grad(_TritonSoftDTW, C, *LENGTHS, gamma, subsequence)
    expected, expected_grad = reference_value_and_grad(reference_soft_dtw, C, LENGTHS, gamma, subsequence)
    assert value.dtype == torch.float32 and grad.dtype == torch.float32
    torch.testing.assert_close(value.double(), expected, **TOLERANCE)
    torch.testing.assert_close(grad.double(), expected_grad, **TOLERANCE)


def test_triton_soft_dtw_ignores_padding_and_gives_it_zero_gradient(kernels) -> None:
    tl, ql = LENGTHS
    C = random_cost(seed=4, dtype=torch.float32)
    value, grad = value_and_grad(_TritonSoftDTW, garbage_pad(C, (6, 10, 7)), tl, ql, 0.1, True)
    expected, expected_grad = reference_value_and_grad(reference_soft_dtw, C, LENGTHS, 0.1, True)
    torch.testing.assert_close(value.double(), expected, **TOLERANCE)
    torch.testing.assert_close(grad[:, :7, :4].double(), expected_grad, **TOLERANCE)
    assert all(padding_is_zero(grad[b], int(tl[b]), int(ql[b])) for b in range(6))


def test_triton_soft_dtw_takes_low_precision_costs(kernels) -> None:
    C = random_cost(seed=5, dtype=torch.float32).to(torch.bfloat16)
    value, grad = value_and_grad(_TritonSoftDTW, C, *LENGTHS, 0.1, False)
    expected, expected_grad = reference_value_and_grad(reference_soft_dtw, C, LENGTHS, 0.1, False)
    assert value.dtype == torch.float32 and grad.dtype == torch.bfloat16
    torch.testing.assert_close(value.double(), expected, **TOLERANCE)
    torch.testing.assert_close(grad.double(), expected_grad, rtol=0.0, atol=1e-2)  # grad rounded to bf16


def test_triton_soft_dtw_small_gamma_stays_finite(kernels) -> None:
    C = 2 * random_cost(seed=6, dtype=torch.float32)
    value, grad = value_and_grad(_TritonSoftDTW, C, *LENGTHS, 1e-3, True)
    expected, expected_grad = reference_value_and_grad(reference_soft_dtw, C, LENGTHS, 1e-3, True)
    torch.testing.assert_close(value.double(), expected, **TOLERANCE)
    torch.testing.assert_close(grad.double(), expected_grad, rtol=0.0, atol=1e-3)


def test_triton_drop_dtw_matches_the_float64_reference(kernels) -> None:
    gamma = 1.0
    C = random_cost(seed=10, dtype=torch.float32)
    delta = torch.full((6,), 0.4)
    value, grad = value_and_grad(_TritonDropDTW, C, *LENGTHS, delta, gamma)
    expected, expected_grad = reference_value_and_grad(reference_drop_dtw, C, LENGTHS, gamma, 0.4)
    torch.testing.assert_close(value.double(), expected, **TOLERANCE)
    torch.testing.assert_close(grad.double(), expected_grad, **TOLERANCE)


def test_triton_drop_dtw_ignores_padding_and_gives_it_zero_gradient(kernels) -> None:
    tl, ql = LENGTHS
    C = random_cost(seed=13, dtype=torch.float32)
    value, grad = value_and_grad(_TritonDropDTW, garbage_pad(C, (6, 9, 6)), tl, ql, torch.full((6,), 0.3), 0.1)
    expected, expected_grad = reference_value_and_grad(reference_drop_dtw, C, LENGTHS, 0.1, 0.3)
    torch.testing.assert_close(value.double(), expected, **TOLERANCE)
    torch.testing.assert_close(grad[:, :7, :4].double(), expected_grad, **TOLERANCE)
    assert all(padding_is_zero(grad[b], int(tl[b]), int(ql[b])) for b in range(6))


@pytest.mark.parametrize("subsequence", [True, False])
def test_triton_hard_alignment_equals_the_cpu_path(kernels, subsequence: bool) -> None:
    tl, ql = LENGTHS
    C = random_cost(seed=8, dtype=torch.float32)
    expected = hard_alignment(C, tl, ql, subsequence=subsequence)
    matrix, start, end = kernels.hard_alignment(garbage_pad(C, (6, 9, 6)), tl, ql, subsequence)
    assert torch.equal(matrix[:, :7, :4], expected.matrix) and matrix.sum() == expected.matrix.sum()
    assert torch.equal(start, expected.start) and torch.equal(end, expected.end)
    for b in range(6):
        cost = float((matrix[b, :7, :4].double() * C[b].double()).sum())
        assert cost == pytest.approx(reference_hard_dtw(C[b].double(), int(tl[b]), int(ql[b]), subsequence), abs=1e-5)


def test_triton_hard_alignment_breaks_ties_as_the_cpu_path(kernels) -> None:
    C = torch.zeros(1, 3, 2)
    lengths = (torch.tensor([3]), torch.tensor([2]))
    for subsequence in (True, False):
        matrix, start, end = kernels.hard_alignment(C, *lengths, subsequence)
        expected = hard_alignment(C, *lengths, subsequence=subsequence)
        assert torch.equal(matrix, expected.matrix)
        assert (int(start), int(end)) == (int(expected.start), int(expected.end))


def test_triton_kernels_accept_an_empty_batch(kernels) -> None:
    C = torch.zeros(0, 4, 3)
    lengths = (torch.zeros(0, dtype=torch.long), torch.zeros(0, dtype=torch.long))
    value, R = kernels.soft_dtw_forward(C, *lengths, 0.1, True)
    assert value.shape == (0,) and R.shape == (0, 4, 3)
    assert kernels.hard_alignment(C, *lengths, True)[0].shape == (0, 4, 3)
