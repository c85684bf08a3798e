"""A registry of backbones: tiny CPU ones and the real SD2 / SD3.5 ones, built from config or loaded.

Models stay stock diffusers classes. LR conditioning is channel concatenation: `grow_input_channels`
adds zero-initialised input channels, so a pretrained (or prior) model behaves identically at step 0.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from diffusers import AutoencoderKL, SD3Transformer2DModel, UNet2DConditionModel
from torch import Tensor, nn

from .diffusion import Objective, model_timestep

TINY_DIT = dict(sample_size=32, patch_size=2, in_channels=3, out_channels=3, num_layers=6,
                attention_head_dim=16, num_attention_heads=4, joint_attention_dim=32,
                caption_projection_dim=64, pooled_projection_dim=32, pos_embed_max_size=64,
                dual_attention_layers=(0, 1), qk_norm="rms_norm")
SD35_MEDIUM = dict(sample_size=128, patch_size=2, in_channels=16, out_channels=16, num_layers=24,
                   attention_head_dim=64, num_attention_heads=24, joint_attention_dim=4096,
                   caption_projection_dim=1536, pooled_projection_dim=2048, pos_embed_max_size=384,
                   dual_attention_layers=tuple(range(13)), qk_norm="rms_norm")
TINY_UNET = dict(sample_size=32, in_channels=3, out_channels=3, block_out_channels=(32, 64, 64),
                 layers_per_block=1, down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
                 up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
                 cross_attention_dim=32, attention_head_dim=8, norm_num_groups=8, use_linear_projection=True)
SD2_BASE = dict(sample_size=64, in_channels=4, out_channels=4, block_out_channels=(320, 640, 1280, 1280),
                layers_per_block=2, down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
                up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3, cross_attention_dim=1024,
                attention_head_dim=(5, 10, 20, 20), use_linear_projection=True)


@dataclass(frozen=True)
class BackboneSpec:
    """How to build or load one backbone."""

    name: str
    kind: str  # dit | unet
    config: dict
    objective: Objective
    space: str = "pixel"  # pixel | latent (needs a VAE)
    hub_id: str | None = None


REGISTRY: dict[str, BackboneSpec] = {
    # Tiny pixel-space models predict x0 (benchmarks/results/sr_knobs.json): asked for v or epsilon they must
    # carry the unit-variance noise through the network, which a tiny model does poorly. Real backbones: native.
    "tiny-dit": BackboneSpec("tiny-dit", "dit", TINY_DIT, Objective("flow", time_sampling="uniform", prediction="sample")),
    "tiny-unet": BackboneSpec("tiny-unet", "unet", TINY_UNET, Objective("ddpm", prediction="sample")),
    "sd35-medium": BackboneSpec("sd35-medium", "dit", SD35_MEDIUM, Objective("flow"), "latent",
                                "stabilityai/stable-diffusion-3.5-medium"),
    "sd2-base": BackboneSpec("sd2-base", "unet", SD2_BASE,
                             Objective("ddpm", 0.00085, 0.012, "scaled_linear"), "latent",
                             "stabilityai/stable-diffusion-2-base"),
}


@dataclass
class Backbone:
    """A stock diffusers model with its objective, LR-channel count and (for latent space) its VAE."""

    spec: BackboneSpec
    model: nn.Module
    lr_channels: int = 0
    vae: AutoencoderKL | None = None
    context: dict = field(default_factory=dict)  # fixed conditioning (null prompt) per sample
    runner: nn.Module | None = None  # the module to call, e.g. accelerate's DDP wrapper of `model`
    residual_scale: float = 0.0  # 0: x0 is the HR image; s > 0: x0 = s * (HR - bicubic(LR)), SRDiff-style

    @property
    def residual(self) -> bool:
        return self.residual_scale > 0

    @property
    def objective(self) -> Objective:
        return self.spec.objective

    @property
    def out_channels(self) -> int:
        return self.model.config.out_channels


def spec(name: str) -> BackboneSpec:
    """The registered spec of a backbone name."""
    if name not in REGISTRY:
        raise KeyError(f"unknown backbone {name!r}; known: {', '.join(REGISTRY)}")
    return REGISTRY[name]


def build(name: str, seed: int = 0, **overrides) -> Backbone:
    """A randomly initialised backbone from its registered config (overrides change config keys)."""
    s = spec(name)
    torch.manual_seed(seed)
    cls = SD3Transformer2DModel if s.kind == "dit" else UNet2DConditionModel
    model = cls(**{**s.config, **overrides})
    return Backbone(s, model, context=_null_context(model, s.kind))


def load(name: str, path: str, lr_channels: int | None = None, with_vae: bool = True) -> Backbone:
    """Load weights with `from_pretrained` from a local folder or hub id (pipeline layout or bare model).

    If the checkpoint has no LR channels yet and `lr_channels` is given, they are added zero-initialised.
    """
    s = spec(name)
    cls = SD3Transformer2DModel if s.kind == "dit" else UNet2DConditionModel
    model = _from_pretrained(cls, path, "transformer" if s.kind == "dit" else "unet")
    vae = _from_pretrained(AutoencoderKL, path, "vae") if (with_vae and s.space == "latent") else None
    bb = Backbone(s, model, vae=vae, context=_null_context(model, s.kind))
    base_in = model.config.out_channels
    bb.lr_channels = model.config.in_channels - base_in
    if lr_channels and bb.lr_channels == 0:
        grow_input_channels(bb, lr_channels)
    return bb


def _from_pretrained(cls, path: str, subfolder: str):
    """Try the pipeline layout (path/subfolder) first, then a bare model folder."""
    try:
        return cls.from_pretrained(path, subfolder=subfolder)
    except OSError:
        return cls.from_pretrained(path)


def _null_context(model: nn.Module, kind: str) -> dict:
    """Zero text conditioning (no captions here): one token of the model's context width."""
    cfg = model.config
    if kind == "dit":
        return {"encoder_hidden_states": torch.zeros(1, 1, cfg.joint_attention_dim),
                "pooled_projections": torch.zeros(1, cfg.pooled_projection_dim)}
    return {"encoder_hidden_states": torch.zeros(1, 1, cfg.cross_attention_dim)}


