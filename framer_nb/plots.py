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
PAPER_BACKBONES = {"DiT": "SD3.5 DiT", "U-Net": "SD2 U-Net"}  # the backbones of the paper's Fig. 3
sns.set_theme(style="whitegrid", context="paper")


def save(fig, path: str | Path, show: bool = False, **prov) -> Path:
    """Save a figure as PNG (150 dpi) with a provenance sidecar; with `show`, display it in a notebook first.
    Closes the figure either way."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=150, bbox_inches="tight")
    if show:
        from IPython.display import display
        display(fig)
    plt.close(fig)
    write_sidecar(path, **prov)
    return path


def paper_fig2() -> pd.DataFrame:
    """The paper's Fig. 2 curves, coarse and approximate (data/paper/README.md)."""
    return pd.read_csv(PAPER_DIR / "fig2_band_densities.csv")


def fig_band_densities(dens: pd.DataFrame, paper: pd.DataFrame | None = None):
    """Fig. 2 analogue: mean +- std densities of log(1+|F|) in the LF ring and HF band, HR and LR panels; the
    paper's approximate curves in a third panel (their axis is normalised differently)."""
    n = 3 if paper is not None else 2
    fig, axes = plt.subplots(1, n, figsize=(4.2 * n, 3.2))
    for ax, images, title in zip(axes, ("HR", "LR"), ("(a) ours: high-resolution crops", "(b) ours: degraded LR "
                                                                                         "(bicubic-up)")):
        for band, colour in BAND_COLOURS.items():
            d = dens[(dens["images"] == images) & (dens["band"] == band)]
            x, m, s = d["log1p_magnitude"], d["density_mean"], d["density_std"]
            ax.plot(x, m, color=colour, label=band)
            ax.fill_between(x, (m - s).clip(lower=0), m + s, color=colour, alpha=0.2)
        ax.set(title=title, xlabel="log(1 + |F|)", ylabel="probability density")
        ax.legend(fontsize=7)
    if paper is not None:
        ax = axes[2]
        for (images, band), g in paper.groupby(["images", "band"]):
            ax.plot(g["magnitude"], g["density"], "-" if images == "HR" else "--", color=BAND_COLOURS[band],
                    label=f"{images} {band}")
        ax.set(title="(c) paper, reported (approximate)", xlabel="spectrum magnitude (paper's scale)")
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def fig_masks(image, cutoff: float = 0.2, radius: float = 0.25):
    """The two band splits on one image's spectrum: the paper's rings and the released code's magnitude quantile
    (its "LF" = the weakest 20% of bins, which sit mostly at high spatial frequencies)."""
    import torch

    from .freq import band_masks, spectrum
    mag = spectrum(image[None]).abs()
    radial, _ = band_masks(mag, "radial", radius=radius)
    quant, _ = band_masks(mag, "quantile", cutoff=cutoff)
    fig, axes = plt.subplots(1, 3, figsize=(10, 3.4))
    axes[0].imshow(torch.log1p(mag[0]).mean(0).numpy(), cmap="magma")
    axes[0].set_title("log(1+|F|), centred (luma mean)")
    axes[1].imshow(radial[0, 0].numpy(), cmap="Blues", vmin=0, vmax=1)
    axes[1].set_title(f"radial (paper): LF = ring r <= {radius} Nyquist", fontsize=8)
    axes[2].imshow(quant[0, 0].numpy(), cmap="Blues", vmin=0, vmax=1)
    axes[2].set_title(f"quantile (released code): 'LF' = weakest {cutoff:.0%} bins", fontsize=8)
    for ax in axes:
        ax.set_xticks([]), ax.set_yticks([])
    fig.tight_layout()
    return fig


def paper_fig3() -> pd.DataFrame:
    """The paper's digitised Fig. 3 curves (reported values)."""
    return pd.read_csv(PAPER_DIR / "fig3_layer_similarity.csv")


def _family_style(key: str) -> str:
    """The paper's convention: DiT curves solid, U-Net curves dashed."""
    return "--" if "unet" in key.lower().replace("-", "") else "-"


