"""Command line: python -m framer_nb {train,evaluate,observe,pretrain,reproduce} ... (batch use without Jupyter).

Every argument and every file it names is checked before torch, diffusers or pyiqa are imported. A user error (bad
argument, missing or unreadable file, locked or incomplete run, a full or read-only disk) prints one line and exits
with 2; `--debug` shows the traceback instead. A non-finite training loss exits with 3, Ctrl-C with 130 (what was
saved is kept: checkpoints and results are written atomically). Relative paths are taken from the current folder.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import signal
import sys
import threading
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--profile", default="small",
                   help="named budget: smoke | small | small-residual | gpu | paper (default small)")
    p.add_argument("--backbone", default=None, help="tiny-dit | tiny-unet | sd35-medium | sd2-base "
                                                    "(default: the profile's first backbone)")
    p.add_argument("--seed", type=int, default=None, help="training seed (default: the profile's seeds)")
    p.add_argument("--runs", default="runs", help="folder of training runs (default runs/)")
    p.add_argument("--pretrained", default=None,
                   help="a diffusers pipeline folder (or bare model folder) to fine-tune instead of the shipped prior")
    p.add_argument("--image-size", type=int, default=None, help="HR crop side in pixels (default: profile)")
    p.add_argument("--degradation", default=None,
                   help="bicubic, a preset in data/degradations/ (light, realesrgan_x4plus) or a YAML path")
    p.add_argument("--debug", action="store_true", help="show the full traceback of an error")


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m framer_nb", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="fine-tune SR variants from the shipped prior or a pipeline")
    _add_common(t)
    t.add_argument("--variant", default="framer", help="variant name, comma list, or 'all' (see --list-variants)")
    t.add_argument("--list-variants", action="store_true", help="print the variants and their switches, then exit")
    t.add_argument("--steps", type=int, default=None, help="SR fine-tuning steps (default: profile)")
    t.add_argument("--prior", default=None, choices=["shipped", "train", "none"],
                   help="start from the shipped prior, a prior pretrained here (--prior-steps), or random weights")
    t.add_argument("--prior-steps", type=int, default=None, help="steps of a prior pretrained here (--prior train)")
    t.add_argument("--batch-size", type=int, default=None, help="batch size per process (default: profile)")
    t.add_argument("--lr", type=float, default=None, help="SR learning rate (default: profile)")
    t.add_argument("--lr-schedule", default=None, choices=["constant", "cosine"],
                   help="LR after the 20-step warm-up: constant, or cosine decay to 0 (default: profile)")
    t.add_argument("--ema-decay", type=float, default=None,
                   help="save an exponential moving average of the weights with this decay, e.g. 0.99 (default: profile)")
    t.add_argument("--hr-folder", default=None, help="train on your own HR images instead of the embedded default")
    t.add_argument("--captions", default=None, help="JSON {image stem: caption} for per-image prompts (pipelines)")
    t.add_argument("--mixed-precision", default=None, choices=["no", "fp16", "bf16"], help="accelerate precision")
    t.add_argument("--grad-accum", type=int, default=None, help="gradient accumulation steps")
    t.add_argument("--grad-checkpointing", action="store_true", help="gradient checkpointing (real backbones)")
    t.add_argument("--num-workers", type=int, default=None, help="data-loading processes (default 0)")
    t.add_argument("--cache-pairs", type=int, default=None,
                   help="train on N fixed pairs encoded once into RUNS/latents/ (the released code's make_latent); "
                        "default: fresh pairs every step")
    t.add_argument("--no-resume", action="store_true", help="start from scratch even if a checkpoint exists")
    t.add_argument("--stop-after", type=int, default=None, help="stop (checkpointed) after this step; resume later")

    e = sub.add_parser("evaluate", help="super-resolve a test set with trained runs and score them")
    _add_common(e)
    e.add_argument("--run", default=None, help="run folder(s) to evaluate, comma list (instead of the training options)")
    e.add_argument("--variant", default="baseline,framer", help="variant name, comma list, or 'all'")
    e.add_argument("--steps", type=int, default=None, help="SR fine-tuning steps of the runs (default: profile)")
    e.add_argument("--sample-steps", type=int, default=None, help="sampler steps (default: profile; 1 = posterior mean)")
    e.add_argument("--results", default=None, help="bicubic reference folder (default build/<profile>/results)")
    e.add_argument("--protocol", default="offline", help="metric protocol: offline | framer | osediff")
    e.add_argument("--hr-folder", default=None, help="the runs were trained with this --hr-folder")
    e.add_argument("--lr-folder", default=None, help="paired test LR folder (e.g. RealSR); needs --hr-test-folder")
    e.add_argument("--hr-test-folder", default=None, help="paired test HR folder matched to --lr-folder by stem")

    o = sub.add_parser("observe", help="compute the observation statistics (Figs. 2, 3, 5) for a profile")
    _add_common(o)
    o.add_argument("--out", default=None, help="output folder (default build/<profile>/results/observe)")

    pr = sub.add_parser("pretrain", help="pretrain a tiny backbone's prior and write data/priors/<backbone>[-image]")
    pr.add_argument("--backbone", default="tiny-dit", help="tiny-dit | tiny-unet")
    pr.add_argument("--steps", type=int, default=None, help="training steps")
    pr.add_argument("--minutes", type=float, default=None, help="or: as many steps as fit in this many minutes here")
    pr.add_argument("--batch-size", type=int, default=64, help="batch size (default 64)")
    pr.add_argument("--lr", type=float, default=1e-3, help="learning rate after a 20-step warm-up (default 1e-3)")
    pr.add_argument("--target", default="residual", choices=("residual", "image"),
                    help="what the prior denoises: the SR residual (default) or the whole HR image")
    pr.add_argument("--out", default=None, help="output folder (default data/priors/<backbone>, or <backbone>-image)")
    pr.add_argument("--runs", default="runs", help="where the resumable pretraining run lives (default runs/)")
    pr.add_argument("--eval-every", type=int, default=500, help="held-out objective every N steps (default 500)")
    pr.add_argument("--num-workers", type=int, default=0, help="data-loading processes (default 0)")
    pr.add_argument("--stop-after", type=int, default=None,
                    help="stop at this step of the --steps schedule and export that checkpoint's EMA weights")
    pr.add_argument("--residual-scale", type=float, default=None,
                    help="the prior denoises x0 = scale * (HR - bicubic(LR)) (default: the SR stage's, "
                         "TrainConfig.residual_scale)")
    pr.add_argument("--debug", action="store_true", help="show the full traceback of an error")

    r = sub.add_parser("reproduce", help="run every notebook in order with papermill (figures, tables)")
    r.add_argument("--profile", default="small", help="smoke | small | small-residual | gpu | paper")
    r.add_argument("--build", default="build", help="folder for executed notebooks and results")
    r.add_argument("--figures", default=None, help="figures folder (default figures/ for small, else build/<p>/figures)")
    r.add_argument("--only", default=None, help="comma list of notebook name prefixes to run (e.g. 01,02)")
    r.add_argument("--pretrained", default=None, help="a pipeline folder for every notebook (the paper profile)")
    r.add_argument("--debug", action="store_true", help="show the full traceback of an error")
    return ap


class UserError(Exception):
    """A problem with the user's arguments or files: one line, no traceback."""


