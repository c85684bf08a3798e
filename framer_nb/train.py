"""Training on `accelerate`: stage 1 prior (unconditional denoiser), stage 2 SR fine-tuning per variant.

Randomness is derived per step from (seed, step): a resumed run sees exactly the batches, noise and
random layers of an uninterrupted one. Checkpoints are safetensors holding model, heads, optimizer,
scheduler, RNG and step. Runs whose `done.json` exists for the same config are skipped.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import json
import math
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import torch
from accelerate import Accelerator
from safetensors.torch import load_file, save_file
from tqdm.auto import tqdm

from . import backbones as B
from .config import LR_SCHEDULES, FramerConfig, TrainConfig, config_hash, variant
from .data import dead_leaves, photos, random_crops
from .degrade import bicubic_up, degrade, load_preset
from .provenance import provenance
from .step import num_students, training_loss
from .taps import UNetHeads, unet_block_channels

BASELINE = FramerConfig(objective="none")
PRIOR_FIELDS = ("backbone", "image_size", "batch_size", "prior_steps", "prior_lr", "weight_decay", "grad_clip",
                "prior_photo_share", "target", "residual_scale", "degradation", "scale", "loss_space", "lr_schedule",
                "ema_decay")
DIAG_NAMES = ("sim_lf", "sim_hf", "faw_lf", "faw_hf", "fam_lf", "fam_hf")


def step_generator(*parts) -> torch.Generator:
    """A generator seeded from a tuple such as (seed, step, 'noise')."""
    digest = hashlib.sha256(repr(parts).encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") & (2**63 - 1))


def data_generator(seed: int, step: int, stage: str, rank: int = 0) -> torch.Generator:
    """The generator of one process's batch: each process draws its own; process 0 draws a single run's."""
    return step_generator(seed, step, stage, *((rank,) if rank else ()))


# ---------------------------------------------------------------- data

@dataclass
class DataSource:
    """HR images to crop from: training photos (or a user folder) and a pool of dead-leaves images."""

    photos: list
    leaves: list
    photo_share: float

    def batch(self, n: int, size: int, g: torch.Generator) -> torch.Tensor:
        n_photo = int(round(n * self.photo_share))
        parts = [random_crops(self.photos, n_photo, size, g)] if n_photo else []
        if n - n_photo:
            parts.append(random_crops(self.leaves, n - n_photo, size, g))
        return torch.cat(parts)


@lru_cache(maxsize=8)
def leaves_pool(seed: int, size: int, n: int) -> tuple:
    """A seeded pool of dead-leaves images to crop from (generated once per process)."""
    return tuple(dead_leaves(n, size, step_generator(seed, "leaves")))


def data_source(cfg: TrainConfig, hr_images: list | None = None, pool: int = 256) -> DataSource:
    """The embedded default (package photos + dead leaves), or a user's HR images."""
    n = min(pool, max(16, cfg.batch_size * max(cfg.sr_steps, cfg.prior_steps)))
    leaves = list(leaves_pool(cfg.seed, 2 * cfg.image_size, n))
    return DataSource(hr_images or photos("train"), leaves, cfg.photo_share)


# ---------------------------------------------------------------- checkpoints

def save_checkpoint(path: Path, model, heads, opt, sched, step: int, extra: dict, ema: dict | None = None) -> None:
    """Model, heads, EMA weights, optimizer and scheduler state, RNG and step in one safetensors file (atomic)."""
    tensors = {f"model.{k}": v.detach().contiguous() for k, v in model.state_dict().items()}
    tensors.update({f"ema.{k}": v.contiguous() for k, v in (ema or {}).items()})
    if heads is not None:
        tensors.update({f"heads.{k}": v.detach().contiguous() for k, v in heads.state_dict().items()})
    osd = opt.state_dict()
    for idx, state in osd["state"].items():
        for key, val in state.items():
            tensors[f"optim.{idx}.{key}"] = torch.as_tensor(val).detach().clone().contiguous()
    tensors["rng.torch"] = torch.get_rng_state()
    meta = {"step": step, "param_groups": osd["param_groups"], "scheduler": sched.state_dict(), **extra}
    tmp = path.with_suffix(".tmp")
    save_file(tensors, str(tmp), metadata={"state": json.dumps(meta, default=str)})
    tmp.replace(path)


