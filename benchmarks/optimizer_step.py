"""The parts of a training step around the network, on one CPU thread (as `make reproduce` runs them): AdamW as
a Python loop over the tensors vs fused, the EMA update per tensor vs foreach, and pixel (un)shuffle of the
FRAMER students [layers, batch, 48, 16, 16] with torch's op vs framer_nb.spaces' view/permute/copy.

    python benchmarks/optimizer_step.py   ->  benchmarks/results/optimizer_step.json

Medians of `--repeats` timings in ms; both ways of each part run in this one process, alternating.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from diffusers.training_utils import EMAModel

from framer_nb import backbones as B
from framer_nb import spaces
from framer_nb.provenance import provenance


def median_ms(fns: dict, repeats: int, warmup: int = 3) -> dict[str, float]:
    """Median wall time (ms) of each callable, the callables alternating."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times = {k: [] for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - t0)
    return {k: round(statistics.median(v) * 1e3, 2) for k, v in times.items()}


def model_parts(name: str, repeats: int) -> dict:
    params = list(B.build(name).model.parameters())
    for p in params:
        p.grad = torch.randn_like(p)
    loop, fused = (torch.optim.AdamW(params, lr=1e-5, **kw) for kw in ({}, {"fused": True}))
    ema_loop, ema_foreach = (EMAModel(params, decay=0.99, foreach=fe) for fe in (False, True))
    return {"tensors": len(params), "parameters": sum(p.numel() for p in params),
            "adamw_ms": median_ms({"loop": loop.step, "fused": fused.step}, repeats),
            "ema_ms": median_ms({"loop": lambda: ema_loop.step(params), "foreach": lambda: ema_foreach.step(params)},
                                repeats)}


def shuffle_parts(repeats: int) -> dict:
    z = torch.randn(7, 16, 48, 16, 16, requires_grad=True)  # the tiny U-Net's 7 students, batch 16

    def stock():
        F.pixel_shuffle(z.reshape(-1, 48, 16, 16), 4).sum().backward()

    def helper():
        spaces.shuffle(z, 4).sum().backward()

    return {"shape": list(z.shape), "shuffle_fwd_bwd_ms": median_ms({"torch": stock, "framer_nb": helper}, repeats)}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=30, help="timed calls of each part")
    ap.add_argument("--out", default="benchmarks/results/optimizer_step.json", help="JSON path")
    args = ap.parse_args()
    torch.set_num_threads(1)
    result = provenance(benchmark="optimizer_step", args=vars(args), threads=1,
                        models={name: model_parts(name, args.repeats) for name in ("tiny-unet", "tiny-dit")},
                        pixel_shuffle=shuffle_parts(args.repeats))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(json.dumps({k: result[k] for k in ("models", "pixel_shuffle")}, indent=1))


if __name__ == "__main__":
    main()
