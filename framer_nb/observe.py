"""Statistics behind the observation figures: band densities (Fig. 2), layer-wise LF/HF similarity to
the final layer over depth and timestep (Figs. 3, 7), cross-sample similarity matrices (Fig. 5).

Recipe (docs/method.md, the best available definition): per layer, the clean-signal estimate x0_i in the
space's spectral view (pixels for the tiny models, latents for SD); its centred |FFT| masked by the band,
flattened over C*H*W, L2-normalised; the dot product with the final output's vector; averaged over images.
Bands are radial rings (the paper's wording) unless `mask="quantile"` (the released code's split) is asked
for. Every U-Net is observed through 1x1 heads fitted in closed form to its own output (one fair lens for
priors, baselines and FRAMER runs alike); the heads a FRAMER run trained are never used here.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from . import diffusion as D
from .backbones import Backbone
from .config import Profile
from .data import SPLITS, photo, random_crops
from .degrade import bicubic_up, degrade, load_preset
from .freq import band_histograms, band_log_magnitudes, band_masks, band_vectors, spectrum
from .pipeline import find_spec, run_of
from .priors import residual_scale_of, shipped_prior
from .provenance import write_sidecar
from .stats import compare, photo_of
from .taps import UNetHeads, fit_unet_heads
from .train import load_trained, starting_point

TIMESTEPS = (300, 700)
SWEEP = (100, 200, 300, 400, 500, 600, 700, 800, 900)


# ---------------------------------------------------------------- Fig. 2

def band_densities(hr: Tensor, lr_up: Tensor, radius: float = 0.25, bins: int = 60) -> pd.DataFrame:
    """Mean and std over images of log(1+|F|) densities in the LF ring and HF band, HR vs LR, shared bins."""
    groups = {}
    for name, imgs in (("HR", hr), ("LR", lr_up)):
        lf, hf = band_log_magnitudes(imgs, radius)
        groups[f"{name}/LF"], groups[f"{name}/HF"] = lf, hf
    edges, dens, beyond = band_histograms(groups, bins)
    centres = ((edges[1:] + edges[:-1]) / 2).numpy()
    rows = []
    for key, d in dens.items():
        image, band = key.split("/")
        median = float(groups[key].median())
        for c, m, s in zip(centres, d.mean(0).numpy(), d.std(0).numpy()):
            rows.append({"images": image, "band": band, "log1p_magnitude": c, "density_mean": m, "density_std": s,
                         "median": median, "share_beyond_range": beyond[key]})
    return pd.DataFrame(rows)


def mask_statistics(images: Tensor, cutoff: float = 0.2, radius: float = 0.25) -> pd.DataFrame:
    """Where the released code's quantile "LF" bins sit, per image: the share of the paper's LF ring they cover
    (chance: `cutoff`) and their mean radius (as a fraction of Nyquist) against that of all bins."""
    from .freq import radial_frequency
    mag = spectrum(images).abs()
    quant, _ = band_masks(mag, "quantile", cutoff=cutoff)
    ring = radial_frequency(*images.shape[-2:]) <= radius
    r = radial_frequency(*images.shape[-2:]).expand_as(quant[0])
    rows = []
    for q in quant:
        rows.append({"share_of_ring_labelled_LF": float(q[ring.expand_as(q)].float().mean()),
                     "share_of_LF_outside_ring": float((~ring.expand_as(q))[q].float().mean()),
                     "mean_radius_LF_bins": float(r[q].mean()), "mean_radius_all_bins": float(r.mean()),
                     "chance_share": cutoff})
    return pd.DataFrame(rows)


# ---------------------------------------------------------------- lenses

def layer_maps(bb: Backbone, heads: UNetHeads | None, x0: Tensor, lr: Tensor | None, t: float,
               seed: int = 0) -> dict[str, tuple[Tensor, Tensor]]:
    """One forward pass at time t: per-layer maps [L, B, C, H, W] and the final map [B, C, H, W], in the space's
    spectral view and two forms: 'prediction' (each lens's raw output: v, epsilon or x0, the layer's "feature
    map") and 'x0' (clean-signal estimates, what the FRAMER loss compares)."""
    g = torch.Generator().manual_seed(seed)
    tt = torch.full((x0.shape[0],), float(t))
    x_t = D.add_noise(bb.objective, x0, torch.randn(x0.shape, generator=g), tt)
    with torch.no_grad(), bb.lens(heads) as tp:
        pred = bb.predict(x_t, tt, lr)
        per_layer = tp.predictions()
    view = bb.space.spectral
    return {"prediction": (view(per_layer), view(pred)),
            "x0": (view(bb.x0(per_layer, x_t, tt)), view(bb.x0(pred, x_t, tt)))}


def layer_estimates(bb: Backbone, heads: UNetHeads | None, x0: Tensor, lr: Tensor | None, t: float,
                    seed: int = 0) -> tuple[Tensor, Tensor]:
    """Per-layer clean-signal estimates [L, B, C, H, W] and the final output's estimate [B, C, H, W] at time t."""
    return layer_maps(bb, heads, x0, lr, t, seed)["x0"]


def calibrated_heads(bb: Backbone, x0: Tensor, lr: Tensor | None, t: float = 500.0) -> UNetHeads:
    """Lens heads fitted in closed form to the model's own output on a calibration batch (the 'fitted' lens)."""
    heads = bb.make_heads()
    g = torch.Generator().manual_seed(123)
    tt = torch.full((x0.shape[0],), float(t))
    x_t = D.add_noise(bb.objective, x0, torch.randn(x0.shape, generator=g), tt)
    with torch.no_grad(), bb.lens(heads) as tp:
        out = bb.predict(x_t, tt, lr)
        feats = list(tp.features)
    return fit_unet_heads(heads, feats, out)


def band_similarity(students: Tensor, teacher: Tensor, mask: str = "radial", radius: float = 0.25,
                    cutoff: float = 0.2) -> tuple[Tensor, Tensor]:
    """Per-layer LF and HF cosine similarity to the teacher, each [L, B]."""
    t_mag, s_mag = spectrum(teacher).abs(), spectrum(students).abs()
    low, high = band_masks(t_mag, mask, cutoff, radius)
    return tuple((band_vectors(s_mag, m) * band_vectors(t_mag, m)).sum(-1) for m in (low, high))


def layer_similarity(bb: Backbone, heads: UNetHeads | None, x0: Tensor, lr: Tensor | None,
                     timesteps=TIMESTEPS, mask: str = "radial", radius: float = 0.25, label: dict | None = None
                     ) -> pd.DataFrame:
    """Tidy table: per space, timestep and layer, mean and std over images of LF/HF similarity to the final layer."""
    rows = []
    for t in timesteps:
        for space, (students, teacher) in layer_maps(bb, heads, x0, lr, t).items():
            lf, hf = band_similarity(students, teacher, mask, radius)
            L = lf.shape[0]
            for i in range(L):
                rows.append({**(label or {}), "space": space, "t": t, "layer": i, "depth": i / max(L - 1, 1),
                             "mask": mask, "lf_mean": lf[i].mean().item(), "lf_std": _std(lf[i]),
                             "hf_mean": hf[i].mean().item(), "hf_std": _std(hf[i])})
    return pd.DataFrame(rows)


def _std(x: Tensor) -> float:
    return x.std().item() if x.numel() > 1 else 0.0


def cross_sample_similarity(bb: Backbone, heads: UNetHeads | None, x0: Tensor, lr: Tensor | None, t: float = 300,
                            radius: float = 0.25) -> dict[str, np.ndarray]:
    """[N, N] cosine similarity between images' LF and between their HF band vectors (final-layer estimates)."""
    _, teacher = layer_estimates(bb, heads, x0, lr, t)
    mag = spectrum(teacher).abs()
    low, high = band_masks(mag, "radial", radius=radius)
    out = {}
    for band, m in (("lf", low), ("hf", high)):
        v = band_vectors(mag, m)
        out[band] = (v @ v.T).numpy()
    return out


# ---------------------------------------------------------------- a profile's observation set

def observation_images(p: Profile, size: int | None = None, seed: int = 77, n: int | None = None,
                       degradation: str | None = None, photos: tuple[str, ...] | None = None) -> dict:
    """HR crops of the held-out photos (by default the test and validation splits: 8 distinct images) and their
    degraded, bicubic-upsampled LR, in [0, 1]. Crop k comes from photo k mod len(photos) and is named
    '<photo>_<k // len(photos)>'."""
    size, n = size or p.observe_size, n or p.n_observe
    names = tuple(photos or SPLITS["test"] + SPLITS["val"])
    g = torch.Generator().manual_seed(seed)
    hr, labels = [], []
    for k in range(n):
        name = names[k % len(names)]
        hr.append(random_crops([photo(name)], 1, size, g, flip=False)[0])
        labels.append(f"{name}_{k // len(names)}")
    hr = torch.stack(hr)
    preset = load_preset(degradation or p.train.degradation)
    lr = torch.cat([degrade(h[None], preset, torch.Generator().manual_seed(seed + i)) for i, h in enumerate(hr)])
    return {"hr": hr, "lr_up": bicubic_up(lr, p.train.scale), "names": labels}


def model_inputs(bb: Backbone, images: dict[str, Tensor]) -> tuple[Tensor, Tensor | None]:
    """Images in [0, 1] -> model-space x0 (what the backbone diffuses) and LR condition (None for an
    unconditional prior)."""
    hr, lr = bb.to_model(images["hr"] * 2 - 1), bb.to_model(images["lr_up"] * 2 - 1)
    return bb.sr_target(hr, lr), (lr if bb.lr_channels else None)


def lens_for(bb: Backbone, x0: Tensor, lr: Tensor | None) -> tuple[UNetHeads | None, str]:
    """The lens to observe with: the model's own output head (SD3 family), or heads fitted in closed form."""
    if not bb.adapter.needs_heads:
        return None, "shared output head"
    return calibrated_heads(bb, x0, lr), "closed-form 1x1 heads"


def observe_models(models: dict[str, Backbone], images: dict[str, Tensor], timesteps=SWEEP,
                   mask: str = "radial") -> pd.DataFrame:
    """Layer-wise similarity of several backbones, labelled by the dict keys."""
    frames = []
    for label, bb in models.items():
        x0, lr = model_inputs(bb, images)
        lens, lens_name = lens_for(bb, x0, lr)
        frames.append(layer_similarity(bb, lens, x0, lr, timesteps, mask,
                                       label={"model": label, "backbone": bb.spec.name, "lens": lens_name}))
    return pd.concat(frames, ignore_index=True)


def premise_gaps(bb: Backbone, images: dict, timesteps=TIMESTEPS, early: float = 0.75, mask: str = "radial"
                 ) -> pd.DataFrame:
    """Per image and timestep, the premise FRAMER corrects as one number: the mean over the layers at normalised
    depth <= `early` of (LF similarity - HF similarity) to the final layer, in the space's prediction view. The
    paper's Fig. 3 reads about +0.15 to +0.25 (LF aligns early, HF late); zero or below means nothing lags."""
    x0, lr = model_inputs(bb, images)
    lens, _ = lens_for(bb, x0, lr)
    rows = []
    for t in timesteps:
        students, teacher = layer_maps(bb, lens, x0, lr, t)["prediction"]
        lf, hf = band_similarity(students, teacher, mask)
        depth = torch.arange(lf.shape[0]) / max(lf.shape[0] - 1, 1)
        keep = depth <= early + 1e-9
        gap = (lf[keep] - hf[keep]).mean(0)
        for name, g, low, high in zip(images["names"], gap, lf[keep].mean(0), hf[keep].mean(0)):
            rows.append({"t": t, "image": name, "photo": photo_of(name), "gap": g.item(), "lf": low.item(),
                         "hf": high.item(), "layers": int(keep.sum())})
    return pd.DataFrame(rows)


def premise_summary(gaps: pd.DataFrame) -> dict[str, dict]:
    """`premise_gaps` per timestep: the gap's mean over photos (crops of a photo averaged first), its 95% interval
    and minimum detectable effect over photos, and the reading: 'lag' (interval above zero), 'opposite' (below)
    or 'inconclusive'."""
    out = {}
    for t, g in gaps.groupby("t"):
        c = compare(g.groupby("photo")["gap"].mean(), "gap")
        out[str(t)] = {"gap": round(c.effect, 4), "ci95": [round(c.low, 4), round(c.high, 4)],
                       "mde": round(c.mde, 4), "photos": c.n_seeds, "crops": len(g),
                       "reading": {"better": "lag", "worse": "opposite"}.get(c.verdict(), "inconclusive"),
                       "lf": round(float(g["lf"].mean()), 4), "hf": round(float(g["hf"].mean()), 4)}
    return out


def premise_table(models: dict[str, Backbone], images: dict, timesteps=TIMESTEPS) -> pd.DataFrame:
    """`premise_gaps` of several models, labelled by the dict keys (column `model`)."""
    return pd.concat([premise_gaps(bb, images, timesteps).assign(model=label, backbone=bb.spec.name)
                      for label, bb in models.items()], ignore_index=True)


def cross_sample(bb: Backbone, images: dict[str, Tensor], t: float = 300) -> dict[str, list]:
    """Fig. 5 matrices for one model, JSON-ready."""
    x0, lr = model_inputs(bb, images)
    lens, _ = lens_for(bb, x0, lr)
    return {k: m.tolist() for k, m in cross_sample_similarity(bb, lens, x0, lr, t).items()}


def x0_differs(sim: pd.DataFrame, atol: float = 1e-6) -> bool:
    """Whether the x0-space similarities differ from the prediction-space ones (they do not for models that predict
    x0, such as the tiny ones: then one figure says it all)."""
    spaces = set(sim["space"]) if "space" in sim else set()
    if not {"prediction", "x0"} <= spaces:
        return False
    keys = [c for c in ("model", "backbone", "t", "layer") if c in sim]
    a = sim[sim["space"] == "prediction"].set_index(keys)[["lf_mean", "hf_mean"]]
    b = sim[sim["space"] == "x0"].set_index(keys)[["lf_mean", "hf_mean"]].reindex(a.index)
    return not np.allclose(a.to_numpy(), b.to_numpy(), atol=atol, equal_nan=True)


def off_diagonal_mean(matrix) -> float:
    """Mean of a square similarity matrix without its diagonal (similarity between different images)."""
    m = np.asarray(matrix, dtype=float)
    return float(m[~np.eye(len(m), dtype=bool)].mean()) if len(m) > 1 else float("nan")


def load_priors(p: Profile, runs: str | Path, progress: bool = True) -> dict[str, Backbone]:
    """The starting point of every backbone of a profile (the shipped prior, or a real pipeline), by backbone.

    A shipped prior is observed on the residual scale it learned (its model card's `residual_scale`), which
    may differ from the one SR fine-tuning trains it to (TrainConfig.residual_scale)."""
    out = {}
    for b in p.backbones:
        cfg = p.train_for(b)
        if cfg.prior == "shipped" and not cfg.pretrained and cfg.target == "residual":
            cfg = dataclasses.replace(cfg, residual_scale=residual_scale_of(shipped_prior(b)))
        out[b] = starting_point(cfg, runs, progress)
    return out


def load_runs(p: Profile, runs: str | Path, variants=("baseline", "framer"), seed: int | None = None
              ) -> dict[str, Backbone]:
    """Trained SR runs of a profile as {'<backbone> <variant>': backbone} (only finished runs)."""
    out = {}
    for b in p.backbones:
        for v in variants:
            run = run_of(find_spec(p, b, v, p.seeds[0] if seed is None else seed), runs)
            if run.done:
                out[f"{b} {v}"] = load_trained(run)[0]
    return out


def save_csv(df: pd.DataFrame, path: str | Path, **prov) -> Path:
    """Write a statistics table with its provenance sidecar."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(path, index=False)
    write_sidecar(path, **prov)
    return path
