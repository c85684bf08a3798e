"""Named metric protocols over pyiqa, plus frequency-resolved fidelity (LF-band and HF-band PSNR).

Offline, psnr/ssim and NIQE (basicsr's published pristine parameters, shipped in data/niqe/) work.
Learned metrics run when their weight files are cached; otherwise they are reported as n/a with a
one-line reason. While a metric is built, sockets are refused, so a missing file never means a
network retry or a hang.
"""

from __future__ import annotations

import contextlib
import socket
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from .freq import radial_masks, spectrum

NIQE_NPZ = Path(__file__).resolve().parents[1] / "data" / "niqe" / "niqe_pris_params.npz"
NIQE_MIN_SIDE = 96  # NIQE statistics are computed on 96 x 96 blocks

# name in our tables -> (pyiqa metric, kwargs, higher is better)
METRICS: dict[str, tuple[str, dict, bool]] = {
    "psnr": ("psnr", {}, True),  # pyiqa default: RGB
    "ssim": ("ssim", {}, True),  # pyiqa default: luma of YIQ (0.299 R + 0.587 G + 0.114 B)
    "psnr_y": ("psnr", {"test_y_channel": True, "color_space": "ycbcr"}, True),  # BT.601 luma, 16-235
    "ssim_y": ("ssim", {"test_y_channel": True, "color_space": "ycbcr"}, True),
    "lpips": ("lpips", {}, False),
    "dists": ("dists", {}, False),
    "niqe": ("niqe", {}, False),
    "musiq": ("musiq", {}, True),
    "maniqa": ("maniqa", {}, True),
    "maniqa_pipal": ("maniqa-pipal", {}, True),
    "clipiqa": ("clipiqa", {}, True),
}

PROTOCOLS: dict[str, tuple[str, ...]] = {
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
    """Refuse every socket connection inside the block (fast failure instead of retries)."""
    original = socket.socket.connect

    def refuse(self, *args, **kwargs):
        raise OSError("network disabled while building metrics (weights must be cached locally)")

    socket.socket.connect = refuse
    try:
        yield
    finally:
        socket.socket.connect = original


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
    try:
        with no_network():
            fn = pyiqa.create_metric(iqa_name, device=device, **kwargs)
    except Exception as e:  # missing weights surface as many exception types across pyiqa versions
        return Metric(name, None, f"n/a: {iqa_name} weights not available offline ({type(e).__name__})", higher)
    return Metric(name, fn, "", higher, fn.metric_mode == "FR")


def score(metric: Metric, sr: Tensor, hr: Tensor | None) -> tuple[Tensor | None, str]:
    """Per-image scores [N] of sr (and hr for full-reference metrics), images in [0, 1]; or (None, reason)."""
    if metric.fn is None:
        return None, metric.reason
    if metric.name == "niqe" and min(sr.shape[-2:]) < NIQE_MIN_SIDE:
        return None, f"n/a: NIQE needs images of at least {NIQE_MIN_SIDE}px, got {tuple(sr.shape[-2:])}"
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


def evaluate_images(sr: Tensor, hr: Tensor | None, protocol: str = "framer", device: str = "cpu",
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
    return values, {k: v for k, v in reasons.items() if v}
