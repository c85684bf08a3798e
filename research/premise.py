"""Does a small setting have FRAMER's premise? Pretrain candidate priors and measure the Fig. 3 lag on them.

FRAMER corrects intermediate layers that align with the final layer on LF early and on HF only late. Before
distilling anything, this probe measures that lag on each candidate's pretrained prior, on the *validation*
photos (16 crops of 64 px, the training crop, from the 4 validation photos): per crop, the mean over layers at
normalised depth <= 0.75 of (LF - HF) similarity to the final layer (`framer_nb.observe.premise_gaps`), then its
mean over the crops of each photo, then a t-interval over the photos (`framer_nb.stats.compare`). A candidate
shows the lag at a timestep when that interval lies above zero.

The candidates vary what is diffused (the whole image, as in the paper, or the residual 4 (HR - bicubic LR) that
today's small recipe diffuses), depth at about equal compute (DiT: 6 layers 128 wide or 12 layers 96 wide; U-Net:
3 or 4 resolution levels) and the backbone family. Every candidate's prior is pretrained here for the same
number of steps (a cosine schedule at batch 64); the shipped priors (data/priors, about 8 times as many steps at a
constant rate) are measured beside them as a check of what the short schedule changes.

    python research/premise.py --steps 300 --out build/premise                      # every candidate
    python research/premise.py --candidates dit6-image,dit12-image --steps 300     # some of them
    python research/premise.py --sr --candidates dit6-image,dit6-residual --steps 300   # does it still super-resolve?
    python research/premise.py --collect --out build/premise                        # -> research/results/premise.json

`--sr` fine-tunes a candidate's prior for SR with the small profile's recipe for its backbone family (the
baseline variant, seed 0) and scores the one-step and 10-step PSNR gain over bicubic on the validation photos
(`framer_nb.evaluate.validation_gain`); written to <out>/sr-<candidate>.json.

Each candidate's result is written to <out>/<candidate>.json as soon as it is measured (a rerun skips it), and
its prior resumes from its last checkpoint if interrupted.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import torch

from framer_nb import backbones as B
from framer_nb.config import TrainConfig, profile
from framer_nb.data import SPLITS
from framer_nb.evaluate import validation_gain
from framer_nb.loop import heldout_objective
from framer_nb.observe import observation_images, premise_gaps, premise_summary
from framer_nb.priors import residual_scale_of, shipped_prior
from framer_nb.provenance import provenance
from framer_nb.train import load_trained, starting_point, train_sr

RESULTS = Path(__file__).parent / "results" / "premise.json"
TIMESTEPS = (300, 700)
UNET4 = dict(block_out_channels=(32, 64, 64, 64),
             down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
             up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"))
DIT12 = dict(num_layers=12, num_attention_heads=3, caption_projection_dim=96)
# candidate -> (registered backbone, config overrides, target); "" overrides: the shipped shape
CANDIDATES: dict[str, tuple[str, dict, str]] = {
    "dit6-residual": ("tiny-dit", {}, "residual"),
    "dit6-image": ("tiny-dit", {}, "image"),
    "dit12-residual": ("tiny-dit", DIT12, "residual"),
    "dit12-image": ("tiny-dit", DIT12, "image"),
    "unet3-residual": ("tiny-unet", {}, "residual"),
    "unet3-image": ("tiny-unet", {}, "image"),
    "unet4-residual": ("tiny-unet", UNET4, "residual"),
    "unet4-image": ("tiny-unet", UNET4, "image"),
}
# the priors shipped in data/priors (trained about 8 times longer): name -> (backbone, target)
SHIPPED = {"shipped-dit-residual": ("tiny-dit", "residual"), "shipped-unet-residual": ("tiny-unet", "residual"),
           "shipped-dit-image": ("tiny-dit", "image")}


def register(name: str) -> str:
    """The candidate's backbone key: the registered one, or a resized copy registered as '<base>@<name>'."""
    base, over, _ = CANDIDATES[name]
    if not over:
        return base
    key = f"{base}@{name.split('-')[0]}"
    s = B.spec(base)
    B.register(dataclasses.replace(s, name=key, config={**s.config, **over}, prior=None))
    return key


def prior_config(name: str, steps: int) -> TrainConfig:
    """The prior stage of a candidate: `steps` cosine-scheduled steps at batch 64, lr 1e-3."""
    _, _, target = CANDIDATES[name]
    return TrainConfig(backbone=register(name), prior="train", prior_steps=steps, prior_batch_size=64,
                       prior_lr=1e-3, lr_schedule="cosine", target=target, mixed_precision="no", log_every=50,
                       ckpt_every=50)


def lag(bb: B.Backbone, images: dict) -> dict:
    """Per timestep: the LF - HF gap's mean over photos, its 95% interval and MDE, and the three-way reading."""
    return premise_summary(premise_gaps(bb, images, TIMESTEPS))


def measure(name: str, steps: int, out: Path) -> dict:
    """Pretrain (or load) the candidate's prior, then measure its lag; written to <out>/<name>.json."""
    result_file = out / f"{name}.json"
    if result_file.exists():
        return json.loads(result_file.read_text())
    t0 = time.time()
    if name in SHIPPED:
        backbone, target = SHIPPED[name]
        card = shipped_prior(backbone, target=target)
        cfg = TrainConfig(backbone=backbone, target=target,
                          **({"residual_scale": residual_scale_of(card)} if target == "residual" else {}))
        prior = {"prior": "shipped", "steps": card["steps"]}
    else:
        cfg = prior_config(name, steps)
        prior = {"prior": "pretrained here", "steps": steps, "batch_size": 64, "lr": 1e-3, "schedule": "cosine"}
    bb = starting_point(cfg, out / "runs")
    images = observation_images(profile("small"), n=16, size=64, photos=SPLITS["val"])
    result = {"candidate": name, "backbone": cfg.backbone, "target": cfg.target,
              "config": B.spec(cfg.backbone).config, "students": bb.num_students,
              "parameters": sum(p.numel() for p in bb.model.parameters()), **prior,
              "heldout_objective": round(heldout_objective(bb, cfg), 5), "lag": lag(bb, images),
              "wall_s": round(time.time() - t0, 1)}
    result["shows_lag"] = all(v["reading"] == "lag" for v in result["lag"].values())
    out.mkdir(parents=True, exist_ok=True)
    result_file.write_text(json.dumps(result, indent=2, default=str))
    return result


