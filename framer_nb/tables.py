"""Tables from stored results: mean +- std over seeds, best per column marked, CSV + Markdown + LaTeX."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .metrics import METRICS
from .paths import DATA_ROOT
from .provenance import write_sidecar

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
COLUMNS = ("psnr", "ssim", "psnr_lf", "psnr_hf", "niqe", "lpips", "maniqa", "musiq")


def higher_is_better(metric: str) -> bool:
    return METRICS[metric][2] if metric in METRICS else True  # band PSNRs: higher is better


def seed_summary(df: pd.DataFrame, by: list[str], columns=COLUMNS) -> pd.DataFrame:
    """Mean over images per seed, then mean and std over seeds: columns <metric>_mean, <metric>_std, n_seeds."""
    cols = [c for c in columns if c in df.columns]
    per_seed = df.groupby(by + ["seed"], sort=False)[cols].mean().reset_index()
    g = per_seed.groupby(by, sort=False)[cols]
    out = g.mean().add_suffix("_mean").join(g.std(ddof=1).add_suffix("_std"))
    out["n_seeds"] = per_seed.groupby(by, sort=False)["seed"].nunique()
    return out.reset_index()


def formatted(summary: pd.DataFrame, by: list[str], columns=COLUMNS, marker: str = "**") -> pd.DataFrame:
    """'mean +- std' strings, best mean per column wrapped in `marker`, n/a where nothing was measured."""
    out = summary[by].copy()
    for c in columns:
        if f"{c}_mean" not in summary:
            continue
        means, stds = summary[f"{c}_mean"], summary[f"{c}_std"]
        best = None if means.isna().all() else (means.idxmax() if higher_is_better(c) else means.idxmin())
        digits = 3 if c in ("ssim", "lpips", "maniqa") else 2
        cells = []
        for i, (m, s) in enumerate(zip(means, stds)):
            text = "n/a" if np.isnan(m) else (f"{m:.{digits}f}" + ("" if np.isnan(s) else f" ± {s:.{digits}f}"))
            cells.append(f"{marker}{text}{marker}" if i == best and len(means) > 1 and marker else text)
        arrow = "↑" if higher_is_better(c) else "↓"
        out[f"{c} {arrow}"] = cells
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


def ablation_table(df: pd.DataFrame, name: str, backbone: str) -> pd.DataFrame | None:
    """One ablation table's rows (those variants that were run), or None if fewer than two were."""
    _, variants = ABLATIONS[name]
    rows = df[(df["backbone"] == backbone) & (df["variant"].isin(variants))]
    if rows["variant"].nunique() < 2:
        return None
    s = seed_summary(rows, ["variant"])
    order = {v: i for i, v in enumerate(variants)}
    return s.sort_values("variant", key=lambda c: c.map(order)).reset_index(drop=True)


def main_table(df: pd.DataFrame) -> pd.DataFrame:
    """Table 1 analogue: bicubic, then baseline and FRAMER per backbone, with FRAMER's relative change."""
    rows = df[df["variant"].isin(["bicubic", "baseline", "framer"])]
    s = seed_summary(rows, ["backbone", "variant"])
    return s


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
