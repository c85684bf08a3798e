"""Which training knobs move the small baseline's PSNR relative to bicubic (issue 3's bar).

Each setting trains the `small` profile's prior and baseline SR run (seed 0) with a few knobs changed,
then scores the held-out test set with 1 sampling step (the model's MMSE estimate of x0) and with 4
and 10 steps. Runs are cached under --runs, so a rerun only scores.

python benchmarks/sr_knobs.py  ->  benchmarks/results/sr_knobs.json   (about 30 minutes on 2 cores)
"""

import argparse
import dataclasses
import json
import time
from pathlib import Path

import torch

from framer_nb import backbones as B
from framer_nb.config import profile, with_overrides
from framer_nb.evaluate import super_resolve
from framer_nb.metrics import psnr
from framer_nb.pipeline import test_set
from framer_nb.provenance import provenance
from framer_nb.train import load_trained, train_sr

# name: (backbone, objective overrides, TrainConfig overrides)
SETTINGS = {
    "dit-default": ("tiny-dit", {}, {}),
    "dit-residual-x4": ("tiny-dit", {}, {"residual_scale": 4.0}),
    "dit-sample-pred": ("tiny-dit", {"prediction": "sample"}, {}),
    "dit-sample-pred-600": ("tiny-dit", {"prediction": "sample"}, {"sr_steps": 600}),
    "unet-default": ("tiny-unet", {}, {}),
    "unet-sample-pred": ("tiny-unet", {"prediction": "sample"}, {}),
}


def run_setting(backbone: str, objective: dict, train: dict, runs: Path, test: dict, steps: tuple) -> dict:
    """Train (or reuse) one baseline run with the knobs set; PSNR for each sampler step count."""
    spec = B.REGISTRY[backbone]
    B.REGISTRY[backbone] = dataclasses.replace(spec, objective=dataclasses.replace(spec.objective, **objective))
    try:
        cfg = with_overrides(profile("small").train, backbone=backbone, **train)
        t0 = time.perf_counter()
        run = train_sr(cfg, "baseline", runs, progress=False)
        bb, _ = load_trained(run, backbone)
        out = {"run": str(run), "train_s": round(time.perf_counter() - t0, 1)}
        for n in steps:
            sr = super_resolve(bb, test["lr_up"], n, seed=0, tile=cfg.image_size)
            out[f"psnr_db_{n}_steps"] = round(psnr(sr, test["hr"]).mean().item(), 2)
        return out
    finally:
        B.REGISTRY[backbone] = spec


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", nargs="+", default=list(SETTINGS), help=f"settings to run: {', '.join(SETTINGS)}")
    ap.add_argument("--runs", default="build/knob-runs", help="cache of the runs")
    args = ap.parse_args()
    torch.set_num_threads(2)
    p = profile("small")
    test = test_set(p)
    bicubic = round(psnr(test["lr_up"], test["hr"]).mean().item(), 2)
    results = {}
    for name in args.only:
        backbone, objective, train = SETTINGS[name]
        results[name] = {"backbone": backbone, "objective": objective, "train": train,
                         **run_setting(backbone, objective, train, Path(args.runs), test, (1, 4, 10))}
        print(name, results[name], flush=True)
    res = provenance(benchmark="sr_knobs", profile="small", variant="baseline", seed=0, bicubic_psnr_db=bicubic,
                     settings=results)
    path = Path("benchmarks/results/sr_knobs.json")
    path.write_text(json.dumps(res, indent=2))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
