"""Which training knobs move the small baseline's PSNR relative to bicubic (issue 3's bar).

Each setting trains the `small` profile's prior and baseline SR run (seed 0) with a few knobs changed,
then scores the held-out test set with 1 sampling step (the model's MMSE estimate of x0) and with 4
and 10 steps. Runs are cached under --runs, so a rerun only scores.

python benchmarks/sr_knobs.py --only dit-adopted  ->  merged into benchmarks/results/sr_knobs.json
(every setting: about an hour on 2 cores)
"""

import argparse
import dataclasses
import json
from pathlib import Path

import torch

from framer_nb import backbones as B
from framer_nb.config import profile, with_overrides
from framer_nb.evaluate import super_resolve
from framer_nb.metrics import mean_psnr_db
from framer_nb.pipeline import test_set
from framer_nb.provenance import git_commit, provenance
from framer_nb.train import load_trained, train_sr

# The recipe before this benchmark (commit 9b92f83): native prediction (v / epsilon), constant LR, no EMA,
# half dead leaves in both stages. Every setting states each knob, so results do not move with the defaults.
BEFORE = {"prediction": "native", "lr_schedule": "constant", "ema_decay": 0.0, "photo_share": 0.5,
          "prior_photo_share": 0.5}
# The recipe adopted as the small profile's default (x0 prediction, cosine LR, EMA 0.99, SR on photos).
ADOPTED = {"prediction": "sample", "lr_schedule": "cosine", "ema_decay": 0.99, "photo_share": 1.0,
           "prior_photo_share": 0.5}
SAMPLE = {**BEFORE, "prediction": "sample"}

# name: (backbone, knobs); "prediction" goes to the backbone's objective, the rest to TrainConfig
SETTINGS = {
    "dit-default": ("tiny-dit", BEFORE),
    "dit-residual-x4": ("tiny-dit", {**BEFORE, "residual_scale": 4.0}),
    "dit-sample-pred": ("tiny-dit", SAMPLE),
    "dit-sample-pred-600": ("tiny-dit", {**SAMPLE, "sr_steps": 600}),
    "dit-sample-pred-ema": ("tiny-dit", {**SAMPLE, "ema_decay": 0.99}),
    "dit-sample-pred-cosine": ("tiny-dit", {**SAMPLE, "lr_schedule": "cosine"}),
    "dit-sample-pred-ema-cosine": ("tiny-dit", {**SAMPLE, "ema_decay": 0.99, "lr_schedule": "cosine"}),
    "dit-sample-pred-ema-cosine-photos": ("tiny-dit", {**ADOPTED, "prior_photo_share": 1.0}),
    "dit-adopted": ("tiny-dit", ADOPTED),
    "unet-default": ("tiny-unet", BEFORE),
    "unet-sample-pred": ("tiny-unet", SAMPLE),
    "unet-sample-pred-ema-cosine-photos": ("tiny-unet", {**ADOPTED, "prior_photo_share": 1.0}),
    "unet-adopted": ("tiny-unet", ADOPTED),
    "unet-adopted-600": ("tiny-unet", {**ADOPTED, "sr_steps": 600}),  # about the 5-minute per-variant budget
    "unet-adopted-2000": ("tiny-unet", {**ADOPTED, "sr_steps": 2000}),  # 10x the SR steps
}


def run_setting(backbone: str, knobs: dict, runs: Path, test: dict, steps: tuple) -> dict:
    """Train (or reuse) one baseline run with the knobs set; PSNR for each sampler step count."""
    train = {k: v for k, v in knobs.items() if k != "prediction"}
    spec = B.REGISTRY[backbone]
    B.REGISTRY[backbone] = dataclasses.replace(
        spec, objective=dataclasses.replace(spec.objective, prediction=knobs.get("prediction", "native")))
    try:
        cfg = with_overrides(profile("small").train, backbone=backbone, **train)
        run = train_sr(cfg, "baseline", runs, progress=False)
        bb, _ = load_trained(run, backbone)
        out = {"run": str(run), "sr_train_s": json.loads((run / "done.json").read_text())["wall_s"]}
        for n in steps:
            sr = super_resolve(bb, test["lr_up"], n, seed=0, tile=cfg.image_size)
            out[f"psnr_db_{n}_steps"] = mean_psnr_db(sr, test["hr"])
        return out
    finally:
        B.REGISTRY[backbone] = spec


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", nargs="+", default=list(SETTINGS), help=f"settings to run: {', '.join(SETTINGS)}")
    ap.add_argument("--runs", default="build/knob-runs", help="cache of the runs")
    ap.add_argument("--out", default="benchmarks/results/sr_knobs.json", help="results JSON (merged into)")
    args = ap.parse_args()
    torch.set_num_threads(2)
    p = profile("small")
    test = test_set(p)
    bicubic = mean_psnr_db(test["lr_up"], test["hr"])
    path = Path(args.out)
    old = json.loads(path.read_text()).get("settings", {}) if path.exists() else {}
    commit = git_commit()
    for name in args.only:
        backbone, knobs = SETTINGS[name]
        old[name] = {"backbone": backbone, "knobs": knobs, "git_commit": commit,
                     **run_setting(backbone, knobs, Path(args.runs), test, (1, 4, 10))}
        print(name, old[name], flush=True)
    res = provenance(benchmark="sr_knobs", profile="small", variant="baseline", seed=0, bicubic_psnr_db=bicubic,
                     note="each setting records the commit that produced it; settings from other commits are kept",
                     settings=old)
    path.write_text(json.dumps(res, indent=2))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