def input_conv(model: nn.Module) -> nn.Conv2d:
    """The first convolution, whose input channels carry the noisy sample (+ LR)."""
    return model.pos_embed.proj if isinstance(model, SD3Transformer2DModel) else model.conv_in


def grow_input_channels(bb: Backbone, extra: int) -> None:
    """Add `extra` zero-initialised input channels (for the LR image) to the first convolution."""
    old = input_conv(bb.model)
    new = nn.Conv2d(old.in_channels + extra, old.out_channels, old.kernel_size, old.stride, old.padding,
                    bias=old.bias is not None).to(old.weight.device, old.weight.dtype)
    with torch.no_grad():
        new.weight.zero_()
        new.weight[:, : old.in_channels] = old.weight
        if old.bias is not None:
            new.bias.copy_(old.bias)
    if isinstance(bb.model, SD3Transformer2DModel):
        bb.model.pos_embed.proj = new
    else:
        bb.model.conv_in = new
    bb.model.register_to_config(in_channels=new.in_channels)
    bb.lr_channels += extra


def predict(bb: Backbone, x_t: Tensor, t: Tensor, lr: Tensor | None = None) -> Tensor:
    """The network's prediction for noisy x_t at time t, conditioned on the (upsampled) LR by concatenation."""
    if bb.lr_channels:
        if lr is None:
            raise ValueError(f"{bb.spec.name} has {bb.lr_channels} LR channels but no LR input was given")
        x_t = torch.cat([x_t, lr.to(x_t.dtype)], dim=1)
    ctx = {k: v.to(x_t.device, x_t.dtype).expand(x_t.shape[0], *v.shape[1:]) for k, v in bb.context.items()}
    return (bb.runner or bb.model)(x_t, timestep=model_timestep(bb.objective, t), **ctx, return_dict=False)[0]


def sr_target(hr: Tensor, lr: Tensor, residual_scale: float) -> Tensor:
    """What is diffused for HR and bicubic-up LR in [-1, 1]: the HR (scale 0), or scale * (HR - LR)."""
    return (hr - lr) * residual_scale if residual_scale else hr


def sr_image(x0: Tensor, lr: Tensor, residual_scale: float) -> Tensor:
    """The inverse of `sr_target`: a clean estimate -> the SR image in [-1, 1]."""
    return x0 / residual_scale + lr if residual_scale else x0


def to_model_space(bb: Backbone, images: Tensor) -> Tensor:
    """Images in [-1, 1] -> the model's space (identity for pixel backbones, VAE latents otherwise)."""
    if bb.vae is None:
        return images
    cfg = bb.vae.config
    latents = bb.vae.encode(images.to(bb.vae.dtype)).latent_dist.sample()
    return (latents - (cfg.shift_factor or 0.0)) * cfg.scaling_factor


def to_pixels(bb: Backbone, x: Tensor) -> Tensor:
    """The model's space -> images in [-1, 1]."""
    if bb.vae is None:
        return x
    cfg = bb.vae.config
    return bb.vae.decode(x / cfg.scaling_factor + (cfg.shift_factor or 0.0), return_dict=False)[0]
