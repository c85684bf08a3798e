"""The small profile's SR recipe, chosen on the validation photos: each knob against the adopted recipe.

Every probe fine-tunes one backbone (baseline variant, seed 0) for the profile's step count from the shipped
prior (or from scratch), then scores the one-step (posterior mean) and 10-step PSNR gain over bicubic on 8
validation crops (framer_nb.evaluate.validation_gain). Probes run in single-threaded worker processes.

    python benchmarks/recipe.py            ->  benchmarks/results/recipe.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

from framer_nb.config import profile, with_overrides
from framer_nb.pipeline import parallel
from framer_nb.provenance import provenance

# name -> overrides of the small profile's TrainConfig (the first is the adopted recipe)
PROBES: dict[str, dict] = {
    "adopted": {},
    "from scratch (no prior)": {"prior": "none"},
    "constant LR": {"lr_schedule": "constant"},
    "no time bias": {"time_bias": 1.0},
    "lr 1e-3": {"lr": 1e-3},
}


def probe(backbone: str, name: str, overrides: dict, runs: str) -> dict:
    from framer_nb.evaluate import validation_gain
    from framer_nb.train import load_trained, train_sr
    cfg = with_overrides(profile("small").train, backbone=backbone, seed=0, **overrides)
    t0 = time.time()
    run = train_sr(cfg, "baseline", runs, progress=False)
    bb, _ = load_trained(run, backbone)
    return {"backbone": backbone, "probe": name, "overrides": overrides, "train_s": round(time.time() - t0, 1),
            "sr_steps": cfg.sr_steps, **validation_gain(bb, 10)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backbones", default="tiny-unet,tiny-dit", help="comma list")
    ap.add_argument("--probes", default=",".join(PROBES), help="comma list of probe names")
    ap.add_argument("--runs", default="build/recipe-runs", help="runs folder")
    ap.add_argument("--out", default="benchmarks/results/recipe.json", help="JSON path")
    args = ap.parse_args()
    names = [n for n in args.probes.split(",") if n]
    jobs = [(b, n, PROBES[n], args.runs) for b in args.backbones.split(",") for n in names]
    results = parallel(probe, jobs, desc="recipe probes")
    for r in results:
        print(f"{r['backbone']:10s} {r['probe']:26s} one-step {r['gain_1step']:+.3f} dB, 10-step "
              f"{r['gain_10step']:+.3f} dB ({r['train_s']} s)")
    out = Path(args.out)
    out.write_text(json.dumps(provenance(benchmark="recipe", split="val", profile="small",
                                         adopted=dataclasses.asdict(profile("small").train), results=results),
                              indent=2, default=str))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