def load_checkpoint(path: Path, model, heads, opt, sched, ema: dict | None = None) -> int:
    """Restore everything `save_checkpoint` wrote (EMA weights into `ema`); returns the step to continue from."""
    from safetensors import safe_open
    with safe_open(str(path), "pt") as f:
        meta = json.loads(f.metadata()["state"])
    tensors = load_file(str(path))
    model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    if heads is not None:
        heads.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("heads.")})
    if ema is not None:
        ema.update({k[4:]: v for k, v in tensors.items() if k.startswith("ema.")})
    state: dict[int, dict] = {}
    for k, v in tensors.items():
        if k.startswith("optim."):
            _, idx, key = k.split(".", 2)
            state.setdefault(int(idx), {})[key] = v
    opt.load_state_dict({"state": state, "param_groups": meta["param_groups"]})
    sched.load_state_dict(meta["scheduler"])
    torch.set_rng_state(tensors["rng.torch"])
    return int(meta["step"])


# ---------------------------------------------------------------- logging

class CsvLog:
    """Per-step CSV log; on resume, rows after the resumed step are dropped."""

    def __init__(self, path: Path, layers: int, resume_step: int):
        self.path = path
        self.fields = ["step", "total", "objective", "distill", "lr", "step_s", "data_s"] + \
            [f"{n}_{i}" for n in DIAG_NAMES for i in range(layers)]
        rows = []
        if resume_step and path.exists():
            with path.open() as f:
                rows = [r for r in csv.DictReader(f) if int(r["step"]) <= resume_step]
        with path.open("w", newline="") as f:
            w = csv.DictWriter(f, self.fields)
            w.writeheader()
            w.writerows(rows)

    def write(self, row: dict) -> None:
        with self.path.open("a", newline="") as f:
            csv.DictWriter(f, self.fields).writerow({k: row.get(k, "") for k in self.fields})


# ---------------------------------------------------------------- runs

def prior_dir(cfg: TrainConfig, runs: Path) -> Path:
    """Where the prior of this backbone and pretraining config is cached."""
    fields = {k: getattr(cfg, k) for k in PRIOR_FIELDS}
    fields["objective"] = dataclasses.asdict(B.spec(cfg.backbone).objective)
    key = hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:12]
    return Path(runs) / "prior" / f"{cfg.backbone}-{key}"


def sr_dir(cfg: TrainConfig, variant_name: str, runs: Path) -> Path:
    """Where one SR run (backbone, variant, seed, config, the backbone's objective) lives."""
    key = config_hash(cfg, variant(variant_name), B.spec(cfg.backbone).objective)
    return Path(runs) / cfg.backbone / variant_name / f"seed{cfg.seed}-{key}"


def is_done(run: Path) -> bool:
    return (run / "done.json").exists()


def train_prior(cfg: TrainConfig, runs: str | Path = "runs", progress: bool = True) -> Path:
    """Stage 1: pretrain the backbone as an unconditional denoiser (cached by config hash)."""
    run = prior_dir(cfg, Path(runs))
    if is_done(run):
        return run
    bb = B.build(cfg.backbone, seed=0)
    src = data_source(dataclasses.replace(cfg, seed=0, photo_share=cfg.prior_photo_share))
    preset = load_preset(cfg.degradation)

    def batch(step: int, rank: int):
        g = data_generator(0, step, "prior-data", rank)
        x0, _ = sr_pair(src.batch(cfg.batch_size, cfg.image_size, g), preset, cfg, g)
        return x0, None

    _fit(bb, None, cfg, cfg.prior_steps, cfg.prior_lr, BASELINE, batch, run, seed=0, progress=progress,
         desc=f"prior {cfg.backbone}")
    return run


