"""Training on `accelerate`: the SR fine-tuning of a prior (shipped, pretrained here, or a real pipeline) per variant.

Randomness is derived per step from (seed, step): a resumed run sees exactly the batches, noise and
random layers of an uninterrupted one. Checkpoints are safetensors holding model, heads, EMA, optimizer,
scheduler, RNG and step. A run folder (runs.Run) is locked while it trains, records its config, data
source and prior in its key, and is skipped once its done marker exists. A non-finite loss stops the run at
that step with its last good checkpoint kept and no done marker.
"""

from __future__ import annotations

import contextlib
import copy
import csv
import dataclasses
import functools
import hashlib
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from accelerate import Accelerator, PartialState
from diffusers.optimization import get_scheduler
from diffusers.training_utils import EMAModel
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file
from tqdm.auto import tqdm

from . import backbones as B
from .config import LR_SCHEDULES, FramerConfig, TrainConfig, head_grad_applies, variant
from .data import Pyramid, fingerprint, photos
from .degrade import bicubic_up, degrade, load_preset
from .priors import PRIOR_ROOT, shipped_prior
from .provenance import provenance
from .runs import Run
from .step import training_loss

BASELINE = FramerConfig(objective="none")
PRIOR_FIELDS = ("backbone", "image_size", "prior_batch_size", "prior_steps", "prior_lr", "weight_decay", "grad_clip",
                "target", "residual_scale", "degradation", "scale", "loss_space", "lr_schedule", "prior_ema_decay",
                "crop_scale", "mixed_precision")
DIAG_NAMES = ("sim_lf", "sim_hf", "faw_lf", "faw_hf", "fam_lf", "fam_hf")


class NonFiniteLossError(FloatingPointError):
    """Training met a NaN or infinite loss; the run stopped with its last good checkpoint."""


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
    """HR images to crop from (the shipped training photos or a user's folder), with a content fingerprint."""

    images: list
    names: list[str]
    description: str
    fingerprint: str

    def __post_init__(self) -> None:
        self._pyramids: dict[tuple, Pyramid] = {}

    def batch(self, n: int, size: int, g: torch.Generator, scale=(1.0, 1.0)) -> tuple[torch.Tensor, list[str]]:
        """n random crops (scale levels in `scale`, flips, rotations) in [0, 1] and the names of their images."""
        key = tuple(scale)
        if key not in self._pyramids:
            self._pyramids[key] = Pyramid.between(self.images, *scale)
        crops, idx = self._pyramids[key].crops(n, size, g, rotate=True)
        return crops, [self.names[i] for i in idx]


@functools.cache
def builtin_source() -> DataSource:
    """The embedded default: the training split of the photos shipped in installed packages, at full size."""
    from .data import TRAIN_PHOTOS
    images = photos("train", scale=1.0)
    return DataSource(images, list(TRAIN_PHOTOS), "builtin:train photos", fingerprint(images, "builtin-train"))


def folder_source(folder: str | Path, crop: int) -> DataSource:
    """A user's HR folder; its fingerprint covers every file's content."""
    from .data import hr_folder, list_images
    files = list_images(folder)
    images = hr_folder(folder, crop)
    return DataSource(images, [f.stem for f in files], f"folder:{Path(folder).resolve()}",
                      fingerprint(images, "folder"))


