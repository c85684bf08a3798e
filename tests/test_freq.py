import math

import pytest
import torch

from framer_nb import freq


def test_quantile_mask_golden():
    # fft2([[1,2],[3,4]]) = [[10,-2],[-4,0]]; centred |F| = [[0,4],[2,10]]; q0.2 of {0,2,4,10} = 1.2
    x = torch.tensor([[1.0, 2.0], [3.0, 4.0]]).view(1, 1, 2, 2)
    mag = freq.spectrum(x).abs()
    assert torch.allclose(mag[0, 0], torch.tensor([[0.0, 4.0], [2.0, 10.0]]), atol=1e-5)
    low, high = freq.band_masks(mag, "quantile", cutoff=0.2)
    assert low[0, 0].tolist() == [[True, False], [False, False]]
    assert torch.equal(high, ~low)


def test_quantile_mask_is_per_sample():
    a = torch.randn(1, 2, 6, 6)
    mag = freq.spectrum(torch.cat([a, 100 * a])).abs()
    low, _ = freq.band_masks(mag, "quantile", cutoff=0.3)
    assert torch.equal(low[0], low[1])  # scale-free per sample


def test_radial_mask_golden():
    # centred frequencies of a 4-point axis, in Nyquist units: [-1, -0.5, 0, 0.5]
    low, high = freq.radial_masks(4, 4, radius=0.5)
    expected = torch.zeros(4, 4, dtype=torch.bool)
    expected[2, 2] = expected[1, 2] = expected[3, 2] = expected[2, 1] = expected[2, 3] = True
    assert torch.equal(low, expected)
    assert low.sum() == 5 and torch.equal(high, ~low)


def test_radial_frequency_odd_size_has_centre_zero():
    r = freq.radial_frequency(5, 7)
    assert r.shape == (5, 7) and r[2, 3] == 0 and r.max() <= math.sqrt(2)


def test_band_vectors_unit_norm_and_zero_safe():
    mag = torch.rand(3, 2, 5, 5)
    mask = torch.rand(3, 2, 5, 5) > 0.5
    v = freq.band_vectors(mag, mask)
    assert v.shape == (3, 50) and torch.allclose(v.norm(dim=-1), torch.ones(3), atol=1e-6)
    z = freq.band_vectors(torch.zeros(1, 2, 5, 5), mask[:1])
    assert torch.isfinite(z).all() and z.abs().sum() == 0


def test_band_energy_golden():
    mag = torch.tensor([[[[1.0, 3.0], [5.0, 7.0]], [[2.0, 2.0], [2.0, 2.0]]]])  # [1, 2, 2, 2]
    mask = torch.tensor([[True, True], [False, False]]).expand(1, 2, 2, 2)
    # channel 0: (1+3)/2 = 2; channel 1: 2; mean = 2
    assert freq.band_energy(mag, mask).item() == pytest.approx(2.0, rel=1e-6)


def test_band_histograms_integrate_to_one_minus_the_share_beyond_the_range():
    lf, hf = freq.band_log_magnitudes(torch.rand(4, 3, 16, 16), radius=0.25)
    edges, dens, beyond = freq.band_histograms({"lf": lf, "hf": hf}, bins=20)
    width = edges[1] - edges[0]
    for name, d in dens.items():
        assert d.shape == (4, 20) and 0 <= beyond[name] < 0.05
        assert torch.allclose((d.sum(1) * width).mean(), torch.tensor(1.0 - beyond[name]), atol=1e-5)
    # values beyond the range are counted apart, never piled into the last bin (that bin used to hold them all)
    values = torch.cat([torch.rand(2, 990), torch.full((2, 10), 1e3)], 1)
    edges, dens, beyond = freq.band_histograms({"x": values}, bins=10, top_percentile=99.0)
    assert beyond["x"] == pytest.approx(0.01) and float(dens["x"][:, -1].mean() * (edges[1] - edges[0])) < 0.2