def _variants(arg: str) -> list[str]:
    from .config import VARIANTS
    names = list(VARIANTS) if arg == "all" else [v.strip() for v in arg.split(",") if v.strip()]
    if not names:
        raise UserError(f"--variant {arg!r} names no variant; known: {', '.join(VARIANTS)}")
    unknown = [v for v in names if v not in VARIANTS]
    if unknown:
        raise UserError(f"unknown variant(s) {', '.join(unknown)}; known: {', '.join(VARIANTS)}")
    return names


def _positive(args, *names: str) -> None:
    for n in names:
        v = getattr(args, n, None)
        if v is not None and v < 1:
            raise UserError(f"--{n.replace('_', '-')} must be >= 1, got {v}")


def _validate(args) -> None:
    """Everything that can be checked without torch: names, numbers, and the files and folders given."""
    from . import inputs
    from .config import BACKBONES, IMAGE_MULTIPLE, PROFILES, TINY_BACKBONES
    if getattr(args, "profile", None) is not None and args.profile not in PROFILES:
        raise UserError(f"--profile {args.profile!r} is not one of {', '.join(PROFILES)}")
    allowed = TINY_BACKBONES if args.command == "pretrain" else BACKBONES
    if getattr(args, "backbone", None) is not None and args.backbone not in allowed:
        hint = " (real pipelines are loaded with --pretrained, not pretrained here)" if args.backbone in BACKBONES \
            else ""
        raise UserError(f"--backbone {args.backbone!r} is not one of {', '.join(allowed)}{hint}")
    _positive(args, "steps", "prior_steps", "batch_size", "grad_accum", "image_size", "stop_after", "cache_pairs",
              "sample_steps", "eval_every")
    for name, ok, what in (("lr", lambda v: v > 0, "> 0"), ("minutes", lambda v: v > 0, "> 0"),
                           ("residual_scale", lambda v: v > 0, "> 0"), ("num_workers", lambda v: v >= 0, ">= 0"),
                           ("ema_decay", lambda v: 0 <= v < 1, "in [0, 1)"), ("seed", lambda v: v >= 0, ">= 0")):
        v = getattr(args, name, None)
        if v is not None and not ok(v):
            raise UserError(f"--{name.replace('_', '-')} must be {what}, got {v}")
    size = getattr(args, "image_size", None)
    if size is not None:
        backbone = getattr(args, "backbone", None) or PROFILES[getattr(args, "profile", None) or "small"].backbones[0]
        multiple = IMAGE_MULTIPLE.get(backbone)
        if multiple and size % multiple:
            raise UserError(f"--image-size {size} does not fit {backbone}: it needs a multiple of {multiple} px")
    if getattr(args, "runs", None):
        inputs.runs_folder(args.runs)
    if getattr(args, "pretrained", None):
        inputs.pipeline_folder(args.pretrained)
    if args.command == "evaluate" and bool(args.lr_folder) != bool(args.hr_test_folder):
        raise UserError("--lr-folder and --hr-test-folder go together: give both (a paired test set) or neither "
                        "(the built-in test set)")
    for flag in ("hr_folder", "lr_folder", "hr_test_folder"):
        if getattr(args, flag, None):
            inputs.folder(getattr(args, flag), "--" + flag.replace("_", "-"), images=True)
    if getattr(args, "captions", None):
        inputs.captions(args.captions)
    for folder in (getattr(args, "run", None) or "").split(","):
        if folder.strip():
            inputs.run_folder(folder.strip())
    if getattr(args, "degradation", None):
        from .presets import load_preset
        load_preset(args.degradation)
    if args.command == "reproduce" and args.only:
        names = [p.name for p in (Path(__file__).resolve().parents[1] / "notebooks").glob("[0-9][0-9]_*.ipynb")]
        if not [n for n in names if n.startswith(tuple(x.strip() for x in args.only.split(",")))]:
            raise UserError(f"--only {args.only!r} matches no notebook (they are named 01_... to 05_...)")


