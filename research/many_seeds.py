"""Does more seeds resolve FRAMER - baseline, as research/power.py projects? `small`'s comparison on many seeds.

`make reproduce` trains the baseline and FRAMER on 5 seeds (the 90-min budget), which leaves a minimum detectable
effect (MDE) of about 0.16 dB one step and 0.18 dB in 10-step PSNR; the power analysis of those 5 seeds projects
that the seed-level spread of FRAMER's effect, not the 8 test crops, sets it. This script measures instead of
projecting: it trains `small`'s main variants (the image-target DiT from its shipped prior) on seeds 0..N-1, two
seeds at a time in seed order (so a stopped run leaves whole pairs; each run resumes or is skipped when done),
scores every run on `small`'s 8 test crops one step and with the profile's sampler (common random numbers; the
scores are cached in the run folders, so the reproduce's own runs, seeds 0-4 with the same keys, are reused as
they are), and reports FRAMER - baseline with the README's method (framer_nb.stats: Student's t over per-seed
differences) over the first k seeds for every k, beside power.py's projection from 5 seeds and the targets (one
step 0.05 dB, sampled 0.10 dB). Over all the seeds it also says where the effect lies: on each test photo
(interval over seeds), and with the photos as the unit (t over the photos' seed-averaged effects), which is what
the test photos say about other photos like them.

    python research/many_seeds.py --seeds 20        # about 7 min of training per seed on 2 cores beyond seed 4
    python research/many_seeds.py --seeds 20 --no-train   # score and report the pairs already trained

Runs go to --runs (default build/runs, where `make reproduce` puts them). Writes research/results/many_seeds/:
the per-image scores (results_per_image_1step.csv, results_per_image.csv), by_seeds.json and mde_by_seeds.png,
provenance beside each file or in it.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import pandas as pd

from framer_nb.config import Profile, profile
from framer_nb.observe import save_csv
from framer_nb.pipeline import run_of, run_specs, score_all, train_all
from framer_nb.provenance import provenance, write_sidecar
from framer_nb.stats import MDE_TARGETS as TARGETS
from framer_nb.stats import Comparison, compare, per_seed_differences, photo_effects

sys.path.insert(0, str(Path(__file__).parent))
from power import mde  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
OUT = Path(__file__).parent / "results" / "many_seeds"
POWER = Path(__file__).parent / "results" / "power.json"
OUTPUTS = {"results_per_image_1step.csv": "one-step", "results_per_image.csv": "sampled"}


def design(n_seeds: int, name: str = "small") -> Profile:
    """The profile's main comparison alone (no ablations) on seeds 0..n_seeds-1, with no time budget."""
    return replace(profile(name), seeds=tuple(range(n_seeds)), ablations=(), budget_min=None)


def train(p: Profile, runs: str | Path, workers: int | None = None) -> None:
    """Train every run of `p`, two seeds at a time in seed order (resumable: finished runs are skipped)."""
    for i in range(0, len(p.seeds), 2):
        pair = p.seeds[i:i + 2]
        if all(run_of(s, runs).done for s in run_specs(replace(p, seeds=pair))):
            continue
        start = time.time()
        train_all(replace(p, seeds=pair), runs, progress=False, workers=workers)
        print(f"[many_seeds] seeds {', '.join(map(str, pair))} trained in {time.time() - start:.0f} s", flush=True)


def trained_seeds(p: Profile, runs: str | Path) -> tuple[int, ...]:
    """The leading seeds whose every main variant has finished (scores are reported over 0..k-1 only)."""
    done = []
    for seed in p.seeds:
        if not all(run_of(s, runs).done for s in run_specs(replace(p, seeds=(seed,)))):
            break
        done.append(seed)
    return tuple(done)


def by_seeds(df: pd.DataFrame, backbone: str, output: str, projected: dict | None = None,
             metric: str = "psnr") -> list[dict]:
    """FRAMER - baseline over the first k seeds, for every k >= 2: effect, 95% interval, MDE, verdict, and the
    MDE power.py's variance components project for k seeds on the same crops (where given)."""
    d = per_seed_differences(df[df["backbone"] == backbone], metric, "framer", "baseline").sort_index()
    crops = df[df["variant"] == "framer"]["image"].nunique()
    rows = []
    for k in range(2, len(d) + 1):
        c = compare(d.iloc[:k], metric)
        row = {"seeds": k, **_row(c), "target": TARGETS[output], "meets_target": bool(c.mde <= TARGETS[output])}
        if projected:
            row["mde_projected"] = round(mde(k, crops, projected["s_a"], projected["s_e"]), 4)
        rows.append(row)
    return rows


def _row(c: Comparison) -> dict:
    return {"effect": round(c.effect, 4), "low": round(c.low, 4), "high": round(c.high, 4), "mde": round(c.mde, 4),
            "verdict": c.verdict()}


def by_photo(df: pd.DataFrame, backbone: str, metric: str = "psnr") -> dict:
    """Where the effect lies: FRAMER - baseline on each test photo (interval over seeds), and with the photos as
    the unit (the seed-averaged effect of each photo; t over photos): whether the test photos let the effect
    generalise to other photos like them."""
    per, over = photo_effects(df[df["backbone"] == backbone], metric, "framer", "baseline")
    return {"photos": {ph: _row(c) for ph, c in per.items()}, "over_photos": {**_row(over), "n_photos": len(per)}}


