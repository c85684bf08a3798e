import json
import os
import subprocess
import sys
from pathlib import Path

import torch

from framer_nb.losses import framer_loss

WORKER = Path(__file__).with_name("dist_worker.py")


def test_gathered_negatives_match_one_big_batch(tmp_path):
    # two fresh processes (the launcher `accelerate launch --multi_gpu` wraps); accelerate sets up gloo on CPU
    env = {**os.environ, "FRAMER_DIST_OUT": str(tmp_path), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(WORKER)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    assert all(r["world"] == 2 for r in ranks)

    g = torch.Generator().manual_seed(0)
    students = torch.randn(3, 4, 2, 6, 6, generator=g).requires_grad_()
    teacher = torch.randn(4, 2, 6, 6, generator=g)
    full = framer_loss(students, teacher, neg_layers=[2, 0, 1])
    full.distill.backward()

    # per-sample InterCL terms are exactly those of the big batch
    hf = torch.cat([torch.tensor(r["hf"]) for r in ranks], dim=1)
    assert torch.allclose(hf, full.hf_loss.detach(), rtol=1e-5)
    # DDP averages the processes' losses and gradients: that average is the big batch's
    assert abs(sum(r["loss"] for r in ranks) / 2 - full.distill.item()) < 1e-5 * abs(full.distill.item())
    grad = torch.cat([torch.tensor(r["grad"]) for r in ranks], dim=1) / 2
    assert torch.allclose(grad, students.grad, rtol=1e-4, atol=1e-8)
