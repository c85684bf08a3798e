"""The training loop shared by pretraining and SR fine-tuning, on `accelerate`.

AdamW (fused), a 20-step warm-up then a constant or cosine LR, an EMA of the weights, gradient clipping, a CSV log,
checkpoints (framer_nb.checkpoint) and the done marker, all in one `runs.Run` folder that is locked while it trains.
A non-finite loss stops the run at that step with its last good checkpoint kept and no done marker.
"""

from __future__ import annotations

import contextlib
import copy
import csv
import dataclasses
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from accelerate import Accelerator, PartialState
from diffusers.optimization import get_scheduler
from diffusers.training_utils import EMAModel
from safetensors.torch import save_file
from tqdm.auto import tqdm

from . import checkpoint as ckpt
from .backbones import Backbone
from .config import LR_SCHEDULES, FramerConfig, TrainConfig
from .data import Pyramid, photos
from .degrade import load_preset
from .errors import INTERRUPTED, NonFiniteLossError
from .pairs import sr_pair, step_generator
from .provenance import provenance
from .runs import Run
from .step import StepOptions, training_loss

BASELINE = FramerConfig(objective="none")
DIAG_NAMES = ("sim_lf", "sim_hf", "faw_lf", "faw_hf", "fam_lf", "fam_hf")


@dataclass
class Fit:
    """What one call of `fit` trains: the optimisation, the loss, and how the run is driven."""

    cfg: TrainConfig
    steps: int
    lr: float
    framer: FramerConfig = BASELINE
    seed: int = 0
    time_bias: float = 1.0  # the SR stage's TrainConfig.time_bias; pretraining draws t from the objective's own density
    resume: bool = True
    stop_after: int | None = None
    progress: bool = True
    desc: str = ""
    record: dict = field(default_factory=dict)  # extra fields of run.json and done.json
    in_model_space: bool = False  # batches are model-space tensors already (a pair cache)
    callback: Callable | None = None  # callback(step, backbone carrying the EMA weights), every `callback_every` steps
    callback_every: int = 0

    @property
    def end(self) -> int:
        return self.steps if self.stop_after is None else min(self.steps, self.stop_after)


def fit(bb: Backbone, heads, plan: Fit, batch_fn, run: Run) -> None:
    """Train `bb` (and its lens heads) on `batch_fn(step, rank) -> (hr, lr, context)` into `run`."""
    state = PartialState(cpu=not torch.cuda.is_available())
    guard = run.lock() if state.is_main_process else contextlib.nullcontext()
    with guard:
        meta = {"config": dataclasses.asdict(plan.cfg), "seed": plan.seed, "num_processes": state.num_processes,
                "backbone_source": bb.source, **plan.record}
        if state.is_main_process:
            if not plan.resume and run.checkpoint.exists():
                run.checkpoint.unlink()
            run.start(meta)
        _loop(bb, heads, plan, batch_fn, run, meta)


@dataclass
class _Trainer:
    """The prepared objects of one loop."""

    acc: Accelerator
    runner: torch.nn.Module
    heads: torch.nn.Module | None
    params: list
    opt: torch.optim.Optimizer
    sched: object
    ema: EMAModel | None


def _prepare(bb: Backbone, heads, plan: Fit, run: Run) -> tuple[_Trainer, int, float]:
    """Accelerator, optimizer, scheduler and EMA, restored from the run's checkpoint when resuming."""
    cfg = plan.cfg
    acc = Accelerator(mixed_precision=cfg.mixed_precision, gradient_accumulation_steps=cfg.grad_accum,
                      cpu=not torch.cuda.is_available())
    if cfg.grad_checkpointing:
        bb.model.enable_gradient_checkpointing()
    bb.space.prepare(acc.device, torch.bfloat16 if cfg.mixed_precision == "bf16" else torch.float32)
    bb.model.to(acc.device)  # before the optimizer and the EMA copy are made, so all live on one device
    if heads is not None:
        heads.to(acc.device)
    params = list(bb.model.parameters()) + (list(heads.parameters()) if heads is not None else [])
    # fused AdamW and the foreach EMA update: one kernel over all tensors instead of a Python loop over ~300 of
    # them (one CPU thread, tiny U-Net: AdamW about 4x, the EMA about 1.5x faster; benchmarks/results/optimizer_step.json)
    opt = torch.optim.AdamW(params, lr=plan.lr, weight_decay=cfg.weight_decay, fused=True)
    sched = lr_scheduler(opt, cfg.lr_schedule, plan.steps)
    ema = EMAModel(bb.model.parameters(), decay=cfg.ema_decay, foreach=True) if cfg.ema_decay else None
    resumed = plan.resume and run.checkpoint.exists()
    start = ckpt.restore(run.checkpoint, bb.model, heads, opt, sched, ema) if resumed else 0
    before = ckpt.trained_seconds(run.checkpoint) if start else 0.0  # training time of the processes before this one
    runner, opt = acc.prepare(bb.model, opt)
    heads = acc.prepare(heads) if heads is not None else None
    return _Trainer(acc, runner, heads, params, opt, sched, ema), start, before


