"""Per-layer "lenses": one clean-signal-space map per layer from stock diffusers models, via forward hooks.

`tap(model, hooks, heads)` registers a family's hooks (`sd3_hooks`, `unet_hooks`), yields a `Tap`, and removes
the hooks on exit. After a forward pass, `Tap.predictions()` returns [L, B, C, H, W] maps in the model's
prediction space (v, epsilon or x0); `diffusion.to_x0` turns them into clean-signal estimates. Hooks only
record: outputs are unchanged.

- SD3Transformer2DModel: each block's image tokens go through the model's own norm_out (conditioned
  on the captured time embedding), proj_out and unpatchify, as the released FRAMER-D code does. With
  `head_grad=False` that shared head is used with its gradient stopped, so a loss on the maps trains the blocks
  but never the head that also makes the model's output.
- UNet2DConditionModel: each down block, the mid block and each up block go through a 1x1 conv and a
  bilinear resize (`UNetHeads`); trainable during training only, or fitted in closed form.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from diffusers import SD3Transformer2DModel, UNet2DConditionModel
from torch import Tensor, nn

from .recompute import recompute


@dataclass
class Tap:
    """What the hooks captured in the last forward pass, and how to project it."""

    project: Callable[[Tap], Tensor]
    features: list[Tensor] = field(default_factory=list)
    temb: Tensor | None = None
    size: tuple[int, int] | None = None

    def predictions(self) -> Tensor:
        """[L, B, C, H, W] per-layer maps in the model's output space."""
        if not self.features:
            raise RuntimeError("no features captured: run a forward pass inside the `tap` context first")
        return self.project(self)

    def clear(self) -> None:
        self.features.clear()
        self.temb, self.size = None, None


def unet_block_channels(model: UNet2DConditionModel) -> list[int]:
    """Output channels of every tapped U-Net block: down blocks, mid block, up blocks."""
    ch = list(model.config.block_out_channels)
    return ch + [ch[-1]] + ch[::-1]


class UNetHeads(nn.Module):
    """Training-only 1x1-conv + resize heads from each U-Net block to the output space."""

    def __init__(self, block_channels: list[int], out_channels: int):
        super().__init__()
        self.convs = nn.ModuleList(nn.Conv2d(c, out_channels, 1) for c in block_channels)

    def forward(self, features: list[Tensor], size: tuple[int, int]) -> Tensor:
        maps = [conv(f) for conv, f in zip(self.convs, features)]
        # at the output size bilinear resizing is the identity (weights exactly 1 and 0): skipped
        return torch.stack([m if tuple(m.shape[-2:]) == tuple(size) else
                            F.interpolate(m, size=size, mode="bilinear", align_corners=False) for m in maps])


@contextmanager
def tap(model: nn.Module, hooks: Callable, heads: UNetHeads | None = None, head_grad: bool = True) -> Iterator[Tap]:
    """Record per-layer features of `model` while inside the context (hooks removed on exit).

    `hooks` is the family's (model, heads, head_grad) -> (record functions, modules, projection), e.g.
    `sd3_hooks`; `head_grad=False` stops the gradient into a head the model shares with its output."""
    record, modules, project = hooks(model, heads, head_grad)
    t = Tap(project)
    handles = [model.register_forward_pre_hook(lambda m, args, kwargs: _start(t, args, kwargs), with_kwargs=True)]
    handles += [mod.register_forward_hook(lambda m, i, o, fn=fn: fn(t, o)) for mod, fn in zip(modules, record)]
    try:
        yield t
    finally:
        for h in handles:
            h.remove()


def _start(t: Tap, args: tuple, kwargs: dict) -> None:
    """At the start of each forward: forget the last pass, remember the spatial size."""
    sample = args[0] if args else kwargs.get("hidden_states", kwargs.get("sample"))
    t.clear()
    t.size = tuple(sample.shape[-2:])


def sd3_hooks(model: SD3Transformer2DModel, heads: UNetHeads | None = None, head_grad: bool = True):
    """Time embedding and each transformer block's image tokens; projected by the model's own output head
    (trained through the maps, or with its gradient stopped: `head_grad`)."""
    def on_temb(t: Tap, out: Tensor) -> None:
        t.temb = out

    def on_block(t: Tap, out: tuple) -> None:
        t.features.append(out[1])  # (context tokens, image tokens)

    modules = [model.time_text_embed, *model.transformer_blocks]
    return ([on_temb] + [on_block] * len(model.transformer_blocks), modules,
            lambda t: _sd3_project(model, t, head_grad))


# How many bytes of block tokens one lens call projects at once (several layers stacked along the batch). On
# accelerators each call is recomputed in the backward pass (framer_nb.recompute), which keeps only its inputs (the
# blocks' own outputs, alive anyway), so this bounds the lens's transient memory: 1 GiB takes the 23 intermediate
# SD3.5-medium layers of a batch of 16 at 64 x 64 latents in bf16 (50 MB each) in two calls. On the CPU a call is
# one layer, as before (values equal bit for bit to `norm_out` + `proj_out`).
LENS_CHUNK_BYTES = {"accelerator": 1 << 30, "cpu": 0}


