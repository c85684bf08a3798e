"""The small profile's SR recipe, chosen on the validation photos: each knob against the current recipe.

Every probe fine-tunes one backbone (a variant, baseline by default, seed 0) for the profile's step count from the
shipped prior (or from scratch), then scores the one-step (posterior mean) and 10-step PSNR gain over bicubic on 8
validation crops (framer_nb.evaluate.validation_gain). Probes run in single-threaded worker processes. Results
are merged into the JSON: a probe run again replaces its earlier row, the others stay (each row has its commit).
Rows scored with an earlier rule of the tiled sampler were dropped from the JSON when the rule changed (git keeps them).

    python research/recipe.py                                           ->  research/results/recipe.json
    python research/recipe.py --backbones tiny-dit --variants baseline,framer --probes current,"residual x4"
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

from framer_nb.config import FramerConfig, TrainConfig, profile
from framer_nb.config import variant as variant_config
from framer_nb.evaluate import validation_gain
from framer_nb.pipeline import parallel
from framer_nb.priors import residual_scale_of, shipped_prior
from framer_nb.provenance import provenance
from framer_nb.train import head_grad_applies, load_trained, train_sr

# name -> overrides of the small profile's TrainConfig (the first is the current recipe)
PROBES: dict[str, dict] = {
    "current": {},
    "from scratch (no prior)": {"prior": "none"},
    "constant LR": {"lr_schedule": "constant"},
    "no time bias": {"time_bias": 1.0},
    "time bias 8": {"time_bias": 8.0},
    "time bias 16": {"time_bias": 16.0},
    "time bias 32": {"time_bias": 32.0},
    "time bias 64": {"time_bias": 64.0},
    "lr 3e-3": {"lr": 3e-3},
    "lr 4e-3": {"lr": 4e-3},
    "sr_steps 1000": {"sr_steps": 1000},
    "sr_steps 1350": {"sr_steps": 1350},
    # how far the DiT is from its asymptote: twice and three times the profile's steps
    "sr_steps 1800": {"sr_steps": 1800},
    "sr_steps 2700": {"sr_steps": 2700},
    # more, smaller steps at about the same cost (a batch-8 step costs about two thirds of a batch-16 one)
    "batch 8 + 1350 steps": {"batch_size": 8, "sr_steps": 1350},
    "batch 8 + 1800 steps": {"batch_size": 8, "sr_steps": 1800},
    "time bias 8 + 900 steps": {"time_bias": 8.0, "sr_steps": 900},
    "lr 1e-3": {"lr": 1e-3},
    # the residual x0 = s (HR - LR) has a std of about 0.13 at s = 1 in model space, against about 0.5 for the
    # images the prior learned and about 1 for the SD latents that the paper's lambda = 0.1 was set against
    "residual x4": {"residual_scale": 4.0},
    "residual x8": {"residual_scale": 8.0},
    "residual x4 + constant LR": {"residual_scale": 4.0, "lr_schedule": "constant"},
    # FRAMER variants only (a `framer` key overrides the FramerConfig): the students' shared output head (SD3
    # norm_out / proj_out) with its gradient stopped, as in the released setting where only the LR stream trains
    # (the default since these probes), or trained by the FRAMER term
    "frozen lens head": {"framer": {"head_grad": False}},
    "trained lens head": {"framer": {"head_grad": True}},
    # why does the DiT learn slower than the U-Net? the EMA (diffusers' EMAModel caps the decay at
    # (1 + step) / (10 + step), so any decay >= 0.99 is about 0.990 at 900 steps), the optimiser's constraints, and
    # the LR context of a token (the SD3 patch embedding reads 2 x 2 of the 16 x 16 positions)
    "no EMA": {"ema_decay": 0.0},
    "EMA 0.995": {"ema_decay": 0.995},
    "EMA 0.998": {"ema_decay": 0.998},
    "no weight decay or clipping": {"weight_decay": 0.0, "grad_clip": 100.0},
    # the LR condition's detail channels (Backbone.lr_detail: gain on LR minus its Gaussian blur, sigma 4 px)
    "no LR detail": {"lr_detail": 0.0},
    "LR detail x4": {"lr_detail": 4.0},
    "LR detail x64": {"lr_detail": 64.0},
}
# the knobs every row records (plus any other knob its probe sets), and the residual scale of the prior they start from
RECIPE_KNOBS = ("prior", "residual_scale", "lr_schedule", "time_bias", "lr", "sr_steps", "batch_size", "lr_detail")


def probe(backbone: str, name: str, overrides: dict, runs: str, variant: str = "baseline") -> dict:
    train_overrides = {k: v for k, v in overrides.items() if k != "framer"}
    cfg = profile("small").train_for(backbone, seed=0, **train_overrides)
    fcfg = dataclasses.replace(variant_config(variant), **overrides.get("framer", {}))
    run = train_sr(cfg, variant, runs, progress=False, framer=fcfg)
    bb, _ = load_trained(run)
    return {"backbone": backbone, "variant": variant, "probe": name, "overrides": overrides,
            # every row records its knobs, so rows stay comparable as defaults change
            "recipe": row_recipe(cfg, fcfg, overrides),
            "train_s": run.done_record()["wall_s"],  # the run's own training time, also when it was already trained
            "sr_steps": cfg.sr_steps, **validation_gain(bb, 10),
            "git_commit": provenance()["git_commit"]}


def recipe(cfg: TrainConfig, fcfg: FramerConfig) -> dict:
    """The SR recipe of a config: its knobs, `prior_scale` (the residual scale the starting prior learned: the
    shipped prior's model card; None without a tiny prior) and `head_grad` (None where it does not apply)."""
    scale = residual_scale_of(shipped_prior(cfg.backbone)) if cfg.prior == "shipped" and not cfg.pretrained else \
        cfg.residual_scale if cfg.prior == "train" else None
    return {**{k: getattr(cfg, k) for k in RECIPE_KNOBS}, "prior_scale": scale,
            "head_grad": fcfg.head_grad if head_grad_applies(fcfg, cfg.backbone) else None}


def row_recipe(cfg: TrainConfig, fcfg: FramerConfig, overrides: dict) -> dict:
    """The recipe a probe row records: `recipe`'s knobs plus every other knob the probe sets (an optimiser
    setting), so that its row keeps its own key beside the current recipe's."""
    knobs = recipe(cfg, fcfg)
    extra = {k: getattr(cfg, k) for k in overrides if k != "framer"}
    return {**knobs, **{k: v for k, v in extra.items() if k not in knobs}}


def merged(old: list[dict], new: list[dict]) -> list[dict]:
    """`old` rows with the rows of `new` put in place of those with the same backbone, variant, recipe and tiled
    sampler."""
    def key(r: dict) -> tuple:
        return r["backbone"], r["variant"], r.get("tiling"), json.dumps(r["recipe"], sort_keys=True)
    fresh = {key(r): r for r in new}
    return [r for r in old if key(r) not in fresh] + new


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backbones", default="tiny-unet,tiny-dit", help="comma list")
    ap.add_argument("--probes", default=",".join(PROBES), help="comma list of probe names")
    ap.add_argument("--variants", default="baseline", help="comma list of variants")
    ap.add_argument("--runs", default="build/recipe-runs", help="runs folder")
    ap.add_argument("--out", default="research/results/recipe.json", help="JSON path")
    args = ap.parse_args()
    names = [n for n in args.probes.split(",") if n]
    unknown = [n for n in names if n not in PROBES]
    if unknown:
        raise SystemExit(f"unknown probes {unknown}; known: {', '.join(PROBES)}")
    jobs = [(b, n, PROBES[n], args.runs, v) for b in args.backbones.split(",") for v in args.variants.split(",")
            for n in names]
    results = parallel(probe, jobs, desc="recipe probes")
    for r in results:
        print(f"{r['backbone']:10s} {r['variant']:9s} {r['probe']:26s} one-step {r['gain_1step']:+.3f} dB, "
              f"10-step {r['gain_10step']:+.3f} dB ({r['train_s']} s)")
    out = Path(args.out)
    old = json.loads(out.read_text())["results"] if out.exists() else []
    out.write_text(json.dumps(provenance(benchmark="recipe", split="val", profile="small",
                                         defaults=dataclasses.asdict(profile("small").train),
                                         results=merged(old, results)),
                              indent=2, default=str))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