def sr_pair(hr: torch.Tensor, preset, cfg: TrainConfig, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """HR crops in [0, 1] -> (HR, upsampled LR), both images in [-1, 1]."""
    lr = bicubic_up(degrade(hr, preset, g), cfg.scale) * 2 - 1
    return hr * 2 - 1, lr


def draw_pairs(source: DataSource, preset, cfg: TrainConfig, n: int, g: torch.Generator):
    """n training pairs drawn by `g`: random crops of `source` degraded by `preset` -> (HR, upsampled LR, names)."""
    hr, names = source.batch(n, cfg.image_size, g, cfg.crop_scale)
    return (*sr_pair(hr, preset, cfg, g), names)


# ---------------------------------------------------------------- checkpoints

def save_checkpoint(path: Path, model, heads, opt, sched, step: int, extra: dict, ema: EMAModel | None = None) -> None:
    """Model, heads, EMA weights, optimizer and scheduler state, RNG and step in one safetensors file (atomic).

    One file rather than accelerate's `save_state` folder: it is replaced atomically (a kill or a full disk keeps
    the previous checkpoint), and the noise of every step comes from a generator seeded by (seed, step), so
    the only RNG state to keep is torch's global one, saved here."""
    tensors = {f"model.{k}": v.detach().contiguous() for k, v in model.state_dict().items()}
    if ema is not None:
        names = [k for k, _ in model.named_parameters()]
        tensors.update({f"ema.{k}": v.detach().contiguous() for k, v in zip(names, ema.shadow_params)})
        extra = {**extra, "ema_step": ema.optimization_step}
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


def load_checkpoint(path: Path, model, heads, opt, sched, ema: EMAModel | None = None) -> int:
    """Restore everything `save_checkpoint` wrote (EMA weights into `ema`); returns the step to continue from."""
    try:
        with safe_open(str(path), "pt") as f:
            meta = json.loads(f.metadata()["state"])
        tensors = load_file(str(path))
    except (SafetensorError, OSError, KeyError, json.JSONDecodeError) as e:
        raise RuntimeError(f"{path}: unreadable checkpoint ({e}); delete it or pass --no-resume to start over") from e
    model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    if heads is not None:
        heads.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("heads.")})
    if ema is not None:
        ema.shadow_params = [tensors[f"ema.{k}"].to(p.device) for k, p in model.named_parameters()]
        ema.optimization_step = int(meta["ema_step"])
    state: dict[int, dict] = {}
    for k, v in tensors.items():
        if k.startswith("optim."):
            _, idx, key = k.split(".", 2)
            state.setdefault(int(idx), {})[key] = v
    opt.load_state_dict({"state": state, "param_groups": meta["param_groups"]})
    sched.load_state_dict(meta["scheduler"])
    torch.set_rng_state(tensors["rng.torch"].cpu())
    return int(meta["step"])


def checkpoint_seconds(path: Path) -> float:
    """Training wall time up to a checkpoint, summed over the processes that wrote it (0 if it predates the
    record). A resumed run's `wall_s` adds its own time to this: the time after the last checkpoint of a killed
    process is not counted."""
    with safe_open(str(path), "pt") as f:
        return float(json.loads(f.metadata()["state"]).get("trained_s", 0.0))


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

def prior_run(cfg: TrainConfig, runs: str | Path) -> Run:
    """Where a prior pretrained here (prior='train') for this backbone and pretraining config is cached."""
    fields = {k: getattr(cfg, k) for k in PRIOR_FIELDS}
    return Run.prior(runs, cfg.backbone, fields, B.spec(cfg.backbone).objective, builtin_source().fingerprint)


def prior_identity(cfg: TrainConfig, runs: str | Path) -> dict:
    """What the SR stage starts from: a pipeline/model folder, the shipped prior, a prior trained here, or nothing."""
    if cfg.pretrained:
        return {"kind": "pretrained", "path": str(Path(cfg.pretrained).resolve())}
    if cfg.prior == "shipped":
        card = shipped_prior(cfg.backbone)
        return {"kind": "shipped", "path": str(PRIOR_ROOT / cfg.backbone), "sha256": card["weights_sha256"]}
    if cfg.prior == "train":
        return {"kind": "trained", "path": str(prior_run(cfg, runs).path)}
    return {"kind": "none"}


def sr_run(cfg: TrainConfig, variant_name: str, runs: str | Path, source: DataSource | None = None,
           framer: FramerConfig | None = None) -> Run:
    """The run folder of one SR run: keyed by config, FRAMER config, objective, data source and prior."""
    source = source or builtin_source()
    return Run.sr(runs, cfg.backbone, variant_name, cfg.seed,
                  *_sr_key(cfg, framer or variant(variant_name), runs, source))


def _sr_key(cfg: TrainConfig, fcfg: FramerConfig, runs, source: DataSource) -> tuple:
    prior = prior_identity(cfg, runs)
    prior.pop("path", None) if prior["kind"] in ("shipped", "trained") else None  # runs may move; the hash stays
    return cfg.key(), framer_key(fcfg, cfg.backbone), B.spec(cfg.backbone).objective, source.fingerprint, prior


