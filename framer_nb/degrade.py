"""Degradations: classic bicubic x4 (the small profile's main task) and Real-ESRGAN's second-order pipeline.

`bicubic`: antialiased bicubic downsampling, then 8-bit quantisation (no randomness).
Real-ESRGAN second-order degradation in torch, written from its published description (not vendored).

Stage k (k = 1, 2): blur (Gaussian / generalised / plateau, iso or aniso, or sinc), random resize,
Gaussian or Poisson noise (colour or grey), JPEG. Then, in random order, [resize to 1/scale + sinc]
and [JPEG]. Every random choice comes from the caller's torch.Generator, so a seed fixes the output.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from scipy.special import j1
from torch import Tensor
from torchvision.io import decode_jpeg, encode_jpeg

from .presets import BicubicConfig, DegradeConfig, load_preset, preset_path  # noqa: F401  (used by callers)

RESIZE_MODES = ("area", "bilinear", "bicubic")


# ---------------------------------------------------------------- random draws

def _u(g: torch.Generator, lo: float, hi: float) -> float:
    return lo + (hi - lo) * float(torch.rand(1, generator=g))


def _coin(g: torch.Generator, p: float) -> bool:
    return float(torch.rand(1, generator=g)) < p


def _choice(g: torch.Generator, options, probs=None):
    p = torch.tensor(probs if probs is not None else [1.0] * len(options), dtype=torch.float)
    return options[int(torch.multinomial(p, 1, generator=g))]


def _odd_size(g: torch.Generator, lo: int, hi: int) -> int:
    sizes = list(range(lo | 1, hi + 1, 2))
    return sizes[int(torch.randint(0, len(sizes), (1,), generator=g))]


# ---------------------------------------------------------------- kernels

def _grid(size: int) -> np.ndarray:
    r = np.arange(size) - size // 2
    return np.stack(np.meshgrid(r, r, indexing="ij"), -1).astype(np.float64)  # [k, k, 2]


def _quadratic(size: int, sx: float, sy: float, theta: float) -> np.ndarray:
    """x^T Sigma^-1 x on a grid, Sigma = R diag(sx^2, sy^2) R^T."""
    rot = np.array([[math.cos(theta), -math.sin(theta)], [math.sin(theta), math.cos(theta)]])
    inv = np.linalg.inv(rot @ np.diag([sx ** 2, sy ** 2]) @ rot.T)
    xy = _grid(size)
    return np.einsum("ijk,kl,ijl->ij", xy, inv, xy)


def shaped_kernel(kind: str, size: int, sx: float, sy: float, theta: float, beta: float = 1.0) -> np.ndarray:
    """Normalised blur kernel of a Real-ESRGAN type."""
    q = _quadratic(size, sx, sy, theta)
    if kind in ("iso", "aniso"):
        k = np.exp(-0.5 * q)
    elif kind.startswith("generalized"):
        k = np.exp(-0.5 * q ** beta)
    elif kind.startswith("plateau"):
        k = 1.0 / (1.0 + q ** beta)
    else:
        raise ValueError(f"unknown kernel type {kind!r}")
    return k / k.sum()


def sinc_kernel(size: int, cutoff: float) -> np.ndarray:
    """Circular low-pass (2-D sinc) with cutoff in radians per pixel, normalised."""
    r = np.linalg.norm(_grid(size), axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        k = cutoff * j1(cutoff * r) / (2 * np.pi * r)
    k[r == 0] = cutoff ** 2 / (4 * np.pi)
    return k / k.sum()


def random_kernel(g: torch.Generator, cfg: DegradeConfig, second: bool) -> np.ndarray:
    """One random blur kernel for stage 1 or 2."""
    sizes = cfg.kernel_sizes2 if second else cfg.kernel_sizes
    size = _odd_size(g, *sizes)
    if _coin(g, cfg.sinc_prob2 if second else cfg.sinc_prob):
        lo = math.pi / 3 if size < 13 else math.pi / 5  # Real-ESRGAN's lower cutoffs for small / large kernels
        return sinc_kernel(size, _u(g, lo, math.pi))
    kind = _choice(g, cfg.kernel_types, cfg.kernel_probs)
    sig = cfg.blur_sigma2 if second else cfg.blur_sigma
    sx = _u(g, *sig)
    sy, theta = (sx, 0.0) if kind.endswith("iso") and not kind.endswith("aniso") else (_u(g, *sig), _u(g, -math.pi, math.pi))
    beta_range = (cfg.betag_range2 if second else cfg.betag_range) if kind.startswith("generalized") else \
        (cfg.betap_range2 if second else cfg.betap_range)
    beta = _u(g, *beta_range)
    return shaped_kernel(kind, size, sx, sy, theta, beta)


def filter2d(x: Tensor, kernel: np.ndarray) -> Tensor:
    """Convolve [B, C, H, W] with one kernel, reflect padding (kernel larger than the image: replicate)."""
    k = torch.as_tensor(kernel, dtype=x.dtype)
    p = k.shape[-1] // 2
    mode = "reflect" if p < min(x.shape[-2:]) else "replicate"
    c = x.shape[1]
    return F.conv2d(F.pad(x, (p, p, p, p), mode=mode), k.view(1, 1, *k.shape).repeat(c, 1, 1, 1), groups=c)


# ---------------------------------------------------------------- operations

def resize(x: Tensor, size: tuple[int, int], mode: str) -> Tensor:
    size = (max(1, size[0]), max(1, size[1]))
    if mode == "area":
        return F.interpolate(x, size=size, mode="area")
    return F.interpolate(x, size=size, mode=mode, align_corners=False)


def add_gaussian_noise(x: Tensor, sigma: float, gray: bool, g: torch.Generator) -> Tensor:
    """Additive Gaussian noise, sigma on the 0-255 scale; grey noise is shared across channels."""
    shape = (x.shape[0], 1, *x.shape[2:]) if gray else x.shape
    return x + torch.randn(shape, generator=g).to(x) * sigma / 255.0


def add_poisson_noise(x: Tensor, scale: float, gray: bool, g: torch.Generator) -> Tensor:
    """Poisson (shot) noise, its strength multiplied by `scale`; grey noise computed on luma."""
    src = x.clamp(0, 1)
    if gray:
        src = (0.299 * src[:, :1] + 0.587 * src[:, 1:2] + 0.114 * src[:, 2:3])
    vals = 2 ** np.ceil(np.log2(max(len(torch.unique((src * 255).round())), 2)))
    noisy = torch.poisson(src * vals, generator=g) / vals
    return x + (noisy - src) * scale


def jpeg(x: Tensor, quality: int) -> Tensor:
    """JPEG round trip of each image at the given quality."""
    u8 = (x.clamp(0, 1) * 255).round().to(torch.uint8)
    out = [decode_jpeg(encode_jpeg(img, quality=int(quality))) for img in u8]
    return torch.stack(out).to(x.dtype) / 255.0


def _noise(x: Tensor, g: torch.Generator, cfg: DegradeConfig, second: bool) -> Tensor:
    gauss_p = cfg.gaussian_noise_prob2 if second else cfg.gaussian_noise_prob
    gray = _coin(g, cfg.gray_noise_prob2 if second else cfg.gray_noise_prob)
    if _coin(g, gauss_p):
        return add_gaussian_noise(x, _u(g, *(cfg.noise_range2 if second else cfg.noise_range)), gray, g)
    return add_poisson_noise(x, _u(g, *(cfg.poisson_scale_range2 if second else cfg.poisson_scale_range)), gray, g)


def _random_resize(x: Tensor, g: torch.Generator, cfg: DegradeConfig, second: bool, base: tuple[int, int]) -> Tensor:
    probs = cfg.resize_prob2 if second else cfg.resize_prob
    lo, hi = cfg.resize_range2 if second else cfg.resize_range
    direction = _choice(g, ("up", "down", "keep"), probs)
    s = _u(g, 1.0, hi) if direction == "up" else (_u(g, lo, 1.0) if direction == "down" else 1.0)
    return resize(x, (int(base[0] * s), int(base[1] * s)), _choice(g, RESIZE_MODES))


# ---------------------------------------------------------------- the pipeline

def degrade_one(hr: Tensor, cfg: DegradeConfig, g: torch.Generator) -> Tensor:
    """HR [1, 3, H, W] in [0, 1] -> LR [1, 3, H/scale, W/scale] in [0, 1] (8-bit values)."""
    h, w = hr.shape[-2:]
    out_size = (h // cfg.scale, w // cfg.scale)
    x = filter2d(hr, random_kernel(g, cfg, second=False))
    x = _random_resize(x, g, cfg, False, (h, w))
    x = jpeg(_noise(x, g, cfg, False).clamp(0, 1), round(_u(g, *cfg.jpeg_range)))
    if _coin(g, cfg.second_blur_prob):
        x = filter2d(x, random_kernel(g, cfg, second=True))
    x = _random_resize(x, g, cfg, True, out_size)
    x = _noise(x, g, cfg, True).clamp(0, 1)
    final_sinc = sinc_kernel(_odd_size(g, *cfg.kernel_sizes), _u(g, math.pi / 3, math.pi)) \
        if _coin(g, cfg.final_sinc_prob) else None
    q2 = round(_u(g, *cfg.jpeg_range2))
    mode = _choice(g, RESIZE_MODES)
    if _coin(g, 0.5):  # resize + sinc, then JPEG
        x = resize(x, out_size, mode)
        x = jpeg((filter2d(x, final_sinc) if final_sinc is not None else x).clamp(0, 1), q2)
    else:  # JPEG, then resize + sinc
        x = resize(jpeg(x, q2), out_size, mode)
        x = filter2d(x, final_sinc) if final_sinc is not None else x
    return (x.clamp(0, 1) * 255).round() / 255


def bicubic_down(hr: Tensor, scale: int) -> Tensor:
    """Antialiased bicubic downsampling by `scale`, quantised to 8 bits."""
    lr = F.interpolate(hr, scale_factor=1 / scale, mode="bicubic", antialias=True, align_corners=False)
    return (lr.clamp(0, 1) * 255).round() / 255


def degrade(hr: Tensor, cfg: DegradeConfig | BicubicConfig | str, generator: torch.Generator | None = None) -> Tensor:
    """A batch of HR images [B, 3, H, W] -> LR [B, 3, H/scale, W/scale], one random draw per image."""
    cfg = load_preset(cfg) if isinstance(cfg, str) else cfg
    if hr.shape[-1] % cfg.scale or hr.shape[-2] % cfg.scale:
        raise ValueError(f"HR size {tuple(hr.shape[-2:])} is not divisible by the scale {cfg.scale}")
    if isinstance(cfg, BicubicConfig):
        return bicubic_down(hr, cfg.scale)
    return torch.cat([degrade_one(img[None], cfg, generator) for img in hr])


def bicubic_up(lr: Tensor, scale: int) -> Tensor:
    """Bicubic upsampling of LR to the HR size (the model's LR condition), clamped to [0, 1]."""
    return F.interpolate(lr, scale_factor=scale, mode="bicubic", align_corners=False).clamp(0, 1)
