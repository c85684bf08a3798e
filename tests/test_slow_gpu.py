"""Longer checks, deselected by default: `make test-slow` (CPU, minutes) and `pytest -m gpu` (CUDA, in
benchmarks/gpu_check.sh)."""

import pandas as pd
import pytest
import torch

from framer_nb import backbones as B
from framer_nb import train as T
from framer_nb.config import FramerConfig, TrainConfig, profile, with_overrides
from framer_nb.loop import heldout_objective
from framer_nb.losses import framer_loss
from framer_nb.priors import prior_run
from framer_nb.step import training_loss


@pytest.mark.slow
def test_prior_pretraining_and_sr_finetuning_learn(tmp_path):
    # a prior trained here learns to denoise residuals; SR fine-tuning lowers the held-out objective below the
    # prior's (fed zero LR channels)
    cfg = with_overrides(profile("small").train, backbone="tiny-dit", prior="train", prior_steps=300, sr_steps=300)
    run = T.train_sr(cfg, "baseline", tmp_path, progress=False)
    prior = prior_run(cfg, tmp_path)
    log = pd.read_csv(prior.log_file)
    assert log["objective"].tail(5).mean() < 0.8 * log["objective"].head(5).mean()
    sr, _ = T.load_trained(run)
    base, _ = T.load_trained(prior)
    base.grow_lr_channels()
    assert heldout_objective(sr, cfg) < heldout_objective(base, cfg)


def _cuda():
    if not torch.cuda.is_available():
        pytest.fail("the gpu marker was selected but no CUDA device is visible")


@pytest.mark.gpu
def test_cuda_bf16_step_and_loss_match_cpu():
    _cuda()
    g = torch.Generator().manual_seed(0)
    s, t = torch.randn(4, 8, 4, 16, 16, generator=g), torch.randn(8, 4, 16, 16, generator=g)
    cpu = framer_loss(s, t, neg_layers=[1, 2, 3, 0]).distill
    gpu = framer_loss(s.cuda(), t.cuda(), neg_layers=[1, 2, 3, 0]).distill
    # cuFFT and pocketfft differ in the last bits; a bin at the 20% quantile can change band: 1e-3 relative
    assert gpu.item() == pytest.approx(cpu.item(), rel=1e-3)
    for name in ("tiny-dit", "tiny-unet"):
        bb = B.build(name)
        bb.grow_lr_channels()
        bb.to("cuda", torch.bfloat16)
        heads = bb.make_heads()
        heads = heads.to("cuda", torch.bfloat16) if heads is not None else None
        x0 = torch.randn(4, bb.out_channels, 16, 16, device="cuda", dtype=torch.bfloat16)
        out = training_loss(bb, x0, torch.zeros_like(x0), FramerConfig(), heads, generator=torch.Generator().manual_seed(0))
        out.total.backward()
        assert torch.isfinite(out.total) and out.framer.distill > 0, name


@pytest.mark.gpu
def test_latent_pipeline_trains_resumes_and_evaluates_on_cuda(tmp_path):
    _cuda()
    from framer_nb import evaluate as E
    from framer_nb.toy import make_pipeline
    for name in ("sd35-medium", "sd2-base"):
        pipe = make_pipeline(name, tmp_path / name)
        cfg = TrainConfig(backbone=name, pretrained=str(pipe), image_size=32, batch_size=2, sr_steps=3, target="image",
                          mixed_precision="bf16", degradation="light", log_every=1, ckpt_every=1, prior="none")
        full = T.train_sr(cfg, "framer", tmp_path / "a", progress=False)
        T.train_sr(cfg, "framer", tmp_path / "b", progress=False, stop_after=2)
        resumed = T.train_sr(cfg, "framer", tmp_path / "b", progress=False)
        bb, _ = T.load_trained(full)
        bb.to("cuda")
        again, _ = T.load_trained(resumed)
        assert all(torch.equal(a.cpu(), b) for a, b in zip(bb.model.state_dict().values(),
                                                            again.model.state_dict().values())), name
        test = E.make_test_set(2, 32, "light")
        sr = E.super_resolve_set(bb, test, steps=2, seed=0, tile=32)
        assert all(s.shape == h.shape and torch.isfinite(s).all() for s, h in zip(sr, test.hr)), name
