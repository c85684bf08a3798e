"""One training step's loss: diffusion objective + lambda * FRAMER term, on any registered backbone."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from . import diffusion as D
from .backbones import Backbone, predict
from .config import FramerConfig
from .losses import FramerOutput, Gather, framer_loss
from .taps import UNetHeads, num_layers, tap


@dataclass
class StepLoss:
    """The total loss and its parts."""

    total: Tensor
    objective: Tensor
    framer: FramerOutput | None


def num_students(bb: Backbone) -> int:
    """How many students the lens yields for this backbone (see `student_estimates`)."""
    return num_layers(bb.model) - (1 if bb.spec.kind == "dit" else 0)


def student_estimates(bb: Backbone, per_layer: Tensor, x_t: Tensor, t: Tensor) -> Tensor:
    """Per-layer predictions [L, B, C, H, W] -> clean-signal estimates.

    For SD3 transformers the last block's lens equals the final output (FRAMER_SPEC.md 9.4, a defect
    of the released code: one "student" is the teacher itself); we drop it, as intended.
    """
    x0 = D.to_x0(bb.objective, per_layer, x_t, t)
    return x0[:-1] if bb.spec.kind == "dit" else x0


def objective_loss(bb: Backbone, pred: Tensor, x0: Tensor, noise: Tensor, t: Tensor, space: str) -> Tensor:
    """Weighted MSE of the prediction against the objective's target (see `diffusion.loss_weight`)."""
    err = (pred.float() - D.target(bb.objective, x0, noise).float()).pow(2).flatten(1).mean(1)
    return (D.loss_weight(bb.objective, t, space).to(err) * err).mean()


def training_loss(bb: Backbone, x0: Tensor, lr: Tensor | None, cfg: FramerConfig, heads: UNetHeads | None = None,
                  generator: torch.Generator | None = None, gather: Gather | None = None,
                  neg_generator: torch.Generator | None = None, loss_space: str = "native") -> StepLoss:
    """Objective (+ FRAMER) on a batch of clean model-space samples x0 with optional LR condition.

    `neg_generator` draws the random negative layers; give every process the same one.
    """
    obj = bb.objective
    t = D.sample_time(obj, x0.shape[0], generator, x0.device)
    noise = torch.randn(x0.shape, generator=generator).to(x0.device, x0.dtype)
    x_t = D.add_noise(obj, x0, noise, t)
    if cfg.objective == "none":
        pred = predict(bb, x_t, t, lr)
        objective = objective_loss(bb, pred, x0, noise, t, loss_space)
        return StepLoss(objective, objective.detach(), None)
    with tap(bb.model, heads) as tp:
        pred = predict(bb, x_t, t, lr)
        students = student_estimates(bb, tp.predictions(), x_t, t)
    objective = objective_loss(bb, pred, x0, noise, t, loss_space)
    teacher = D.to_x0(obj, pred, x_t, t).detach()
    out = framer_loss(students, teacher, cfg, generator=neg_generator or generator, gather=gather)
    return StepLoss(objective + cfg.weight * out.distill, objective.detach(), out)
