"""Verdicts computed from our result files: does a paper claim hold in our data? Each has three outcomes: the
paper's direction (`reproduced`), the opposite one (`opposite`, `reversed`, `not reproduced`), or `inconclusive`
with the design's minimum detectable effect, decided by a 95% interval over the independent units (photos for
observations, training seeds for trained variants: framer_nb.stats). NaN never passes.

Each function reads a results table and returns `Verdict`s whose `numbers` carry the evidence; the notebooks
print them and `readme_results` quotes them, so no sentence about a result is written by hand.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from .stats import Comparison, compare, per_seed_differences, photo_of, pooled_comparison, pooled_sd


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


def low_first_high_later(gaps: pd.DataFrame, timesteps=(300, 700)) -> list[Verdict]:
    """Fig. 3: across depth, HF's similarity to the final layer lags LF's.

    `gaps` is `observe.premise_gaps` with a `model` column: per crop, the mean LF - HF gap over the first three
    quarters of depth. Per model and timestep the crops are averaged per photo (crops of one photo are not
    independent) and the t-interval over photos decides: above zero reproduced, below zero opposite, else
    inconclusive with the design's minimum detectable effect."""
    out = []
    for (model, t), g in gaps[gaps["t"].isin(timesteps)].groupby(["model", "t"], sort=False):
        c = compare(g.groupby("photo")["gap"].mean(), "gap")
        out.append(Verdict("low-first, high-later: HF's similarity to the final layer lags LF's over depth (Fig. 3)",
                           f"{model}, t={t}", _three_way(c, "reproduced", "opposite"),
                           {"mean LF-HF over depth <= 0.75": round(c.effect, 3), "ci95": _ci(c),
                            "mde": round(c.mde, 3), "photos": c.n_seeds}))
    return out


def cross_sample(cross: dict[str, dict[str, list]], names: list[str]) -> list[Verdict]:
    """Fig. 5: different images share LF but not HF. Per crop, its mean LF similarity to the crops of *other*
    photos minus its mean HF similarity to them; averaged per photo; the t-interval over photos decides."""
    photos = np.array([photo_of(n) for n in names])
    other = photos[:, None] != photos[None, :]
    out = []
    for model, mats in cross.items():
        lf, hf = np.asarray(mats["lf"]), np.asarray(mats["hf"])
        per_crop = [(lf[i][other[i]].mean() - hf[i][other[i]].mean()) for i in range(len(names))]
        c = compare(pd.Series(per_crop).groupby(photos).mean(), "gap")
        out.append(Verdict("LF is shared across images, HF is instance-specific (Fig. 5)", model,
                           _three_way(c, "reproduced", "opposite"),
                           {"LF-HF similarity across photos": round(c.effect, 3), "ci95": _ci(c),
                            "mde": round(c.mde, 3), "off-diagonal LF": round(float(lf[other].mean()), 3),
                            "off-diagonal HF": round(float(hf[other].mean()), 3), "photos": c.n_seeds}))
    return out


def _three_way(c: Comparison, yes: str, opposite: str, margin: float = 0.0) -> str:
    """The paper's direction (interval above `margin`), the opposite one (below -`margin`), or inconclusive;
    NaN and fewer than two units are inconclusive."""
    v = c.verdict(higher_is_better=True, margin=margin)
    if v == "better":
        return yes
    if v == "worse":
        return opposite
    if np.isnan(c.mde):
        return f"inconclusive ({c.n_seeds} unit{'s' * (c.n_seeds != 1)})"
    return f"inconclusive (MDE {c.mde:.3g})"


def _ci(c: Comparison) -> str:
    return f"[{c.low:+.3f}, {c.high:+.3f}]"


# ---------------------------------------------------------------- comparisons of trained variants