def _loop(bb: Backbone, heads, plan: Fit, batch_fn, run: Run, meta: dict) -> None:
    tr, start, before = _prepare(bb, heads, plan, run)
    acc, cfg = tr.acc, plan.cfg
    bb.runner = tr.runner
    log = CsvLog(run.log_file, bb.num_students, start) if acc.is_main_process else None
    t_start = time.time()
    bar = tqdm(range(start, plan.end), desc=plan.desc, disable=not plan.progress or not acc.is_local_main_process,
               initial=start, total=plan.steps)
    batches = _batches(batch_fn, acc.process_index, start, plan.end, cfg.num_workers)
    for step in bar:
        if INTERRUPTED.is_set():  # a Ctrl-C that a finalizer swallowed (framer_nb.errors)
            raise KeyboardInterrupt
        t0 = time.time()
        hr, lr_img, ctx = next(batches)
        t_data = time.time() - t0
        out = _step(bb, tr, plan, step, (hr, lr_img, ctx))
        total = out.total.item()  # read once the step is queued: no stall between forward and backward
        if not math.isfinite(total):  # the weights may now hold NaN: nothing of this step is saved
            _stop_non_finite(run, step, total, out)
        if tr.ema is not None and acc.sync_gradients:
            tr.ema.step(acc.unwrap_model(tr.runner).parameters())
        if log is not None and ((step + 1) % cfg.log_every == 0 or step + 1 == plan.steps):
            log.write(_row(step + 1, out, tr.sched, time.time() - t0, t_data, (step + 1) % cfg.diag_every == 0))
        bar.set_postfix(loss=f"{total:.4f}")
        if acc.is_main_process and ((step + 1) % cfg.ckpt_every == 0 or step + 1 == plan.end):
            ckpt.save(run.checkpoint, acc.unwrap_model(tr.runner), tr.heads and acc.unwrap_model(tr.heads), tr.opt,
                      tr.sched, step + 1, {**meta, "trained_s": before + time.time() - t_start}, tr.ema)
        every = plan.callback_every
        if plan.callback and acc.is_main_process and ((step + 1) % every == 0 or step + 1 == plan.steps):
            plan.callback(step + 1, _with_weights(bb, tr.ema))
    bb.runner = None
    if plan.end == plan.steps and tr.ema is not None:
        tr.ema.copy_to(bb.model.parameters())
    if plan.end == plan.steps and acc.is_main_process:
        _finish(bb, tr.heads and acc.unwrap_model(tr.heads), run, meta, before + time.time() - t_start, start)
    acc.wait_for_everyone()  # other processes read what the main one saved


def _step(bb: Backbone, tr: _Trainer, plan: Fit, step: int, batch: tuple):
    """One optimisation step on one batch; returns the loss terms."""
    acc, cfg = tr.acc, plan.cfg
    hr, lr_img, ctx = batch
    with torch.no_grad():  # batches from a pair cache are in model space already
        hr_m, lr_m = (hr.to(acc.device), lr_img.to(acc.device)) if plan.in_model_space else \
            (bb.to_model(hr.to(acc.device)), bb.to_model(lr_img.to(acc.device)))
    with acc.accumulate(tr.runner), acc.autocast():
        options = StepOptions(cfg.loss_space, plan.time_bias, ctx, acc.gather if acc.num_processes > 1 else None,
                              step_generator(plan.seed, step, "neg"))
        out = training_loss(bb, bb.sr_target(hr_m, lr_m), lr_m if bb.lr_channels else None, plan.framer,
                            acc.unwrap_model(tr.heads) if tr.heads is not None else None,
                            step_generator(plan.seed, step, acc.process_index, "noise"), options)
        acc.backward(out.total)
        if acc.sync_gradients and cfg.grad_clip:
            acc.clip_grad_norm_(tr.params, cfg.grad_clip)
        tr.opt.step()
        tr.sched.step()
        tr.opt.zero_grad(set_to_none=True)
    return out


