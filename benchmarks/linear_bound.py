"""The best linear SR filter: how much of HR - bicubic(LR) any linear function of the bicubic-up LR explains.

A k x k (x 3 channels) filter plus bias is fit by least squares (ridge 1e-3) on the `small` profile's training
pairs, mapping the bicubic-upsampled LR to the residual HR - bicubic(LR), then scored on the held-out test set.
If even the optimal linear sharpening filter does not beat bicubic, the gap a trained model must close is
entirely nonlinear (edge and texture priors), which a tiny model learns slowly.

python benchmarks/linear_bound.py  ->  benchmarks/results/linear_bound.json   (about 1 minute on 2 cores)
"""

import argparse
import dataclasses
import json
from pathlib import Path

import torch
import torch.nn.functional as F

from framer_nb.config import profile
from framer_nb.degrade import load_preset
from framer_nb.metrics import mean_psnr_db
from framer_nb.pipeline import test_set
from framer_nb.provenance import provenance
from framer_nb.train import data_source, sr_pair, step_generator


def patches(img: torch.Tensor, k: int) -> torch.Tensor:
    """[B, 3, H, W] -> [B * H * W, 3 k k + 1]: each pixel's k x k neighbourhood (replicate-padded) and a 1."""
    cols = F.unfold(F.pad(img, (k // 2,) * 4, mode="replicate"), k).transpose(1, 2)
    cols = cols.reshape(-1, cols.shape[-1]).double()
    return torch.cat([cols, torch.ones(len(cols), 1, dtype=cols.dtype)], 1)


def fit_and_score(degradation: str, photo_share: float, k: int, batches: int, test: dict) -> dict:
    """Least-squares filter on `batches` training batches; train MSE relative to the zero residual, test PSNR."""
    cfg = dataclasses.replace(profile("small").train, degradation=degradation, photo_share=photo_share)
    src, preset = data_source(cfg), load_preset(degradation)
    gram, cross, sq, n = 0.0, 0.0, 0.0, 0
    for i in range(batches):
        g = step_generator(0, i, "linear-bound")
        x0, lr = sr_pair(src.batch(cfg.batch_size, cfg.image_size, g), preset, cfg, g)
        X, Y = patches(lr, k), x0.permute(0, 2, 3, 1).reshape(-1, 3).double()
        gram, cross, sq, n = gram + X.T @ X, cross + X.T @ Y, sq + Y.pow(2).sum(), n + len(Y)
    W = torch.linalg.solve(gram + 1e-3 * torch.eye(gram.shape[0], dtype=gram.dtype), cross)
    train_mse = (sq - 2 * (W * cross).sum() + (W * (gram @ W)).sum()) / n / 3
    cond = test["lr_up"] * 2 - 1
    res = (patches(cond, k) @ W).float().reshape(cond.shape[0], *cond.shape[-2:], 3).permute(0, 3, 1, 2)
    sr = ((cond + res + 1) / 2).clamp(0, 1)
    return {"train_mse_over_zero_predictor": round((train_mse / (sq / n / 3)).item(), 4),
            "test_psnr_db": mean_psnr_db(sr, test["hr"]),
            "bicubic_psnr_db": mean_psnr_db(test["lr_up"], test["hr"])}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--k", type=int, default=9, help="filter side in HR pixels")
    ap.add_argument("--batches", type=int, default=150, help="training batches of the small profile's size")
    ap.add_argument("--out", default="benchmarks/results/linear_bound.json", help="results JSON")
    args = ap.parse_args()
    torch.set_num_threads(2)
    p = profile("small")
    results = {}
    for degradation in ("tiny", "realesrgan_x4plus"):
        test = test_set(dataclasses.replace(p, train=dataclasses.replace(p.train, degradation=degradation)))
        for share in (0.5, 1.0):  # half dead leaves, or photos only
            key = f"{degradation}/photo_share={share}"
            results[key] = fit_and_score(degradation, share, args.k, args.batches, test)
            print(key, results[key], flush=True)
    res = provenance(benchmark="linear_bound", profile="small", k=args.k, batches=args.batches,
                     batch_size=p.train.batch_size, image_size=p.train.image_size, n_test=p.n_test,
                     test_size=p.test_size, results=results)
    Path(args.out).write_text(json.dumps(res, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
