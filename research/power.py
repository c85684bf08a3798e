"""How much evaluation does FRAMER - baseline need? A power analysis of the stored per-image scores.

Per backbone and output (one step, or the profile's sampled steps), the paired differences d[seed, crop] of
FRAMER minus the baseline (same crop, same sampler noise: within a seed, and since common random numbers
across seeds too) are split, as in a two-way ANOVA without
replication, into
- the crop-level residual variance s_e^2 (sampler noise and crop x seed interaction: more crops or more samples
  per crop average it away), and
- the seed-level variance s_a^2 = max(0, var over seeds of the per-seed means - s_e^2 / n) (training-seed
  variation of the effect: only more seeds average it away).
Beside them: each variant's spread over seeds and the correlation of the two over seeds (what common random
numbers in training buy: nothing, where it is near 0). The interval of the README is Student's t over the per-seed
means, so the minimum detectable effect (80% power,
5% two-sided) of a design with k seeds and n crops is (t_0.975 + t_0.8)(k - 1) * sqrt((s_a^2 + s_e^2 / n) / k).
The script reports today's MDE, the projection for more crops and more seeds, the floor that no number of crops
(or of samples per crop, which only shrink s_e^2 too) gets under with the seeds of today, and the smallest design
that reaches a target MDE (one-step 0.05 dB, sampled 0.10 dB). The variance components come from 3 seeds: s_a^2
has 2 degrees of freedom, so the projections are rough.

    python research/power.py                      # reads figures/results_per_image*.csv
    python research/power.py --figures research/results/small_residual --out research/results/small_residual/power.json
Writes research/results/power.json (or --out) with provenance.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import pandas as pd
from scipy import stats

from framer_nb.provenance import provenance
from framer_nb.stats import MDE_TARGETS as TARGETS  # dB of PSNR

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).parent / "results" / "power.json"


def components(d: pd.DataFrame) -> dict:
    """Variance components of a seeds x crops table of paired differences."""
    x = d.to_numpy(dtype=float)
    k, n = x.shape
    resid = x - x.mean(1, keepdims=True) - x.mean(0, keepdims=True) + x.mean()
    s_e2 = float((resid ** 2).sum() / ((k - 1) * (n - 1)))
    var_m = float(x.mean(1).var(ddof=1))
    return {"seeds": k, "crops": n, "effect": float(x.mean()), "sd_seed_means": math.sqrt(var_m),
            "s_e": math.sqrt(s_e2), "s_a": math.sqrt(max(0.0, var_m - s_e2 / n))}


def mde(k: int, n: int, s_a: float, s_e: float) -> float:
    """Minimum detectable effect of the mean of k per-seed means over n crops each (t over seeds)."""
    mult = stats.t.ppf(0.975, k - 1) + stats.t.ppf(0.8, k - 1)
    return float(mult * math.sqrt((s_a ** 2 + s_e ** 2 / n) / k))


def smallest_design(s_a: float, s_e: float, target: float, seeds=range(3, 101), crops=(8, 16, 32, 64, 128, 256)
                    ) -> dict | None:
    """The design with the fewest seeds (then crops) whose MDE reaches `target`, or None within the ranges."""
    for k in seeds:
        for n in crops:
            if mde(k, n, s_a, s_e) <= target:
                return {"seeds": k, "crops": n, "mde": round(mde(k, n, s_a, s_e), 4)}
    return None


def analyse(scores: Path, output: str, metric: str = "psnr") -> list[dict]:
    df = pd.read_csv(scores)
    df = df[df["task"] == df["task"].iloc[0]]
    rows = []
    for backbone, g in df[df["variant"].isin(["baseline", "framer"])].groupby("backbone"):
        wide = g.pivot_table(index=["seed", "image"], columns="variant", values=metric).dropna()
        d = (wide["framer"] - wide["baseline"]).unstack("image").dropna(axis=1)
        c = components(d)
        k, s_a, s_e = c["seeds"], c["s_a"], c["s_e"]
        per_seed = wide.loc[d.index].groupby("seed").mean()  # each variant's mean over the crops, per seed
        rows.append({"backbone": backbone, "output": output, "metric": metric,
                     **{key: round(v, 4) if isinstance(v, float) else v for key, v in c.items()},
                     **{f"sd_over_seeds_{v}": round(float(per_seed[v].std(ddof=1)), 4) for v in ("baseline", "framer")},
                     "corr_over_seeds": round(float(per_seed["baseline"].corr(per_seed["framer"])), 3),
                     "mde_observed": round(float((stats.t.ppf(0.975, k - 1) + stats.t.ppf(0.8, k - 1))
                                                 * c["sd_seed_means"] / math.sqrt(k)), 4),
                     "mde_projected": {f"{kk} seeds x {nn} crops": round(mde(kk, nn, s_a, s_e), 4)
                                       for kk in (3, 5, 10) for nn in (8, 16, 64)},
                     "mde_floor_3_seeds": round(mde(3, 10 ** 9, s_a, s_e), 4),
                     "mde_floor_5_seeds": round(mde(5, 10 ** 9, s_a, s_e), 4),
                     "target": TARGETS[output], "smallest_design": smallest_design(s_a, s_e, TARGETS[output])})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--figures", default=str(ROOT / "figures"))
    ap.add_argument("--out", default=str(RESULTS), help="the result file (default research/results/power.json)")
    args = ap.parse_args()
    figs = Path(args.figures)
    files = ("results_per_image_1step.csv", "results_per_image.csv")
    rows = analyse(figs / files[0], "one-step") + analyse(figs / files[1], "sampled")
    src = {f: json.loads((figs / f"{f}.provenance.json").read_text()).get("git_commit") for f in files}
    doc = provenance(question="how many seeds and crops does FRAMER - baseline need for the target MDE?",
                     scores=str(figs), scores_commit=src, targets_db=TARGETS,
                     command=" ".join(["python research/power.py", *sys.argv[1:]]),
                     rows=rows)
    Path(args.out).write_text(json.dumps(doc, indent=2, default=str))
    for r in rows:
        print(f"{r['backbone']:10s} {r['output']:9s} effect {r['effect']:+.3f}  s_a {r['s_a']:.3f}  s_e {r['s_e']:.3f}  "
              f"MDE now {r['mde_observed']:.3f}  floor(3 seeds) {r['mde_floor_3_seeds']:.3f}  "
              f"target {r['target']}: {r['smallest_design']}")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
