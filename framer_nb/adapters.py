"""One adapter per architecture family: what differs between an SD3-style transformer and an SD2-style U-Net.

An adapter owns: building from a config and loading with `from_pretrained` (pipeline folder or bare model
folder), the input convolution that grows zero-initialised LR channels, the lens (which layers are
students, and whether they need training-only heads), the null / caption conditioning, and the objective
read from a pipeline's scheduler config. Everything else asks the `Backbone` (backbones.py), which asks its
adapter; nothing else branches on the family. Adding a family is one `Adapter(...)` and a registry line.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import torch
from diffusers import SD3Transformer2DModel, UNet2DConditionModel
from torch import Tensor, nn

from . import taps
from .diffusion import Objective


@dataclass(frozen=True)
class Adapter:
    """The conventions of one architecture family around a stock diffusers model class."""

    family: str
    model_class: type
    subfolder: str  # the model's folder inside a pipeline folder
    input_conv: str  # attribute path of the first convolution (noisy sample + LR channels)
    students_drop_last: bool  # the last layer's lens is the output itself (SD3): not a student
    needs_heads: bool  # the lens needs training-only 1x1 heads (U-Net)
    hooks: Callable  # (model, heads, head_grad) -> (record fns, modules, project), see taps.tap
    null_context: Callable[[nn.Module], dict]  # zero conditioning [1, ...] per model input
    context_from_prompts: Callable[[str, list[str], str], dict]  # (pipeline folder, prompts, device) -> [N, ...]
    objective_from_scheduler: Callable[[dict], Objective]
    num_layers: Callable[[nn.Module], int]  # how many per-layer maps the lens yields


    def num_students(self, model: nn.Module) -> int:
        return self.num_layers(model) - int(self.students_drop_last)

    def get_input_conv(self, model: nn.Module) -> nn.Conv2d:
        obj = model
        for part in self.input_conv.split("."):
            obj = getattr(obj, part)
        return obj

    def set_input_conv(self, model: nn.Module, conv: nn.Conv2d) -> None:
        *path, last = self.input_conv.split(".")
        obj = model
        for part in path:
            obj = getattr(obj, part)
        setattr(obj, last, conv)
        model.register_to_config(in_channels=conv.in_channels)

    def build(self, config: dict, device=None) -> nn.Module:
        with torch.device(device or "cpu"):
            return self.model_class(**config)

    def load(self, path: str | Path) -> nn.Module:
        """`from_pretrained` on a pipeline folder (its model subfolder) or on a bare model folder."""
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"{path}: no such pipeline or model folder")
        folder = path / self.subfolder if (path / self.subfolder / "config.json").exists() else path
        if not (folder / "config.json").exists():
            raise FileNotFoundError(f"{path}: neither {self.subfolder}/config.json nor config.json: not a "
                                    f"diffusers pipeline or {self.model_class.__name__} folder")
        return self.model_class.from_pretrained(folder)


# ---------------------------------------------------------------- conditioning

def _sd3_null(model: nn.Module) -> dict:
    cfg = model.config
    return {"encoder_hidden_states": torch.zeros(1, 1, cfg.joint_attention_dim),
            "pooled_projections": torch.zeros(1, cfg.pooled_projection_dim)}


def _unet_null(model: nn.Module) -> dict:
    return {"encoder_hidden_states": torch.zeros(1, 1, model.config.cross_attention_dim)}


def has_text_encoders(path: str | Path) -> bool:
    """Whether a pipeline folder lists a text encoder that is present on disk."""
    index = Path(path) / "model_index.json"
    if not index.exists():
        return False
    spec = json.loads(index.read_text())
    return any(k.startswith("text_encoder") and isinstance(v, list) and v[0] is not None
               and (Path(path) / k).is_dir() for k, v in spec.items())


def _text_pipeline(cls, path: str, skip: tuple[str, ...]):
    """The pipeline with only its tokenizers and text encoders loaded (components absent on disk are None)."""
    listed = json.loads((Path(path) / "model_index.json").read_text())
    expected = cls._get_signature_keys(cls)[0]
    none = {k: None for k in expected if k in skip or not isinstance(listed.get(k), list) or listed[k][0] is None}
    return cls.from_pretrained(path, **none)


def _sd3_prompts(path: str, prompts: list[str], device: str = "cpu") -> dict:
    from diffusers import StableDiffusion3Pipeline
    pipe = _text_pipeline(StableDiffusion3Pipeline, path, ("transformer", "vae", "image_encoder",
                                                           "feature_extractor")).to(device)
    # without T5 the pipeline pads with zeros of the transformer's width: give it that width, not the weights
    width = json.loads((Path(path) / "transformer" / "config.json").read_text())["joint_attention_dim"]
    object.__setattr__(pipe, "transformer", SimpleNamespace(config=SimpleNamespace(joint_attention_dim=width)))
    with torch.no_grad():
        embeds, _, pooled, _ = pipe.encode_prompt(prompts, None, None, device=device, do_classifier_free_guidance=False)
    return {"encoder_hidden_states": embeds.float().cpu(), "pooled_projections": pooled.float().cpu()}


def _unet_prompts(path: str, prompts: list[str], device: str = "cpu") -> dict:
    from diffusers import StableDiffusionPipeline
    pipe = _text_pipeline(StableDiffusionPipeline, path, ("unet", "vae", "safety_checker", "feature_extractor",
                                                          "image_encoder")).to(device)
    with torch.no_grad():
        embeds, _ = pipe.encode_prompt(prompts, device, 1, False)
    return {"encoder_hidden_states": embeds.float().cpu()}


# ---------------------------------------------------------------- objectives from scheduler configs

def _flow_objective(cfg: dict) -> Objective:
    """FlowMatchEulerDiscreteScheduler: rectified flow, v-prediction, logit-normal sigma with the config's shift."""
    return Objective("flow", shift=float(cfg.get("shift", 1.0)))