def _stop_non_finite(run: Run, step: int, total: float, out) -> None:
    saved = ckpt.step_of(run.checkpoint)
    kept = f"the last good checkpoint (step {saved}) is kept" if saved else "no checkpoint had been saved yet"
    raise NonFiniteLossError(f"{run.path}: loss is {total} at step {step + 1} (objective {out.objective.item()}); "
                             f"stopped: {kept}; lower --lr or check the data")


class _StepBatches(torch.utils.data.Dataset):
    """Batch k of one process is `batch_fn(k, rank)`: seeded by the step, so loader workers change nothing."""

    def __init__(self, batch_fn, rank: int, steps: int):
        self.batch_fn, self.rank, self.steps = batch_fn, rank, steps

    def __len__(self) -> int:
        return self.steps

    def __getitem__(self, step: int):
        return self.batch_fn(step, self.rank)


def _batches(batch_fn, rank: int, start: int, end: int, workers: int):
    """Batches of steps start..end-1, in order, prefetched by `workers` processes (0: computed here)."""
    if not workers:
        return (batch_fn(s, rank) for s in range(start, end))
    return iter(torch.utils.data.DataLoader(_StepBatches(batch_fn, rank, end), batch_size=None,
                                            sampler=range(start, end), num_workers=workers, prefetch_factor=4))


def _with_weights(bb: Backbone, ema: EMAModel | None) -> Backbone:
    """A copy of the backbone carrying the EMA weights (the ones that will be saved), for evaluation."""
    runner, bb.runner = bb.runner, None
    twin = copy.deepcopy(bb)
    bb.runner = runner
    if ema is not None:
        ema.copy_to(twin.model.parameters())
    return twin


def lr_scheduler(opt: torch.optim.Optimizer, schedule: str, steps: int, warmup: int = 20):
    """diffusers' LR scheduler: a linear warm-up over `warmup` steps, then constant or a cosine decay to 0 at
    `steps`."""
    if schedule not in LR_SCHEDULES:
        raise ValueError(f"lr_schedule={schedule!r} is not one of {LR_SCHEDULES}")
    name = {"constant": "constant_with_warmup", "cosine": "cosine"}[schedule]
    return get_scheduler(name, opt, num_warmup_steps=warmup, num_training_steps=steps)


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


def _row(step: int, out, sched, step_s: float, data_s: float, diag: bool) -> dict:
    row = {"step": step, "total": out.total.item(), "objective": out.objective.item(),
           "distill": out.framer.distill.item() if out.framer is not None else 0.0,
           "lr": sched.get_last_lr()[0], "step_s": round(step_s, 4), "data_s": round(data_s, 4)}
    if diag and out.framer is not None:
        for name, values in out.framer.layer_means().items():
            row.update({f"{name}_{i}": round(v, 5) for i, v in enumerate(values)})
    return row


def _finish(bb: Backbone, heads, run: Run, meta: dict, seconds: float, resumed_from: int) -> None:
    """Save the inference model (heads separately, never inside it), then the done marker."""
    bb.model.save_pretrained(run.model_dir)
    if heads is not None:
        save_file({k: v.contiguous() for k, v in heads.state_dict().items()}, str(run.heads_file))
    run.finish(provenance(**meta, wall_s=round(seconds, 1), resumed_from=resumed_from))


@torch.no_grad()
def heldout_objective(bb: Backbone, cfg: TrainConfig, batches: int = 8, batch_size: int = 32,
                      split: str = "val") -> float:
    """The diffusion objective (no FRAMER term) on fixed batches of the validation photos: data, noise and t are
    seeded, so two models (e.g. an SR run and its prior) are scored on exactly the same inputs."""
    pyramid = Pyramid.between(photos(split, scale=1.0), *cfg.crop_scale)
    preset = load_preset(cfg.degradation)
    device = next(bb.model.parameters()).device
    bb.model.eval()
    total = 0.0
    for i in range(batches):
        g = step_generator("heldout", i)
        hr, _ = pyramid.crops(batch_size, cfg.image_size, g)
        hr_m, lr_m = (bb.to_model(x.to(device)) for x in sr_pair(hr, preset, cfg, g))
        out = training_loss(bb, bb.sr_target(hr_m, lr_m), lr_m if bb.lr_channels else None, BASELINE,
                            generator=step_generator("heldout-noise", i), options=StepOptions(cfg.loss_space))
        total += out.objective.item() / batches
    return total
