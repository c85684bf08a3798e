"""PSNR of bicubic-upsampled LR vs HR for each degradation (256 training crops), and the cost of drawing a batch.

python benchmarks/degradation_psnr.py  ->  benchmarks/results/degradation_psnr.json
"""

import json
import time
from pathlib import Path

import torch

from framer_nb.config import TrainConfig
from framer_nb.degrade import bicubic_up, degrade, load_preset
from framer_nb.metrics import psnr
from framer_nb.provenance import provenance
from framer_nb.train import builtin_source, step_generator


def main() -> None:
    cfg = TrainConfig()
    src = builtin_source()
    hr, _ = src.batch(256, cfg.image_size, step_generator(0, "bench"), cfg.crop_scale)
    out = {}
    for name in ("bicubic", "light", "realesrgan_x4plus"):
        preset = load_preset(name)
        t0 = time.perf_counter()
        lr = degrade(hr, preset, torch.Generator().manual_seed(0))
        secs = time.perf_counter() - t0
        p = psnr(bicubic_up(lr, 4), hr)
        out[name] = {"psnr_mean_db": round(p.mean().item(), 2), "psnr_std_db": round(p.std().item(), 2),
                     "ms_per_image": round(1e3 * secs / len(hr), 2)}
        print(f"{name}: bicubic-up LR vs HR PSNR {p.mean():.2f} +- {p.std():.2f} dB ({out[name]['ms_per_image']} ms/img)")
    t0 = time.perf_counter()
    for step in range(20):
        src.batch(cfg.batch_size, cfg.image_size, step_generator(0, step), cfg.crop_scale)
    out["crop_ms_per_batch"] = round(1e3 * (time.perf_counter() - t0) / 20, 2)
    res = provenance(benchmark="degradation_psnr", images=len(hr), size=cfg.image_size, presets=out)
    path = Path("benchmarks/results/degradation_psnr.json")
    path.write_text(json.dumps(res, indent=2))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
