"""Verdicts computed from our result files: does a paper claim hold in our data? `reproduced`, `not reproduced`,
`mixed` (observations) or, for an ordering of two variants, `reproduced`, `reversed`, `within noise` or
`untested (one seed)` (no spread to test against).

Each function reads a results table and returns `Verdict`s whose `numbers` carry the evidence; the notebooks
print them and `readme_results` quotes them, so no sentence about a result is written by hand.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

ALPHA = 0.05  # two-sided paired t-test over seeds


@dataclass
class Verdict:
    """One claim of the paper, checked against one slice of our data."""

    claim: str
    scope: str
    verdict: str
    numbers: dict

    def line(self) -> str:
        nums = ", ".join(f"{k} {_fmt(v)}" for k, v in self.numbers.items())
        return f"**{self.verdict}**: {self.claim} ({self.scope}; {nums})"


def _fmt(v) -> str:
    return f"{v:.3g}" if isinstance(v, float) else str(v)


def as_frame(verdicts: list[Verdict]) -> pd.DataFrame:
    return pd.DataFrame([{**asdict(v), "numbers": json.dumps(v.numbers, default=str)} for v in verdicts])


def show(verdicts: list[Verdict]) -> None:
    """Print one line per verdict (in a notebook: under the figure it is about)."""
    for v in verdicts:
        print(v.line().replace("**", ""))


# ---------------------------------------------------------------- observations

def band_density_peaks(dens: pd.DataFrame) -> list[Verdict]:
    """Fig. 2: HF magnitudes concentrate at lower values than LF, and move further down in LR (compared by the
    median log(1+|F|) of each band, which a shared histogram bin cannot blur)."""
    med = {(i, b): float(g["median"].iloc[0]) for (i, b), g in dens.groupby(["images", "band"])}
    hr_ok = med[("HR", "HF")] < med[("HR", "LF")]
    lr_ok = med[("LR", "HF")] < med[("HR", "HF")]
    verdict = "reproduced" if hr_ok and lr_ok else ("not reproduced" if not (hr_ok or lr_ok) else "mixed")
    return [Verdict("HF band magnitudes lie below LF's, and lower still in LR (Fig. 2)", "held-out photos",
                    verdict, {"median HR HF": round(med[("HR", "HF")], 4), "median HR LF": round(med[("HR", "LF")], 4),
                              "median LR HF": round(med[("LR", "HF")], 4)})]


def low_first_high_later(sim: pd.DataFrame, space: str = "prediction", timesteps=(300, 700),
                         level: float = 0.9) -> list[Verdict]:
    """Fig. 3: across depth, LF similarity to the final layer rises early, HF only near the end.

    Per backbone and timestep: the first normalised depth at which LF (resp. HF) reaches `level`, and the mean
    LF - HF gap over the first three quarters of the layers. Reproduced when LF gets there first and leads on
    average; not reproduced when HF does both; mixed otherwise."""
    out = []
    sim = sim[sim["space"] == space]
    for (model, t), g in sim[sim["t"].isin(timesteps)].groupby(["model", "t"], sort=False):
        g = g.sort_values("depth")
        first = {b: _first_depth(g, f"{b}_mean", level) for b in ("lf", "hf")}
        early = g[g["depth"] <= 0.75]
        gap = float((early["lf_mean"] - early["hf_mean"]).mean())
        lf_first = first["lf"] < first["hf"]
        if lf_first and gap > 0:
            verdict = "reproduced"
        elif not lf_first and first["lf"] != first["hf"] and gap < 0:
            verdict = "not reproduced"
        else:
            verdict = "mixed"
        out.append(Verdict("low-first, high-later: LF aligns with the final layer before HF (Fig. 3)",
                           f"{model}, t={t}", verdict, {f"LF reaches {level} at depth": first["lf"],
                                                       f"HF reaches {level} at depth": first["hf"],
                                                       "mean LF-HF over depth <= 0.75": round(gap, 3)}))
    return out


def _first_depth(g: pd.DataFrame, col: str, level: float) -> float:
    hit = g[g[col] >= level]
    return round(float(hit["depth"].iloc[0]), 3) if len(hit) else float("inf")


def cross_sample(cross: dict[str, dict[str, list]]) -> list[Verdict]:
    """Fig. 5: different images share LF (high off-diagonal similarity) but not HF (low)."""
    from .observe import off_diagonal_mean
    out = []
    for model, mats in cross.items():
        lf, hf = off_diagonal_mean(mats["lf"]), off_diagonal_mean(mats["hf"])
        out.append(Verdict("LF is shared across images, HF is instance-specific (Fig. 5)", model,
                           "reproduced" if lf > hf else "not reproduced",
                           {"off-diagonal LF": round(lf, 3), "off-diagonal HF": round(hf, 3),
                            "images": len(mats["lf"])}))
    return out


# ---------------------------------------------------------------- comparisons of trained variants

def paired(df: pd.DataFrame, a: str, b: str, metric: str = "psnr", higher_better: bool = True,
           by: str = "variant") -> dict:
    """Paired comparison of rows a and b over the seeds they share (per-seed image means).

    Returns the mean and std over seeds of (a - b) oriented so that > 0 means a is better, the two-sided
    paired t-test p-value over seeds, a 95% bootstrap interval over (seed, image) pairs, and the seeds."""
    from scipy import stats
    sign = 1.0 if higher_better else -1.0
    rows = df[df[by].isin([a, b])]
    wide = rows.pivot_table(index=["seed", "image"], columns=by, values=metric).dropna()
    if a not in wide or b not in wide or wide.empty:
        return {"n_seeds": 0}
    diff = sign * (wide[a] - wide[b])
    per_seed = diff.groupby(level="seed").mean()
    rng = np.random.default_rng(0)
    boot = [rng.choice(diff.to_numpy(), len(diff)).mean() for _ in range(2000)]
    p = float(stats.ttest_rel(wide[a].groupby(level="seed").mean(), wide[b].groupby(level="seed").mean()).pvalue) \
        if len(per_seed) > 1 and per_seed.std() > 0 else float("nan")
    return {"mean": float(per_seed.mean()), "std": float(per_seed.std(ddof=1)) if len(per_seed) > 1 else float("nan"),
            "p": p, "ci95": (float(np.percentile(boot, 2.5)), float(np.percentile(boot, 97.5))),
            "n_seeds": int(len(per_seed)), "seeds": sorted(int(s) for s in per_seed.index)}


def ordering(df: pd.DataFrame, better: str, worse: str, claim: str, scope: str, metric: str = "psnr",
             higher_better: bool = True) -> Verdict:
    """The paper says `better` beats `worse`: reproduced (beyond noise), reversed (beyond noise), within noise, or
    untested (one seed: no spread to test against)."""
    c = paired(df, better, worse, metric, higher_better)
    if c.get("n_seeds", 0) < 2:
        verdict = "untested (one seed)"
    elif np.isnan(c["p"]):
        verdict = "within noise"
    elif c["p"] < ALPHA:
        verdict = "reproduced" if c["mean"] > 0 else "reversed"
    else:
        verdict = "within noise"
    nums = {f"{metric} {better} - {worse}": round(c.get("mean", float("nan")), 3),
            "std over seeds": round(c.get("std", float("nan")), 3), "paired t-test p": round(c.get("p", float("nan")), 3),
            "seeds": c.get("n_seeds", 0)}
    return Verdict(claim, scope, verdict, nums)


def beats_bicubic(one_step: pd.DataFrame, sampled: pd.DataFrame, margin_db: float = 1.0) -> list[Verdict]:
    """Does each (backbone, variant) super-resolve? Its one-step PSNR against bicubic + `margin_db`, and its
    sampled outputs against bicubic on the spectral distance (HF band) and NIQE (seed means, then their mean)."""
    out = []

    def seed_mean(df, keys, col):
        return df[keys].groupby("seed")[col].mean().mean()
    bic1 = one_step[one_step["variant"] == "bicubic"]
    for (backbone, variant), g in one_step[one_step["variant"] != "bicubic"].groupby(["backbone", "variant"]):
        gain = float(g.groupby("seed")["psnr"].mean().mean() - bic1["psnr"].mean())
        out.append(Verdict(f"the one-step estimate beats bicubic by at least {margin_db} dB PSNR", f"{backbone} {variant}",
                           "reproduced" if gain >= margin_db else "not reproduced",
                           {"PSNR gain over bicubic (dB)": round(gain, 3), "seeds": int(g["seed"].nunique())}))
    bic = sampled[sampled["variant"] == "bicubic"]
    for (backbone, variant), g in sampled[sampled["variant"] != "bicubic"].groupby(["backbone", "variant"]):
        if variant not in set(one_step["variant"]):
            continue
        spec = float(g.groupby("seed")["spec_hf"].mean().mean())
        niqe = float(g.groupby("seed")["niqe"].mean().mean()) if g["niqe"].notna().any() else float("nan")
        closer = spec < bic["spec_hf"].mean() and (np.isnan(niqe) or niqe < bic["niqe"].mean())
        out.append(Verdict("sampled outputs are closer to HR than bicubic in HF power spectrum and NIQE",
                           f"{backbone} {variant}", "reproduced" if closer else "not reproduced",
                           {"spec_hf (dB)": round(spec, 3), "bicubic spec_hf": round(float(bic["spec_hf"].mean()), 3),
                            "NIQE": round(niqe, 3), "bicubic NIQE": round(float(bic["niqe"].mean()), 3)}))
    return out


# The paper's orderings (Tables 2-5, docs/method.md): (better, worse, claim)
PAPER_ORDERINGS: dict[str, list[tuple[str, str, str]]] = {
    "table2_objective": [("framer", "baseline", "contrastive frequency distillation beats no distillation (Table 2)"),
                         ("framer", "l2", "contrastive frequency distillation beats L2 self-distillation (Table 2)")],
    "table3_contrastive": [("framer", "teacher-mid", "the final-layer teacher beats a fixed middle-layer teacher "
                                                     "(Table 3)"),
                           ("framer", "no-random-neg", "random-layer negatives help (Table 3)")],
    "table4_bands": [("framer", "intra-both", "IntraCL on LF + InterCL on HF beats IntraCL on both (Table 4)"),
                     ("framer", "inter-both", "IntraCL on LF + InterCL on HF beats InterCL on both (Table 4)")],
    "table5_faw_fam": [("framer", "faw-only", "FAW + FAM beats FAW alone (Table 5)"),
                       ("framer", "fam-only", "FAW + FAM beats FAM alone (Table 5)"),
                       ("faw-only", "no-faw-fam", "FAW alone beats neither (Table 5)"),
                       ("fam-only", "no-faw-fam", "FAM alone beats neither (Table 5)")],
}


def paper_orderings(df: pd.DataFrame, backbone: str, metric: str = "psnr", higher_better: bool = True
                    ) -> list[Verdict]:
    """Every ordering of Tables 2-5 on one backbone's runs (those variants that were trained)."""
    rows = df[df["backbone"] == backbone]
    have = set(rows["variant"])
    return [ordering(rows, a, b, claim, f"{backbone}, {metric}", metric, higher_better)
            for orders in PAPER_ORDERINGS.values() for a, b, claim in orders if a in have and b in have]
