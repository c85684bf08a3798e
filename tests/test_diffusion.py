import pytest
import torch

from framer_nb import diffusion as D

KINDS = [("flow", "native"), ("ddpm", "native"), ("flow", "sample"), ("ddpm", "sample")]


@pytest.mark.parametrize("kind,prediction", KINDS)
def test_x0_from_exact_prediction(kind, prediction):
    obj = D.Objective(kind, prediction=prediction)
    g = torch.Generator().manual_seed(0)
    x0, noise = torch.randn(4, 3, 8, 8, generator=g), torch.randn(4, 3, 8, 8, generator=g)
    t = torch.tensor([5.0, 300.0, 700.0, 990.0])
    x_t = D.add_noise(obj, x0, noise, t)
    assert torch.allclose(D.to_x0(obj, D.target(obj, x0, noise), x_t, t), x0, atol=2e-3 if kind == "ddpm" else 1e-5)
    stacked = D.to_x0(obj, D.target(obj, x0, noise).expand(2, -1, -1, -1, -1), x_t, t)  # leading layer axis
    assert stacked.shape == (2, 4, 3, 8, 8)


@pytest.mark.parametrize("kind,prediction", KINDS)
def test_sampler_with_oracle_denoiser_returns_the_data(kind, prediction):
    obj = D.Objective(kind, prediction=prediction)
    x0 = torch.rand(2, 3, 8, 8) * 1.6 - 0.8

    def oracle(x_t, t):  # the exact prediction for a data set of one point
        a, s = D._coeffs(obj, t, x_t)
        noise = (x_t - a * x0) / s
        return D.target(obj, x0, noise)

    out = D.sample(obj, oracle, x0.shape, steps=5, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(out, x0, atol=1e-4)


def test_sampler_is_seeded():
    obj = D.Objective("flow")

    def den(x, t):
        return 0.5 * x

    a = D.sample(obj, den, (1, 3, 4, 4), 3, torch.Generator().manual_seed(3))
    b = D.sample(obj, den, (1, 3, 4, 4), 3, torch.Generator().manual_seed(3))
    assert torch.equal(a, b)


def test_time_sampling_ranges():
    g = torch.Generator().manual_seed(0)
    tf = D.sample_time(D.Objective("flow"), 1000, g)
    td = D.sample_time(D.Objective("ddpm"), 1000, g)
    assert 0 < tf.min() and tf.max() < 1000 and (td == td.round()).all() and td.max() <= 999
    with pytest.raises(ValueError, match="kind"):
        D.Objective("edm")


def test_sample_prediction_is_scored_in_x0_space_and_validated():
    obj = D.Objective("flow", prediction="sample")
    x0, noise = torch.ones(2, 1, 2, 2), torch.zeros(2, 1, 2, 2)
    assert torch.equal(D.target(obj, x0, noise), x0)
    assert torch.equal(D.loss_weight(obj, torch.tensor([10.0, 900.0])), torch.ones(2))
    assert torch.allclose(D.loss_weight(D.Objective("flow"), torch.tensor([500.0])), torch.tensor([0.25]))
    with pytest.raises(ValueError, match="prediction"):
        D.Objective("flow", prediction="v")


def test_time_bias_moves_training_times_to_noise_and_the_paper_profile_keeps_its_own():
    from framer_nb.config import profile
    for obj in (D.Objective("flow", time_sampling="uniform", prediction="sample"), D.Objective("ddpm")):
        plain = D.sample_time(obj, 4096, torch.Generator().manual_seed(0))
        biased = D.sample_time(obj, 4096, torch.Generator().manual_seed(0), bias=profile("small").train.time_bias)
        assert biased.median() > plain.median() + 300 and biased.max() <= D.T_MAX
    assert profile("paper").train.time_bias == 1.0  # the paper's setting: the objective's own time sampling