def set_lens_chunk_bytes(n: int, device: str = "accelerator") -> None:
    """Bytes of tokens per lens call on accelerators (or on the CPU, to test or measure that path); 0: one layer."""
    LENS_CHUNK_BYTES["cpu" if device == "cpu" else "accelerator"] = int(n)


def layers_per_call(tokens: Tensor, n_layers: int) -> int:
    """Layers the lens projects per call for layers shaped like `tokens`, within LENS_CHUNK_BYTES."""
    budget = LENS_CHUNK_BYTES["cpu" if tokens.device.type == "cpu" else "accelerator"]
    return max(1, min(n_layers, budget // max(1, tokens.numel() * tokens.element_size())))


def _weights(linear: nn.Linear, grad: bool) -> tuple[Tensor, Tensor | None]:
    if grad:
        return linear.weight, linear.bias
    return linear.weight.detach(), None if linear.bias is None else linear.bias.detach()


def _sd3_project(model: SD3Transformer2DModel, t: Tap, head_grad: bool = True) -> Tensor:
    """Each block's image tokens -> norm_out(., temb) -> proj_out -> unpatchify: [L, B, C, H, W].

    norm_out's AdaLN modulation depends on the time embedding alone, so it is computed once for every layer; the
    normalisation and proj_out then run on `layers_per_call` layers at a time, each call recomputed in the backward
    pass on accelerators (framer_nb.recompute), so the normalised tokens of every layer are never all held. With
    `head_grad=False` the head's weights and the time embedding are seen with their gradient stopped."""
    p, c = model.config.patch_size, model.out_channels
    H, W = t.size
    ada = model.norm_out
    temb = t.temb if head_grad else t.temb.detach()
    emb = F.linear(ada.silu(temb).to(t.features[0].dtype), *_weights(ada.linear, head_grad))
    scale, shift = torch.chunk(emb, 2, dim=1)
    proj_w, proj_b = _weights(model.proj_out, head_grad)

    def head(*args) -> Tensor:  # (tokens of k layers..., scale, shift, weight, bias): the layers stacked on batch
        *tokens, scale, shift, w, b = args
        k = len(tokens)
        x = ada.norm(tokens[0] if k == 1 else torch.cat(tokens))  # the copy exists inside one call only
        if k > 1:
            scale, shift = scale.repeat(k, 1), shift.repeat(k, 1)
        return F.linear(x * (1 + scale)[:, None, :] + shift[:, None, :], w, b)

    per_call = layers_per_call(t.features[0], len(t.features))
    maps = []
    for i in range(0, len(t.features), per_call):
        chunk = t.features[i:i + per_call]
        h = recompute(head, *chunk, scale, shift, proj_w, proj_b)
        h = h.reshape(h.shape[0], H // p, W // p, p, p, c)
        maps.append(torch.einsum("nhwpqc->nchpwq", h).reshape(len(chunk), -1, c, H, W))
    return torch.cat(maps)


def unet_hooks(model: UNet2DConditionModel, heads: UNetHeads | None, head_grad: bool = True):
    """Each down block, the mid block and each up block, projected by 1x1 heads (trained or fitted). The heads
    are the lens's own, not the model's output head, so `head_grad` does not apply."""
    if heads is None:
        raise ValueError("a U-Net lens needs UNetHeads (trainable or fitted with `fit_unet_heads`)")

    def on_block(t: Tap, out) -> None:
        t.features.append(out[0] if isinstance(out, tuple) else out)  # down blocks return (h, residuals)

    modules = [*model.down_blocks, model.mid_block, *model.up_blocks]
    return [on_block] * len(modules), modules, lambda t: heads(t.features, t.size)


@torch.no_grad()
def fit_unet_heads(heads: UNetHeads, features: list[Tensor], output: Tensor, ridge: float = 1e-4) -> UNetHeads:
    """Fit every 1x1 head in closed form (ridge least squares) so its resized map matches `output`.

    Resizing is linear and bilinear weights sum to one, so fitting on resized features fits the head.
    """
    y = output.permute(0, 2, 3, 1).reshape(-1, output.shape[1]).double()
    for conv, f in zip(heads.convs, features):
        up = F.interpolate(f.double(), size=output.shape[-2:], mode="bilinear", align_corners=False)
        x = torch.cat([up.permute(0, 2, 3, 1).reshape(-1, f.shape[1]), torch.ones(y.shape[0], 1, dtype=y.dtype,
                                                                                  device=y.device)], 1)
        gram = x.T @ x + ridge * torch.eye(x.shape[1], dtype=x.dtype, device=x.device)
        w = torch.linalg.solve(gram, x.T @ y)  # [C_in + 1, C_out]
        conv.weight.copy_(w[:-1].T.reshape_as(conv.weight).to(conv.weight.dtype))
        conv.bias.copy_(w[-1].to(conv.bias.dtype))
    return heads
