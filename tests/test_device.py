"""Device names: one resolution for every command, one-line errors for names and missing hardware."""

from __future__ import annotations

import pytest
import torch

from matr.device import DeviceError, resolve_device


def test_auto_is_this_ranks_gpu_or_the_cpu(monkeypatch):
    monkeypatch.setenv("LOCAL_RANK", "0")
    expected = torch.device("cuda", 0) if torch.cuda.is_available() else torch.device("cpu")
    assert resolve_device("auto") == resolve_device(None) == expected
    assert resolve_device("cpu") == torch.device("cpu") == resolve_device(torch.device("cpu"))


def test_an_unknown_name_is_one_line_listing_the_valid_ones():
    with pytest.raises(DeviceError, match=r"unknown device 'bogus': expected auto, cpu, cuda, cuda:N or mps"):
        resolve_device("bogus")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks a machine without a GPU")
def test_cuda_without_a_gpu_says_what_to_pass_instead():
    with pytest.raises(
        DeviceError, match=r"device 'cuda' asked for, but this machine has no usable CUDA GPU; use auto or cpu"
    ):
        resolve_device("cuda")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_a_gpu_index_past_the_last_gpu_is_refused():
    with pytest.raises(DeviceError, match="CUDA GPU"):
        resolve_device(f"cuda:{torch.cuda.device_count()}")
