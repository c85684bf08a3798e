"""One training step's loss: diffusion objective + lambda * FRAMER term, on any registered backbone."""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch
from torch import Tensor

from . import diffusion as D
from .backbones import Backbone
from .config import FramerConfig
from .losses import FramerOutput, Gather, framer_loss


@dataclass
class StepLoss:
    """The total loss and its parts."""

    total: Tensor
    objective: Tensor
    framer: FramerOutput | None


def objective_loss(bb: Backbone, pred: Tensor, x0: Tensor, noise: Tensor, t: Tensor, space: str) -> Tensor:
    """Weighted MSE of the prediction against the objective's target (see `diffusion.loss_weight`)."""
    err = (pred.float() - D.target(bb.objective, x0, noise, t).float()).pow(2).flatten(1).mean(1)
    return (D.loss_weight(bb.objective, t, space).to(err) * err).mean()


@dataclass
class StepOptions:
    """How one step draws and weighs its loss, beyond the batch and the FRAMER config."""

    loss_space: str = "native"  # x0: clean-signal MSE (TrainConfig.loss_space) | native: the objective's own target
    time_bias: float = 1.0  # > 1: training times drawn nearer to noise (diffusion.sample_time)
    context: dict | None = None  # per-sample conditioning [B, ...] (captions); None: the backbone's null prompt
    gather: Gather | None = None  # gathers InterCL's in-batch negatives across processes
    neg_generator: torch.Generator | None = None  # draws the random negative layers; the same on every process
    compile: bool = False  # the FRAMER term through torch.compile (compiled once per process; FFTs stay eager)


@functools.cache
def compiled_framer_loss():
    """`framer_loss` through torch.compile (inductor does not generate code for the complex FFT ops, so they run
    eagerly; whether the rest pays is measured by benchmarks/overhead.py --compile on the GPU)."""
    return torch.compile(framer_loss, dynamic=False)


def training_loss(bb: Backbone, x0: Tensor, lr: Tensor | None, cfg: FramerConfig, heads=None,
                  generator: torch.Generator | None = None, options: StepOptions | None = None) -> StepLoss:
    """Objective (+ FRAMER) on a batch of clean model-space samples x0 with optional LR condition.

    FRAMER compares the students' and the teacher's clean-signal estimates in the space's spectral view
    (pixels for pixel spaces, latents for a VAE). `generator` draws t and the noise (and the random negative
    layers unless `options.neg_generator` is given).
    """
    o = options or StepOptions()
    loss_space, context, obj = o.loss_space, o.context, bb.objective
    t = D.sample_time(obj, x0.shape[0], generator, x0.device, o.time_bias)
    noise = torch.randn(x0.shape, generator=generator).to(x0.device, x0.dtype)
    x_t = D.add_noise(obj, x0, noise, t)
    if cfg.objective == "none":
        pred = bb.predict(x_t, t, lr, context)
        objective = objective_loss(bb, pred, x0, noise, t, loss_space)
        return StepLoss(objective, objective.detach(), None)
    with bb.lens(heads, cfg.head_grad) as tp:
        pred = bb.predict(x_t, t, lr, context)
        students = bb.students(tp.predictions(), x_t, t)
    objective = objective_loss(bb, pred, x0, noise, t, loss_space)
    teacher = bb.x0(pred, x_t, t).detach()
    view = bb.space.spectral
    loss_fn = compiled_framer_loss() if o.compile else framer_loss
    out = loss_fn(view(students), view(teacher), cfg, generator=o.neg_generator or generator, gather=o.gather)
    return StepLoss(objective + cfg.weight * out.distill, objective.detach(), out)
