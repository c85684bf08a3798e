"""Random pipelines saved with `save_pretrained`, for tests and the GPU check (nothing is downloaded).

`make_pipeline("sd35-medium", folder)` writes a diffusers pipeline folder of the real SD3.5-medium shape
(transformer, VAE, flow-matching scheduler with shift 3); `tiny=True` shrinks every width so that it runs on a
CPU in seconds and adds small CLIP text encoders with a character-level tokenizer built offline, so the
text-conditioning path (empty-prompt and caption embeddings) runs as it does with real weights. The T5 encoder
of SD3 is left out (the pipeline then uses zeros for it, as diffusers does when `text_encoder_3` is None).
"""

from __future__ import annotations

import json
import string
from pathlib import Path

import torch

from . import backbones as B

TINY_SD3 = dict(sample_size=8, patch_size=2, in_channels=4, out_channels=4, num_layers=3, attention_head_dim=8,
                num_attention_heads=2, joint_attention_dim=32, caption_projection_dim=16, pooled_projection_dim=32,
                pos_embed_max_size=32, dual_attention_layers=(0,), qk_norm="rms_norm")
TINY_SD2 = dict(sample_size=8, in_channels=4, out_channels=4, block_out_channels=(8, 16), layers_per_block=1,
                down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
                cross_attention_dim=16, attention_head_dim=(2, 4), norm_num_groups=4, use_linear_projection=True)
TINY_VAE = dict(in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(8, 8),
                down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
                norm_num_groups=4, layers_per_block=1)


def char_tokenizer(folder: Path, max_length: int = 16):
    """A CLIPTokenizer over single characters (no merges), written to `folder` and loaded back."""
    from transformers import CLIPTokenizer
    folder.mkdir(parents=True, exist_ok=True)
    chars = [c for c in string.printable if not c.isspace()]
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for c in chars:
        vocab.setdefault(c, len(vocab))
        vocab.setdefault(c + "</w>", len(vocab))
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    tok = CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"), model_max_length=max_length)
    tok.save_pretrained(folder)
    return tok


def _clip(hidden: int, projection: bool, vocab: int, seed: int):
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection
    torch.manual_seed(seed)
    cfg = CLIPTextConfig(vocab_size=vocab, hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=2,
                         num_attention_heads=2, max_position_embeddings=16, projection_dim=hidden,
                         bos_token_id=0, eos_token_id=1, pad_token_id=1)
    return (CLIPTextModelWithProjection if projection else CLIPTextModel)(cfg)


def make_pipeline(backbone: str, folder: str | Path, tiny: bool = True, text_encoders: bool = True,
                  seed: int = 0, dtype=torch.float32, device=None) -> Path:
    """Write a random pipeline folder of `backbone`'s family (real shape unless `tiny`); returns the folder."""
    from diffusers import AutoencoderKL, DDPMScheduler, FlowMatchEulerDiscreteScheduler
    spec = B.spec(backbone)
    if not spec.latent:
        raise ValueError(f"{backbone} is a pixel-space model; pipelines are for sd35-medium and sd2-base")
    folder = Path(folder)
    sd3 = spec.family == "sd3"
    torch.manual_seed(seed)
    config = (TINY_SD3 if sd3 else TINY_SD2) if tiny else spec.config
    vae_config = TINY_VAE if tiny else spec.vae_config
    model = spec.adapter.build(config, device).to(dtype)
    vae = AutoencoderKL(**vae_config).to(device, dtype)
    if sd3:
        scheduler = FlowMatchEulerDiscreteScheduler(shift=3.0)
    else:
        scheduler = DDPMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                                  prediction_type="epsilon", clip_sample=False)
    parts = {"transformer" if sd3 else "unet": model, "vae": vae, "scheduler": scheduler}
    if text_encoders:
        tok = char_tokenizer(folder / "_tokenizer")
        hidden = 16 if tiny else 64
        if sd3:
            parts.update(text_encoder=_clip(hidden, True, len(tok), seed), tokenizer=tok,
                         text_encoder_2=_clip(hidden, True, len(tok), seed + 1), tokenizer_2=tok,
                         text_encoder_3=None, tokenizer_3=None)
        else:
            parts.update(text_encoder=_clip(config["cross_attention_dim"], False, len(tok), seed), tokenizer=tok)
    _pipeline_class(sd3, text_encoders)(**parts).save_pretrained(folder) if text_encoders else \
        _save_parts(folder, parts, sd3)
    return folder


def _pipeline_class(sd3: bool, text_encoders: bool):
    from diffusers import StableDiffusion3Pipeline, StableDiffusionPipeline
    if sd3:
        return StableDiffusion3Pipeline
    return lambda **kw: StableDiffusionPipeline(**kw, safety_checker=None, feature_extractor=None,
                                                requires_safety_checker=False)


def _save_parts(folder: Path, parts: dict, sd3: bool) -> None:
    """A pipeline folder without text encoders: each component in its subfolder, plus model_index.json."""
    folder.mkdir(parents=True, exist_ok=True)
    index = {"_class_name": "StableDiffusion3Pipeline" if sd3 else "StableDiffusionPipeline"}
    for name, part in parts.items():
        part.save_pretrained(folder / name) if hasattr(part, "save_pretrained") else None
        if name == "scheduler":
            part.save_config(folder / name)
        index[name] = ["diffusers", type(part).__name__]
    (folder / "model_index.json").write_text(json.dumps(index, indent=2))