def super_resolves(name: str, steps: int, out: Path, sr_steps: int | None = None) -> dict:
    """Fine-tune the candidate's prior for SR (small recipe of its family, baseline, seed 0); its validation gains."""
    result_file = out / f"sr-{name}.json"
    if result_file.exists():
        return json.loads(result_file.read_text())
    base, _, target = CANDIDATES[name]
    prior_cfg = prior_config(name, steps)
    folder = out / "priors" / name
    if not (folder / "config.json").exists():
        starting_point(prior_cfg, out / "runs").model.save_pretrained(folder)
    cfg = dataclasses.replace(profile("small").train_for(base), backbone=prior_cfg.backbone, target=target,
                              pretrained=str(folder.resolve()), seed=0)
    cfg = dataclasses.replace(cfg, sr_steps=sr_steps or cfg.sr_steps)
    t0 = time.time()
    bb, _ = load_trained(train_sr(cfg, "baseline", out / "runs"))
    result = {"candidate": name, "target": target, "prior_steps": steps, "sr_steps": cfg.sr_steps,
              "train_s": round(time.time() - t0, 1), **validation_gain(bb, steps=10)}
    result_file.write_text(json.dumps(result, indent=2, default=str))
    return result


def target_spectra(radius: float = 0.25) -> list[dict]:
    """Per held-out photo (validation and test): the share of spectral energy within `radius` of Nyquist (radial, DC
    removed) of the HR image and of the residual HR - bicubic(LR) (bicubic x4), on the photo's central 128-px
    crop per colour channel: what each target puts where FRAMER's bands split."""
    from framer_nb.data import photo
    from framer_nb.degrade import bicubic_up, degrade, load_preset
    from framer_nb.freq import radial_frequency, spectrum
    rows = []
    for name in SPLITS["val"] + SPLITS["test"]:
        img = photo(name)
        H, W = img.shape[-2:]
        hr = img[:, (H - 128) // 2:(H + 128) // 2, (W - 128) // 2:(W + 128) // 2][None]
        up = bicubic_up(degrade(hr, load_preset("bicubic"), torch.Generator().manual_seed(0)), 4)
        low = radial_frequency(128, 128) <= radius
        row = {"photo": name}
        for what, x in (("image", hr), ("residual", hr - up)):
            power = spectrum(x - x.mean(dim=(-2, -1), keepdim=True)).abs().pow(2).sum(dim=(0, 1))
            row[f"{what}_low_share"] = round(float(power[low].sum() / power.sum()), 4)
        rows.append(row)
    return rows


def collect(out: Path, steps: int) -> dict:
    rows = [json.loads(f.read_text()) for f in sorted(out.glob("*.json")) if not f.name.startswith("sr-")]
    sr = {r["candidate"]: r for r in (json.loads(f.read_text()) for f in sorted(out.glob("sr-*.json")))}
    for r in rows:
        if r["candidate"] in sr:
            r["super_resolution"] = sr[r["candidate"]]
    doc = provenance(question="which small setting shows the low-first, high-later lag FRAMER corrects?",
                     data="validation photos: 16 crops of 64 px from 4 photos, intervals over photos",
                     timesteps=list(TIMESTEPS), prior_steps=steps,
                     command=f"python research/premise.py --steps {steps} --out {out}", candidates=rows,
                     target_spectra=target_spectra())
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(doc, indent=2, default=str))
    return doc


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--candidates", default=",".join([*CANDIDATES, *SHIPPED]),
                    help=f"comma-separated, from {', '.join([*CANDIDATES, *SHIPPED])}")
    ap.add_argument("--steps", type=int, default=300, help="prior pretraining steps per candidate")
    ap.add_argument("--out", default="build/premise")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--sr", action="store_true", help="fine-tune the candidates for SR and score them on validation")
    ap.add_argument("--sr-steps", type=int, default=None, help="SR steps (default: the small profile's)")
    ap.add_argument("--collect", action="store_true", help="gather <out>/*.json into research/results/premise.json")
    args = ap.parse_args()
    out = Path(args.out)
    if args.collect:
        print(f"wrote {RESULTS} ({len(collect(out, args.steps)['candidates'])} candidates)")
        return
    torch.set_num_threads(args.threads)
    names = [n for n in args.candidates.split(",") if n]
    unknown = [n for n in names if n not in CANDIDATES and n not in SHIPPED]
    if unknown:
        ap.error(f"unknown candidates {unknown}; known: {', '.join([*CANDIDATES, *SHIPPED])}")
    for name in names:
        if args.sr:
            if name not in CANDIDATES:
                ap.error(f"--sr needs a candidate pretrained here, not {name}")
            print(name, super_resolves(name, args.steps, out, args.sr_steps), flush=True)
            continue
        r = measure(name, args.steps, out)
        print(name, {t: (v["gap"], v["ci95"], v["reading"]) for t, v in r["lag"].items()}, flush=True)


if __name__ == "__main__":
    main()
