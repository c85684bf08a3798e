"""Which held-out set can resolve FRAMER - baseline? Two designs, measured on the *validation* photos.

- `crops`: 8 crops of 128 px (two per photo), each sampled in overlapping 64-px tiles (25 tiles of the tiled
  sampler): the test set of Table 1 before the grid.
- `grid`: every photo cut into non-overlapping 64-px crops, the training size, each sampled whole (one tile):
  all of the photos' area (framer_nb.evaluate.grid_test_set).
- `grid128` (one step only): every photo in non-overlapping 128-px crops, tiled as the crops are. Each holds four
  crops of `grid` exactly, so `grid` restricted to that area (`grid_in_grid128`) against `grid128` tells whether
  sampling whole 64-px crops instead of tiling 128-px ones changes the effect measured.

For each design and output (one step, and the profile's sampled steps) it scores the baseline and FRAMER runs of
every seed that `make reproduce` trained (no training here), with common random numbers, and reports what one run's
scoring costs, the paired differences' variance components (research/power.py: s_e, crop by seed; s_a, seed-level)
and the minimum detectable effect (MDE) of the design, beside each variant's PSNR gain over bicubic there (the
operating point: a design where the models do not beat bicubic does not measure super-resolution).

    python research/eval_design.py --runs build/runs   ->  research/results/eval_design.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import pandas as pd
import torch

from framer_nb.config import profile
from framer_nb.data import photo
from framer_nb.evaluate import SAMPLER_SEED, grid_test_set, make_test_set, super_resolve_set
from framer_nb.metrics import psnr
from framer_nb.provenance import provenance
from framer_nb.stats import compare
from framer_nb.train import load_trained, sr_run

sys.path.insert(0, str(Path(__file__).parent))
from power import components, mde  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def designs(degradation: str) -> dict:
    return {"crops": make_test_set(8, 128, degradation, split="val"),
            "grid": grid_test_set(64, degradation, split="val"),
            "grid128": grid_test_set(128, degradation, split="val")}


def in_grid128(name: str) -> bool:
    """Whether 64-px grid crop `<photo>_<k>` lies inside its photo's 128-px grid (which leaves a wider margin)."""
    photo_name, _, k = name.rpartition("_")
    H, W = photo(photo_name).shape[-2:]
    row, col = divmod(int(k), W // 64)
    return row < 2 * (H // 128) and col < 2 * (W // 128)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", default="build/runs", help="runs folder of a `small` reproduce")
    ap.add_argument("--out", default=str(ROOT / "research" / "results" / "eval_design.json"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    p = profile("small")
    backbone = p.backbones[0]
    rows, cost = [], []
    tests = designs(p.train.degradation)
    for design, test in tests.items():
        hr = torch.stack(test.hr)
        for variant in p.main_variants:
            for seed in p.seeds:
                run = sr_run(p.train_for(backbone, seed=seed), variant, args.runs)
                if not run.done:
                    raise FileNotFoundError(f"{run.path}: not trained; run `make reproduce` first")
                bb, _ = load_trained(run)
                for steps in (1,) if design == "grid128" else (1, p.train.sample_steps):
                    t0 = time.perf_counter()
                    sr = super_resolve_set(bb, test, steps, SAMPLER_SEED, p.train.image_size)
                    cost.append({"design": design, "steps": steps, "crops": len(test.names),
                                 "seconds": time.perf_counter() - t0})
                    scores = psnr(torch.stack(sr), hr).tolist()
                    rows += [{"design": design, "steps": steps, "variant": variant, "seed": seed, "image": n,
                              "psnr": q} for n, q in zip(test.names, scores)]
                print(design, variant, seed, f"{cost[-1]['seconds']:.1f} s", flush=True)
    df, cost = pd.DataFrame(rows), pd.DataFrame(cost)
    inner = df[(df["design"] == "grid") & df["image"].map(in_grid128)].assign(design="grid_in_grid128")
    cost = pd.concat([cost, cost[cost["design"] == "grid"].assign(design="grid_in_grid128")])
    tests["grid_in_grid128"] = tests["grid128"]  # the same area
    df = pd.concat([df, inner])
    out, bicubics = [], {}
    for (design, steps), g in df.groupby(["design", "steps"]):
        wide = g.pivot_table(index=["seed", "image"], columns="variant", values="psnr")
        c = components((wide["framer"] - wide["baseline"]).unstack("image"))
        k, n = c["seeds"], c["crops"]
        secs = cost[(cost["design"] == design) & (cost["steps"] == steps)]["seconds"].median()
        hr_d, lr_d = torch.stack(tests[design].hr), torch.stack(tests[design].lr_up())
        bicubic = float(psnr(lr_d, hr_d).mean()) if design != "grid_in_grid128" else float(
            psnr(torch.stack(tests["grid"].lr_up()), torch.stack(tests["grid"].hr))[
                torch.tensor([in_grid128(n) for n in tests["grid"].names])].mean())
        bicubics[design] = bicubic
        gains = {}
        for v in p.main_variants:  # gain over bicubic: mean over seeds of per-seed crop means, 95% t-interval
            cg = compare(g[g["variant"] == v].groupby("seed")["psnr"].mean() - bicubic)
            gains[f"gain_{v}"] = [round(cg.effect, 3), round(cg.low, 3), round(cg.high, 3)]
        out.append({"design": design, "steps": int(steps), "crops": n, "seconds_per_run": round(float(secs), 2),
                    "bicubic_psnr": round(bicubic, 3), **gains,
                    "pixels": sum(h.shape[-2] * h.shape[-1] for h in tests[design].hr),
                    **{key: round(v, 4) for key, v in c.items() if isinstance(v, float)},
                    "mde": round(mde(k, n, c["s_a"], c["s_e"]), 4),
                    "mde_floor": round(mde(k, 10 ** 9, c["s_a"], c["s_e"]), 4)})
        print(out[-1], flush=True)
    # tiles against whole crops on the same area, one step, paired by seed: the baseline's PSNR
    one = df[(df["steps"] == 1) & (df["variant"] == p.main_variants[0])]
    gain = {d: one[one["design"] == d].groupby("seed")["psnr"].mean() - bicubics[d] for d in ("grid128", "grid_in_grid128")}
    c = compare(gain["grid128"] - gain["grid_in_grid128"])
    tiled = {"baseline one-step gain over bicubic, grid128 (tiled) - grid_in_grid128 (whole), same area":
             [round(c.effect, 3), round(c.low, 3), round(c.high, 3)]}
    print(tiled)
    doc = provenance(question="which held-out set resolves FRAMER - baseline, at what cost (validation photos)?",
                     split="val", backbone=backbone, seeds=list(p.seeds), command="python research/eval_design.py "
                     + " ".join(sys.argv[1:]), intervals="[effect, 95% low, 95% high] over seeds", results=out,
                     tiled_minus_whole=tiled)
    Path(args.out).write_text(json.dumps(doc, indent=2, default=str))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
