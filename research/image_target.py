"""FRAMER against the baseline where the premise holds: the tiny DiT diffusing the whole image.

`research/premise.py` finds the low-first, high-later lag in priors that denoise the whole image, not in the
residual priors the shipped comparison starts from, and the image-target DiT still super-resolves. This probe runs
the main comparison in that setting: the small profile's recipe for the tiny DiT with `target="image"`, starting
from the shipped image prior (`make pretrain-image`, data/priors/tiny-dit-image), baseline and FRAMER on 3 seeds,
scored like the main tables (the same 8 held-out test crops, one step and 10 steps, the offline metrics). It
reports the premise gap of its starting point on the 8 held-out photos and FRAMER - baseline per metric with the
95% t-interval over seeds, the minimum detectable effect and the three-way verdict (framer_nb.stats), as the
README's finding does for the shipped setting.

    python research/image_target.py --out build/image_target          # 6 runs: about 35 min on 2 cores
    python research/image_target.py --lambdas 0.01,0.03 --out build/image_target   # FRAMER's weight, seed 0
Writes research/results/image_target.json and image_target_per_image.csv (with provenance); resumable. With
`--lambdas`, FRAMER (seed 0) is trained at each weight besides the recipe's 0.1 and scored with the baseline on the
*validation* photos (one step and 10 steps, `framer_nb.evaluate.validation_gain`): research/results/
image_target_lambda.json. One seed: a first look at the weight, not a verdict. With `--screen`, each setting (fields
over the recipe) is trained for `--variants` on seed 0 and scored the same way, with its wall time; the results
accumulate in image_target_screen.json:
    python research/image_target.py --screen 'sr_steps=900;' --variants baseline,framer --out build/image_target
    python research/image_target.py --screen 'time_bias=8;time_bias=16;lr=0.004;lr=0.001' --out build/image_target
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import pandas as pd

from framer_nb import pipeline
from framer_nb.config import Profile, profile, variant
from framer_nb.evaluate import validation_gain
from framer_nb.metrics import HIGHER_BETTER
from framer_nb.observe import observation_images, premise_gaps, premise_summary
from framer_nb.provenance import provenance, write_sidecar
from framer_nb.stats import compare, per_seed_differences
from framer_nb.train import load_trained, starting_point, train_sr

RESULTS = Path(__file__).parent / "results"
SMALL = profile("small")
# the setting as this probe ran it (before `small` adopted it): 1350 SR steps
PROFILE = Profile(name="small-image-dit", train=dataclasses.replace(SMALL.train, target="image"),
                  per_backbone={"tiny-dit": {"sr_steps": 1350}}, backbones=("tiny-dit",), ablations=(),
                  second_task=None)
METRICS = {1: ("psnr", "ssim", "psnr_hf"), 10: ("psnr", "ssim", "niqe", "psnr_hf", "spec_hf")}


def premise(runs: Path) -> dict:
    """The starting point's LF - HF gap on the 8 held-out photos (the observation crops of notebook 01)."""
    bb = starting_point(PROFILE.train_for("tiny-dit"), runs, progress=False)
    return premise_summary(premise_gaps(bb, observation_images(PROFILE, size=PROFILE.train.image_size)))


def comparison(df: pd.DataFrame, steps: int) -> list[dict]:
    rows = []
    bicubic = df[df["variant"] == "bicubic"].groupby("image")["psnr"].mean()
    for m in METRICS[steps]:
        sign = 1.0 if HIGHER_BETTER.get(m, True) else -1.0
        c = compare(sign * per_seed_differences(df, m, "framer", "baseline"), m)
        rows.append({"steps": steps, "metric": m, "framer_minus_baseline": round(c.effect, 4),
                     "ci95": [round(c.low, 4), round(c.high, 4)], "mde": round(c.mde, 4), "seeds": c.n_seeds,
                     "verdict": {"better": "FRAMER better", "worse": "FRAMER worse"}.get(c.verdict(), "inconclusive")})
    for v in ("baseline", "framer"):
        g = df[df["variant"] == v]
        gain = compare(g.assign(d=g["psnr"] - g["image"].map(bicubic)).groupby("seed")["d"].mean(), "gain")
        rows.append({"steps": steps, "metric": f"psnr gain over bicubic, {v}", "value": round(gain.effect, 4),
                     "ci95": [round(gain.low, 4), round(gain.high, 4)], "seeds": gain.n_seeds})
    return rows


def lambdas(weights: list[float], runs: Path, workers: int | None) -> dict:
    """FRAMER at other weights (seed 0), and the validation gains of each against the baseline's."""
    cfg = PROFILE.train_for("tiny-dit", seed=0)
    jobs = [(cfg, f"framer-w{w:g}", str(runs), dataclasses.replace(variant("framer"), weight=w)) for w in weights]
    pipeline.parallel(_train, jobs, workers, desc="lambda")
    rows = {"baseline": validation_gain(load_trained(train_sr(cfg, "baseline", runs, progress=False))[0]),
            "framer (0.1)": validation_gain(load_trained(train_sr(cfg, "framer", runs, progress=False))[0])}
    for (_, name, _, fcfg) in jobs:
        rows[f"framer ({fcfg.weight:g})"] = validation_gain(load_trained(train_sr(cfg, name, runs, framer=fcfg,
                                                                                   progress=False))[0])
    return rows