def framer_key(fcfg: FramerConfig, backbone: str) -> dict:
    """The FRAMER fields that change what is trained on `backbone`. `head_grad` counts only where the lens shares
    the model's output head (not U-Net heads, not the baseline), and only when off: runs keyed before it existed
    trained the head, and keep their folders."""
    key = dataclasses.asdict(fcfg)
    if fcfg.head_grad or not head_grad_applies(fcfg, backbone):
        key.pop("head_grad")
    return key


def train_prior(cfg: TrainConfig, runs: str | Path = "runs", progress: bool = True, callback=None,
                callback_every: int = 0, stop_after: int | None = None) -> Run:
    """Pretrain the backbone here as an unconditional denoiser of the training data (cached by config).

    `callback(step, backbone_with_ema_weights)` runs every `callback_every` steps and at the end."""
    run = prior_run(cfg, runs)
    if run.done:
        return run
    cfg = dataclasses.replace(cfg, batch_size=cfg.prior_batch_size, ema_decay=cfg.prior_ema_decay)
    bb = B.build(cfg.backbone, seed=0)
    bb.residual_scale = cfg.residual_scale if cfg.target == "residual" else 0.0
    src, preset = builtin_source(), load_preset(cfg.degradation)

    def batch(step: int, rank: int):
        hr, lr, _ = draw_pairs(src, preset, cfg, cfg.batch_size, data_generator(0, step, "prior-data", rank))
        return hr, lr, None

    _fit(bb, None, cfg, cfg.prior_steps, cfg.prior_lr, BASELINE, batch, run, seed=0, progress=progress,
         desc=f"prior {cfg.backbone}", record={"stage": "prior", "data": src.description,
                                               "data_fingerprint": src.fingerprint},
         callback=callback, callback_every=callback_every, stop_after=stop_after)
    return run


def starting_point(cfg: TrainConfig, runs: str | Path, progress: bool = True) -> B.Backbone:
    """The backbone the SR stage fine-tunes: a real pipeline, the shipped prior, a prior trained here, or random."""
    if cfg.pretrained:
        bb = B.load(cfg.backbone, cfg.pretrained, prompt_cache=Path(runs) / "prompts")
    elif cfg.prior == "shipped":
        bb = B.load(cfg.backbone, PRIOR_ROOT / cfg.backbone)
    elif cfg.prior == "train":
        bb = load_trained(train_prior(cfg, runs, progress), cfg.backbone)[0]
    else:
        bb = B.build(cfg.backbone, seed=cfg.seed)
    bb.residual_scale = cfg.residual_scale if cfg.target == "residual" else 0.0
    bb.lr_detail = 0.0 if bb.spec.latent else cfg.lr_detail  # detail channels are pixel-space channels
    return bb


def load_trained(run: str | Path | Run, backbone: str) -> tuple[B.Backbone, torch.nn.Module | None]:
    """A trained backbone (and its lens heads, if any) from a run folder."""
    run = run if isinstance(run, Run) else Run(Path(run))
    info = run.info()
    config = info.get("config", {})
    pretrained = config.get("pretrained")
    bb = B.load(backbone, str(run.model_dir), with_vae=False)
    if pretrained and B.spec(backbone).latent:  # the VAE and text conditioning come from the pipeline
        base = B.load(backbone, pretrained, with_vae=True, prompt_cache=run.path.parent.parent.parent / "prompts")
        bb.space, bb.context, bb.objective = base.space, base.context, base.objective
    if config.get("target") == "residual":
        bb.residual_scale = float(config.get("residual_scale", 1.0))
    if not B.spec(backbone).latent:  # runs from before lr_detail existed had none
        bb.lr_detail = float(config.get("lr_detail", 0.0))
    heads = None
    if run.heads_file.exists():
        heads = bb.make_heads()
        heads.load_state_dict(load_file(str(run.heads_file)))
    return bb, heads


