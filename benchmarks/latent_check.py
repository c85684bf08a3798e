"""Latent training on random-init pipelines of the real SD3.5-medium and SD2-base shapes (the GPU check).

For each backbone: write a random pipeline folder (real transformer / U-Net and VAE configs, no text encoders:
the null prompt is zeros), run the README's paper-profile command through the CLI for `--steps` steps on HR
crops of the shipped training photos, then decode-evaluate the run on two held-out crops. Writes
benchmarks/results/latent_train_<device>.json with provenance: wall times, median step time, losses, PSNR.

    python benchmarks/latent_check.py --steps 20 --image-size 256 --batch-size 4
    python benchmarks/latent_check.py --tiny --steps 2 --image-size 64 --batch-size 2     # CPU dry run
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import torch
from PIL import Image

from framer_nb import evaluate as E
from framer_nb.data import photos
from framer_nb.metrics import psnr
from framer_nb.provenance import provenance
from framer_nb.runs import Run
from framer_nb.toy import make_pipeline
from framer_nb.train import load_trained


def dump_photos(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for k, img in enumerate(photos("train", scale=1.0)):
        arr = (img.permute(1, 2, 0).numpy() * 255).round().astype("uint8")
        Image.fromarray(arr).save(folder / f"train{k:02d}.png")
    return folder


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backbones", default="sd35-medium,sd2-base", help="comma list")
    ap.add_argument("--steps", type=int, default=50, help="training steps per backbone")
    ap.add_argument("--image-size", type=int, default=256, help="HR crop side in pixels")
    ap.add_argument("--batch-size", type=int, default=4, help="batch size")
    ap.add_argument("--tiny", action="store_true", help="tiny pipelines of the same families (a CPU dry run)")
    ap.add_argument("--work", default="/tmp/framer_latent_check", help="scratch folder (pipelines, runs)")
    ap.add_argument("--out", default=None, help="JSON path (default benchmarks/results/latent_train_<device>.json)")
    args = ap.parse_args()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    work = Path(args.work)
    hr = dump_photos(work / "hr")
    results = {}
    for name in args.backbones.split(","):
        t0 = time.time()
        pipe = make_pipeline(name, work / f"pipe-{name}", tiny=args.tiny, text_encoders=False,
                             dtype=torch.float32 if args.tiny else torch.bfloat16, device=device)
        made = time.time() - t0
        cmd = [sys.executable, "-m", "framer_nb", "train", "--profile", "paper", "--backbone", name,
               "--pretrained", str(pipe), "--hr-folder", str(hr), "--image-size", str(args.image_size),
               "--steps", str(args.steps), "--batch-size", str(args.batch_size), "--mixed-precision",
               "bf16" if device == "cuda" else "no", "--variant", "framer", "--runs", str(work / "runs")]
        t1 = time.time()
        proc = subprocess.run(cmd, capture_output=True, text=True)
        trained = time.time() - t1
        entry = {"command": " ".join(cmd[1:]), "returncode": proc.returncode, "pipeline_write_s": round(made, 1),
                 "train_wall_s": round(trained, 1), "stderr_tail": proc.stderr[-1500:]}
        if proc.returncode == 0:
            run = Run(Path(proc.stdout.strip().splitlines()[-1].split(": ", 1)[1].split(" (")[0]))
            log = pd.read_csv(run.log_file)
            entry.update(median_step_s=float(log["step_s"].median()), first_loss=float(log["total"].iloc[0]),
                         last_loss=float(log["total"].iloc[-1]), steps=int(log["step"].iloc[-1]), run=str(run.path))
            bb, _ = load_trained(run)
            bb.to(device)
            test = E.make_test_set(2, args.image_size, "realesrgan_x4plus")
            t2 = time.time()
            sr = E.super_resolve_set(bb, test, steps=4, seed=0, tile=args.image_size)
            entry.update(eval_s=round(time.time() - t2, 1), eval_psnr_4steps=float(psnr(torch.stack(sr),
                                                                                        torch.stack(test.hr)).mean()))
        results[name] = entry
        print(name, {k: v for k, v in entry.items() if k != "stderr_tail"}, flush=True)
    gpu = torch.cuda.get_device_name() if device == "cuda" else "cpu"
    out = Path(args.out or f"benchmarks/results/latent_train_{device}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(provenance(benchmark="latent_check", args=vars(args), device_name=gpu,
                                         results=results), indent=2))
    print(f"wrote {out}")
    sys.exit(0 if all(r["returncode"] == 0 for r in results.values()) else 1)


if __name__ == "__main__":
    main()