def _train_configs(args):
    from .config import profile
    p = profile(args.profile)
    backbone = args.backbone or p.backbones[0]
    seeds = [args.seed] if args.seed is not None else list(p.seeds)
    try:
        return p, [p.train_for(backbone, **_overrides(args), seed=s) for s in seeds]
    except ValueError as e:
        raise UserError(str(e)) from e


def _overrides(args) -> dict:
    """The TrainConfig fields the command line sets (None: not given)."""
    return dict(sr_steps=getattr(args, "steps", None), prior_steps=getattr(args, "prior_steps", None),
                batch_size=getattr(args, "batch_size", None), lr=getattr(args, "lr", None),
                degradation=args.degradation, mixed_precision=getattr(args, "mixed_precision", None),
                grad_accum=getattr(args, "grad_accum", None), lr_schedule=getattr(args, "lr_schedule", None),
                ema_decay=getattr(args, "ema_decay", None), prior=getattr(args, "prior", None),
                pretrained=str(Path(args.pretrained).resolve()) if args.pretrained else None,
                image_size=args.image_size, captions=getattr(args, "captions", None),
                num_workers=getattr(args, "num_workers", None), cache_pairs=getattr(args, "cache_pairs", None),
                grad_checkpointing=True if getattr(args, "grad_checkpointing", False) else None)


