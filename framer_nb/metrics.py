"""Named metric protocols over pyiqa, plus frequency-resolved fidelity (band PSNR, spectral distance).

Offline: psnr, ssim, ms_ssim, fsim, vif, gmsd and NIQE (basicsr's published pristine parameters, shipped in
data/niqe/). Always added: PSNR of the error in the LF ring and the HF band, and the spectral distance per band
(mean |difference| of SR's and HR's radially averaged log power spectra, in dB).
Learned metrics run when their weight files are cached; otherwise they are reported as n/a with a
one-line reason. While a metric is built, sockets are refused, so a missing file never means a
network retry or a hang.
"""

from __future__ import annotations

import contextlib
import io
import os
import socket
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from .freq import radial_frequency, radial_masks, spectrum
from .paths import DATA_ROOT

NIQE_NPZ = DATA_ROOT / "niqe" / "niqe_pris_params.npz"
MIN_SIDE = {"niqe": 96, "ms_ssim": 176}  # NIQE: 96 x 96 blocks; MS-SSIM: an 11-tap window at 1/16 scale

# name in our tables -> (pyiqa metric, kwargs, higher is better)
METRICS: dict[str, tuple[str, dict, bool]] = {
    "psnr": ("psnr", {}, True),  # pyiqa default: RGB
    "ssim": ("ssim", {}, True),  # pyiqa default: luma of YIQ (0.299 R + 0.587 G + 0.114 B)
    "psnr_y": ("psnr", {"test_y_channel": True, "color_space": "ycbcr"}, True),  # BT.601 luma, 16-235
    "ssim_y": ("ssim", {"test_y_channel": True, "color_space": "ycbcr"}, True),
    "lpips": ("lpips", {}, False),
    "dists": ("dists", {}, False),
    "ms_ssim": ("ms_ssim", {}, True),
    "fsim": ("fsim", {}, True),
    "vif": ("vif", {}, True),
    "gmsd": ("gmsd", {}, False),
    "niqe": ("niqe", {}, False),
    "musiq": ("musiq", {}, True),
    "maniqa": ("maniqa", {}, True),
    "maniqa_pipal": ("maniqa-pipal", {}, True),
    "clipiqa": ("clipiqa", {}, True),
}

PROTOCOLS: dict[str, tuple[str, ...]] = {
    "offline": ("psnr", "ssim", "ms_ssim", "fsim", "vif", "gmsd", "niqe"),  # every metric that needs no download
    "framer": ("psnr", "ssim", "lpips", "niqe", "maniqa", "musiq"),  # the authors' test/metric.py
    "osediff": ("psnr_y", "ssim_y", "lpips", "dists", "clipiqa", "niqe", "musiq", "maniqa_pipal"),
}


@dataclass
class Metric:
    """A built metric, or the reason it is not available."""

    name: str
    fn: object | None
    reason: str = ""
    higher_better: bool = True
    full_reference: bool = True


@contextlib.contextmanager
def no_network():
    """Inside the block: Hugging Face Hub offline mode (whatever the environment says: its client otherwise
    retries a failed lookup for about a minute), and every socket connection and DNS lookup refused at once.
    Refused attempts are recorded in REFUSED."""
    import huggingface_hub.constants as hub
    saved = socket.socket.connect, socket.getaddrinfo, hub.HF_HUB_OFFLINE, os.environ.get("HF_HUB_OFFLINE")

    def refuse(*args, **kwargs):
        REFUSED.append(args[1:] if args and isinstance(args[0], socket.socket) else args)
        raise OSError("network disabled while building metrics (weights must be cached locally)")

    socket.socket.connect, socket.getaddrinfo, hub.HF_HUB_OFFLINE = refuse, refuse, True
    os.environ["HF_HUB_OFFLINE"] = "1"
    try:
        yield
    finally:
        socket.socket.connect, socket.getaddrinfo, hub.HF_HUB_OFFLINE = saved[:3]
        if saved[3] is None:
            os.environ.pop("HF_HUB_OFFLINE", None)
        else:
            os.environ["HF_HUB_OFFLINE"] = saved[3]


REFUSED: list = []  # connection attempts refused by `no_network` (for tests and debugging)


def niqe_mat_path(cache_dir: str | Path | None = None) -> Path:
    """basicsr's NIQE pristine parameters (npz) as the .mat file that pyiqa's NIQE reads."""
    from scipy.io import savemat
    cache = Path(cache_dir or Path.home() / ".cache" / "framer_nb")
    cache.mkdir(parents=True, exist_ok=True)
    out = cache / "niqe_pris_params_basicsr.mat"
    if not out.exists():
        p = np.load(NIQE_NPZ)
        savemat(out, {"mu_prisparam": p["mu_pris_param"], "cov_prisparam": p["cov_pris_param"]})
    return out


@cache
def build(name: str, device: str = "cpu") -> Metric:
    """Build one named metric with pyiqa; n/a (with a reason) if it cannot be built offline."""
    if name not in METRICS:
        raise KeyError(f"unknown metric {name!r}; known: {', '.join(METRICS)}")
    import pyiqa
    iqa_name, kwargs, higher = METRICS[name]
    if name == "niqe":
        kwargs = {**kwargs, "pretrained_model_path": str(niqe_mat_path())}
    chatter = io.StringIO()  # pyiqa prints "Downloading: ..." before it finds it may not
    try:
        with no_network(), contextlib.redirect_stdout(chatter):
            fn = pyiqa.create_metric(iqa_name, device=device, **kwargs)
    except Exception as e:  # missing weights surface as many exception types across pyiqa versions
        return Metric(name, None, f"n/a: {iqa_name} weights not available offline ({type(e).__name__})", higher)
    return Metric(name, fn, "", higher, fn.metric_mode == "FR")


