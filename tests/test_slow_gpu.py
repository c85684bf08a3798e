"""Longer checks, deselected by default: `make test-slow` (CPU, minutes) and `pytest -m gpu` (CUDA)."""

import pandas as pd
import pytest
import torch

from framer_nb import backbones as B
from framer_nb import train as T
from framer_nb.config import FramerConfig, profile, with_overrides
from framer_nb.losses import framer_loss
from framer_nb.step import training_loss


@pytest.mark.slow
def test_small_profile_runs_learn(tmp_path):
    # the prior learns to denoise; SR fine-tuning (baseline) lowers the objective on held-out batches
    # below its prior's (fed zero LR channels). The margin is small (about 1%): see README, Results.
    cfg = with_overrides(profile("small").train, backbone="tiny-dit")
    run = T.train_sr(cfg, "baseline", tmp_path, progress=False)
    prior_log = pd.read_csv(T.prior_dir(cfg, tmp_path) / "log.csv")
    assert prior_log["objective"].tail(5).mean() < 0.7 * prior_log["objective"].head(5).mean()
    sr, _ = T.load_trained(run, cfg.backbone)
    prior, _ = T.load_trained(T.prior_dir(cfg, tmp_path), cfg.backbone)
    B.grow_input_channels(prior, 3)
    assert T.heldout_objective(sr, cfg) < T.heldout_objective(prior, cfg)


@pytest.mark.gpu
def test_cuda_bf16_step_and_loss_match_cpu():
    if not torch.cuda.is_available():
        pytest.fail("the gpu marker was selected but no CUDA device is visible")
    g = torch.Generator().manual_seed(0)
    s, t = torch.randn(4, 8, 4, 16, 16, generator=g), torch.randn(8, 4, 16, 16, generator=g)
    cpu = framer_loss(s, t, neg_layers=[1, 2, 3, 0]).distill
    gpu = framer_loss(s.cuda(), t.cuda(), neg_layers=[1, 2, 3, 0]).distill
    assert gpu.item() == pytest.approx(cpu.item(), rel=1e-4)
    bb = B.build("tiny-dit")
    B.grow_input_channels(bb, 3)
    bb.model.to("cuda", torch.bfloat16)
    x0 = torch.randn(4, 3, 32, 32, device="cuda", dtype=torch.bfloat16)
    out = training_loss(bb, x0, torch.zeros_like(x0), FramerConfig(), generator=torch.Generator().manual_seed(0))
    out.total.backward()
    assert torch.isfinite(out.total) and out.framer.distill > 0
