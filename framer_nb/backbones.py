"""A registry of backbones and `Backbone`, the small wrapper that owns a stock model's conventions.

Models stay stock diffusers classes. `Backbone` (in the spirit of EDM's `VPPrecond`) owns what sits around
the network: the LR condition concatenated on zero-initialised input channels, the timestep convention, the
conditioning, pixel <-> model space, the clean-signal (x0) estimates of the output and of every student
layer. It asks its family's `Adapter` (adapters.py) for everything that differs between SD3-style
transformers and SD2-style U-Nets, so the loss, the training loop and the sampler never branch on it.
"""

from __future__ import annotations

import hashlib
import json
import math
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path

import torch
from diffusers import AutoencoderKL
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from . import diffusion as D
from .adapters import ADAPTERS, Adapter, expand, has_text_encoders, scheduler_config, zero_lr_channels
from .config import TrainConfig
from .diffusion import Objective
from .spaces import PixelSpace, VAESpace
from .taps import UNetHeads, tap, unet_block_channels

# Tiny models work on 64-px RGB crops pixel-unshuffled x4: 16 x 16 x 48. CPU sizing measurements of the tiny DiT
# (patch 1 vs 2, width) and both backbones' step times: research/results/backbone_sizing_*.json.
TINY_DIT = dict(sample_size=16, patch_size=2, in_channels=48, out_channels=48, num_layers=6,
                attention_head_dim=32, num_attention_heads=4, joint_attention_dim=32,
                caption_projection_dim=128, pooled_projection_dim=32, pos_embed_max_size=32, qk_norm="rms_norm")
TINY_UNET = dict(sample_size=16, in_channels=48, out_channels=48, block_out_channels=(32, 64, 64),
                 layers_per_block=1, down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
                 up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
                 cross_attention_dim=32, attention_head_dim=16, norm_num_groups=16, use_linear_projection=True)
SD35_MEDIUM = dict(sample_size=128, patch_size=2, in_channels=16, out_channels=16, num_layers=24,
                   attention_head_dim=64, num_attention_heads=24, joint_attention_dim=4096,
                   caption_projection_dim=1536, pooled_projection_dim=2048, pos_embed_max_size=384,
                   dual_attention_layers=tuple(range(13)), qk_norm="rms_norm")
SD2_BASE = dict(sample_size=64, in_channels=4, out_channels=4, block_out_channels=(320, 640, 1280, 1280),
                layers_per_block=2, down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
                up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3, cross_attention_dim=1024,
                attention_head_dim=(5, 10, 20, 20), use_linear_projection=True)
_VAE = dict(in_channels=3, out_channels=3, block_out_channels=(128, 256, 512, 512), layers_per_block=2,
            down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4)
SD35_VAE = dict(_VAE, latent_channels=16, scaling_factor=1.5305, shift_factor=0.0609, use_quant_conv=False,
                use_post_quant_conv=False)
SD2_VAE = dict(_VAE, latent_channels=4, scaling_factor=0.18215)
# The LR condition's detail channels (Backbone.lr_detail): the upsampled LR minus its Gaussian blur of this sigma, in
# HR pixels. Chosen on the validation photos with the tiny DiT (sigma 1 / 2 / 4: +0.47 / +0.54 / +0.55 dB one-step
# gain over bicubic at gain 4, against +0.38 dB without detail channels; research/results/lr_condition.json).
DETAIL_SIGMA = 4.0


@dataclass(frozen=True)
class BackboneSpec:
    """How to build or load one backbone."""

    name: str
    family: str  # key of adapters.ADAPTERS
    config: dict
    objective: Objective  # a loaded pipeline's scheduler config takes precedence
    unshuffle: int = 1  # pixel models: pixel-unshuffle factor of the model space
    vae_config: dict | None = None  # latent models: the VAE (built at random for shape checks, else loaded)
    prior: str | None = None  # folder under data/priors with our shipped pretrained prior

    @property
    def adapter(self) -> Adapter:
        return ADAPTERS[self.family]

    @property
    def latent(self) -> bool:
        return self.vae_config is not None


