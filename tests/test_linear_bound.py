"""research/linear_bound.py: the least-squares filter is a least-squares fit."""

import importlib.util
from pathlib import Path

import pytest
import torch

_spec = importlib.util.spec_from_file_location("linear_bound", Path(__file__).parents[1] / "research" / "linear_bound.py")
LB = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(LB)


@pytest.fixture(scope="module")
def conv():
    return LB.fit_filter(3, batches=2, batch=8)


def test_filter_is_a_least_squares_fit(conv):
    """On crops it was fitted to, the filter's residual error is below bicubic's (the zero filter's)."""
    from framer_nb.config import profile
    from framer_nb.pairs import builtin_source, data_generator
    cfg = profile("small").train
    hr, _ = builtin_source().batch(8, 64, data_generator(0, 0, "linear-bound"), cfg.crop_scale)
    up = LB.bicubic_up(LB.bicubic_down(hr, 4), 4)
    assert conv.weight.shape == (48, 48, 3, 3) and not conv.weight.requires_grad
    assert torch.mean((LB.apply_filter(conv, up) - hr) ** 2) < 0.97 * torch.mean((up - hr) ** 2)


def test_zero_filter_is_bicubic():
    zero = torch.nn.Conv2d(48, 48, 3, padding=1, padding_mode="replicate")
    torch.nn.init.zeros_(zero.weight), torch.nn.init.zeros_(zero.bias)
    up = torch.rand(2, 3, 64, 64)
    assert torch.allclose(LB.apply_filter(zero, up), up, atol=1e-6)
