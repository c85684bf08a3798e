"""Pixel <-> model space: identity or lossless pixel-unshuffle for the tiny models, a pipeline's VAE for SD.

Every space maps images in [-1, 1] [B, 3, H, W] to the model's space and back, and names the view FRAMER's
FFT takes (`spectral`): pixels for pixel spaces (pixel-unshuffle is a lossless reshuffle, so the image
spectrum is the meaningful one), the latents themselves for a VAE (as the released FRAMER-D code does).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor


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
        return F.pixel_unshuffle(images, self.factor) if self.factor > 1 else images

    def decode(self, z: Tensor) -> Tensor:
        if self.factor == 1:
            return z
        lead = z.shape[:-3]  # maps may carry leading layer axes [..., C, H, W]
        return F.pixel_shuffle(z.reshape(-1, *z.shape[-3:]), self.factor).reshape(*lead, -1, *(
            s * self.factor for s in z.shape[-2:]))

    def spectral(self, z: Tensor) -> Tensor:
        return self.decode(z)

    def describe(self) -> str:
        return "pixels" if self.factor == 1 else f"pixels, unshuffled x{self.factor}"


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