def _source(args, cfg):
    if not getattr(args, "hr_folder", None):
        return None
    from .pairs import folder_source
    return folder_source(args.hr_folder, cfg.image_size)


def cmd_train(args) -> int:
    from .config import VARIANTS
    from .train import train_sr
    if args.list_variants:
        for name, cfg in VARIANTS.items():
            print(f"{name:16s} {cfg}")
        return 0
    variants = _variants(args.variant)
    _, cfgs = _train_configs(args)
    source = _source(args, cfgs[0])
    try:
        for cfg in cfgs:
            for v in variants:
                run = train_sr(cfg, v, args.runs, resume=not args.no_resume, stop_after=args.stop_after,
                               source=source)
                state = "done" if run.done else f"stopped after step {args.stop_after} (resume with the same command)"
                print(f"{v} seed {cfg.seed}: {run.path} ({state})")
    finally:
        import torch.distributed as dist
        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()  # under accelerate launch / torchrun: leave no gloo/NCCL threads behind
    return 0


def cmd_evaluate(args) -> int:
    from . import evaluate as E
    from .pipeline import RunSpec
    from .runs import bicubic_evaluation
    from .train import load_trained
    _positive(args, "sample_steps")
    p, cfgs = _train_configs(args)
    results = Path(args.results or f"build/{p.name}/results")
    if args.lr_folder:
        test = E.folder_test_set(args.lr_folder, args.hr_test_folder, cfgs[0].scale)
    else:
        test = E.make_test_set(p.n_test, p.test_size, cfgs[0].degradation, cfgs[0].scale)
    E.evaluate_bicubic(test, bicubic_evaluation(results, args.protocol, test.key), args.protocol)
    for run, cfg, v in _runs_to_evaluate(args, cfgs):
        if not run.done:
            raise UserError(f"{run.path}: not trained yet; run `python -m framer_nb train --variant {v}` "
                            "with the same options first")
        bb, _ = load_trained(run)
        steps = args.sample_steps or cfg.sample_steps
        out = run.evaluation(E.eval_key(test, args.protocol), steps)
        df = E.evaluate_run(bb, test, out, RunSpec(cfg.backbone, v, cfg.seed, cfg).label, steps, E.SAMPLER_SEED,
                            cfg.image_size, args.protocol)
        means = df.mean(numeric_only=True).drop(labels=["seed"], errors="ignore").dropna()
        print(f"{cfg.backbone} {v} seed {cfg.seed} on {test.key}: " +
              ", ".join(f"{k}={x:.3f}" for k, x in means.items()) + f"  ({out.path})")
        for metric, why in sorted(out.summary()["na_reasons"].items()):
            print(f"  n/a: {metric}: {why.removeprefix('n/a: ')}")
    return 0


def _runs_to_evaluate(args, cfgs):
    """(run, its TrainConfig, variant) from --run folders, or from the training options."""
    from .runs import Run
    from .train import sr_run
    if args.run:
        out = []
        for folder in (f.strip() for f in args.run.split(",") if f.strip()):
            run = Run(Path(folder))
            out.append((run, run.config(), run.info().get("variant", "?")))
        return out
    source = _source(args, cfgs[0])
    return [(sr_run(cfg, v, args.runs, source), cfg, v) for cfg in cfgs for v in _variants(args.variant)]