def ordering(df: pd.DataFrame, better: str, worse: str, claim: str, scope: str, metric: str = "psnr",
             higher_better: bool = True, pooled: tuple[float, int] | None = None) -> Verdict:
    """The paper says `better` beats `worse`, paired over the seeds both rows have: reproduced (interval above
    zero), reversed (below) or inconclusive with the design's MDE.

    With one shared seed the spread comes from `pooled` = (sd, df): the std over seeds of a paired difference
    measured on the main variants and its degrees of freedom (stats.pooled_sd), and the verdict says so; without
    it, one seed is inconclusive."""
    sign = 1.0 if higher_better else -1.0
    c = compare(sign * per_seed_differences(df, metric, better, worse), metric)
    borrowed = c.n_seeds == 1 and pooled is not None and pooled[1] > 0
    if borrowed:
        c = pooled_comparison(c.effect, *pooled, metric)
    verdict = {"better": "reproduced", "worse": "reversed"}.get(c.verdict(), "inconclusive")
    if verdict == "inconclusive":
        verdict += f" (MDE {c.mde:.3g})" if not np.isnan(c.mde) else " (one seed)"
    nums = {f"{metric} {better} - {worse}": round(c.effect, 3), "ci95": _ci(c), "mde": round(c.mde, 3),
            "seeds": 1 if borrowed else c.n_seeds}
    if borrowed:
        nums["spread"] = f"pooled from the main variants (sd {pooled[0]:.3g}, {pooled[1]} df)"
    return Verdict(claim, scope, verdict, nums)


def beats_bicubic(one_step: pd.DataFrame, sampled: pd.DataFrame, margin_db: float = 1.0) -> list[Verdict]:
    """Does each (backbone, variant) super-resolve? One-step: the per-seed PSNR gain over bicubic on the same
    crops, with its t-interval over seeds, against `margin_db` (reproduced above it, not reproduced below it,
    else inconclusive). Sampled: closer to HR than bicubic on the HF spectral distance and on NIQE, each by its
    interval; a metric that is n/a leaves the claim untested (NaN never passes)."""
    out = []
    bic1 = one_step[one_step["variant"] == "bicubic"].groupby("image")["psnr"].mean()
    for (backbone, variant), g in one_step[one_step["variant"] != "bicubic"].groupby(["backbone", "variant"]):
        gains = g.assign(gain=g["psnr"] - g["image"].map(bic1)).groupby("seed")["gain"].mean()
        c = compare(gains, "psnr gain")
        verdict = _three_way(Comparison(c.metric, c.effect - margin_db, c.low - margin_db, c.high - margin_db,
                                        c.mde, c.n_seeds), "reproduced", "not reproduced")
        out.append(Verdict(f"the one-step estimate beats bicubic by at least {margin_db} dB PSNR", f"{backbone} {variant}",
                           verdict, {"PSNR gain over bicubic (dB)": round(c.effect, 3), "ci95": _ci(c),
                                     "seeds": c.n_seeds}))
    bic = sampled[sampled["variant"] == "bicubic"].groupby("image")[["spec_hf", "niqe"]].mean()
    for (backbone, variant), g in sampled[sampled["variant"] != "bicubic"].groupby(["backbone", "variant"]):
        if variant not in set(one_step["variant"]):
            continue
        parts, nums = [], {}
        for m in ("spec_hf", "niqe"):  # lower is better: bicubic minus ours > 0 means closer to HR
            if g[m].isna().all() or bic[m].isna().all():
                parts.append(f"untested ({m} n/a)")
                nums[m] = "n/a"
                continue
            c = compare(g.assign(d=g["image"].map(bic[m]) - g[m]).groupby("seed")["d"].mean(), m)
            parts.append(_three_way(c, "reproduced", "not reproduced"))
            nums[f"bicubic - ours, {m}"] = round(c.effect, 3)
            nums[f"{m} ci95"] = _ci(c)
        verdict = ("reproduced" if all(p == "reproduced" for p in parts)
                   else "not reproduced" if any(p == "not reproduced" for p in parts)
                   else next(p for p in parts if p != "reproduced"))
        out.append(Verdict("sampled outputs are closer to HR than bicubic in HF power spectrum and NIQE",
                           f"{backbone} {variant}", verdict, nums))
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
    """Every ordering of Tables 2-5 on one backbone's runs (those variants that were trained). An ordering with one
    shared seed takes its spread from the FRAMER - baseline per-seed differences (pooled_sd)."""
    rows = df[df["backbone"] == backbone]
    have = set(rows["variant"])
    pooled = pooled_sd([per_seed_differences(rows, metric, "framer", "baseline")])
    return [ordering(rows, a, b, claim, f"{backbone}, {metric}", metric, higher_better, pooled)
            for orders in PAPER_ORDERINGS.values() for a, b, claim in orders if a in have and b in have]