def sr_pair(hr: torch.Tensor, preset, cfg: TrainConfig, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """HR crops in [0, 1] -> (x0 to diffuse, LR condition), both in [-1, 1] model space.

    x0 is the HR image, or for target='residual' the HR minus the bicubic-upsampled LR, times
    `residual_scale` (the residual of a photo has a standard deviation near 0.2 in [-1, 1] units: scaled
    up, it is not drowned in the unit-variance noise at every step the sampler takes).
    """
    lr = bicubic_up(degrade(hr, preset, g), cfg.scale) * 2 - 1
    return B.sr_target(hr * 2 - 1, lr, cfg.residual_scale if cfg.target == "residual" else 0.0), lr


@torch.no_grad()
def heldout_objective(bb: B.Backbone, cfg: TrainConfig, batches: int = 8, batch_size: int = 32) -> float:
    """The diffusion objective (no FRAMER term) on fixed batches no training run draws: data, noise and t
    are seeded, so two models (e.g. an SR run and its prior) are scored on exactly the same inputs."""
    src, preset = data_source(dataclasses.replace(cfg, seed=0)), load_preset(cfg.degradation)
    bb.model.eval()
    total = 0.0
    for i in range(batches):
        g = step_generator("heldout", i)
        x0, lr = sr_pair(src.batch(batch_size, cfg.image_size, g), preset, cfg, g)
        out = training_loss(bb, x0, lr if bb.lr_channels else None, BASELINE, generator=step_generator("heldout-noise", i),
                            loss_space=cfg.loss_space)
        total += out.objective.item() / batches
    return total


def load_trained(run: str | Path, backbone: str) -> tuple[B.Backbone, UNetHeads | None]:
    """A trained backbone (and U-Net heads, if any) from a run folder."""
    run = Path(run)
    bb = B.load(backbone, str(run / "model"), with_vae=False)
    done = json.loads((run / "done.json").read_text()) if (run / "done.json").exists() else {}
    config = done.get("config", {})
    if config.get("target") == "residual":
        bb.residual_scale = float(config.get("residual_scale", 1.0))
    heads = None
    if (run / "heads.safetensors").exists():
        heads = UNetHeads(unet_block_channels(bb.model), bb.out_channels)
        heads.load_state_dict(load_file(str(run / "heads.safetensors")))
    return bb, heads


def train_sr(cfg: TrainConfig, variant_name: str, runs: str | Path = "runs", resume: bool = True,
             stop_after: int | None = None, progress: bool = True, hr_images: list | None = None) -> Path:
    """Stage 2: fine-tune the prior for x`scale` SR with one named variant; returns the run folder."""
    fcfg = variant(variant_name)
    run = sr_dir(cfg, variant_name, Path(runs))
    if is_done(run):
        return run
    prior = train_prior(cfg, runs, progress)
    bb, _ = load_trained(prior, cfg.backbone)
    B.grow_input_channels(bb, 3)
    torch.manual_seed(cfg.seed)
    heads = UNetHeads(unet_block_channels(bb.model), bb.out_channels) if bb.spec.kind == "unet" else None
    src = data_source(cfg, hr_images)
    preset = load_preset(cfg.degradation)

    def batch(step: int, rank: int):
        g = data_generator(cfg.seed, step, "sr-data", rank)
        return sr_pair(src.batch(cfg.batch_size, cfg.image_size, g), preset, cfg, g)

    _fit(bb, heads, cfg, cfg.sr_steps, cfg.lr, fcfg, batch, run, seed=cfg.seed, resume=resume,
         stop_after=stop_after, progress=progress, desc=f"{cfg.backbone} {variant_name} s{cfg.seed}",
         extra={"variant": variant_name, "framer": dataclasses.asdict(fcfg), "prior": str(prior)})
    return run


def _fit(bb: B.Backbone, heads, cfg: TrainConfig, steps: int, lr: float, fcfg: FramerConfig, batch_fn,
         run: Path, seed: int, resume: bool = True, stop_after: int | None = None, progress: bool = True,
         desc: str = "", extra: dict | None = None) -> None:
    """The shared loop: AdamW, warm-up then constant LR, grad clipping, CSV log, checkpoints, done marker."""
    run.mkdir(parents=True, exist_ok=True)
    acc = Accelerator(mixed_precision=cfg.mixed_precision, gradient_accumulation_steps=cfg.grad_accum,
                      cpu=not torch.cuda.is_available())
    if cfg.grad_checkpointing:
        bb.model.enable_gradient_checkpointing()
    params = list(bb.model.parameters()) + (list(heads.parameters()) if heads is not None else [])
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_factor(cfg.lr_schedule, steps))
    ema = {k: v.detach().clone() for k, v in bb.model.named_parameters()} if cfg.ema_decay else None
    ckpt = run / "checkpoint.safetensors"
    start = load_checkpoint(ckpt, bb.model, heads, opt, sched, ema) if (resume and ckpt.exists()) else 0
    runner, opt = acc.prepare(bb.model, opt)
    heads = acc.prepare(heads) if heads is not None else None
    bb.runner = runner
    log = CsvLog(run / "log.csv", num_students(bb), start)
    meta = {"config": dataclasses.asdict(cfg), "seed": seed, "num_processes": acc.num_processes, **(extra or {})}
    t_start, end = time.time(), steps if stop_after is None else min(steps, stop_after)
    bar = tqdm(range(start, end), desc=desc, disable=not progress or not acc.is_local_main_process,
               initial=start, total=steps)
    for step in bar:
        t0 = time.time()
        x0, lr_img = batch_fn(step, acc.process_index)
        x0 = x0.to(acc.device)
        lr_img = lr_img.to(acc.device) if lr_img is not None else None
        t_data = time.time() - t0
        with acc.accumulate(runner), acc.autocast():
            out = training_loss(bb, x0, lr_img, fcfg, acc.unwrap_model(heads) if heads is not None else None,
                                step_generator(seed, step, acc.process_index, "noise"),
                                gather=acc.gather if acc.num_processes > 1 else None,
                                neg_generator=step_generator(seed, step, "neg"), loss_space=cfg.loss_space)
            acc.backward(out.total)
            if acc.sync_gradients and cfg.grad_clip:
                acc.clip_grad_norm_(params, cfg.grad_clip)
            opt.step()
            sched.step()
            opt.zero_grad(set_to_none=True)
        if ema is not None and acc.sync_gradients:
            update_ema(ema, acc.unwrap_model(runner), cfg.ema_decay, step)
        if acc.is_main_process and ((step + 1) % cfg.log_every == 0 or step + 1 == steps):
            log.write(_row(step + 1, out, sched, time.time() - t0, t_data, (step + 1) % cfg.diag_every == 0))
        bar.set_postfix(loss=f"{out.total.item():.4f}")
        if acc.is_main_process and ((step + 1) % cfg.ckpt_every == 0 or step + 1 == end):
            save_checkpoint(ckpt, acc.unwrap_model(runner), heads and acc.unwrap_model(heads), opt, sched, step + 1,
                            meta, ema)
    bb.runner = None
    if end == steps and ema is not None:
        with torch.no_grad():
            for k, p in bb.model.named_parameters():
                p.copy_(ema[k])
    if end == steps and acc.is_main_process:
        _finish(bb, heads and acc.unwrap_model(heads), run, meta, time.time() - t_start, start)
    acc.wait_for_everyone()  # other processes read what the main one saved (the prior, before stage 2)


