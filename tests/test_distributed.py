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


def test_each_process_draws_its_own_batches():
    from framer_nb.pairs import data_generator, step_generator
    draw = [torch.rand(4, generator=data_generator(0, 7, "sr-data", r)) for r in (0, 1)]
    assert torch.equal(draw[0], torch.rand(4, generator=step_generator(0, 7, "sr-data")))  # = single process
    assert not torch.equal(draw[0], draw[1])


def test_two_process_training_end_to_end(tmp_path):
    # `accelerate launch --multi_gpu` sets the same environment torchrun does; on CPU accelerate uses gloo
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    args = ["train", "--profile", "smoke", "--backbone", "tiny-dit", "--variant", "framer", "--seed", "0",
            "--prior", "train", "--prior-steps", "3"]
    launch = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "framer_nb"]
    proc = subprocess.run(launch + args + ["--runs", str(tmp_path / "two")], env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    proc = subprocess.run([sys.executable, "-m", "framer_nb"] + args + ["--runs", str(tmp_path / "one")], env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]

    from safetensors.torch import load_file
    runs = {n: next((tmp_path / n / "tiny-dit" / "framer").iterdir()) for n in ("one", "two")}
    done = {n: json.loads((r / "done.json").read_text()) for n, r in runs.items()}
    assert done["two"]["num_processes"] == 2 and done["one"]["num_processes"] == 1
    assert json.loads((tmp_path / "two" / "prior" / next(iter(os.listdir(tmp_path / "two" / "prior"))) /
                       "done.json").read_text())["num_processes"] == 2
    w = {n: load_file(str(r / "model" / "diffusion_pytorch_model.safetensors")) for n, r in runs.items()}
    assert all(torch.isfinite(v).all() for v in w["two"].values())
    # process 1 draws its own batches, so two processes do not train what one does
    assert any(not torch.equal(w["one"][k], w["two"][k]) for k in w["one"])


def test_two_process_latent_training_checkpoints_and_resumes(tmp_path):
    # accelerate launch of the latent path (tiny random SD3 pipeline) on two gloo processes: stop, resume, finish
    from framer_nb.toy import make_pipeline
    pipe = make_pipeline("sd35-medium", tmp_path / "pipe")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    # on a CPU, `--multi_gpu` is what makes accelerate launch start several (gloo) processes; `--cpu` starts one
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2", "-m", "framer_nb"]
    args = ["train", "--profile", "smoke", "--backbone", "sd35-medium", "--pretrained", str(pipe), "--image-size", "32",
            "--steps", "4", "--batch-size", "2", "--runs", str(tmp_path / "runs"), "--variant", "framer"]
    first = subprocess.run(launch + args + ["--stop-after", "2"], env=env, capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, first.stderr[-3000:]
    run = next((tmp_path / "runs" / "sd35-medium" / "framer").iterdir())
    from safetensors import safe_open
    with safe_open(str(run / "checkpoint.safetensors"), "pt") as f:
        assert json.loads(f.metadata()["state"])["step"] == 2
    assert not (run / "done.json").exists()
    second = subprocess.run(launch + args, env=env, capture_output=True, text=True, timeout=600)
    assert second.returncode == 0, second.stderr[-3000:]
    done = json.loads((run / "done.json").read_text())
    assert done["num_processes"] == 2 and done["resumed_from"] == 2 and done["prior"]["kind"] == "pretrained"
