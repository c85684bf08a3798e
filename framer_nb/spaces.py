"""Pixel <-> model space: identity or lossless pixel-unshuffle for the tiny models, a pipeline's VAE for SD.

Every space maps images in [-1, 1] [B, 3, H, W] to the model's space and back, and names the view FRAMER's
FFT takes (`spectral`): pixels for pixel spaces (pixel-unshuffle is a lossless reshuffle, so the image
spectrum is the meaningful one), the latents themselves for a VAE (as the released FRAMER-D code does).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


def shuffle(z: Tensor, r: int) -> Tensor:
    """`F.pixel_shuffle` on maps with any leading axes [..., C r^2, H, W] -> [..., C, H r, W r], as one view,
    permute and copy: on one CPU thread its forward plus backward pass is about 2.5x faster than the stock op's
    on the FRAMER students [layers, batch, 48, 16, 16] (benchmarks/results/optimizer_step.json)."""
    *lead, c, h, w = z.shape
    n = len(lead)
    z = z.reshape(*lead, c // (r * r), r, r, h, w).permute(*range(n), n, n + 3, n + 1, n + 4, n + 2)
    return z.reshape(*lead, c // (r * r), h * r, w * r)


def unshuffle(x: Tensor, r: int) -> Tensor:
    """`F.pixel_unshuffle` on images with any leading axes [..., C, H r, W r] -> [..., C r^2, H, W]."""
    *lead, c, hr, wr = x.shape
    if hr % r or wr % r:
        raise ValueError(f"cannot pixel-unshuffle a {hr}x{wr} map by {r}: both sides must be divisible by it")
    n, h, w = len(lead), hr // r, wr // r
    x = x.reshape(*lead, c, h, r, w, r).permute(*range(n), n, n + 2, n + 4, n + 1, n + 3)
    return x.reshape(*lead, c * r * r, h, w)


@dataclass(frozen=True)
class PixelSpace:
    """Pixels, optionally pixel-unshuffled by `factor` (16x16x48 for a 64-px RGB crop at factor 4)."""

    factor: int = 1

    @property
    def downscale(self) -> int:
        return self.factor

    def channels(self, image_channels: int = 3) -> int:
        return image_channels * self.factor ** 2

    def encode(self, images: Tensor) -> Tensor:
        return unshuffle(images, self.factor) if self.factor > 1 else images

    def decode(self, z: Tensor) -> Tensor:
        return shuffle(z, self.factor) if self.factor > 1 else z

    def spectral(self, z: Tensor) -> Tensor:
        return self.decode(z)

    def describe(self) -> str:
        return "pixels" if self.factor == 1 else f"pixels, unshuffled x{self.factor}"

    @property
    def latent(self) -> bool:
        return False

    def prepare(self, device, dtype=None) -> None:
        """Nothing to move: pixel spaces hold no weights."""


@dataclass
class VAESpace:
    """A pipeline's AutoencoderKL with its scaling and shift factors; latents are the VAE posterior's mean."""

    vae: torch.nn.Module

    @property
    def downscale(self) -> int:
        return 2 ** (len(self.vae.config.block_out_channels) - 1)

    def channels(self, image_channels: int = 3) -> int:
        return self.vae.config.latent_channels

    @torch.no_grad()
    def encode(self, images: Tensor) -> Tensor:
        cfg = self.vae.config
        latents = self.vae.encode(images.to(self.vae.dtype)).latent_dist.mode()
        return ((latents - (cfg.shift_factor or 0.0)) * cfg.scaling_factor).float()

    def decode(self, z: Tensor) -> Tensor:
        cfg = self.vae.config
        x = z.to(self.vae.dtype) / cfg.scaling_factor + (cfg.shift_factor or 0.0)
        return self.vae.decode(x, return_dict=False)[0].float()

    def spectral(self, z: Tensor) -> Tensor:
        return z

    def describe(self) -> str:
        return f"VAE latents ({self.vae.config.latent_channels} channels, /{self.downscale})"

    @property
    def latent(self) -> bool:
        return True

    def prepare(self, device, dtype=None) -> None:
        """Move the frozen VAE to the training device (and dtype)."""
        self.vae.to(device, dtype)
        self.vae.requires_grad_(False)
