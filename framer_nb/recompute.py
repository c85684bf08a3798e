"""Activation recomputation where it pays: on accelerators, not on the CPU.

The FRAMER term and the SD3 lens are recomputed in the backward pass so that a training step on a GPU holds
almost nothing beyond the students (benchmarks/results/overhead_*_cuda.json). On the CPU memory is plentiful
and the recomputation costs about a third of the FRAMER term's time (tiny U-Net, batch 16: the term adds 147 ms
a step, 217 ms recomputed; benchmarks/results/overhead_tiny-unet_cpu*.json), so there the function simply
runs. Both paths give the same values and gradients.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.utils.checkpoint
from torch import Tensor

ON_CPU = False  # set by `use_on_cpu`: recompute on the CPU too (tests and benchmarks of that path)
NOWHERE = False  # set by `use_nowhere`: never recompute (benchmarks: the cost without the memory saving)


def use_on_cpu(enabled: bool) -> None:
    """Recompute on the CPU as on accelerators (to test or measure that path)."""
    global ON_CPU
    ON_CPU = bool(enabled)


def use_nowhere(enabled: bool) -> None:
    """Never recompute, on any device (to measure what recomputation costs and saves)."""
    global NOWHERE
    NOWHERE = bool(enabled)


def recompute(fn: Callable, *args):
    """`fn(*args)`, recomputed in the backward pass when a tensor argument needs a gradient and lives on an
    accelerator (or ON_CPU is set)."""
    tensors = [a for a in args if isinstance(a, Tensor)]
    grad = torch.is_grad_enabled() and any(a.requires_grad for a in tensors)
    if grad and not NOWHERE and (ON_CPU or any(a.device.type != "cpu" for a in tensors)):
        return torch.utils.checkpoint.checkpoint(fn, *args, use_reentrant=False, preserve_rng_state=False)
    return fn(*args)