def _ddpm_objective(cfg: dict) -> Objective:
    """DDPM-family schedulers (DDPM, DDIM, PNDM, Euler): the beta schedule and epsilon or v prediction."""
    pred = cfg.get("prediction_type", "epsilon")
    if pred not in ("epsilon", "v_prediction"):
        raise ValueError(f"scheduler prediction_type {pred!r} is not supported (epsilon or v_prediction)")
    return Objective("ddpm", float(cfg.get("beta_start", 1e-4)), float(cfg.get("beta_end", 0.02)),
                     cfg.get("beta_schedule", "linear"), prediction="native" if pred == "epsilon" else "v")


SD3 = Adapter("sd3", SD3Transformer2DModel, "transformer", "pos_embed.proj", True, False, taps.sd3_hooks,
              _sd3_null, _sd3_prompts, _flow_objective, lambda m: len(m.transformer_blocks))
UNET = Adapter("unet", UNet2DConditionModel, "unet", "conv_in", False, True, taps.unet_hooks,
               _unet_null, _unet_prompts, _ddpm_objective, lambda m: len(taps.unet_block_channels(m)))
ADAPTERS = {a.family: a for a in (SD3, UNET)}


def scheduler_config(path: str | Path) -> dict | None:
    """A pipeline folder's scheduler config, or None for a bare model folder."""
    f = Path(path) / "scheduler" / "scheduler_config.json"
    return json.loads(f.read_text()) if f.exists() else None


def zero_lr_channels(conv: nn.Conv2d, extra: int) -> nn.Conv2d:
    """A copy of `conv` with `extra` more input channels whose weights are zero (same output at step 0)."""
    new = nn.Conv2d(conv.in_channels + extra, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                    bias=conv.bias is not None).to(conv.weight.device, conv.weight.dtype)
    with torch.no_grad():
        new.weight.zero_()
        new.weight[:, : conv.in_channels] = conv.weight
        if conv.bias is not None:
            new.bias.copy_(conv.bias)
    return new


def expand(context: dict, batch: int, like: Tensor) -> dict:
    """Conditioning tensors [1 or B, ...] on `like`'s device and dtype, batch-expanded."""
    return {k: v.to(like.device, like.dtype).expand(batch, *v.shape[1:]) for k, v in context.items()}