def score(metric: Metric, sr: Tensor, hr: Tensor | None) -> tuple[Tensor | None, str]:
    """Per-image scores [N] of sr (and hr for full-reference metrics), images in [0, 1]; or (None, reason)."""
    if metric.fn is None:
        return None, metric.reason
    need = MIN_SIDE.get(metric.name, 0)
    if min(sr.shape[-2:]) < need:
        return None, f"n/a: {metric.name} needs images of at least {need}px, got {tuple(sr.shape[-2:])}"
    with torch.no_grad():
        vals = [metric.fn(s[None], h[None]) if metric.full_reference else metric.fn(s[None])
                for s, h in zip(sr, hr if hr is not None else sr)]
    return torch.stack([v.flatten()[0].float() for v in vals]), ""


def psnr(sr: Tensor, hr: Tensor) -> Tensor:
    """RGB PSNR per image in dB (peak 1), as pyiqa's default."""
    mse = (sr.double() - hr.double()).pow(2).flatten(1).mean(1)
    return (10 * torch.log10(1.0 / mse.clamp_min(1e-12))).float()


def mean_psnr_db(sr: Tensor, hr: Tensor) -> float:
    """Mean of the per-image PSNRs in dB, rounded to 0.01 dB: the number the benchmarks report."""
    return round(psnr(sr, hr).mean().item(), 2)


def band_psnr(sr: Tensor, hr: Tensor, radius: float = 0.25) -> dict[str, Tensor]:
    """PSNR of the error restricted to the LF ring and to the HF band (peak 1, per image).

    The bands are orthogonal, so mse_lf + mse_hf = mse of the whole error (Parseval).
    """
    err = spectrum(sr.double() - hr.double(), norm="ortho")
    low, high = radial_masks(*sr.shape[-2:], radius, device=sr.device)
    n = sr[0].numel()
    out = {}
    for band, m in (("lf", low), ("hf", high)):
        mse = (err.abs() ** 2 * m).flatten(1).sum(1) / n
        out[f"psnr_{band}"] = (10 * torch.log10(1.0 / mse.clamp_min(1e-12))).float()
    return out


def radial_log_power(images: Tensor) -> tuple[Tensor, Tensor]:
    """Radially averaged power spectrum of the luma in dB: (radius as a fraction of Nyquist [K], [N, K]).

    Bins are integer radii 1..min(H, W)/2 (the DC term is left out)."""
    luma = 0.299 * images[:, 0] + 0.587 * images[:, 1] + 0.114 * images[:, 2]
    power = spectrum(luma.double(), norm="ortho").abs().pow(2)  # [N, H, W], centred
    h, w = luma.shape[-2:]
    n_bins = min(h, w) // 2
    bins = torch.round(radial_frequency(h, w, images.device) * n_bins).long().flatten()
    keep = (bins >= 1) & (bins <= n_bins)
    flat = power.flatten(1)[:, keep]
    idx = bins[keep] - 1
    sums = torch.zeros(power.shape[0], n_bins, dtype=power.dtype).index_add_(1, idx, flat)
    counts = torch.bincount(idx, minlength=n_bins).clamp_min(1)
    radius = torch.arange(1, n_bins + 1, dtype=torch.float64) / n_bins
    return radius, 10 * torch.log10(sums / counts + 1e-20)


def spectral_distance(sr: Tensor, hr: Tensor, radius: float = 0.25) -> dict[str, Tensor]:
    """Mean |SR - HR| of the radially averaged log power spectra (dB) in the LF ring and the HF band, per image.

    0 means SR has exactly HR's power at every frequency; bicubic upsampling lacks HF power (large spec_hf)."""
    r, p_sr = radial_log_power(sr)
    _, p_hr = radial_log_power(hr)
    diff = (p_sr - p_hr).abs()
    low = r <= radius
    return {"spec_lf": diff[:, low].mean(1).float(), "spec_hf": diff[:, ~low].mean(1).float()}


def evaluate_images(sr: Tensor, hr: Tensor | None, protocol: str = "offline", device: str = "cpu",
                    band_radius: float = 0.25) -> tuple[dict[str, Tensor | None], dict[str, str]]:
    """All metrics of a protocol plus band PSNRs: ({metric: [N] or None}, {metric: reason if n/a})."""
    if protocol not in PROTOCOLS:
        raise KeyError(f"unknown protocol {protocol!r}; known: {', '.join(PROTOCOLS)}")
    values, reasons = {}, {}
    for name in PROTOCOLS[protocol]:
        m = build(name, device)
        if hr is None and m.full_reference and m.fn is not None:
            values[name], reasons[name] = None, "n/a: no ground truth"
            continue
        values[name], reasons[name] = score(m, sr, hr)
    if hr is not None:
        values.update(band_psnr(sr, hr, band_radius))
        values.update(spectral_distance(sr, hr, band_radius))
    return values, {k: v for k, v in reasons.items() if v}


# direction of every column our tables show: True when higher is better
HIGHER_BETTER: dict[str, bool] = {**{k: v[2] for k, v in METRICS.items()}, "psnr_lf": True, "psnr_hf": True,
                                  "spec_lf": False, "spec_hf": False}