def fig_layer_similarity(sim: pd.DataFrame, timesteps=(300, 700), with_paper: bool = True, hue: str = "backbone",
                         space: str = "prediction"):
    """Fig. 3 analogue: LF (blue) and HF (red) similarity to the final layer over depth; DiT solid and U-Net dashed
    as in the paper; with hue='model', FRAMER runs drawn with squares and baselines with circles; the paper's
    digitised curves in grey. `space`: 'prediction' (layer maps) or 'x0'. The legend sits below the panels."""
    sim = sim[sim["space"] == space] if "space" in sim else sim
    fig, axes = plt.subplots(1, len(timesteps), figsize=(4.6 * len(timesteps), 3.4), sharey=True, squeeze=False)
    for ax, t in zip(axes[0], timesteps):
        d = sim[sim["t"] == t]
        for key, g in d.groupby(hue, sort=False):
            marker = "s" if "framer" in str(key) else "o"
            for band, colour in BAND_COLOURS.items():
                ax.plot(g["depth"], g[f"{band.lower()}_mean"], _family_style(str(key)), color=colour, marker=marker,
                        ms=3.5, label=f"ours: {key} {band}")
        if with_paper:
            p = paper_fig3()
            for bb, g in p[p["t"] == t].groupby("backbone", sort=False):
                for band, colour in (("lf", "0.35"), ("hf", "0.65")):
                    ax.plot(g["depth"], g[band], _family_style(bb), color=colour, lw=1,
                            label=f"paper (reported): {PAPER_BACKBONES.get(bb, bb)} {band.upper()}")
        ax.set(title=f"t = {t}", xlabel="layer index (normalised depth)")
    axes[0][0].set_ylabel(f"cosine similarity to the final layer\n({space} maps)")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.tight_layout()
    fig.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=4, fontsize=7, frameon=False)
    return fig


def fig_similarity_sweep(sim: pd.DataFrame, hue: str = "backbone", space: str = "prediction"):
    """Similarity over depth (x) and timestep (y): one heatmap per model and band, on one colour scale."""
    sim = sim[sim["space"] == space] if "space" in sim else sim
    keys = list(dict.fromkeys(sim[hue]))
    fig, axes = plt.subplots(len(keys), 2, figsize=(9, 3.0 * len(keys)), squeeze=False)
    for row, key in zip(axes, keys):
        d = sim[sim[hue] == key]
        for ax, band in zip(row, ("lf", "hf")):
            grid = d.pivot_table(index="t", columns="layer", values=f"{band}_mean")
            sns.heatmap(grid, ax=ax, vmin=0, vmax=1, cmap="viridis", cbar=band == "hf")
            ax.set_title(f"{key}: {band.upper()} similarity to the final layer", fontsize=9)
            ax.set(xlabel="layer", ylabel="timestep t")
    fig.tight_layout()
    return fig


def fig_cross_sample(cross: dict[str, dict], names: list[str], t: int):
    """Fig. 5 analogue: cross-sample cosine similarity of LF and HF band vectors of the final-layer estimate, one
    row per backbone, labelled with the crops' photos; one colour scale per figure, spanning the values shown."""
    backbones = list(cross)
    values = np.concatenate([np.asarray(cross[b][k], float).ravel() for b in backbones for k in ("lf", "hf")])
    lo = float(np.floor(values.min() * 20) / 20)
    fig, axes = plt.subplots(len(backbones), 2, figsize=(8.4, 3.9 * len(backbones)), squeeze=False)
    for row, b in zip(axes, backbones):
        for ax, band in zip(row, ("lf", "hf")):
            m = np.asarray(cross[b][band], float)
            off = m[~np.eye(len(m), dtype=bool)].mean() if len(m) > 1 else float("nan")
            sns.heatmap(m, ax=ax, vmin=lo, vmax=1, cmap="magma", cbar=band == "hf", square=True,
                        xticklabels=names, yticklabels=names)
            ax.tick_params(labelsize=6)
            ax.set_title(f"{b}, {band.upper()} band, t = {t}: mean off-diagonal {off:.2f}", fontsize=9)
    fig.tight_layout()
    return fig


def fig_training_cost(benches: list[dict], paper: pd.DataFrame | None = None):
    """Fig. 6 analogue: FRAMER's relative step time and peak memory for each measured setting (ours), beside the
    paper's reported overheads. CPU memory (process max RSS, dominated by the libraries) is not shown."""
    fig, axes = plt.subplots(1, 2, figsize=(9.6, 3.6))
    labels, time_pct, mem_pct = [], [], []
    for b in benches:
        labels.append(f"ours: {b['args']['backbone']}\n{b['device_name'][:24]}")
        time_pct.append(100 * (b["time_ratio"] - 1))
        mem_pct.append(100 * (b["memory_ratio"] - 1) if b["memory_kind"].startswith("cuda") else float("nan"))
    if paper is not None and len(paper):
        labels.append("paper (reported)\nFRAMER_D vs DiT4SR, H200")
        time_pct.append(100 * paper.iloc[0]["time_overhead"])
        mem_pct.append(100 * paper.iloc[0]["memory_overhead"])
    colours = ["tab:green"] * len(benches) + ["0.6"] * (len(labels) - len(benches))
    for ax, values, what in ((axes[0], time_pct, "step time"), (axes[1], mem_pct, "peak memory (CUDA only)")):
        ax.bar(range(len(labels)), [0 if np.isnan(v) else v for v in values], color=colours)
        for k, v in enumerate(values):
            ax.text(k, 0 if np.isnan(v) else v, "n/a" if np.isnan(v) else f"+{v:.1f}%", ha="center", va="bottom",
                    fontsize=7)
        ax.set_xticks(range(len(labels)), labels, fontsize=6)
        ax.set(ylabel=f"FRAMER overhead, % {what}", title=what)
        ax.margins(y=0.18)  # room for the value labels above the bars
    fig.tight_layout()
    return fig