REGISTRY: dict[str, BackboneSpec] = {
    # Tiny pixel-space models predict x0: asked for v or epsilon they must carry the unit-variance noise through
    # the network, which a tiny model does poorly (docs/method.md section 5). Real backbones: their native objective.
    "tiny-dit": BackboneSpec("tiny-dit", "sd3", TINY_DIT, Objective("flow", time_sampling="uniform",
                                                                    prediction="sample"), unshuffle=4,
                             prior="tiny-dit"),
    "tiny-unet": BackboneSpec("tiny-unet", "unet", TINY_UNET, Objective("ddpm", prediction="sample"), unshuffle=4,
                              prior="tiny-unet"),
    "sd35-medium": BackboneSpec("sd35-medium", "sd3", SD35_MEDIUM, Objective("flow", shift=3.0),
                                vae_config=SD35_VAE),
    "sd2-base": BackboneSpec("sd2-base", "unet", SD2_BASE, Objective("ddpm", 0.00085, 0.012, "scaled_linear"),
                             vae_config=SD2_VAE),
}


def register(s: BackboneSpec) -> BackboneSpec:
    """Add a backbone to the registry under its name (research probes register resized candidates)."""
    REGISTRY[s.name] = s
    return s


def spec(name: str) -> BackboneSpec:
    """The registered spec of a backbone name."""
    if name not in REGISTRY:
        raise KeyError(f"unknown backbone {name!r}; known: {', '.join(REGISTRY)}")
    return REGISTRY[name]