def screen(settings: list[dict], variants: list[str], runs: Path, workers: int | None) -> dict:
    """Each setting (TrainConfig fields over the recipe) trained for each variant on seed 0, scored on the
    *validation* photos with its wall time: what a recipe choice for this setting is made on."""
    cfgs = [PROFILE.train_for("tiny-dit", seed=0, **kw) for kw in settings]
    jobs = [(cfg, v, str(runs), variant(v)) for cfg in cfgs for v in variants]
    pipeline.parallel(_train, jobs, workers, desc="screen")
    rows = {}
    for kw, cfg in zip(settings, cfgs):
        for v in variants:
            run = train_sr(cfg, v, runs, framer=variant(v), progress=False)
            name = f"{v} ({', '.join(f'{k}={x}' for k, x in kw.items()) or 'recipe'})"
            rows[name] = {**validation_gain(load_trained(run)[0]), "wall_s": run.done_record()["wall_s"]}
    return rows


def _setting(text: str) -> dict:
    """'time_bias=16,lr=0.004' -> {'time_bias': 16.0, 'lr': 0.004} (typed like the TrainConfig field)."""
    out = {}
    for part in filter(None, text.split(",")):
        key, _, value = part.partition("=")
        kind = type(getattr(PROFILE.train, key))
        out[key] = kind(float(value)) if kind in (int, float) else kind(value)
    return out


def _train(cfg, name: str, runs: str, fcfg) -> str:
    return str(train_sr(cfg, name, runs, progress=False, framer=fcfg).path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="build/image_target")
    ap.add_argument("--workers", type=int, default=None, help="training processes (default: one per core, at most 2)")
    ap.add_argument("--lambdas", default="", help="comma-separated FRAMER weights to try on the validation photos")
    ap.add_argument("--screen", default="", help="settings to try on the validation photos, ';'-separated, each "
                    "comma-separated field=value pairs over the recipe (an empty setting: the recipe itself)")
    ap.add_argument("--variants", default="baseline", help="comma-separated variants the screen trains")
    args = ap.parse_args()
    out = Path(args.out)
    runs, results = out / "runs", out / "results"
    if args.lambdas:
        weights = [float(w) for w in args.lambdas.split(",")]
        doc = provenance(question="does a smaller FRAMER weight stop FRAMER hurting the image-target DiT?",
                         split="validation photos", seed=0, gains=lambdas(weights, runs, args.workers),
                         command=f"python research/image_target.py --lambdas {args.lambdas} --out {out}")
        (RESULTS / "image_target_lambda.json").write_text(json.dumps(doc, indent=2, default=str))
        for k, v in doc["gains"].items():
            print(k, v)
        return
    if args.screen:
        path = RESULTS / "image_target_screen.json"
        before = json.loads(path.read_text()) if path.exists() else {"gains": {}, "commands": []}
        settings = [_setting(t) for t in args.screen.split(";")]
        gains = {**before["gains"], **screen(settings, args.variants.split(","), runs, args.workers)}
        command = f"python research/image_target.py --screen '{args.screen}' --variants {args.variants} --out {out}"
        doc = provenance(question="which recipe should the image-target DiT train with? (validation photos)",
                         split="validation photos", seed=0, gains=gains,
                         commands=[*before["commands"], command])  # every screen that added rows, in order
        path.write_text(json.dumps(doc, indent=2, default=str))
        for k, v in gains.items():
            print(k, v)
        return
    pipeline.train_all(PROFILE, runs, workers=args.workers)
    scores = {k: pipeline.evaluate_all(PROFILE, runs, results, steps=k, variants=PROFILE.main_variants)
              for k in METRICS}
    per_image = pd.concat([df.assign(steps=k) for k, df in scores.items()], ignore_index=True)
    csv = RESULTS / "image_target_per_image.csv"
    per_image.to_csv(csv, index=False)
    write_sidecar(csv, profile=PROFILE.name, seeds=list(PROFILE.seeds), command="python research/image_target.py")
    doc = provenance(question="does FRAMER change the SR of the tiny DiT where its prior shows the lag?",
                     setting={"backbone": "tiny-dit", "target": "image", "prior": "data/priors/tiny-dit-image",
                              "recipe": "the small profile's for the tiny DiT, target image",
                              "sr_steps": PROFILE.train_for("tiny-dit").sr_steps},
                     test_set=pipeline.test_set(PROFILE).description, premise_gap=premise(runs),
                     comparison=[r for k, df in scores.items() for r in comparison(df, k)],
                     command=f"python research/image_target.py --out {out}")
    (RESULTS / "image_target.json").write_text(json.dumps(doc, indent=2, default=str))
    for r in doc["comparison"]:
        print(r)
    print("premise gap of the starting point:", doc["premise_gap"])


if __name__ == "__main__":
    main()
