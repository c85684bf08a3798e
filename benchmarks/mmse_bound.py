"""How far a tiny backbone can get above bicubic at all: train it as a direct MMSE regressor.

A diffusion model's one-step output at t = T is its estimate of E[x0 | LR], the PSNR-optimal answer; a
sample from the model scores below it. Here each backbone, with its LR input channels, is trained on the
`small` profile's data and degradation to predict the residual HR - bicubic(LR) directly (noise input
zero, t fixed), with the SR stage's optimiser settings, and scored on the held-out test set every
`--every` steps. If this regressor does not beat bicubic, no sampler of the same model and budget will.

python benchmarks/mmse_bound.py  ->  benchmarks/results/mmse_bound.json
"""

import argparse
import json
import time
from pathlib import Path

import torch

from framer_nb import backbones as B
from framer_nb.config import profile, with_overrides
from framer_nb.degrade import load_preset
from framer_nb.evaluate import tiled
from framer_nb.metrics import mean_psnr_db
from framer_nb.pipeline import test_set
from framer_nb.provenance import provenance
from framer_nb.train import data_source, sr_pair, step_generator


def test_psnr(bb: B.Backbone, test: dict, tile: int) -> float:
    """Mean PSNR on the test set of bicubic + the regressed residual."""
    cond = test["lr_up"] * 2 - 1
    fn = tiled(lambda x, t, lr: B.predict(bb, x, t, lr), tile, 8)
    bb.model.eval()
    with torch.no_grad():
        res = fn(torch.zeros_like(cond), torch.full((len(cond),), 999.0), cond)
    bb.model.train()
    return mean_psnr_db(((cond + res + 1) / 2).clamp(0, 1), test["hr"])


def regress(name: str, steps: int, every: int, test: dict) -> dict:
    """Train `name` as a residual regressor for `steps`; test PSNR every `every` steps."""
    cfg = with_overrides(profile("small").train, backbone=name)
    bb = B.build(name)
    B.grow_input_channels(bb, 3)
    src, preset = data_source(cfg), load_preset(cfg.degradation)
    opt = torch.optim.AdamW(bb.model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    curve, rel, t0 = [], [], time.perf_counter()
    for step in range(steps):
        g = step_generator(0, step, "mmse-bound")
        x0, lr = sr_pair(src.batch(cfg.batch_size, cfg.image_size, g), preset, cfg, g)
        t = torch.full((len(x0),), 999.0)
        loss = (B.predict(bb, torch.zeros_like(x0), t, lr) - x0).pow(2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(bb.model.parameters(), cfg.grad_clip)
        opt.step()
        rel.append(loss.item() / x0.pow(2).mean().item())
        if (step + 1) % every == 0:
            row = {"step": step + 1, "test_psnr_db": test_psnr(bb, test, cfg.image_size),
                   "train_mse_over_zero_predictor": round(sum(rel[-every:]) / every, 4),
                   "seconds": round(time.perf_counter() - t0, 1)}
            curve.append(row)
            print(name, row, flush=True)
    return {"curve": curve, "best_psnr_db": max(r["test_psnr_db"] for r in curve)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backbones", nargs="+", default=["tiny-dit", "tiny-unet"])
    ap.add_argument("--steps", type=int, default=600, help="regression steps (the SR stage runs 200)")
    ap.add_argument("--every", type=int, default=100, help="test every N steps")
    ap.add_argument("--out", default="benchmarks/results/mmse_bound.json", help="results JSON")
    args = ap.parse_args()
    torch.set_num_threads(2)
    p = profile("small")
    test = test_set(p)
    bicubic = mean_psnr_db(test["lr_up"], test["hr"])
    print(f"bicubic {bicubic} dB")
    out = {name: regress(name, args.steps, args.every, test) for name in args.backbones}
    res = provenance(benchmark="mmse_bound", profile="small", steps=args.steps, degradation=p.train.degradation,
                     n_test=p.n_test, test_size=p.test_size, bicubic_psnr_db=bicubic, backbones=out)
    path = Path(args.out)
    path.write_text(json.dumps(res, indent=2))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