def train_sr(cfg: TrainConfig, variant_name: str, runs: str | Path = "runs", resume: bool = True,
             stop_after: int | None = None, progress: bool = True, source: DataSource | None = None,
             framer: FramerConfig | None = None) -> Run:
    """Fine-tune the starting point for x`scale` SR with one named variant (or the FRAMER config `framer`, named
    `variant_name`: benchmarks/recipe.py probes); returns the run."""
    fcfg = framer or variant(variant_name)
    source = source or builtin_source()
    run = sr_run(cfg, variant_name, runs, source, fcfg)
    if run.done:
        return run
    bb = starting_point(cfg, runs, progress)
    if bb.lr_channels == 0:
        bb.grow_lr_channels()
    torch.manual_seed(cfg.seed)
    heads = bb.make_heads() if fcfg.objective != "none" else None
    preset = load_preset(cfg.degradation)
    captions = Captions.load(cfg.captions, bb, cfg.pretrained, Path(runs)) if cfg.captions else None
    cached = pair_cache(bb, cfg, preset, source, runs, progress) if cfg.cache_pairs else None

    def batch(step: int, rank: int):
        g = data_generator(cfg.seed, step, "sr-data", rank)
        if cached is not None:
            hr_m, lr_m, names = cached.batch(cfg.batch_size, g)
            return hr_m, lr_m, captions.context(names) if captions else None
        hr, lr, names = draw_pairs(source, preset, cfg, cfg.batch_size, g)
        return hr, lr, captions.context(names) if captions else None

    _fit(bb, heads, cfg, cfg.sr_steps, cfg.lr, fcfg, batch, run, seed=cfg.seed, resume=resume,
         in_model_space=cached is not None,
         stop_after=stop_after, progress=progress, desc=f"{cfg.backbone} {variant_name} s{cfg.seed}",
         record={"stage": "sr", "variant": variant_name, "framer": dataclasses.asdict(fcfg),
                 "prior": prior_identity(cfg, runs), "data": source.description,
                 "data_fingerprint": source.fingerprint,
                 "key_parts": json.loads(json.dumps(_sr_key(cfg, fcfg, runs, source), default=_plain))})
    return run


def pair_cache(bb: B.Backbone, cfg: TrainConfig, preset, source: DataSource, runs: str | Path,
               progress: bool = True):
    """The run's fixed training pairs in model space: loaded from runs/latents/, or drawn and encoded there once
    (by the main process, with the VAE on the accelerator; the other processes then load them)."""
    from . import cache as C
    path = C.cache_path(cfg, source.fingerprint, runs)
    state = PartialState(cpu=not torch.cuda.is_available())
    with state.main_process_first():
        if path.exists():
            return C.load(path)
        if isinstance(bb.space, B.VAESpace):
            bb.space.vae.to(state.device)

        chunk = min(cfg.batch_size, cfg.cache_pairs)

        def pairs(i: int):
            hr, lr, names = draw_pairs(source, preset, cfg, chunk, data_generator(0, i, "cache-data"))
            return hr.to(state.device), lr.to(state.device), names

        meta = {"fields": {k: getattr(cfg, k) for k in C.CACHE_FIELDS}, "data": source.description,
                "data_fingerprint": source.fingerprint, **provenance()}
        return C.build(bb, pairs, cfg.cache_pairs, chunk, path, meta, progress)


def _plain(x):
    return dataclasses.asdict(x) if dataclasses.is_dataclass(x) else str(x)


