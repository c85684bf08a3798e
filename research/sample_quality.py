"""What the time bias trades: 10-step sample quality on the validation crops for recipe probes of several time biases.

`TrainConfig.time_bias` draws SR training times nearer to noise. The recipe is chosen on the one-step (posterior
mean) gain, which a stronger bias raises; this benchmark shows what the 10-step samples give for it: PSNR, NIQE and
the spectral distances to HR (lower is better for the last three), against bicubic. Scores the runs that
research/recipe.py trained (seed 0; no training here):

    python research/recipe.py --backbones tiny-dit --probes "time bias 8,time bias 16,time bias 32"
    python research/sample_quality.py --backbone tiny-dit --time-biases 8,16,32
        ->  merged into research/results/sample_quality.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from framer_nb.config import profile
from framer_nb.evaluate import TILING, make_test_set, score_table, super_resolve_set
from framer_nb.provenance import provenance
from framer_nb.train import load_trained, sr_run

COLUMNS = ("psnr", "niqe", "spec_lf", "spec_hf")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backbone", default="tiny-dit", help="backbone of the probe runs")
    ap.add_argument("--variant", default="baseline", help="variant of the probe runs")
    ap.add_argument("--time-biases", default="8,16,32", help="comma list of TrainConfig.time_bias values")
    ap.add_argument("--steps", type=int, default=10, help="sampler steps")
    ap.add_argument("--sr-steps", type=int, default=900, help="SR training steps of the probe runs (the time-bias "
                    "probes ran 900 on both backbones)")
    ap.add_argument("--runs", default="build/recipe-runs", help="runs folder of research/recipe.py")
    ap.add_argument("--out", default="research/results/sample_quality.json", help="JSON path (rows merged)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    test = make_test_set(8, 128, profile("small").train.degradation, split="val")
    bicubic, _ = score_table(test.names, test.lr_up(), test.hr, "offline")
    rows = [{"backbone": "bicubic", "variant": "bicubic", "time_bias": None,
             **bicubic[list(COLUMNS)].mean().round(3).to_dict()}]
    for tb in (float(x) for x in args.time_biases.split(",")):
        cfg = profile("small").train_for(args.backbone, seed=0, time_bias=tb, sr_steps=args.sr_steps)
        run = sr_run(cfg, args.variant, args.runs)
        if not run.done:
            raise SystemExit(f"{run.path}: no finished probe run for time bias {tb:g}; run research/recipe.py "
                             f'--backbones {args.backbone} --variants {args.variant} --probes "time bias {tb:g}" first')
        bb, _ = load_trained(run)
        df, _ = score_table(test.names, super_resolve_set(bb, test, args.steps, 0, 64), test.hr, "offline")
        rows.append({"backbone": args.backbone, "variant": args.variant, "time_bias": tb, "sr_steps": cfg.sr_steps,
                     "run": run.path.name,
                     **df[list(COLUMNS)].mean().round(3).to_dict()})
        print(rows[-1], flush=True)
    out = Path(args.out)
    old = json.loads(out.read_text())["results"] if out.exists() else []
    def key(r: dict) -> tuple:
        return r["backbone"], r["variant"], r["time_bias"], r.get("sr_steps")
    fresh = {key(r) for r in rows}
    kept = [r for r in old if key(r) not in fresh]
    out.write_text(json.dumps(provenance(benchmark="sample_quality", split="val", steps=args.steps, tiling=TILING,
                                         higher_better={"psnr": True, "niqe": False, "spec_lf": False,
                                                        "spec_hf": False},
                                         results=kept + rows), indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