def lr_factor(schedule: str, steps: int, warmup: int = 20):
    """The LR multiplier per step: linear warm-up, then constant or a cosine decay to 0 at `steps`."""
    if schedule not in LR_SCHEDULES:
        raise ValueError(f"lr_schedule={schedule!r} is not one of {LR_SCHEDULES}")

    def factor(s: int) -> float:
        if s < warmup or schedule == "constant":
            return min(1.0, (s + 1) / warmup)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, (s - warmup) / max(1, steps - warmup))))
    return factor


@torch.no_grad()
def update_ema(ema: dict, model, decay: float, step: int) -> None:
    """One EMA update, with the usual warm-up: the effective decay is min(decay, (1 + step) / (10 + step))."""
    d = min(decay, (1 + step) / (10 + step))
    for k, p in model.named_parameters():
        ema[k].lerp_(p.detach(), 1.0 - d)


def _row(step: int, out, sched, step_s: float, data_s: float, diag: bool) -> dict:
    row = {"step": step, "total": out.total.item(), "objective": out.objective.item(),
           "distill": out.framer.distill.item() if out.framer is not None else 0.0,
           "lr": sched.get_last_lr()[0], "step_s": round(step_s, 4), "data_s": round(data_s, 4)}
    if diag and out.framer is not None:
        for name, values in out.framer.layer_means().items():
            row.update({f"{name}_{i}": round(v, 5) for i, v in enumerate(values)})
    return row


def _finish(bb: B.Backbone, heads, run: Path, meta: dict, seconds: float, resumed_from: int) -> None:
    """Save the inference model (heads separately, never inside it) and the done marker."""
    bb.model.save_pretrained(run / "model")
    if heads is not None:
        save_file({k: v.contiguous() for k, v in heads.state_dict().items()}, str(run / "heads.safetensors"))
    done = provenance(**meta, wall_s=round(seconds, 1), resumed_from=resumed_from)
    (run / "done.json").write_text(json.dumps(done, indent=2, default=str))
