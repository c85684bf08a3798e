"""benchmarks/linear_bound.py: the least-squares filter and the residual base it can stand in for."""

import importlib.util
from pathlib import Path

import pytest
import torch

import framer_nb.backbones as B

_spec = importlib.util.spec_from_file_location("linear_bound", Path(__file__).parents[1] / "benchmarks" / "linear_bound.py")
LB = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(LB)


@pytest.fixture(scope="module")
def conv():
    return LB.fit_filter(3, batches=2, batch=8)


def test_filter_is_a_least_squares_fit(conv):
    """On crops it was fitted to, the filter's residual error is below bicubic's (the zero filter's)."""
    from framer_nb.config import profile
    from framer_nb.train import builtin_source, data_generator
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


def test_filter_as_base_inverts_and_restores(conv):
    hr, lr = torch.randn(2, 48, 16, 16), torch.randn(2, 48, 16, 16)
    stock = B.sr_target, B.sr_image
    with LB.filter_as_base(conv):
        x0 = B.sr_target(hr, lr, 4.0)
        assert not torch.allclose(x0, stock[0](hr, lr, 4.0))  # the base moved
        assert torch.allclose(B.sr_image(x0, lr, 4.0), hr, atol=1e-5)
    assert (B.sr_target, B.sr_image) == stock
