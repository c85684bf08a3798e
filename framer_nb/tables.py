"""Tables from stored results: mean +- 95% interval over seeds, best per column marked, CSV + Markdown + LaTeX."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from .metrics import HIGHER_BETTER
from .paths import DATA_ROOT
from .provenance import write_sidecar
from .stats import compare, per_seed_differences, pooled_sd

PAPER_DIR = DATA_ROOT / "paper"

# Each ablation table of the paper (Tables 2-5) plus our mask ablation: rows are variants.
ABLATIONS: dict[str, tuple[str, tuple[str, ...]]] = {
    "table2_objective": ("Table 2 analogue: distillation objective", ("baseline", "l2", "framer")),
    "table3_contrastive": ("Table 3 analogue: teacher and negatives",
                           ("framer", "teacher-mid", "no-random-neg", "no-inbatch-neg")),
    "table4_bands": ("Table 4 analogue: which loss on which band",
                     ("framer", "bands-swapped", "intra-both", "inter-both")),
    "table5_faw_fam": ("Table 5 analogue: FAW and FAM", ("no-faw-fam", "faw-only", "fam-only", "framer")),
    "table_mask": ("Mask ablation (ours): quantile (released code) vs radial (paper)", ("framer", "framer-radial")),
}
COLUMNS = ("psnr", "ssim", "fsim", "vif", "gmsd", "niqe", "psnr_lf", "psnr_hf", "spec_lf", "spec_hf", "ms_ssim",
           "lpips", "maniqa", "musiq")
DIGITS = {"ssim": 3, "fsim": 3, "vif": 3, "gmsd": 4, "ms_ssim": 3, "lpips": 3, "maniqa": 3}


def higher_is_better(metric: str) -> bool:
    return HIGHER_BETTER.get(metric, True)


def per_seed(df: pd.DataFrame, by: list[str], columns=COLUMNS) -> pd.DataFrame:
    """Mean over images per (row, seed)."""
    cols = [c for c in columns if c in df.columns and df[c].notna().any()]
    return df.groupby(by + ["seed"], sort=False)[cols].mean().reset_index()


def seed_summary(df: pd.DataFrame, by: list[str], columns=COLUMNS, pooled: dict | None = None) -> pd.DataFrame:
    """Mean over images per seed, then over seeds: <metric>_mean, <metric>_std, <metric>_ci (the 95% t-interval's
    half-width over seeds), n_seeds, and <metric>_best (True where that row beats every other row by a paired
    t-test over seeds, p < 0.05). A one-seed row takes its half-width from `pooled` ({metric: (sd, df)}, the
    spread of a row's seed means pooled from rows with several seeds: `pooled_spread`), else NaN."""
    seeds = per_seed(df, by, columns)
    cols = [c for c in seeds.columns if c not in by + ["seed"]]
    g = seeds.groupby(by, sort=False)[cols]
    out = g.mean().add_suffix("_mean").join(g.std(ddof=1).add_suffix("_std"))
    out["n_seeds"] = seeds.groupby(by, sort=False)["seed"].nunique()
    out = out.reset_index()
    n = out["n_seeds"].to_numpy()
    t975 = np.where(n > 1, stats.t.ppf(0.975, np.maximum(n - 1, 1)), np.nan)
    for c in cols:
        half = t975 * out[f"{c}_std"].to_numpy() / np.sqrt(n)
        if pooled and c in pooled and pooled[c][1] > 0:
            sd, dof = pooled[c]
            half = np.where(n == 1, stats.t.ppf(0.975, dof) * sd, half)
        out[f"{c}_ci"] = half
    for c in cols:
        out[f"{c}_best"] = _best_beyond_noise(seeds, by, c, out)
    return out


def pooled_spread(df: pd.DataFrame, by: list[str], columns=COLUMNS) -> dict[str, tuple[float, int]]:
    """Per metric, the std over seeds of a row's per-seed means, pooled over the rows with several seeds, and its
    degrees of freedom: the spread one-seed rows borrow (the tables say so)."""
    seeds = per_seed(df, by, columns)
    cols = [c for c in seeds.columns if c not in by + ["seed"]]
    out = {}
    for c in cols:
        groups = [grp[c].to_numpy() for _, grp in seeds.groupby(by, sort=False)]
        out[c] = pooled_sd(groups)
    return out


def _best_beyond_noise(seeds: pd.DataFrame, by: list[str], metric: str, summary: pd.DataFrame) -> list[bool]:
    """Whether each summary row is the best one and beats every other row (paired over shared seeds, p < 0.05)."""
    means = summary[f"{metric}_mean"]
    if means.isna().all() or len(summary) < 2:
        return [False] * len(summary)
    best = means.idxmax() if higher_is_better(metric) else means.idxmin()
    key = tuple(summary.loc[best, by])
    series = {tuple(k if isinstance(k, tuple) else (k,)): g.set_index("seed")[metric]
              for k, g in seeds.groupby(by, sort=False)}
    mine = series[key]
    for k, other in series.items():
        if k == key:
            continue
        shared = mine.index.intersection(other.index)
        if len(shared) < 2:
            return [False] * len(summary)
        d = mine[shared] - other[shared]
        if d.std() == 0 or stats.ttest_rel(mine[shared], other[shared]).pvalue >= 0.05:
            return [False] * len(summary)
    return [i == best for i in range(len(summary))]


def formatted(summary: pd.DataFrame, by: list[str], columns=COLUMNS, marker: str = "**") -> pd.DataFrame:
    """'mean +- half-width of the 95% interval over seeds' strings (the std where a summary has no interval), with
    the direction in the header; bold only where `<metric>_best` (beyond noise)."""
    out = summary[by].copy()
    for c in columns:
        if f"{c}_mean" not in summary or summary[f"{c}_mean"].isna().all():
            continue
        digits = DIGITS.get(c, 2)
        cells = []
        spread = summary[f"{c}_ci"] if f"{c}_ci" in summary else summary[f"{c}_std"]
        for m, s, best in zip(summary[f"{c}_mean"], spread, summary.get(f"{c}_best", [False] * len(summary))):
            text = "n/a" if np.isnan(m) else (f"{m:.{digits}f}" + ("" if np.isnan(s) else f" ± {s:.{digits}f}"))
            cells.append(f"{marker}{text}{marker}" if best and marker else text)
        out[f"{c} {'↑' if higher_is_better(c) else '↓'}"] = cells
    out["seeds"] = summary["n_seeds"].values
    return out


def write_table(summary: pd.DataFrame, by: list[str], name: str, out_dir: str | Path, caption: str,
                **prov) -> list[Path]:
    """Write <name>.csv (numbers), .md and .tex (formatted, best in bold), each with a provenance sidecar."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / f"{name}.csv", out / f"{name}.md", out / f"{name}.tex"]
    summary.to_csv(paths[0], index=False)
    md = formatted(summary, by)
    paths[1].write_text(f"**{caption}**\n\n" + markdown(md) + "\n")
    tex = formatted(summary, by, marker="").to_latex(index=False, caption=caption, label=f"tab:{name}")
    paths[2].write_text(_bold_best_tex(tex, summary, by))
    for p in paths:
        write_sidecar(p, table=name, caption=caption, **prov)
    return paths


def markdown(df: pd.DataFrame) -> str:
    """A GitHub Markdown table of a DataFrame (no extra dependency)."""
    head = "| " + " | ".join(map(str, df.columns)) + " |"
    rule = "|" + "|".join("---" for _ in df.columns) + "|"
    body = ["| " + " | ".join(map(str, row)) + " |" for row in df.itertuples(index=False)]
    return "\n".join([head, rule, *body])


def _bold_best_tex(tex: str, summary: pd.DataFrame, by: list[str]) -> str:
    """LaTeX with the best cell of each column in \\textbf (formatted again with that marker)."""
    marked = formatted(summary, by, marker="@@")
    for col in marked.columns:
        for cell in marked[col].astype(str):
            if cell.startswith("@@"):
                plain = cell.strip("@")
                tex = tex.replace(plain, f"\\textbf{{{plain}}}", 1)
    return tex


def ablation_table(df: pd.DataFrame, name: str, backbone: str, pooled: dict | None = None) -> pd.DataFrame | None:
    """One ablation table's rows (those variants that were run) on the seeds every row has, or None if fewer than
    two variants were run. One-seed rows take their interval from `pooled` (see `seed_summary`)."""
    _, variants = ABLATIONS[name]
    rows = df[(df["backbone"] == backbone) & (df["variant"].isin(variants))]
    if rows["variant"].nunique() < 2:
        return None
    shared = set.intersection(*(set(g["seed"]) for _, g in rows.groupby("variant")))
    rows = rows[rows["seed"].isin(shared)]
    s = seed_summary(rows, ["variant"], pooled=pooled)
    order = {v: i for i, v in enumerate(variants)}
    return s.sort_values("variant", key=lambda c: c.map(order)).reset_index(drop=True)


def seed_note(summary: pd.DataFrame, pooled: dict | None) -> str:
    """The caption's word on a table's seeds: empty when every row has several, else how one-seed rows get their ±."""
    if (summary["n_seeds"] > 1).all():
        return ""
    dof = max((d for _, d in (pooled or {}).values()), default=0)
    return (f"; one seed per row: ± uses the seed-to-seed spread of the baseline and FRAMER runs, pooled ({dof} df)"
            if dof else "; one seed per row: no interval")


def main_table(df: pd.DataFrame, variants=("baseline", "framer")) -> pd.DataFrame:
    """Table 1 analogue: bicubic, then the variants per backbone (every row on the same seeds)."""
    rows = df[df["variant"].isin(["bicubic", *variants])]
    s = seed_summary(rows, ["backbone", "variant"])
    order = {v: i for i, v in enumerate(["bicubic", *variants])}
    return s.sort_values(["backbone", "variant"], key=lambda c: c.map(order) if c.name == "variant" else
                         c.map(lambda b: (b != "bicubic", b))).reset_index(drop=True)


def relative_change(summary: pd.DataFrame, metric: str = "psnr") -> pd.DataFrame:
    """FRAMER vs baseline per backbone, as the paper's green percentages (positive = better)."""
    out = []
    for b, g in summary.groupby("backbone"):
        base = g[g["variant"] == "baseline"][f"{metric}_mean"]
        fr = g[g["variant"] == "framer"][f"{metric}_mean"]
        if len(base) and len(fr):
            sign = 1 if higher_is_better(metric) else -1
            out.append({"backbone": b, "metric": metric,
                        "change_%": 100 * sign * (fr.iloc[0] - base.iloc[0]) / abs(base.iloc[0])})
    return pd.DataFrame(out)


def framer_vs_baseline(df: pd.DataFrame, profile, metrics=("psnr", "ssim", "fsim", "niqe", "psnr_hf", "spec_hf")
                       ) -> pd.DataFrame:
    """FRAMER minus baseline per task and backbone (positive = FRAMER better, whatever the metric's direction): the
    mean over seeds of the per-seed paired differences, its 95% t-interval, the design's minimum detectable effect
    and the verdict (framer_nb.stats), and the change in %."""
    rows = []
    for (task, backbone), g in df[df["variant"].isin(["baseline", "framer"])].groupby(["task", "backbone"]):
        for m in metrics:
            if m not in g or g[m].isna().all():
                continue
            sign = 1.0 if higher_is_better(m) else -1.0
            c = compare(sign * per_seed_differences(g, m, "framer", "baseline"), m)
            if not c.n_seeds:
                continue
            base = g[g["variant"] == "baseline"][m].mean()
            rows.append({"task": task, "backbone": backbone, "metric": m, "framer_minus_baseline": round(c.effect, 4),
                         "ci95_low": round(c.low, 4), "ci95_high": round(c.high, 4), "mde": round(c.mde, 4),
                         "verdict": c.verdict(), "change_%": round(100 * c.effect / abs(base), 2),
                         "seeds": c.n_seeds})
    return pd.DataFrame(rows)


def comparisons(outputs: dict[str, pd.DataFrame], profile,
                metrics=("psnr", "ssim", "fsim", "niqe", "psnr_lf", "psnr_hf", "spec_hf")) -> pd.DataFrame:
    """`framer_vs_baseline` of each output ({"1 step": scores, "10 steps": scores}) in one table that names it."""
    frames = [framer_vs_baseline(df, profile, metrics).assign(output=output) for output, df in outputs.items()]
    out = pd.concat([f for f in frames if len(f)], ignore_index=True)
    return out[["output", *[c for c in out.columns if c != "output"]]]


def paper_table1() -> pd.DataFrame:
    """The paper's Table 1 as reported (labelled as the paper's, never ours)."""
    return pd.read_csv(PAPER_DIR / "table1.csv")


def paper_relative_change() -> pd.DataFrame:
    """The paper's reported FRAMER_U vs PiSA-SR and FRAMER_D vs DiT4SR changes, in %."""
    t = paper_table1()
    rows = []
    for _, r in t.iterrows():
        sign = 1 if r["direction"] == "up" else -1
        for fr, base in (("FRAMER_U", "PiSA-SR"), ("FRAMER_D", "DiT4SR")):
            rows.append({"dataset": r["dataset"], "metric": r["metric"], "pair": f"{fr} vs {base}",
                         "change_%": round(100 * sign * (r[fr] - r[base]) / r[base], 1)})
    return pd.DataFrame(rows)
