"""Figures from stored results. Each `fig_*` returns a matplotlib Figure; `save` writes PNG + provenance."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from PIL import Image

from .paths import DATA_ROOT
from .provenance import write_sidecar

PAPER_DIR = DATA_ROOT / "paper"
BAND_COLOURS = {"LF": "tab:blue", "HF": "tab:red"}
sns.set_theme(style="whitegrid", context="paper")


def save(fig, path: str | Path, **prov) -> Path:
    """Save a figure as PNG (150 dpi) with a provenance sidecar; closes the figure."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=150, bbox_inches="tight")
    plt.close(fig)
    write_sidecar(path, **prov)
    return path


def fig_band_densities(dens: pd.DataFrame):
    """Fig. 2 analogue: mean +- std densities of log(1+|F|) in the LF ring and HF band, HR and LR panels."""
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.2), sharey=True)
    for ax, images, title in zip(axes, ("HR", "LR"), ("(a) high-resolution crops", "(b) degraded LR (bicubic-up)")):
        for band, colour in BAND_COLOURS.items():
            d = dens[(dens["images"] == images) & (dens["band"] == band)]
            x, m, s = d["log1p_magnitude"], d["density_mean"], d["density_std"]
            ax.plot(x, m, color=colour, label=band)
            ax.fill_between(x, (m - s).clip(lower=0), m + s, color=colour, alpha=0.2)
        ax.set(title=title, xlabel="log(1 + |F|)  (spectrum magnitude)")
    axes[0].set_ylabel("probability density")
    axes[0].legend()
    return fig


def paper_fig3() -> pd.DataFrame:
    """The paper's digitised Fig. 3 curves (reported values)."""
    return pd.read_csv(PAPER_DIR / "fig3_layer_similarity.csv")


def fig_layer_similarity(sim: pd.DataFrame, timesteps=(300, 700), with_paper: bool = True, hue: str = "backbone",
                         space: str = "prediction"):
    """Fig. 3 analogue: LF (blue) and HF (red) similarity to the final layer over depth, ours solid/dashed
    by backbone; the paper's digitised curves in grey. `space`: 'prediction' (layer maps) or 'x0'."""
    sim = sim[sim["space"] == space] if "space" in sim else sim
    fig, axes = plt.subplots(1, len(timesteps), figsize=(4.5 * len(timesteps), 3.4), sharey=True, squeeze=False)
    styles = ["-", "--", ":", "-."]
    for ax, t in zip(axes[0], timesteps):
        d = sim[sim["t"] == t]
        for k, (key, g) in enumerate(d.groupby(hue, sort=False)):
            for band, colour in BAND_COLOURS.items():
                ax.plot(g["depth"], g[f"{band.lower()}_mean"], styles[k % 4], color=colour, marker="o", ms=3,
                        label=f"ours {key} {band}")
        if with_paper:
            p = paper_fig3()
            for k, (bb, g) in enumerate(p[p["t"] == t].groupby("backbone", sort=False)):
                for band, colour in (("lf", "0.35"), ("hf", "0.65")):
                    ax.plot(g["depth"], g[band], styles[k % 4], color=colour, lw=1,
                            label=f"paper {bb} {band.upper()} (reported)")
        ax.set(title=f"t = {t}", xlabel="layer index (normalised depth)")
    axes[0][0].set_ylabel(f"cosine similarity to final layer ({space} maps)")
    axes[0][-1].legend(fontsize=6, loc="lower right")
    return fig


def fig_similarity_sweep(sim: pd.DataFrame, hue: str = "backbone", space: str = "prediction"):
    """Similarity over depth (x) and timestep (y): one heatmap per model and band."""
    sim = sim[sim["space"] == space] if "space" in sim else sim
    keys = list(dict.fromkeys(sim[hue]))
    fig, axes = plt.subplots(len(keys), 2, figsize=(9, 2.8 * len(keys)), squeeze=False)
    for row, key in zip(axes, keys):
        d = sim[sim[hue] == key]
        for ax, band in zip(row, ("lf", "hf")):
            grid = d.pivot_table(index="t", columns="layer", values=f"{band}_mean")
            sns.heatmap(grid, ax=ax, vmin=0, vmax=1, cmap="viridis", cbar=band == "hf")
            ax.set(title=f"{key}: {band.upper()} similarity to final layer", xlabel="layer", ylabel="t")
    return fig