@dataclass
class Captions:
    """Per-image prompts from a JSON file {image stem: caption}, embedded once by the pipeline's text encoders."""

    context_by_name: dict[str, dict]
    null: dict

    @classmethod
    def load(cls, path: str | Path, bb: B.Backbone, pipeline: str | None, runs: Path) -> Captions:
        try:
            table = json.loads(Path(path).read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise ValueError(f"{path}: not a readable JSON captions file ({e})") from e
        if not isinstance(table, dict) or not all(isinstance(v, str) for v in table.values()):
            raise ValueError(f"{path}: captions must be a JSON object {{image stem: text}}")
        if not pipeline:
            raise ValueError(f"{path}: captions need a pipeline with text encoders (--pretrained)")
        names = sorted(table)
        ctx = B.prompt_context(bb.spec, pipeline, [table[n] for n in names], runs / "prompts")
        return cls({n: {k: v[i:i + 1] for k, v in ctx.items()} for i, n in enumerate(names)}, bb.context)

    def context(self, names: list[str]) -> dict:
        """Batch conditioning [B, ...]: each image's caption, the null prompt where it has none."""
        rows = [self.context_by_name.get(n, self.null) for n in names]
        return {k: torch.cat([r[k].expand(1, *r[k].shape[1:]) for r in rows]) for k in self.null}


def _fit(bb: B.Backbone, heads, cfg: TrainConfig, steps: int, lr: float, fcfg: FramerConfig, batch_fn,
         run: Run, seed: int, resume: bool = True, stop_after: int | None = None, progress: bool = True,
         desc: str = "", record: dict | None = None, callback=None, callback_every: int = 0,
         in_model_space: bool = False) -> None:
    """The shared loop: AdamW, warm-up then constant or cosine LR, EMA, clipping, CSV log, checkpoints, done marker."""
    state = PartialState(cpu=not torch.cuda.is_available())
    guard = run.lock() if state.is_main_process else contextlib.nullcontext()
    with guard:
        meta = {"config": dataclasses.asdict(cfg), "seed": seed, "num_processes": state.num_processes,
                "backbone_source": bb.source, **(record or {})}
        if state.is_main_process:
            if not resume and run.checkpoint.exists():
                run.checkpoint.unlink()
            run.start(meta)
        _loop(bb, heads, cfg, steps, lr, fcfg, batch_fn, run, seed, resume, stop_after, progress, desc, meta,
              callback, callback_every, in_model_space)


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


def _loop(bb, heads, cfg, steps, lr, fcfg, batch_fn, run: Run, seed, resume, stop_after, progress, desc, meta,
          callback=None, callback_every: int = 0, in_model_space: bool = False):
    time_bias = cfg.time_bias if meta.get("stage") == "sr" else 1.0
    acc = Accelerator(mixed_precision=cfg.mixed_precision, gradient_accumulation_steps=cfg.grad_accum,
                      cpu=not torch.cuda.is_available())
    if cfg.grad_checkpointing:
        bb.model.enable_gradient_checkpointing()
    if isinstance(bb.space, B.VAESpace):
        bb.space.vae.to(acc.device, torch.bfloat16 if cfg.mixed_precision == "bf16" else torch.float32)
        bb.space.vae.requires_grad_(False)
    bb.model.to(acc.device)  # before the optimizer and the EMA copy are made, so all live on one device
    if heads is not None:
        heads.to(acc.device)
    params = list(bb.model.parameters()) + (list(heads.parameters()) if heads is not None else [])
    # fused AdamW and the foreach EMA update: one kernel over all tensors instead of a Python loop over ~300 of
    # them (one CPU thread, tiny U-Net: AdamW about 4x, the EMA about 1.5x faster; benchmarks/results/optimizer_step.json)
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=cfg.weight_decay, fused=True)
    sched = lr_scheduler(opt, cfg.lr_schedule, steps)
    ema = EMAModel(bb.model.parameters(), decay=cfg.ema_decay, foreach=True) if cfg.ema_decay else None
    start = load_checkpoint(run.checkpoint, bb.model, heads, opt, sched, ema) \
        if (resume and run.checkpoint.exists()) else 0
    before = checkpoint_seconds(run.checkpoint) if start else 0.0  # training time of the processes before this one
    runner, opt = acc.prepare(bb.model, opt)
    heads = acc.prepare(heads) if heads is not None else None
    bb.runner = runner
    log = CsvLog(run.log_file, bb.num_students, start) if acc.is_main_process else None
    t_start, end = time.time(), steps if stop_after is None else min(steps, stop_after)
    bar = tqdm(range(start, end), desc=desc, disable=not progress or not acc.is_local_main_process,
               initial=start, total=steps)
    batches = _batches(batch_fn, acc.process_index, start, end, cfg.num_workers)
    for step in bar:
        t0 = time.time()
        hr, lr_img, ctx = next(batches)
        t_data = time.time() - t0
        with torch.no_grad():  # batches from a pair cache are in model space already
            hr_m, lr_m = (hr.to(acc.device), lr_img.to(acc.device)) if in_model_space else \
                (bb.to_model(hr.to(acc.device)), bb.to_model(lr_img.to(acc.device)))
        x0 = bb.sr_target(hr_m, lr_m)
        with acc.accumulate(runner), acc.autocast():
            out = training_loss(bb, x0, lr_m if bb.lr_channels else None, fcfg,
                                acc.unwrap_model(heads) if heads is not None else None,
                                step_generator(seed, step, acc.process_index, "noise"),
                                gather=acc.gather if acc.num_processes > 1 else None,
                                neg_generator=step_generator(seed, step, "neg"), loss_space=cfg.loss_space,
                                context=ctx, time_bias=time_bias)
            acc.backward(out.total)
            if acc.sync_gradients and cfg.grad_clip:
                acc.clip_grad_norm_(params, cfg.grad_clip)
            opt.step()
            sched.step()
            opt.zero_grad(set_to_none=True)
        total = out.total.item()  # read once the step is queued: no stall between forward and backward
        if not math.isfinite(total):  # the weights may now hold NaN: nothing of this step is saved
            saved = _saved_step(run)
            kept = f"the last good checkpoint (step {saved}) is kept" if saved else "no checkpoint had been saved yet"
            raise NonFiniteLossError(
                f"{run.path}: loss is {total} at step {step + 1} (objective {out.objective.item()}); stopped: "
                f"{kept}; lower --lr or check the data")
        if ema is not None and acc.sync_gradients:
            ema.step(acc.unwrap_model(runner).parameters())
        if log is not None and ((step + 1) % cfg.log_every == 0 or step + 1 == steps):
            log.write(_row(step + 1, out, sched, time.time() - t0, t_data, (step + 1) % cfg.diag_every == 0))
        bar.set_postfix(loss=f"{total:.4f}")
        if acc.is_main_process and ((step + 1) % cfg.ckpt_every == 0 or step + 1 == end):
            save_checkpoint(run.checkpoint, acc.unwrap_model(runner), heads and acc.unwrap_model(heads), opt, sched,
                            step + 1, {**meta, "trained_s": before + time.time() - t_start}, ema)
        if callback and acc.is_main_process and ((step + 1) % callback_every == 0 or step + 1 == steps):
            callback(step + 1, _with_weights(bb, ema))
    bb.runner = None
    if end == steps and ema is not None:
        ema.copy_to(bb.model.parameters())
    if end == steps and acc.is_main_process:
        _finish(bb, heads and acc.unwrap_model(heads), run, meta, before + time.time() - t_start, start)
    acc.wait_for_everyone()  # other processes read what the main one saved


