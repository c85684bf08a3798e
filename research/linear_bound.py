"""The best linear x4 filter on the small task: how much of the tiny models' one-step gain a linear map explains.

A K x K convolution in the tiny models' space (images pixel-unshuffled x4, 48 channels at LR resolution; K = 3
reads 3 x 3 LR positions of the bicubic upsample) is fitted by least squares to HR - bicubic on training crops of
the training photos (the SR training sampler: 64-px crops, the profile's scale range, flips and rotations), then
scored on the 8 validation crops and, for reference only, the 8 test crops (nothing is chosen on them).

    python research/linear_bound.py                      ->  research/results/linear_bound.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from framer_nb.config import profile
from framer_nb.degrade import bicubic_down, bicubic_up
from framer_nb.provenance import provenance
from framer_nb.spaces import unshuffle

FACTOR = 4  # the tiny models' pixel-unshuffle factor (and the SR scale)


def fit_filter(kernel: int, batches: int = 20, batch: int = 64, seed: int = 0, ridge: float = 1e-3) -> torch.nn.Conv2d:
    """Least-squares K x K conv (48 -> 48 channels, with bias, replicate padding) from the unshuffled bicubic
    upsample to the unshuffled residual HR - upsample, images in [-1, 1], on `batches` x `batch` training crops."""
    from framer_nb.pairs import builtin_source, data_generator
    cfg = profile("small").train
    source, pad, channels = builtin_source(), kernel // 2, 3 * FACTOR ** 2
    gram, cross = 0.0, 0.0
    for i in range(batches):
        hr, _ = source.batch(batch, cfg.image_size, data_generator(seed, i, "linear-bound"), cfg.crop_scale)
        up = bicubic_up(bicubic_down(hr, FACTOR), FACTOR) * 2 - 1
        z = unshuffle(up, FACTOR)
        x = F.unfold(F.pad(z, (pad,) * 4, mode="replicate"), kernel).transpose(1, 2).reshape(-1, channels * kernel ** 2)
        x = torch.cat([x, torch.ones(len(x), 1)], 1).double()
        y = unshuffle(hr * 2 - 1 - up, FACTOR).permute(0, 2, 3, 1).reshape(-1, channels).double()
        gram, cross = gram + x.T @ x, cross + x.T @ y
    w = torch.linalg.solve(gram + ridge * torch.eye(len(gram), dtype=gram.dtype), cross).float()
    conv = torch.nn.Conv2d(channels, channels, kernel, padding=pad, padding_mode="replicate")
    with torch.no_grad():
        conv.weight.copy_(w[:-1].T.reshape(channels, channels, kernel, kernel))
        conv.bias.copy_(w[-1])
    return conv.requires_grad_(False)


def apply_filter(conv: torch.nn.Conv2d, up: torch.Tensor) -> torch.Tensor:
    """Bicubic upsamples in [0, 1] -> the filter's SR images in [0, 1]."""
    z = unshuffle(up * 2 - 1, FACTOR)
    with torch.no_grad():
        return ((F.pixel_shuffle(z + conv(z), FACTOR) + 1) / 2).clamp(0, 1)


def score(conv: torch.nn.Conv2d, split: str) -> dict:
    from framer_nb.evaluate import make_test_set
    from framer_nb.metrics import psnr
    test = make_test_set(8, 128, "bicubic", split=split)
    hr, up = torch.stack(test.hr), torch.stack(test.lr_up())
    bicubic, linear = float(psnr(up, hr).mean()), float(psnr(apply_filter(conv, up), hr).mean())
    return {"split": split, "bicubic_psnr": round(bicubic, 3), "linear_psnr": round(linear, 3),
            "gain": round(linear - bicubic, 3)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kernels", default="1,3,5", help="comma list of filter sizes K (LR positions)")
    ap.add_argument("--out", default="research/results/linear_bound.json", help="JSON path")
    args = ap.parse_args()
    torch.set_num_threads(2)
    filters = []
    for k in (int(k) for k in args.kernels.split(",")):
        t = time.perf_counter()
        conv = fit_filter(k)
        fit_s = round(time.perf_counter() - t, 1)
        for split in ("val", "test"):
            filters.append({"kernel": k, "fit_s": fit_s, **score(conv, split)})
            print(filters[-1], flush=True)
    out = Path(args.out)
    out.write_text(json.dumps(provenance(benchmark="linear_bound", train_data="builtin:train photos",
                                         fit="20 x 64 crops of 64 px, ridge 1e-3", filters=filters), indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