def fig_cross_sample(mats: dict[str, list]):
    """Fig. 5 analogue: cross-sample cosine similarity of LF and HF band vectors."""
    fig, axes = plt.subplots(1, 2, figsize=(7, 3.2))
    for ax, band in zip(axes, ("lf", "hf")):
        m = np.asarray(mats[band])
        off = m[~np.eye(len(m), dtype=bool)].mean() if len(m) > 1 else float("nan")
        sns.heatmap(m, ax=ax, vmin=0, vmax=1, cmap="magma", cbar=band == "hf", square=True)
        ax.set(title=f"{band.upper()}: mean off-diagonal {off:.2f}", xlabel="image", ylabel="image")
    return fig


def fig_training_cost(bench: dict, paper: pd.DataFrame | None = None):
    """Fig. 6 analogue: time per step and peak memory, baseline vs FRAMER (ours), with the paper's overheads."""
    fig, axes = plt.subplots(1, 2, figsize=(8, 3))
    names = ["baseline", "framer"]
    axes[0].bar(names, [bench["median_step_s"][n] * 1e3 for n in names], color=["0.6", "tab:green"])
    axes[0].set(ylabel="ms / step", title=f"time: x{bench['time_ratio']:.3f}")
    axes[1].bar(names, [bench["peak_memory_mib"][n] for n in names], color=["0.6", "tab:green"])
    axes[1].set(ylabel="MiB", title=f"peak memory ({bench['memory_kind']}): x{bench['memory_ratio']:.3f}")
    note = f"ours: {bench['args']['backbone']} on {bench['device_name']}"
    if paper is not None and len(paper):
        r = paper.iloc[0]
        note += f"\npaper (reported): +{100 * r['time_overhead']:.0f}% time, +{100 * r['memory_overhead']:.0f}% memory"
    fig.suptitle(note, fontsize=8)
    return fig


def fig_loss_curves(logs: dict[str, pd.DataFrame], column: str = "objective", smooth: int = 10):
    """Fig. 8 analogue: training curves of several variants (rolling mean)."""
    fig, ax = plt.subplots(figsize=(5, 3.2))
    for name, log in logs.items():
        ax.plot(log["step"], log[column].rolling(smooth, min_periods=1).mean(), label=name)
    ax.set(xlabel="step", ylabel=f"{column} (rolling mean {smooth})", title="early-training stability")
    ax.legend(fontsize=7)
    return fig


def diag_by_layer(log: pd.DataFrame, name: str, step: int) -> np.ndarray:
    """Per-layer values of one diagnostic (e.g. 'fam_hf') at the logged step closest to `step`."""
    cols = sorted((c for c in log.columns if c.startswith(name + "_")), key=lambda c: int(c.rsplit("_", 1)[1]))
    rows = log.dropna(subset=cols[:1])
    row = rows.iloc[(rows["step"] - step).abs().argmin()]
    return row[cols].to_numpy(float)


def fig_faw_fam(log: pd.DataFrame, early: int, late: int):
    """Fig. 9 analogue: FAW and FAM weights across layers, early vs late in training."""
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.2), sharey=True)
    for ax, (label, step) in zip(axes, (("early", early), ("late", late))):
        for name, style in (("faw_lf", "b-"), ("faw_hf", "r-"), ("fam_lf", "b--"), ("fam_hf", "r--")):
            v = diag_by_layer(log, name, step)
            ax.plot(np.arange(len(v)), v, style, marker="o", ms=3, label=name.upper().replace("_", " "))
        ax.set(title=f"({'ab'[label == 'late']}) {label} training (step ~{step})", xlabel="layer", ylim=(0, 1.05))
    axes[0].set_ylabel("weight")
    axes[0].legend(fontsize=7)
    return fig


def fig_qualitative(paths: dict[str, list[Path]], zoom: int = 2):
    """Qualitative grid: rows = images, columns = methods (LR, bicubic, baseline, FRAMER, HR), with a zoom crop."""
    methods = list(paths)
    n = len(paths[methods[0]])
    fig, axes = plt.subplots(n, len(methods), figsize=(2.0 * len(methods), 2.0 * n), squeeze=False)
    for j, m in enumerate(methods):
        for i, p in enumerate(paths[m]):
            img = np.asarray(Image.open(p))
            axes[i][j].imshow(img, interpolation="nearest")
            axes[i][j].set_xticks([])
            axes[i][j].set_yticks([])
            if i == 0:
                axes[i][j].set_title(m, fontsize=8)
    return fig
