"""Where does the seed-to-seed spread of FRAMER - baseline come from, and does a cosine LR decay remove it?

`small` fine-tunes at a constant LR (2e-3 after a 20-step warm-up) and saves an EMA of the weights whose decay the
EMA's own warm-up holds near 0.99 (a window of about 100 steps). If the last steps' gradient noise still moves the
saved weights, the score of a run depends on where its last steps happened to land: spread from seed to seed that
no number of test crops averages away (research/results/power.json). A cosine decay of the LR to 0 at the last
step is the standard cure; it costs nothing per step.

On the *validation* photos (8 crops of 128 px, tiled as the test crops are), for the small profile's image-target
DiT, this script
- traces each run's one-step PSNR every `--every` steps over its last `--trace` steps (the end-point wander of one
  run: the spread of those scores around their linear trend), and
- trains baseline and FRAMER on the seeds given for each schedule and reports, per schedule and variant, the
  spread over seeds of the final one-step and `sample_steps`-step PSNR, the paired FRAMER - baseline effect with its
  95% interval over seeds, and the minimum detectable effect (research/power.py) of 5 seeds on these 8 crops.

    python research/seed_noise.py                    # 12 runs, about 40 min on 2 cores
    python research/seed_noise.py --constant-seeds 0 1 2 3 4   # what results/seed_noise.json holds
    python research/seed_noise.py --constant-seeds 0 1 2 3 4 --cosine-seeds 0 1 2
    python research/seed_noise.py --cosine-seeds --constant-seeds 0 1 2 --trace 1350 --every 50 \
        --runs build/seed_noise/whole --out research/results/seed_noise_whole_run.json   # when the seeds part

Runs go to build/seed_noise/runs (resumable; a run trained elsewhere with the same key, e.g. by `make reproduce`,
can be linked in: it is scored without a trace); each run's scores are kept beside it (seed_noise.json); writes
research/results/seed_noise.json with provenance.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from framer_nb.config import profile
from framer_nb.evaluate import SAMPLER_SEED, make_test_set, super_resolve_set
from framer_nb.metrics import psnr
from framer_nb.pipeline import parallel
from framer_nb.provenance import provenance
from framer_nb.stats import compare
from framer_nb.train import load_trained, probe_sr, sr_run

sys.path.insert(0, str(Path(__file__).parent))
from power import components, mde  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
BACKBONE = "tiny-dit"


def validation(p) -> tuple:
    test = make_test_set(8, p.test_size, p.train.degradation, split="val")
    return test, torch.stack(test.hr)


def one_run(schedule: str, variant: str, seed: int, runs: str, trace: int, every: int, profile_name: str) -> dict:
    """Train (or find) one run; its one-step validation PSNR every `every` steps over the last `trace` steps, and
    its final scores."""
    torch.set_num_threads(1)
    p = profile(profile_name)
    cfg = p.train_for(BACKBONE, seed=seed, lr_schedule=schedule)
    kept = sr_run(cfg, variant, runs).path / "seed_noise.json"
    if kept.exists():  # scored before (with its trace, if this script trained it)
        return json.loads(kept.read_text())
    test, hr = validation(p)
    first = cfg.sr_steps - trace
    traced: dict[int, float] = {}

    def score(step: int, bb) -> None:
        if step > first:
            traced[step] = float(psnr(torch.stack(super_resolve_set(bb, test, 1, SAMPLER_SEED, cfg.image_size)),
                                      hr).mean())

    run = probe_sr(cfg, variant, runs, score, every)
    bb, _ = load_trained(run)
    final = {}
    for steps in (1, cfg.sample_steps):
        sr = torch.stack(super_resolve_set(bb, test, steps, SAMPLER_SEED, cfg.image_size))
        final[steps] = [float(v) for v in psnr(sr, hr)]
    print(schedule, variant, seed, f"one-step {np.mean(final[1]):.3f}", flush=True)
    out = {"schedule": schedule, "variant": variant, "seed": seed, "run": run.path.name, "trace": traced,
           "final": final, "names": test.names}
    kept.write_text(json.dumps(out))
    return out


def wander(trace: dict, last: int = 400) -> float | None:
    """The spread (dB) of a run's traced scores over its `last` steps around their least-squares line: how far its
    last steps move it."""
    end = max((int(k) for k in trace), default=0)
    trace = {int(k): v for k, v in trace.items() if int(k) > end - last}
    if len(trace) < 3:
        return None
    x, y = np.array(list(trace), float), np.array(list(trace.values()))
    resid = y - np.polyval(np.polyfit(x, y, 1), x)
    return float(math.sqrt((resid ** 2).sum() / (len(y) - 2)))


def summarise(results: list[dict]) -> list[dict]:
    rows = [{"schedule": r["schedule"], "variant": r["variant"], "seed": r["seed"], "steps": int(k), "image": n,
             "psnr": v} for r in results for k, vals in r["final"].items() for n, v in zip(r["names"], vals)]
    df = pd.DataFrame(rows)
    out = []
    for (schedule, steps), g in df.groupby(["schedule", "steps"]):
        per_seed = g.groupby(["variant", "seed"])["psnr"].mean().unstack("variant")
        wide = g.pivot_table(index=["seed", "image"], columns="variant", values="psnr")
        row = {"schedule": schedule, "steps": int(steps), "seeds": len(per_seed),
               **{f"psnr_{v}": round(float(per_seed[v].mean()), 3) for v in per_seed},
               **{f"sd_over_seeds_{v}": round(float(per_seed[v].std(ddof=1)), 4) for v in per_seed}}
        if {"baseline", "framer"} <= set(per_seed) and len(per_seed) > 1:
            c = compare(per_seed["framer"] - per_seed["baseline"])
            comp = components((wide["framer"] - wide["baseline"]).unstack("image"))
            row.update(effect=[round(c.effect, 3), round(c.low, 3), round(c.high, 3)],
                       sd_seed_means=round(comp["sd_seed_means"], 4), s_e=round(comp["s_e"], 4),
                       s_a=round(comp["s_a"], 4), mde_5_seeds=round(mde(5, 8, comp["s_a"], comp["s_e"]), 4))
        out.append(row)
    return out


def over_training(results: list[dict]) -> list[dict]:
    """Per schedule, variant and traced step: the mean and the spread over seeds of the one-step PSNR (when the
    seeds part, and how the two variants move)."""
    rows = [{"schedule": r["schedule"], "variant": r["variant"], "seed": r["seed"], "step": int(k), "psnr": v}
            for r in results for k, v in r["trace"].items()]
    if not rows:
        return []
    g = pd.DataFrame(rows).groupby(["schedule", "variant", "step"])["psnr"]
    out = pd.concat({"seeds": g.size(), "mean": g.mean().round(3), "sd_over_seeds": g.std(ddof=1).round(4)}, axis=1)
    out = out.reset_index()
    return out.astype(object).where(out.notna(), None).to_dict("records")  # one seed: no spread (null, not NaN)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--constant-seeds", nargs="*", type=int, default=[0],
                    help="seeds at small's constant LR (research/eval_design.py scored all five on these crops)")
    ap.add_argument("--cosine-seeds", nargs="*", type=int, default=[0, 1, 2, 3, 4])
    ap.add_argument("--trace", type=int, default=400, help="steps before the end over which each run is traced")
    ap.add_argument("--every", type=int, default=50)
    ap.add_argument("--runs", default=str(ROOT / "build" / "seed_noise" / "runs"))
    ap.add_argument("--profile", default="small", help="the profile whose DiT recipe is trained (smoke: a dry run)")
    ap.add_argument("--out", default=str(ROOT / "research" / "results" / "seed_noise.json"))
    args = ap.parse_args()
    seeds = {"constant": args.constant_seeds, "cosine": args.cosine_seeds}
    jobs = [(s, v, seed, args.runs, args.trace, args.every, args.profile) for s in seeds for seed in seeds[s]
            for v in ("framer", "baseline")]
    results = parallel(one_run, jobs, desc="runs")
    for r in results:
        r["wander_db"] = wander(r["trace"])
    summary = summarise(results)
    by_step = over_training(results)
    for row in summary:  # one run's end-point wander beside the spread over seeds it would explain
        for v in ("baseline", "framer"):
            w = [r["wander_db"] for r in results if (r["schedule"], r["variant"]) == (row["schedule"], v)
                 and r["wander_db"] is not None]
            row[f"median_wander_{v}"] = round(float(np.median(w)), 4) if w and row["steps"] == 1 else None
    for row in summary:
        print(row)
    doc = provenance(question="does the spread of FRAMER - baseline over seeds come from the end-point noise of a "
                     "constant LR, and does a cosine decay remove it? (validation photos)", split="val",
                     backbone=BACKBONE, profile=args.profile, command=" ".join(["python research/seed_noise.py",
                                                                          *sys.argv[1:]]),
                     intervals="[effect, 95% low, 95% high] over seeds", summary=summary, over_training=by_step,
                     runs=[{k: v for k, v in r.items() if k != "names"} for r in results])
    Path(args.out).write_text(json.dumps(doc, indent=2, default=str))
    print(f"wrote {args.out}")
    if any(len(r["trace"]) > 1 for r in results):
        plot_traces(results, Path(args.out).with_suffix(".png"))


def plot_traces(results: list[dict], path: Path) -> None:
    """Each run's one-step validation PSNR over its traced steps, one panel per schedule."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    schedules = sorted({r["schedule"] for r in results if len(r["trace"]) > 1})
    fig, axes = plt.subplots(1, len(schedules), figsize=(5 * len(schedules), 3.5), squeeze=False, sharey=True)
    for ax, schedule in zip(axes[0], schedules):
        for r in (r for r in results if r["schedule"] == schedule and len(r["trace"]) > 1):
            steps = sorted(int(k) for k in r["trace"])
            ax.plot(steps, [r["trace"][k] if k in r["trace"] else r["trace"][str(k)] for k in steps],
                    color="C3" if r["variant"] == "framer" else "C0", lw=1, alpha=0.8,
                    label=r["variant"] if r["seed"] == min(q["seed"] for q in results) else None)
        ax.set(title=f"{schedule} LR, one run per seed", xlabel="SR step")
        ax.legend()
    axes[0][0].set_ylabel("one-step PSNR, validation crops (dB)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
