"""Command line: python -m framer_nb {train,evaluate,observe,reproduce} ... (batch use without Jupyter)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--profile", default="small", help="named budget: smoke | small | gpu | paper (default small)")
    p.add_argument("--backbone", default=None, help="tiny-dit | tiny-unet | sd35-medium | sd2-base "
                                                    "(default: the profile's first backbone)")
    p.add_argument("--seed", type=int, default=None, help="training seed (default: the profile's seeds)")
    p.add_argument("--runs", default="runs", help="folder of training runs and cached priors (default runs/)")


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m framer_nb", description=__doc__)
    sub = ap.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="pretrain the prior (cached) and fine-tune SR variants")
    _add_common(t)
    t.add_argument("--variant", default="framer", help="variant name, comma list, or 'all' (see --list-variants)")
    t.add_argument("--list-variants", action="store_true", help="print the variants and their switches, then exit")
    t.add_argument("--steps", type=int, default=None, help="SR fine-tuning steps (default: profile)")
    t.add_argument("--prior-steps", type=int, default=None, help="prior pretraining steps (default: profile)")
    t.add_argument("--batch-size", type=int, default=None, help="batch size per process (default: profile)")
    t.add_argument("--lr", type=float, default=None, help="SR learning rate (default: profile)")
    t.add_argument("--lr-schedule", default=None, choices=["constant", "cosine"],
                   help="LR after the 20-step warm-up: constant, or cosine decay to 0 (default: profile)")
    t.add_argument("--ema-decay", type=float, default=None,
                   help="save an exponential moving average of the weights with this decay, e.g. 0.99 (default: profile)")
    t.add_argument("--degradation", default=None, help="preset name in data/degradations/ or a YAML path")
    t.add_argument("--hr-folder", default=None, help="train on your own HR images instead of the embedded default")
    t.add_argument("--mixed-precision", default=None, choices=["no", "fp16", "bf16"], help="accelerate precision")
    t.add_argument("--grad-accum", type=int, default=None, help="gradient accumulation steps")
    t.add_argument("--grad-checkpointing", action="store_true", help="gradient checkpointing (real backbones)")
    t.add_argument("--no-resume", action="store_true", help="start from scratch even if a checkpoint exists")
    t.add_argument("--stop-after", type=int, default=None, help="stop (checkpointed) after this step; resume later")

    e = sub.add_parser("evaluate", help="super-resolve the test set with trained runs and score them")
    _add_common(e)
    e.add_argument("--variant", default="baseline,framer", help="variant name, comma list, or 'all'")
    e.add_argument("--results", default=None, help="results folder (default build/<profile>/results)")
    e.add_argument("--protocol", default="framer", help="metric protocol: framer | osediff")
    e.add_argument("--lr-folder", default=None, help="paired test LR folder (e.g. RealSR); needs --hr-test-folder")
    e.add_argument("--hr-test-folder", default=None, help="paired test HR folder matched to --lr-folder by stem")

    o = sub.add_parser("observe", help="compute the observation statistics (Figs. 2, 3, 5) for a profile")
    _add_common(o)
    o.add_argument("--out", default=None, help="output folder (default build/<profile>/results/observe)")

    r = sub.add_parser("reproduce", help="run every notebook in order with papermill (figures, tables)")
    r.add_argument("--profile", default="small", help="smoke | small | gpu | paper")
    r.add_argument("--build", default="build", help="folder for executed notebooks and results")
    r.add_argument("--figures", default=None, help="figures folder (default figures/ for small, else build/<p>/figures)")
    r.add_argument("--only", default=None, help="comma list of notebook name prefixes to run (e.g. 01,02)")
    return ap


def _variants(arg: str) -> list[str]:
    from .config import VARIANTS
    return list(VARIANTS) if arg == "all" else [v.strip() for v in arg.split(",") if v.strip()]


def _train_configs(args):
    from .config import profile, with_overrides
    p = profile(args.profile)
    backbone = args.backbone or p.backbones[0]
    seeds = [args.seed] if args.seed is not None else list(p.seeds)
    over = dict(backbone=backbone, sr_steps=getattr(args, "steps", None), prior_steps=getattr(args, "prior_steps", None),
                batch_size=getattr(args, "batch_size", None), lr=getattr(args, "lr", None),
                degradation=getattr(args, "degradation", None), mixed_precision=getattr(args, "mixed_precision", None),
                grad_accum=getattr(args, "grad_accum", None), lr_schedule=getattr(args, "lr_schedule", None),
                ema_decay=getattr(args, "ema_decay", None),
                grad_checkpointing=True if getattr(args, "grad_checkpointing", False) else None)
    return p, [with_overrides(p.train, **over, seed=s) for s in seeds]


def cmd_train(args) -> int:
    from .config import VARIANTS
    from .train import train_sr
    if args.list_variants:
        for name, cfg in VARIANTS.items():
            print(f"{name:16s} {cfg}")
        return 0
    _, cfgs = _train_configs(args)
    hr = None
    if args.hr_folder:
        from .data import hr_folder
        hr = hr_folder(args.hr_folder, cfgs[0].image_size)
    for cfg in cfgs:
        for v in _variants(args.variant):
            run = train_sr(cfg, v, args.runs, resume=not args.no_resume, stop_after=args.stop_after, hr_images=hr)
            print(f"{v} seed {cfg.seed}: {run}")
    import torch.distributed as dist
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()  # under accelerate launch / torchrun: leave no gloo/NCCL threads behind
    return 0


def cmd_evaluate(args) -> int:
    import torch

    from . import evaluate as E
    from .degrade import bicubic_up
    from .pipeline import RunSpec, eval_dir
    from .train import load_trained, sr_dir
    p, cfgs = _train_configs(args)
    results = Path(args.results or f"build/{p.name}/results")
    if args.lr_folder:
        from .data import paired_folders
        pairs = paired_folders(args.lr_folder, args.hr_test_folder, cfgs[0].scale)
        lr = torch.stack([q.lr for q in pairs])
        test = {"names": [q.name for q in pairs], "hr": torch.stack([q.hr for q in pairs]), "lr": lr,
                "lr_up": bicubic_up(lr, cfgs[0].scale)}
    else:
        test = E.make_test_set(p.n_test, p.test_size, cfgs[0].degradation, cfgs[0].scale)
    E.evaluate_bicubic(test, results / "eval" / "bicubic", args.protocol)
    for cfg in cfgs:
        for v in _variants(args.variant):
            run = sr_dir(cfg, v, args.runs)
            if not (run / "done.json").exists():
                print(f"{run}: not trained yet; run `python -m framer_nb train --variant {v}` first", file=sys.stderr)
                return 2
            bb, _ = load_trained(run, cfg.backbone)
            spec = RunSpec(cfg.backbone, v, cfg.seed, cfg)
            df = E.evaluate_run(bb, test, eval_dir(results, spec), spec.label, cfg.sample_steps, cfg.seed,
                                cfg.image_size, args.protocol)
            print(f"{cfg.backbone} {v} seed {cfg.seed}: " +
                  ", ".join(f"{k}={x:.3f}" for k, x in df.mean(numeric_only=True).items() if k != "seed"))
    return 0


def cmd_observe(args) -> int:
    import json

    from . import observe as O
    from .config import profile
    p = profile(args.profile)
    out = Path(args.out or f"build/{p.name}/results/observe")
    prov = {"profile": p.name, "command": "observe"}
    images = O.observation_images(p)
    print(O.save_csv(O.band_densities(images["hr"], images["lr_up"]), out / "band_density.csv", **prov))
    priors = O.load_priors(p, args.runs)
    small = O.observation_images(p, size=p.train.image_size)
    print(O.save_csv(O.observe_models(priors, small), out / "layer_similarity.csv", **prov))
    cross = {b: O.cross_sample(bb, h, small) for b, (bb, h) in priors.items()}
    (out / "cross_sample.json").write_text(json.dumps(cross))
    print(out / "cross_sample.json")
    return 0


def cmd_reproduce(args) -> int:
    from .notebooks import run_all
    return run_all(args.profile, Path(args.build), args.figures, args.only)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return {"train": cmd_train, "evaluate": cmd_evaluate, "observe": cmd_observe,
            "reproduce": cmd_reproduce}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