@dataclass
class Backbone:
    """A stock diffusers model with its adapter, space, objective, conditioning and LR-channel count."""

    spec: BackboneSpec
    model: nn.Module
    space: PixelSpace | VAESpace
    objective: Objective
    context: dict = field(default_factory=dict)  # null conditioning [1, ...] per model input
    lr_channels: int = 0
    residual_scale: float = 0.0  # 0: x0 is the HR in model space; s > 0: x0 = s * (HR - LR), SRDiff-style
    lr_detail: float = 0.0  # > 0: the LR condition also carries g * (LR - blur(LR)) (pixel spaces; `lr_condition`)
    runner: nn.Module | None = None  # the module to call, e.g. accelerate's DDP wrapper of `model`
    source: str = "random init"

    @property
    def adapter(self) -> Adapter:
        return self.spec.adapter

    @property
    def out_channels(self) -> int:
        return self.model.config.out_channels

    @property
    def residual(self) -> bool:
        return self.residual_scale > 0

    @property
    def num_students(self) -> int:
        return self.adapter.num_students(self.model)

    # ------------------------------------------------------------ the network call
    def predict(self, x_t: Tensor, t: Tensor, lr: Tensor | None = None, context: dict | None = None) -> Tensor:
        """The network's prediction for noisy x_t at time t, conditioned on the LR (model space) by concatenation."""
        if self.lr_channels:
            if lr is None:
                raise ValueError(f"{self.spec.name} has {self.lr_channels} LR channels but no LR input was given")
            cond = self.condition(lr.to(x_t.dtype))
            if cond.shape[1] != self.lr_channels:
                raise ValueError(f"{self.spec.name} has {self.lr_channels} LR channels, but its LR condition "
                                 f"(lr_detail={self.lr_detail}) has {cond.shape[1]}")
            x_t = torch.cat([x_t, cond], dim=1)
        ctx = expand(context if context is not None else self.context, x_t.shape[0], x_t)
        t_model = D.model_timestep(self.objective, t)
        return (self.runner or self.model)(x_t, timestep=t_model, **ctx, return_dict=False)[0]

    def condition(self, lr: Tensor) -> Tensor:
        """The LR condition fed on the LR channels, from the upsampled LR in model space."""
        return lr_condition(self.space, lr, self.lr_detail)

    def x0(self, pred: Tensor, x_t: Tensor, t: Tensor) -> Tensor:
        """Clean-signal estimate(s) from prediction(s) [..., B, C, H, W]."""
        return D.to_x0(self.objective, pred, x_t, t)

    # ------------------------------------------------------------ students
    def make_heads(self) -> UNetHeads | None:
        """Fresh training-only lens heads if the family needs them (U-Net), else None."""
        if not self.adapter.needs_heads:
            return None
        return UNetHeads(unet_block_channels(self.model), self.out_channels)

    def lens(self, heads: nn.Module | None = None, head_grad: bool = True) -> AbstractContextManager:
        """Hooks that record every layer during a forward pass (see taps.tap)."""
        return tap(self.model, self.adapter.hooks, heads, head_grad)

    def students(self, per_layer: Tensor, x_t: Tensor, t: Tensor) -> Tensor:
        """Per-layer predictions [L, B, C, H, W] -> student clean-signal estimates.

        SD3: the last block's lens is the output itself (a defect of the released code, docs/method.md): dropped."""
        x0 = self.x0(per_layer, x_t, t)
        return x0[:-1] if self.adapter.students_drop_last else x0

    # ------------------------------------------------------------ spaces and targets
    def to_model(self, images: Tensor) -> Tensor:
        """Images in [-1, 1] -> model space."""
        return self.space.encode(images)

    def to_pixels(self, z: Tensor) -> Tensor:
        """Model space -> images in [-1, 1]."""
        return self.space.decode(z)

    def sr_target(self, hr: Tensor, lr: Tensor) -> Tensor:
        """What is diffused, in model space, for HR and upsampled-LR model-space tensors."""
        return sr_target(hr, lr, self.residual_scale)

    def sr_image(self, x0: Tensor, lr: Tensor) -> Tensor:
        """The inverse of `sr_target`: a clean estimate -> the SR sample in model space."""
        return sr_image(x0, lr, self.residual_scale)

    # ------------------------------------------------------------ growing and moving
    def grow_lr_channels(self, extra: int | None = None) -> None:
        """Add zero-initialised input channels for the LR condition (default: one model-space image's worth, two
        with detail channels)."""
        extra = self.space.channels() * (2 if self.lr_detail else 1) if extra is None else extra
        conv = self.adapter.get_input_conv(self.model)
        self.adapter.set_input_conv(self.model, zero_lr_channels(conv, extra))
        self.lr_channels += extra

    def to(self, device=None, dtype=None) -> Backbone:
        self.model.to(device, dtype)
        if self.space.latent:
            self.space.vae.to(device, dtype)
        return self

    def adopt(self, cfg: TrainConfig) -> Backbone:
        """Take a training config's conventions: what is diffused (the HR, or residual_scale * (HR - LR)) and the
        LR detail channels (pixel spaces only: latent pipelines condition on the LR latents alone)."""
        self.residual_scale = cfg.residual_scale if cfg.target == "residual" else 0.0
        self.lr_detail = 0.0 if self.space.latent else cfg.lr_detail
        return self


def lr_condition(space: PixelSpace | VAESpace, lr: Tensor, detail: float) -> Tensor:
    """The upsampled LR (model space), and with `detail` > 0 also its detail `detail` * (LR - blur(LR)) in pixels,
    re-encoded: [B, C, h, w] -> [B, 2C, h, w].

    Why: a transformer token embeds its patch linearly and layer-normalises it, so the patch's brightness, not its
    edges, fills the token; the tiny DiT learns the residual faster when the edges come as channels of their own
    (docs/method.md, "LR detail channels")."""
    if not detail:
        return lr
    if space.latent:
        raise ValueError(f"LR detail channels need a pixel space (the tiny models), not {space.describe()}: "
                         "set lr_detail to 0 for latent pipelines")
    px = space.decode(lr)
    return torch.cat([lr, space.encode(detail * (px - gaussian_blur(px, DETAIL_SIGMA)))], dim=1)