def _with_weights(bb: B.Backbone, ema: EMAModel | None) -> B.Backbone:
    """A copy of the backbone carrying the EMA weights (the ones that will be saved), for evaluation."""
    runner, bb.runner = bb.runner, None
    twin = copy.deepcopy(bb)
    bb.runner = runner
    if ema is not None:
        ema.copy_to(twin.model.parameters())
    return twin


def _saved_step(run: Run) -> int:
    if not run.checkpoint.exists():
        return 0
    with safe_open(str(run.checkpoint), "pt") as f:
        return int(json.loads(f.metadata()["state"])["step"])


def lr_scheduler(opt: torch.optim.Optimizer, schedule: str, steps: int, warmup: int = 20):
    """diffusers' LR scheduler: a linear warm-up over `warmup` steps, then constant or a cosine decay to 0 at
    `steps`."""
    if schedule not in LR_SCHEDULES:
        raise ValueError(f"lr_schedule={schedule!r} is not one of {LR_SCHEDULES}")
    name = {"constant": "constant_with_warmup", "cosine": "cosine"}[schedule]
    return get_scheduler(name, opt, num_warmup_steps=warmup, num_training_steps=steps)


def _row(step: int, out, sched, step_s: float, data_s: float, diag: bool) -> dict:
    row = {"step": step, "total": out.total.item(), "objective": out.objective.item(),
           "distill": out.framer.distill.item() if out.framer is not None else 0.0,
           "lr": sched.get_last_lr()[0], "step_s": round(step_s, 4), "data_s": round(data_s, 4)}
    if diag and out.framer is not None:
        for name, values in out.framer.layer_means().items():
            row.update({f"{name}_{i}": round(v, 5) for i, v in enumerate(values)})
    return row


def _finish(bb: B.Backbone, heads, run: Run, meta: dict, seconds: float, resumed_from: int) -> None:
    """Save the inference model (heads separately, never inside it), then the done marker."""
    bb.model.save_pretrained(run.model_dir)
    if heads is not None:
        save_file({k: v.contiguous() for k, v in heads.state_dict().items()}, str(run.heads_file))
    run.finish(provenance(**meta, wall_s=round(seconds, 1), resumed_from=resumed_from))


@torch.no_grad()
def heldout_objective(bb: B.Backbone, cfg: TrainConfig, batches: int = 8, batch_size: int = 32,
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
                            generator=step_generator("heldout-noise", i), loss_space=cfg.loss_space)
        total += out.objective.item() / batches
    return total
