"""Size the tiny backbones by measurement: pretrain candidate priors, fine-tune each for SR at the small profile's
budget, and score the one-step (posterior-mean) PSNR gain over bicubic on the *validation* photos.

On a GPU the candidates run in parallel processes (`--minutes` of prior pretraining each); the SR probes use
the CPU recipe (batch 16, the listed step counts and learning rates), so their results transfer to the 2-core
machine. `--cpu-timing` instead measures each candidate's training step time on this CPU (the budget side).

    python research/backbone_sizing.py --minutes 4 --out build/sizing            # GPU: priors + SR probes
    python research/backbone_sizing.py --candidates dit-p1-64x4 --minutes 30 --sr-steps 900 --sr-lrs 0.002
                                                      # CPU: one candidate's prior and its SR probes
    python research/backbone_sizing.py --cpu-timing --out build/sizing          # CPU: ms per step
    python research/backbone_sizing.py --scratch --sr-steps 900 --sr-lrs 0.002 --out build/sizing
                                                      # CPU: SR from scratch only (no prior), one thread each
Writes <out>/backbone_sizing.json (and the candidates' priors under <out>/priors/), <out>/cpu_timing.json or
<out>/backbone_sizing_scratch.json, with provenance. Committed results: research/results/backbone_sizing_*.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import subprocess
import sys
import time
from pathlib import Path

import torch

from framer_nb import backbones as B
from framer_nb.provenance import provenance


def _dit(patch: int, head_dim: int, heads: int, layers: int) -> tuple[str, dict]:
    """A tiny-DiT candidate: patch size, attention head width and count (width = head_dim x heads), depth."""
    return "tiny-dit", dict(patch_size=patch, attention_head_dim=head_dim, num_attention_heads=heads,
                            num_layers=layers, caption_projection_dim=head_dim * heads)


# candidate name -> (registered backbone it varies, config overrides)
CANDIDATES: dict[str, tuple[str, dict]] = {
    "dit-p2-128x6": _dit(2, 32, 4, 6),
    "dit-p2-192x6": _dit(2, 48, 4, 6),
    "dit-p1-64x4": _dit(1, 16, 4, 4),
    # smaller DiTs for more steps in the same time (the shipped shape is short of training samples, recipe.json)
    "dit-p2-96x6": _dit(2, 32, 3, 6),
    "dit-p2-128x4": _dit(2, 32, 4, 4),
    "dit-p2-64x6": _dit(2, 32, 2, 6),
    "unet-32-64": ("tiny-unet", dict(block_out_channels=(32, 64, 64))),
    "unet-48-96": ("tiny-unet", dict(block_out_channels=(48, 96, 96))),
    "unet-64-128-noattn": ("tiny-unet", dict(block_out_channels=(64, 128, 128), down_block_types=("DownBlock2D",) * 3,
                                             up_block_types=("UpBlock2D",) * 3)),
}
SR_STEPS = (150, 300, 600)
SR_LRS = (1e-3, 2e-3)
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


def register(name: str) -> str:
    """Add a candidate to the backbone registry under 'tiny-xxx@<name>' and return that key."""
    base, over = CANDIDATES[name]
    spec = B.spec(base)
    key = f"{base}@{name}"
    B.register(dataclasses.replace(spec, name=key, config={**spec.config, **over}, prior=None))
    return key


def val_gain(bb, steps: int = 10) -> dict:
    from framer_nb.evaluate import validation_gain
    return validation_gain(bb, steps)


def scratch(name: str, out: Path, sr_steps=SR_STEPS, sr_lrs=SR_LRS) -> dict:
    """SR probes from scratch (no prior) at the small recipe: the architecture's capacity for the task alone,
    cheap enough for the CPU (one thread per candidate)."""
    from framer_nb.config import profile
    from framer_nb.train import load_trained, train_sr
    torch.set_num_threads(1)
    key = register(name)
    result = {"candidate": name, "backbone": key, "config": B.spec(key).config, "probes": []}
    base = dataclasses.replace(profile("small").train, backbone=key, prior="none", seed=0)
    for steps in sr_steps:
        for lr in sr_lrs:
            t1 = time.time()
            run = train_sr(dataclasses.replace(base, sr_steps=steps, lr=lr), "baseline", out / "runs", progress=False)
            bb, _ = load_trained(run)
            result["probes"].append({"prior": "none", "sr_steps": steps, "lr": lr,
                                     "train_s": round(time.time() - t1, 1), **val_gain(bb, 10)})
    (out / f"sizing_{name}.json").write_text(json.dumps(result, indent=2, default=str))
    return result


def one(name: str, minutes: float, out: Path, batch: int, sr_steps=SR_STEPS, sr_lrs=SR_LRS) -> dict:
    """Pretrain one candidate's prior, then the SR probes (and one from scratch)."""
    from framer_nb.config import TrainConfig, profile
    from framer_nb.priors import Pretraining, pretrain
    from framer_nb.train import load_trained, train_sr
    key = register(name)
    t0 = time.time()
    how = Pretraining(minutes=minutes, batch_size=batch, lr=1e-3, eval_every=1000,
                      num_workers=2 if DEVICE == "cuda" else 0)
    card = pretrain(key, how, out / "priors" / name, runs=out / "runs", progress=False,
                    command=f"python research/backbone_sizing.py --minutes {minutes} (candidate {name})")
    result = {"candidate": name, "backbone": key, "config": B.spec(key).config, "prior_steps": card["steps"],
              "prior_wall_s": card["wall_s"], "prior_heldout": card["heldout_curve"], "probes": []}
    base = TrainConfig(backbone=key, prior="train", prior_steps=card["steps"], prior_lr=1e-3, prior_batch_size=batch,
                       batch_size=16, log_every=50, ckpt_every=1000)
    for steps in sr_steps:
        for lr in sr_lrs:
            cfg = dataclasses.replace(base, sr_steps=steps, lr=lr)
            t1 = time.time()
            run = train_sr(cfg, "baseline", out / "runs", progress=False)
            bb, _ = load_trained(run)
            result["probes"].append({"prior": "pretrained", "sr_steps": steps, "lr": lr,
                                     "train_s": round(time.time() - t1, 1), **val_gain(bb.to(DEVICE), 10)})
    # the same config as `scratch`, so a candidate probed there already is not trained again
    cfg = dataclasses.replace(profile("small").train, backbone=key, prior="none", seed=0, sr_steps=sr_steps[-1],
                              lr=sr_lrs[0])
    run = train_sr(cfg, "baseline", out / "runs", progress=False)
    bb, _ = load_trained(run)
    result["probes"].append({"prior": "none", "sr_steps": sr_steps[-1], "lr": sr_lrs[0], **val_gain(bb.to(DEVICE), 10)})
    result["total_s"] = round(time.time() - t0, 1)
    (out / f"sizing_{name}.json").write_text(json.dumps(result, indent=2, default=str))
    return result