def cmd_observe(args) -> int:
    from . import observe as O
    from .config import with_overrides
    p, _ = _train_configs(args)  # validates the options
    p = dataclasses.replace(p, train=with_overrides(p.train, **_overrides(args)))  # each backbone keeps its fields
    out = Path(args.out or f"build/{p.name}/results/observe")
    prov = {"profile": p.name, "command": "observe"}
    images = O.observation_images(p)
    print(O.save_csv(O.band_densities(images["hr"], images["lr_up"]), out / "band_density.csv", **prov))
    priors = O.load_priors(p, args.runs)
    small = O.observation_images(p, size=p.train.image_size)
    print(O.save_csv(O.observe_models(priors, small), out / "layer_similarity.csv", **prov))
    cross = {b: O.cross_sample(bb, small) for b, bb in priors.items()}
    (out / "cross_sample.json").write_text(json.dumps(cross))
    print(out / "cross_sample.json")
    return 0


def cmd_pretrain(args) -> int:
    if (args.steps is None) == (args.minutes is None):
        raise UserError("give exactly one of --steps and --minutes")
    if args.steps is not None and args.stop_after is not None and args.stop_after > args.steps:
        raise UserError(f"--stop-after {args.stop_after} lies beyond --steps {args.steps}")
    from .priors import Pretraining, pretrain
    how = Pretraining(args.steps, args.minutes, args.batch_size, args.lr, args.eval_every, args.num_workers,
                      args.stop_after, args.residual_scale, args.target)
    card = pretrain(args.backbone, how, args.out, args.runs, command=" ".join(["python -m framer_nb", *sys.argv[1:]]))
    print(f"{args.backbone}: {card['steps']} steps in {card['wall_s']} s; held-out objective "
          f"{card['heldout_curve'][0]['heldout_objective']} -> {card['heldout_curve'][-1]['heldout_objective']}")
    return 0


def cmd_reproduce(args) -> int:
    from .notebooks import ROOT, default_figures, run_all
    figures = Path(args.figures).resolve() if args.figures else ROOT / default_figures(args.profile)
    if not args.figures and args.profile == "small":
        print(f"[reproduce] the small profile writes its figures, tables and the README's results into the checkout "
              f"({ROOT}); --figures writes them elsewhere", file=sys.stderr)
    return run_all(args.profile, Path(args.build).resolve(), str(figures), args.only,
                   pretrained=str(Path(args.pretrained).resolve()) if args.pretrained else None)


COMMANDS = {"train": cmd_train, "evaluate": cmd_evaluate, "observe": cmd_observe, "pretrain": cmd_pretrain,
            "reproduce": cmd_reproduce}


def _message(e: BaseException) -> str:
    if isinstance(e, KeyError) and e.args:
        return str(e.args[0])
    if isinstance(e, OSError) and e.strerror and e.filename:
        return f"{e.filename}: {e.strerror}"
    return str(e)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from .errors import INTERRUPTED, NonFiniteLossError, on_interrupt
    INTERRUPTED.clear()
    main_thread = threading.current_thread() is threading.main_thread()
    before = signal.signal(signal.SIGINT, on_interrupt) if main_thread else None
    try:
        _validate(args)
        return COMMANDS[args.command](args)
    except KeyboardInterrupt:
        if args.debug:
            raise
        print("interrupted: what was saved is kept; the same command resumes", file=sys.stderr)
        return 130
    except NonFiniteLossError as e:
        if args.debug:
            raise
        print(f"error: {e}", file=sys.stderr)
        return 3
    except (UserError, OSError, KeyError, ValueError, RuntimeError) as e:
        if args.debug:
            raise
        print(f"error: {_message(e)} (--debug for the traceback)", file=sys.stderr)
        return 2
    finally:
        if main_thread:
            signal.signal(signal.SIGINT, before)


if __name__ == "__main__":
    sys.exit(main())
