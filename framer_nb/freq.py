"""Centred 2-D spectra, LF/HF band masks, band vectors, band energies and band histograms."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def spectrum(x: Tensor, norm: str = "backward") -> Tensor:
    """Centred complex 2-D FFT over the last two axes (float32 or wider)."""
    x = x.float() if x.dtype in (torch.float16, torch.bfloat16) else x
    return torch.fft.fftshift(torch.fft.fft2(x, norm=norm), dim=(-2, -1))


def radial_frequency(h: int, w: int, device=None, half: bool = False) -> Tensor:
    """[H, W] radius of each centred FFT bin, as a fraction of Nyquist (1.0 = Nyquist on an axis); with `half`,
    [H, W//2+1] on the uncentred rfft2 grid of `half_magnitudes`."""
    if half:
        fy, fx = torch.fft.fftfreq(h, device=device), torch.fft.rfftfreq(w, device=device)
    else:
        fy = torch.fft.fftshift(torch.fft.fftfreq(h, device=device))
        fx = torch.fft.fftshift(torch.fft.fftfreq(w, device=device))
    return torch.sqrt((fy[:, None] / 0.5) ** 2 + (fx[None, :] / 0.5) ** 2)


def radial_masks(h: int, w: int, radius: float, device=None) -> tuple[Tensor, Tensor]:
    """[H, W] boolean LF (inside the ring) and HF (outside) masks."""
    low = radial_frequency(h, w, device) <= radius
    return low, ~low


def quantile_masks(teacher_mag: Tensor, cutoff: float, values: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Per-sample masks from teacher magnitudes [B, ...]: LF = bins below the cutoff quantile of `values` [B, ...]
    (default: the magnitudes themselves)."""
    q = torch.quantile((teacher_mag if values is None else values).flatten(1).float(), cutoff, dim=1)
    low = teacher_mag < q.view(-1, *([1] * (teacher_mag.dim() - 1)))
    return low, ~low


def band_masks(teacher_mag: Tensor, mode: str = "quantile", cutoff: float = 0.2,
               radius: float = 0.25) -> tuple[Tensor, Tensor]:
    """LF and HF boolean masks shaped like `teacher_mag` [B, C, H, W]."""
    if mode == "quantile":
        return quantile_masks(teacher_mag, cutoff)
    if mode == "radial":
        low, high = radial_masks(*teacher_mag.shape[-2:], radius, device=teacher_mag.device)
        return low.expand_as(teacher_mag), high.expand_as(teacher_mag)
    raise ValueError(f"unknown band mask mode {mode!r}; use 'quantile' or 'radial'")


def half_magnitudes(x: Tensor) -> tuple[Tensor, Tensor]:
    """|F| of real images on the rfft2 grid [..., H, W//2+1] (uncentred), and each column's multiplicity in the
    full spectrum [W//2+1]: 1 for the DC column (and the Nyquist column when W is even), else 2.

    The full magnitude spectrum of a real image mirrors these columns (|F(k)| = |F(-k)|), so any sum over it is
    the multiplicity-weighted sum over them, at half the cost of the FFT and of everything after it."""
    x = x.float() if x.dtype in (torch.float16, torch.bfloat16) else x
    mag = torch.fft.rfft2(x).abs()
    mult = torch.ones(mag.shape[-1], dtype=mag.dtype, device=mag.device)
    mult[_mirrored(x.shape[-1])] = 2.0
    return mag, mult


def _mirrored(width: int) -> slice:
    """The rfft2 columns that the full spectrum of images `width` pixels wide holds twice."""
    return slice(1, width - width // 2)


def half_band_masks(teacher_mag: Tensor, width: int, mode: str = "quantile", cutoff: float = 0.2,
                    radius: float = 0.25) -> tuple[Tensor, Tensor]:
    """`band_masks` on the rfft2 grid of images `width` pixels wide: the masks of the full spectrum, restricted to
    its non-redundant half (quantiles are taken over the full spectrum's values, mirrored columns included)."""
    if mode == "quantile":
        full = torch.cat([teacher_mag, teacher_mag[..., _mirrored(width)]], dim=-1)
        return quantile_masks(teacher_mag, cutoff, values=full)
    if mode == "radial":
        low = radial_frequency(teacher_mag.shape[-2], width, teacher_mag.device, half=True) <= radius
        return low.expand_as(teacher_mag), (~low).expand_as(teacher_mag)
    raise ValueError(f"unknown band mask mode {mode!r}; use 'quantile' or 'radial'")


def band_vectors(mag: Tensor, mask: Tensor) -> Tensor:
    """L2-normalised flattened masked magnitudes: [..., C, H, W] -> [..., C*H*W]. A float mask weights the bins.

    Divided by their (detached) largest entry first: the direction is unchanged, and squaring large magnitudes
    cannot overflow fp32 into a zero vector. NaN or infinite magnitudes give NaN, never a silent zero."""
    v = (mag * mask).flatten(-3)
    return F.normalize(v / v.detach().amax(-1, keepdim=True).clamp_min(1e-30), dim=-1)


def band_energy(mag: Tensor, mask: Tensor, eps: float = 1e-9, mult: Tensor | None = None) -> Tensor:
    """Mean masked magnitude per channel, averaged over channels: [..., C, H, W] -> [...]. With `mult` (the
    column multiplicities of `half_magnitudes`), the mean over the full spectrum from its half."""
    mask = mask if mult is None else mask * mult
    per_channel = (mag * mask).sum((-2, -1)) / (mask.sum((-2, -1)) + eps)
    return per_channel.mean(-1)


def cosine_to(vectors: Tensor, reference: Tensor) -> Tensor:
    """Dot products of unit vectors [..., B, D] with reference [B, D] -> [..., B]."""
    return (vectors * reference).sum(-1)


def band_log_magnitudes(images: Tensor, radius: float, norm: str = "ortho") -> tuple[Tensor, Tensor]:
    """log(1+|F|) of images [N, C, H, W] inside (LF) and outside (HF) a radial ring: two [N, K] tensors."""
    logmag = torch.log1p(spectrum(images, norm=norm).abs())
    low, high = radial_masks(*images.shape[-2:], radius, device=images.device)
    flat = logmag.permute(0, 2, 3, 1)  # [N, H, W, C]
    return flat[:, low].flatten(1), flat[:, high].flatten(1)


def band_histograms(groups: dict[str, Tensor], bins: int = 60, top_percentile: float = 99.9
                    ) -> tuple[Tensor, dict[str, Tensor], dict[str, float]]:
    """Per-sample densities of several [N, K] value sets on shared bin edges chosen from the data.

    The edges span [0, the pooled `top_percentile`]; values above it are left out of the bins (not piled into
    the last one) but stay in the normalisation, so each density integrates to 1 minus its share beyond the
    range. Returns the edges [bins+1], densities [N, bins] per group, and each group's share beyond the range."""
    pooled = torch.cat([g.flatten() for g in groups.values()])
    sample = pooled[torch.randperm(pooled.numel(), generator=torch.Generator().manual_seed(0))[:1_000_000]]
    hi = float(torch.quantile(sample, top_percentile / 100))
    edges = torch.linspace(0.0, hi, bins + 1)
    width = edges[1] - edges[0]
    out, beyond = {}, {}
    for name, values in groups.items():
        inside = values <= hi
        idx = torch.bucketize(values.clamp(0.0, hi), edges[1:-1])
        counts = torch.zeros(values.shape[0], bins).scatter_add_(1, idx, inside.float())
        out[name] = counts / (values.shape[1] * width)
        beyond[name] = float((~inside).float().mean())
    return edges, out, beyond