def projection(power: Path, backbone: str, output: str) -> dict | None:
    """power.py's variance components for one backbone and output (None where it has none)."""
    if not power.exists():
        return None
    rows = [r for r in json.loads(power.read_text())["rows"] if r["backbone"] == backbone and r["output"] == output]
    return {"s_a": rows[0]["s_a"], "s_e": rows[0]["s_e"], "from_seeds": rows[0]["seeds"]} if rows else None


def plot(summary: dict, path: Path) -> None:
    """MDE against the number of seeds (measured and projected, with the target) and the effect's interval."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator
    outs = summary["outputs"]
    fig, axes = plt.subplots(2, len(outs), figsize=(5 * len(outs), 6.5), sharex=True, squeeze=False)
    for j, o in enumerate(outs):
        rows = pd.DataFrame(o["by_seeds"])
        ax = axes[0, j]
        ax.plot(rows["seeds"], rows["mde"], "o-", label="measured (first k seeds)")
        if "mde_projected" in rows:
            ax.plot(rows["seeds"], rows["mde_projected"], "--", label=f"projected from {o['projected_from']} seeds")
        ax.axhline(o["target"], color="k", lw=0.8, ls=":", label=f"target {o['target']} dB")
        ax.set(title=f"{o['backbone']}, {o['output']} PSNR", ylabel="MDE (dB, log scale)", yscale="log")
        ax.legend(fontsize=8)
        ax = axes[1, j]
        ax.fill_between(rows["seeds"], rows["low"], rows["high"], alpha=0.3, label="95% interval")
        ax.plot(rows["seeds"], rows["effect"], "o-", label="FRAMER − baseline")
        ax.axhline(0, color="k", lw=0.8)
        ax.set(xlabel="seeds", ylabel="effect (dB)")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=20, help="train and report seeds 0..N-1 (default 20)")
    ap.add_argument("--no-train", action="store_true", help="report the leading seeds already trained")
    ap.add_argument("--profile", default="small", help="the profile whose comparison runs (smoke: a dry run)")
    ap.add_argument("--runs", default="build/runs")
    ap.add_argument("--results", default="build/many_seeds/results", help="the bicubic scores' cache")
    ap.add_argument("--workers", type=int, default=None, help="training / scoring processes (default 2)")
    ap.add_argument("--power", default=str(POWER), help="power.py's result, for the projection")
    ap.add_argument("--out", default=str(OUT))
    args = ap.parse_args()
    if args.seeds < 2:
        ap.error(f"--seeds must be >= 2 (an interval needs two seeds), got {args.seeds}")
    p = design(args.seeds, args.profile)
    if not args.no_train:
        train(p, args.runs, args.workers)
    seeds = trained_seeds(p, args.runs)
    if len(seeds) < 2:
        sys.exit(f"[many_seeds] {args.runs}: fewer than two leading seeds trained ({list(seeds)}); run without "
                 "--no-train")
    p = replace(p, seeds=seeds)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    # what reproduces these scores from a fresh clone (the flags that only say where, or how many processes, aside)
    command = f"python research/many_seeds.py --seeds {len(seeds)}" + (
        f" --profile {args.profile}" if args.profile != "small" else "")
    outputs = []
    scores = score_all(p, args.runs, args.results, progress=False)
    for name in OUTPUTS:  # one step first
        df, meta = scores[name]
        df = df[df["variant"].isin(["bicubic", *p.main_variants])]
        save_csv(df, out / name, profile=p.name, seeds=list(seeds), command=command, **meta)
        output = OUTPUTS[name]
        for b in p.backbones:
            proj = projection(Path(args.power), b, output) if args.profile == "small" else None
            rows = by_seeds(df, b, output, proj)
            outputs.append({"backbone": b, "output": output, "steps": meta["steps"], "metric": "psnr",
                            "target": TARGETS[output], "projected_from": proj and proj["from_seeds"],
                            "all_seeds": rows[-1], "by_seeds": rows, "by_photo": by_photo(df, b)})
    summary = provenance(question="does FRAMER - baseline reach the target MDE with more seeds, as projected?",
                         profile=p.name, seeds=list(seeds), test_images=p.n_test, command=command,
                         invoked=" ".join(["python research/many_seeds.py", *sys.argv[1:]]), outputs=outputs)
    (out / "by_seeds.json").write_text(json.dumps(summary, indent=2, default=str))
    plot(summary, out / "mde_by_seeds.png")
    write_sidecar(out / "mde_by_seeds.png", drawn_from="by_seeds.json", seeds=list(seeds), command=command)
    for o in outputs:
        a = o["all_seeds"]
        print(f"{o['backbone']} {o['output']:8s} {a['seeds']} seeds: {a['effect']:+.3f} dB [{a['low']:+.3f}, "
              f"{a['high']:+.3f}] ({a['verdict']}), MDE {a['mde']:.3f} (target {a['target']}: "
              f"{'met' if a['meets_target'] else 'not met'})")
        ph = o["by_photo"]
        print("    per photo: " + ", ".join(f"{k} {v['effect']:+.2f} ({v['verdict']})" for k, v in ph["photos"].items())
              + f"; over {ph['over_photos']['n_photos']} photos {ph['over_photos']['effect']:+.3f} dB "
              f"[{ph['over_photos']['low']:+.3f}, {ph['over_photos']['high']:+.3f}]")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
