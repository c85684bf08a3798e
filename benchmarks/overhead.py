"""Training-step time and peak memory: baseline vs baseline + FRAMER, same seed and batch, alternating runs.

CPU:  python benchmarks/overhead.py --backbone tiny-dit --device cpu
GPU:  python benchmarks/overhead.py --backbone sd35-medium --device cuda --batch 16 --size 64 --dtype bf16 \
          --context-tokens 333
`--size` is the side in model space (pixels unshuffled for tiny models, VAE latents for SD). The model is
randomly initialised on the device; both variants train the same model with AdamW. Peak memory is measured in
a fresh process per variant (CUDA allocator peak; on CPU, process max RSS, which the libraries dominate).
Writes benchmarks/results/overhead_<backbone>_<device>.json with provenance. `--recompute-on-cpu` times the
memory-saving recomputation that runs on GPUs (framer_nb.recompute) on the CPU as well. `--lens-chunk-bytes N`
sets how many bytes of block tokens the SD3 lens projects per call (framer_nb.taps.LENS_CHUNK_BYTES; 0: one layer
per call, the per-layer lens), on every device; `--compile` runs the FRAMER term through torch.compile (the
warm-up steps absorb the compilation).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import resource
import statistics
import time
from pathlib import Path

import torch

from framer_nb import backbones as B
from framer_nb import recompute, taps
from framer_nb.config import FramerConfig
from framer_nb.provenance import provenance
from framer_nb.step import StepOptions, training_loss

VARIANTS = {"baseline": FramerConfig(objective="none"), "framer": FramerConfig()}


def setup(args):
    recompute.use_on_cpu(args.recompute_on_cpu)
    if args.lens_chunk_bytes is not None:  # in every process: the peak-memory children run setup too
        taps.set_lens_chunk_bytes(args.lens_chunk_bytes, "accelerator")
        taps.set_lens_chunk_bytes(args.lens_chunk_bytes, "cpu")
    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[args.dtype]
    bb = B.build(args.backbone, device=args.device)
    bb.model.to(dtype)
    if args.context_tokens:  # the text sequence length of real prompts (SD3: 77 CLIP + 256 T5 tokens)
        bb.context = {k: v.expand(1, args.context_tokens, *v.shape[2:]) if k == "encoder_hidden_states" else v
                      for k, v in bb.context.items()}
    heads = bb.make_heads()
    heads = heads.to(args.device, dtype) if heads is not None else None
    params = list(bb.model.parameters()) + (list(heads.parameters()) if heads else [])
    opt = torch.optim.AdamW(params, lr=1e-5, fused=True)  # as framer_nb.train
    g = torch.Generator().manual_seed(0)
    x0 = torch.randn(args.batch, bb.out_channels, args.size, args.size, generator=g).to(args.device, dtype)
    return bb, heads, opt, x0


def one_step(bb, heads, opt, x0, cfg, seed, compile_loss=False):
    loss = training_loss(bb, x0, None, cfg, heads if cfg.objective != "none" else None,
                         torch.Generator().manual_seed(seed), StepOptions(compile=compile_loss)).total
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()


def sync(device):
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def time_steps(args) -> dict[str, list[float]]:
    """Alternate baseline/FRAMER steps on one model; per-step wall times after warm-up."""
    bb, heads, opt, x0 = setup(args)
    times = {k: [] for k in VARIANTS}
    for i in range(args.warmup + args.steps):
        for name, cfg in VARIANTS.items():
            sync(args.device)
            t0 = time.perf_counter()
            one_step(bb, heads, opt, x0, cfg, seed=i, compile_loss=args.compile)
            sync(args.device)
            if i >= args.warmup:
                times[name].append(time.perf_counter() - t0)
    del bb, heads, opt, x0
    return times


def _peak_child(args, name, queue):
    torch.set_num_threads(args.threads)
    bb, heads, opt, x0 = setup(args)
    for i in range(3):
        one_step(bb, heads, opt, x0, VARIANTS[name], seed=i, compile_loss=args.compile)
    if args.device.startswith("cuda"):
        queue.put(torch.cuda.max_memory_allocated() / 2**20)
    else:
        queue.put(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)  # KiB -> MiB on Linux


def peak_memory(args, name) -> float:
    """Peak memory (MiB) of a fresh process running 3 steps: CUDA allocator peak or CPU max RSS."""
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=_peak_child, args=(args, name, q))
    p.start()
    p.join()
    if p.exitcode != 0 or q.empty():
        raise RuntimeError(f"the peak-memory process of {name} failed (exit code {p.exitcode})")
    return q.get()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backbone", default="tiny-dit", help="registered backbone, built with random init")
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    ap.add_argument("--batch", type=int, default=16, help="batch size")
    ap.add_argument("--size", type=int, default=16, help="sample side in model space (unshuffled pixels or latents)")
    ap.add_argument("--dtype", default="fp32", choices=["fp32", "bf16"], help="parameter and activation dtype")
    ap.add_argument("--context-tokens", type=int, default=0, help="text tokens (SD3: 333 = 77 CLIP + 256 T5)")
    ap.add_argument("--steps", type=int, default=10, help="timed steps per variant")
    ap.add_argument("--warmup", type=int, default=3, help="untimed steps per variant first")
    ap.add_argument("--threads", type=int, default=torch.get_num_threads(), help="CPU threads")
    ap.add_argument("--recompute-on-cpu", action="store_true",
                    help="recompute the FRAMER term and the SD3 lens in the backward pass on the CPU too, as on GPUs")
    ap.add_argument("--lens-chunk-bytes", type=int, default=None,
                    help="bytes of tokens per SD3 lens call (0: one layer per call); default: the package's")
    ap.add_argument("--compile", action="store_true", help="the FRAMER term through torch.compile (StepOptions.compile)")
    ap.add_argument("--skip-memory", action="store_true", help="time only (no peak-memory processes)")
    ap.add_argument("--out", default=None, help="JSON path (default benchmarks/results/overhead_<backbone>_<device>.json)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    times = time_steps(args)
    if args.device.startswith("cuda"):
        torch.cuda.empty_cache()  # the timing model is gone: leave the whole card to the fresh processes
    mem = {} if args.skip_memory else {name: peak_memory(args, name) for name in VARIANTS}
    med = {k: statistics.median(v) for k, v in times.items()}
    result = provenance(benchmark="overhead", args=vars(args), device_name=_device_name(args.device),
                        lens_chunk_bytes=dict(taps.LENS_CHUNK_BYTES),
                        median_step_s=med, step_s=times, peak_memory_mib=mem,
                        time_ratio=med["framer"] / med["baseline"],
                        memory_ratio=mem["framer"] / mem["baseline"] if mem else None,
                        memory_kind="cuda max_memory_allocated" if args.device.startswith("cuda") else "process max RSS")
    out = Path(args.out or f"benchmarks/results/overhead_{args.backbone}_{args.device.split(':')[0]}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    memory = (f"peak memory {mem['baseline']:.0f} -> {mem['framer']:.0f} MiB (x{result['memory_ratio']:.3f})" if mem
              else "memory not measured")
    print(f"{args.backbone} on {result['device_name']}: step {med['baseline']*1e3:.1f} ms -> {med['framer']*1e3:.1f} ms "
          f"(x{result['time_ratio']:.3f}); {memory}; wrote {out}")


def _device_name(device: str) -> str:
    if device.startswith("cuda"):
        return torch.cuda.get_device_name()
    import platform
    return f"CPU {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads"


if __name__ == "__main__":
    main()
