"""What FRAMER adds to a training step, machine-independently: FLOPs and activation memory on the meta device.

The model is built on PyTorch's meta device (shapes only: nothing is allocated, SD3.5-medium takes seconds on a
laptop), one baseline step and one FRAMER step (forward + backward of `framer_nb.step.training_loss`) run under
`torch.utils.flop_counter.FlopCounterMode`, with FFTs counted as 5 N log2 N (2.5 N log2 N for real transforms;
the flop counter has no FFT formula), and the tensors autograd saves for the backward pass are summed (each
underlying tensor once, parameters excluded). Three FRAMER rows:
- `recomputed`: what ships on accelerators (the lens and the loss recomputed in the backward pass);
- `stored`: nothing recomputed (`framer_nb.recompute.use_nowhere`): fewer FLOPs, more memory;
- `floor`: what no implementation can avoid: FLOPs of `stored`, and memory of the baseline plus the students'
  maps ([L, B, C, H, W] in the model dtype) that the contrastive terms compare all at once.
The GPU timing (benchmarks/results/overhead_sd35-medium_cuda.json, x1.148 step time) is set beside the FLOP
ratio: the gap between them is time that is not arithmetic (kernel launches, per-layer calls, recomputation).

    python benchmarks/framer_cost.py                       # SD3.5-medium and SD2-base, batch 16, 512 px
Writes benchmarks/results/framer_cost.json with provenance.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode

from framer_nb import backbones as B
from framer_nb import recompute
from framer_nb.config import FramerConfig
from framer_nb.provenance import provenance
from framer_nb.step import training_loss

RESULTS = Path(__file__).parent / "results"
CONFIGS = {"sd35-medium": dict(latent=64, channels=16, context_tokens=333),  # 512 px; 77 CLIP + 256 T5 tokens
           "sd2-base": dict(latent=64, channels=4, context_tokens=77)}
FFT_OPS = {"_fft_r2c": 2.5, "_fft_c2r": 2.5, "_fft_c2c": 5.0}


class FFTFlops(TorchDispatchMode):
    """Counts FFT FLOPs (c N log2 N over the transformed dims) of every aten FFT call."""

    def __init__(self):
        super().__init__()
        self.flops = 0.0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func.__name__.split(".")[0]
        if name in FFT_OPS:
            x, dims = args[0], args[1]
            n = math.prod(x.shape[d] for d in dims) if name != "_fft_c2r" else math.prod(
                [*(x.shape[d] for d in dims[:-1]), args[3] if len(args) > 3 else 2 * (x.shape[dims[-1]] - 1)])
            self.flops += FFT_OPS[name] * x.numel() / math.prod(x.shape[d] for d in dims) * n * math.log2(max(n, 2))
        return func(*args, **(kwargs or {}))


def saved_bytes(params: set[int]):
    """A saved-tensors hook pair that sums the bytes of each tensor autograd keeps (its base once, no parameters)."""
    seen, total = set(), [0]

    def pack(t):
        base = t._base if t._base is not None else t
        if id(base) not in params and id(base) not in seen:
            seen.add(id(base))
            total[0] += base.numel() * base.element_size()
        return t
    return torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), total


def build(name: str, context_tokens: int, dtype=torch.bfloat16):
    with torch.device("meta"):
        bb = B.build(name)
    bb.model.to("meta", dtype)  # buffers made from numpy (positional embeddings) start on the CPU
    bb.context = {k: (v.to("meta", dtype).expand(v.shape[0], context_tokens, *v.shape[2:])
                      if k == "encoder_hidden_states" else v.to("meta", dtype)) if torch.is_tensor(v) else v
                  for k, v in bb.context.items()}
    return bb


def step_cost(bb, x0, cfg: FramerConfig) -> dict:
    params = {id(p) for p in bb.model.parameters()}
    heads = bb.make_heads()
    if heads is not None:
        heads.to("meta", x0.dtype)
        params |= {id(p) for p in heads.parameters()}
    hooks, saved = saved_bytes(params)
    fft = FFTFlops()
    with FlopCounterMode(display=False) as fc, fft:
        with hooks:
            loss = training_loss(bb, x0, None, cfg, heads if cfg.objective != "none" else None,
                                 torch.Generator().manual_seed(0)).total
        loss.backward()
    return {"flops": fc.get_total_flops() + fft.flops, "fft_flops": fft.flops, "saved_bytes": saved[0]}


def measure(name: str, batch: int) -> dict:
    c = CONFIGS[name]
    bb = build(name, c["context_tokens"])
    x0 = torch.empty(batch, c["channels"], c["latent"], c["latent"], device="meta", dtype=torch.bfloat16)
    base = step_cost(bb, x0, FramerConfig(objective="none"))
    framer = FramerConfig(head_grad=False)
    recomputed = step_cost(bb, x0, framer)
    recompute.use_nowhere(True)
    try:
        stored = step_cost(bb, x0, framer)
    finally:
        recompute.use_nowhere(False)
    maps = bb.num_students * x0.numel() * x0.element_size()
    floor = {"flops": stored["flops"], "saved_bytes": base["saved_bytes"] + maps}

    def ratios(row):
        return {"flops_ratio": round(row["flops"] / base["flops"], 5),
                "memory_ratio": round(row["saved_bytes"] / base["saved_bytes"], 5)}
    return {"backbone": name, "batch": batch, **c, "layers": bb.num_students + 1, "dtype": "bf16",
            "baseline": {"tflops": round(base["flops"] / 1e12, 3), "saved_gib": round(base["saved_bytes"] / 2**30, 3)},
            "framer_recomputed": {**ratios(recomputed), "fft_gflops": round(recomputed["fft_flops"] / 1e9, 3)},
            "framer_stored": ratios(stored), "floor": ratios(floor),
            "student_maps_mib": round(maps / 2**20, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--backbones", default=",".join(CONFIGS))
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--out", default=str(RESULTS / "framer_cost.json"))
    args = ap.parse_args()
    rows = [measure(b, args.batch) for b in args.backbones.split(",")]
    gpu = RESULTS / "overhead_sd35-medium_cuda.json"
    measured = json.loads(gpu.read_text()) if gpu.exists() else None
    doc = provenance(benchmark="framer_cost", method="meta device, FlopCounterMode + FFT formula, saved-tensor bytes",
                     rows=rows, gpu_measured=None if measured is None else {
                         "file": gpu.name, "time_ratio": round(measured["time_ratio"], 4),
                         "memory_ratio": round(measured["memory_ratio"], 4), "git_commit": measured["git_commit"],
                         "device": measured["device_name"]})
    Path(args.out).write_text(json.dumps(doc, indent=2))
    for r in rows:
        print(f"{r['backbone']}: FRAMER FLOPs x{r['framer_recomputed']['flops_ratio']} (stored x"
              f"{r['framer_stored']['flops_ratio']}), activations x{r['framer_recomputed']['memory_ratio']} "
              f"(stored x{r['framer_stored']['memory_ratio']}, floor x{r['floor']['memory_ratio']})")
    if measured:
        print(f"GPU measured (H200, {measured['git_commit']}): time x{measured['time_ratio']:.3f}, memory "
              f"x{measured['memory_ratio']:.3f}")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