def fig_loss_curves(logs: dict[str, pd.DataFrame], column: str = "objective", smooth: int = 10):
    """Fig. 8 analogue: training curves of several variants (rolling mean), each in its own colour and line style,
    and beside them each curve's difference from the first one, where curves that lie on each other separate."""
    fig, axes = plt.subplots(1, 2, figsize=(9.6, 3.4))
    styles = ["-", "--", "-.", ":"]
    curves = {n: log.set_index("step")[column].rolling(smooth, min_periods=1).mean() for n, log in logs.items()}
    first = next(iter(curves.values()), None)
    for k, (name, c) in enumerate(curves.items()):
        colour = sns.color_palette("deep")[k % 10]
        axes[0].plot(c.index, c.values, styles[k % 4], color=colour, lw=1.4, label=name)
        diff = (c - first).dropna()
        axes[1].plot(diff.index, diff.values, styles[k % 4], color=colour, lw=1.4, label=name)
    axes[0].set(xlabel="step", ylabel=f"{column} (rolling mean of {smooth} log rows)", title="training curves")
    axes[1].set(xlabel="step", ylabel=f"difference from {next(iter(curves), '')}", title="against the first curve")
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    return fig


def diag_by_layer(log: pd.DataFrame, name: str, step: int) -> np.ndarray:
    """Per-layer values of one diagnostic (e.g. 'fam_hf') at the logged step closest to `step`."""
    cols = sorted((c for c in log.columns if c.startswith(name + "_")), key=lambda c: int(c.rsplit("_", 1)[1]))
    rows = log.dropna(subset=cols[:1])
    row = rows.iloc[(rows["step"] - step).abs().argmin()]
    return row[cols].to_numpy(float)


def fig_faw_fam(log: pd.DataFrame, early: int, late: int, mask: str = "quantile"):
    """Fig. 9 analogue: FAW and FAM weights across layers, early vs late in training. The band labels name the
    mask: under `quantile` (the released code) "LF" is the weakest-magnitude bins, mostly high spatial frequency."""
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.2), sharey=True)
    band = {"lf": "LF", "hf": "HF"} if mask == "radial" else {"lf": "'LF' (weak bins)", "hf": "'HF' (strong bins)"}
    for ax, (label, step) in zip(axes, (("early", early), ("late", late))):
        for name, style in (("faw_lf", "b-"), ("faw_hf", "r-"), ("fam_lf", "b--"), ("fam_hf", "r--")):
            v = diag_by_layer(log, name, step)
            ax.plot(np.arange(len(v)), v, style, marker="o", ms=3,
                    label=f"{name[:3].upper()} {band[name[-2:]]}, {mask} mask")
        ax.set(title=f"({'ab'[label == 'late']}) {label} training (step ~{step})", xlabel="layer", ylim=(0, 1.05))
    axes[0].set_ylabel("weight")
    axes[0].legend(fontsize=7)
    return fig


def fig_qualitative(paths: dict[str, list[Path]], zoom: int = 48, names: list[str] | None = None,
                    scores: dict[str, list[str]] | None = None):
    """Qualitative grid: rows = images (labelled with `names`), columns = methods (bicubic, baseline, FRAMER, HR,
    ...), each a full crop with its `scores` text below it (e.g. PSNR) and under that a `zoom`-px detail from the
    crop's centre, enlarged, so the detail bicubic lacks is visible."""
    methods = list(paths)
    n = len(paths[methods[0]])
    fig, axes = plt.subplots(2 * n, len(methods), figsize=(2.1 * len(methods), 4.2 * n), squeeze=False)
    for j, m in enumerate(methods):
        for i, p in enumerate(paths[m]):
            img = np.asarray(Image.open(p))
            h, w = img.shape[:2]
            y, x = (h - zoom) // 2, (w - zoom) // 2
            axes[2 * i][j].imshow(img, interpolation="nearest")
            axes[2 * i + 1][j].imshow(img[y:y + zoom, x:x + zoom], interpolation="nearest")
            axes[2 * i][j].add_patch(plt.Rectangle((x, y), zoom, zoom, fill=False, color="yellow", lw=0.8))
            for ax in (axes[2 * i][j], axes[2 * i + 1][j]):
                ax.set_xticks([]), ax.set_yticks([])
            if scores and scores.get(m):
                axes[2 * i][j].set_xlabel(scores[m][i], fontsize=7)
            if i == 0:
                axes[0][j].set_title(m, fontsize=8)
            if j == 0 and names:
                axes[2 * i][0].set_ylabel(names[i], fontsize=8)
                axes[2 * i + 1][0].set_ylabel("centre, enlarged", fontsize=7)
    fig.tight_layout()
    return fig
