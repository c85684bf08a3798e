"""One-step gain over bicubic on the validation crops for several tile overlaps of the tiled sampler.

Test images are super-resolved in overlapping tiles of the training crop (64 px), averaged where they overlap
(framer_nb.evaluate.tiled). The tiny DiT's tokens cover 8 x 8 pixels; a stride that is a multiple of 8 px (such as
the 32-px stride of half a tile, the rule before framer_nb.evaluate.tile_stride) puts every tile's token grid on
the same pixels, a stride of an odd number of 4-px model positions (today's rule: 20 px) interleaves them. Scores
the seed-0 runs of today's small recipe that `make reproduce` trained (no training here):

    python research/tile_overlap.py --runs build/runs   ->  research/results/tile_overlap.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from framer_nb.config import profile
from framer_nb.evaluate import make_test_set, super_resolve
from framer_nb.metrics import psnr
from framer_nb.provenance import provenance
from framer_nb.train import load_trained, sr_run


def run_folder(runs: Path, backbone: str, variant: str, seed: int) -> Path:
    """The finished run of the small profile's current recipe for a backbone, variant and seed under `runs`."""
    run = sr_run(profile("small").train_for(backbone, seed=seed), variant, runs)
    if not run.done:
        raise FileNotFoundError(f"{run.path}: no finished run of today's small recipe; run `make reproduce` first")
    return run.path


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", default="build/runs", help="runs folder of a `small` reproduce")
    ap.add_argument("--overlaps", default="32,36,44,52,60", help="comma list of overlaps in pixels (tile 64)")
    ap.add_argument("--variants", default="baseline,framer", help="comma list")
    ap.add_argument("--seed", type=int, default=0, help="training seed of the runs scored")
    ap.add_argument("--out", default="research/results/tile_overlap.json", help="JSON path")
    args = ap.parse_args()
    torch.set_num_threads(1)
    p = profile("small")
    test = make_test_set(8, 128, p.train.degradation, split="val")
    hr, up = torch.stack(test.hr), torch.stack(test.lr_up())
    bicubic = float(psnr(up, hr).mean())
    overlaps = [int(o) for o in args.overlaps.split(",")]
    rows = []
    for backbone in p.backbones:
        for variant in args.variants.split(","):
            folder = run_folder(Path(args.runs), backbone, variant, args.seed)
            bb, _ = load_trained(folder)
            for ov in overlaps:
                gain = float(psnr(super_resolve(bb, up, 1, 0, 64, overlap=ov), hr).mean()) - bicubic
                rows.append({"backbone": backbone, "variant": variant, "overlap_px": ov, "stride_px": 64 - ov,
                             "gain_1step": round(gain, 3), "run": folder.name})
                print(rows[-1], flush=True)
    result = provenance(benchmark="tile_overlap", split="val", args=vars(args), bicubic_psnr=round(bicubic, 3),
                        results=rows)
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