def cpu_timing(name: str, steps: int = 4) -> float:
    """Milliseconds per training step (batch 16, 64-px crops, LR channels, AdamW) on this CPU, 2 threads."""
    from framer_nb.config import FramerConfig
    from framer_nb.step import training_loss
    torch.set_num_threads(2)
    bb = B.build(register(name))
    bb.grow_lr_channels()
    opt = torch.optim.AdamW(bb.model.parameters(), 1e-4)
    x0 = torch.randn(16, bb.out_channels, 16, 16)
    for i in range(steps + 2):
        if i == 2:
            t0 = time.time()
        loss = training_loss(bb, x0, x0, FramerConfig(objective="none"), generator=torch.Generator().manual_seed(i)).total
        opt.zero_grad()
        loss.backward()
        opt.step()
    return round((time.time() - t0) / steps * 1000, 1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--candidates", default=",".join(CANDIDATES), help="comma list of candidate names")
    ap.add_argument("--minutes", type=float, default=4.0, help="prior pretraining minutes per candidate (GPU)")
    ap.add_argument("--batch-size", type=int, default=256, help="prior pretraining batch size")
    ap.add_argument("--out", default="build/sizing", help="output folder")
    ap.add_argument("--sr-steps", default=",".join(map(str, SR_STEPS)), help="SR probe step counts, comma list")
    ap.add_argument("--sr-lrs", default=",".join(map(str, SR_LRS)), help="SR probe learning rates, comma list")
    ap.add_argument("--one", default=None, help="(internal) run one candidate in this process")
    ap.add_argument("--cpu-timing", action="store_true", help="measure CPU step times instead")
    ap.add_argument("--scratch", action="store_true", help="SR probes from scratch only (no prior pretraining)")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    names = [n for n in args.candidates.split(",") if n]
    steps_lrs = (tuple(int(x) for x in args.sr_steps.split(",")), tuple(float(x) for x in args.sr_lrs.split(",")))
    if args.one and args.scratch:
        scratch(args.one, out, *steps_lrs)
        return
    if args.one:
        one(args.one, args.minutes, out, args.batch_size, tuple(int(x) for x in args.sr_steps.split(",")),
            tuple(float(x) for x in args.sr_lrs.split(",")))
        return
    if args.cpu_timing:
        timing = {n: cpu_timing(n) for n in names}
        (out / "cpu_timing.json").write_text(json.dumps(provenance(benchmark="backbone_sizing cpu timing",
                                                                   ms_per_step=timing), indent=2))
        print(timing)
        return
    procs = {n: subprocess.Popen([sys.executable, __file__, "--one", n, "--minutes", str(args.minutes),
                                  "--batch-size", str(args.batch_size), "--out", str(out), "--sr-steps",
                                  args.sr_steps, "--sr-lrs", args.sr_lrs] + ["--scratch"] * args.scratch,
                                 stdout=open(out / f"{n}.log", "w"), stderr=subprocess.STDOUT) for n in names}
    codes = {n: p.wait() for n, p in procs.items()}
    results = {n: json.loads((out / f"sizing_{n}.json").read_text()) for n in names if codes[n] == 0}
    summary = provenance(benchmark="backbone_sizing", args=vars(args), returncodes=codes,
                         device_name=torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
                         results=results)
    name = "backbone_sizing_scratch.json" if args.scratch else "backbone_sizing.json"
    (out / name).write_text(json.dumps(summary, indent=2, default=str))
    for n, r in results.items():
        best = max(r["probes"], key=lambda p: p["gain_1step"])
        print(f"{n}: prior {r.get('prior_steps', 0)} steps; best one-step gain {best['gain_1step']:+.2f} dB "
              f"({best['sr_steps']} steps, lr {best['lr']})", flush=True)
    sys.exit(0 if all(c == 0 for c in codes.values()) else 1)


if __name__ == "__main__":
    main()