def gaussian_blur(px: Tensor, sigma: float) -> Tensor:
    """Images [..., C, H, W] blurred by a Gaussian of `sigma` px (reflect-padded, kernel out to 3 sigma), as two
    1-D passes: torchvision's 2-D blur up to rounding, at 2k instead of k^2 taps a pixel."""
    r = math.ceil(3 * sigma)
    H, W = px.shape[-2:]
    if min(H, W) <= r:
        raise ValueError(f"a Gaussian blur of sigma {sigma} needs images larger than {r} px, got {(H, W)}")
    g = torch.exp(-0.5 * (torch.arange(-r, r + 1, dtype=px.dtype, device=px.device) / sigma) ** 2)
    g = g / g.sum()
    x = nn.functional.pad(px.reshape(-1, 1, H, W), (r, r, r, r), mode="reflect")
    x = nn.functional.conv2d(nn.functional.conv2d(x, g.view(1, 1, 1, -1)), g.view(1, 1, -1, 1))
    return x.reshape(px.shape)


def sr_target(hr: Tensor, lr: Tensor, residual_scale: float) -> Tensor:
    """What is diffused: the HR (scale 0), or scale * (HR - LR)."""
    return (hr - lr) * residual_scale if residual_scale else hr


def sr_image(x0: Tensor, lr: Tensor, residual_scale: float) -> Tensor:
    """The inverse of `sr_target`."""
    return x0 / residual_scale + lr if residual_scale else x0


# ---------------------------------------------------------------- building and loading

def build(name: str, seed: int = 0, device=None, **overrides) -> Backbone:
    """A randomly initialised backbone from its registered config (overrides change config keys)."""
    s = spec(name)
    torch.manual_seed(seed)
    model = s.adapter.build({**s.config, **overrides}, device)
    space = VAESpace(AutoencoderKL(**s.vae_config).to(device)) if s.latent else PixelSpace(s.unshuffle)
    return Backbone(s, model, space, s.objective, s.adapter.null_context(model))


def load(name: str, path: str | Path, lr_channels: int | None = None, with_vae: bool = True,
         prompt_cache: str | Path | None = None) -> Backbone:
    """Load weights with `from_pretrained` from a diffusers pipeline folder or a bare model folder.

    The pipeline's scheduler config gives the objective; its VAE the model space; its text encoders (if any)
    the empty-prompt conditioning (computed once, cached). If the checkpoint has no LR channels yet and
    `lr_channels` is given, they are added zero-initialised.
    """
    s = spec(name)
    model = s.adapter.load(path)
    sched = scheduler_config(path)
    objective = s.adapter.objective_from_scheduler(sched) if sched is not None else s.objective
    if s.latent and with_vae:
        vae_dir = Path(path) / "vae"
        if not (vae_dir / "config.json").exists():
            raise FileNotFoundError(f"{path}: {name} works in VAE latents, but {vae_dir} has no config.json")
        space = VAESpace(AutoencoderKL.from_pretrained(vae_dir))
    else:
        space = PixelSpace(s.unshuffle)
    context = prompt_context(s, path, [""], prompt_cache) if has_text_encoders(path) else \
        s.adapter.null_context(model)
    bb = Backbone(s, model, space, objective, context, source=str(path))
    bb.lr_channels = model.config.in_channels - model.config.out_channels
    if lr_channels and bb.lr_channels == 0:
        bb.grow_lr_channels(lr_channels)
    return bb


def prompt_context(s: BackboneSpec, path: str | Path, prompts: list[str], cache: str | Path | None = None) -> dict:
    """The pipeline's text-encoder embeddings of `prompts` ([N, ...] per model input), cached on disk by the
    pipeline folder, its text encoders' weights and the prompts."""
    cache = Path(cache or Path.home() / ".cache" / "framer_nb")  # without a runs folder: the user's cache
    files = sorted(p for p in Path(path).glob("text_encoder*/*") if p.is_file())
    stamp = [str(Path(path).resolve())] + [f"{p.name}:{p.stat().st_size}:{p.stat().st_mtime_ns}" for p in files]
    key = hashlib.sha256(json.dumps([stamp, prompts]).encode()).hexdigest()[:16]
    f = cache / f"{s.family}-{key}.safetensors"
    if f.exists():
        return load_file(str(f))
    ctx = s.adapter.context_from_prompts(str(path), prompts, "cuda" if torch.cuda.is_available() else "cpu")
    cache.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in ctx.items()}, str(f))
    return ctx
