"""Our pretrained priors: long unconditional pretraining of each tiny backbone, shipped in data/priors/<backbone>/.

The paper fine-tunes a pretrained generative model (SD2 / SD3.5); the small profile fine-tunes these. Each
folder holds the model (`save_pretrained`: config.json + safetensors, at most 20 MB), `model_card.json`
(data, steps, batch, wall time, device, commit, the held-out denoising loss curve, the command that
regenerates it, the weights' SHA-256) and `samples.png` (real residuals of validation photos beside
unconditional samples of the prior). `python -m framer_nb pretrain` (or `make pretrain`) regenerates them.
"""

from __future__ import annotations

import copy
import csv
import dataclasses
import functools
import hashlib
import json
import platform
import time
from pathlib import Path

import torch

from . import backbones as B
from . import checkpoint as ckpt
from . import diffusion as D
from .config import TrainConfig
from .data import Pyramid, photos
from .degrade import load_preset
from .loop import BASELINE, Fit, fit, heldout_objective
from .pairs import builtin_source, data_generator, draw_pairs, sr_pair
from .paths import DATA_ROOT
from .provenance import provenance
from .runs import Run
from .step import StepOptions, training_loss

PRIOR_ROOT = DATA_ROOT / "priors"
MAX_WEIGHTS_MB = 20.0
# the TrainConfig fields that shape a prior pretrained here (its run key)
PRIOR_FIELDS = ("backbone", "image_size", "prior_batch_size", "prior_steps", "prior_lr", "weight_decay", "grad_clip",
                "target", "residual_scale", "degradation", "scale", "loss_space", "lr_schedule", "prior_ema_decay",
                "crop_scale", "mixed_precision")


def weights_file(folder: Path) -> Path:
    return Path(folder) / "diffusion_pytorch_model.safetensors"


def sha256(path: Path) -> str:
    return _sha256(str(path), Path(path).stat().st_mtime_ns, Path(path).stat().st_size)


@functools.cache
def _sha256(path: str, mtime_ns: int, size: int) -> str:  # cached while the file is unchanged
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def prior_folder(backbone: str, target: str = "residual", root: Path | None = None) -> Path:
    """Where the shipped prior of a backbone lives: data/priors/<backbone> for the residual target, and
    data/priors/<backbone>-image for priors that denoise the whole image (TrainConfig.target)."""
    return Path(root or PRIOR_ROOT) / (backbone if target == "residual" else f"{backbone}-{target}")


def shipped_prior(backbone: str, root: Path | None = None, target: str = "residual") -> dict:
    """The model card of a shipped prior, after checking its weights are present and unchanged."""
    folder = prior_folder(backbone, target, root)
    card_file = folder / "model_card.json"
    if not card_file.exists() or not weights_file(folder).exists():
        raise FileNotFoundError(f"{folder}: no shipped prior for {backbone!r} (model_card.json and weights); "
                                f"run `python -m framer_nb pretrain --backbone {backbone} --target {target}` or train "
                                "with --prior train")
    card = json.loads(card_file.read_text())
    if sha256(weights_file(folder)) != card.get("weights_sha256"):
        raise ValueError(f"{weights_file(folder)}: SHA-256 differs from {card_file}; the weights were changed or "
                         "truncated: restore them (git checkout) or regenerate with `python -m framer_nb pretrain`")
    return card


def residual_scale_of(card: dict) -> float:
    """The residual scale a prior learned: its x0 is scale * (HR - bicubic(LR))."""
    if "residual_scale" not in card:
        raise ValueError(f"{card.get('backbone', 'a prior')}'s model card has no residual_scale: regenerate it with "
                         "`python -m framer_nb pretrain`")
    return float(card["residual_scale"])


def prior_run(cfg: TrainConfig, runs: str | Path) -> Run:
    """Where a prior pretrained here (prior='train') for this backbone and pretraining config is cached."""
    fields = {k: getattr(cfg, k) for k in PRIOR_FIELDS}
    return Run.prior(runs, cfg.backbone, fields, B.spec(cfg.backbone).objective, builtin_source().fingerprint)


def train_prior(cfg: TrainConfig, runs: str | Path = "runs", progress: bool = True, callback=None,
                callback_every: int = 0, stop_after: int | None = None) -> Run:
    """Pretrain the backbone here as an unconditional denoiser of the training data (cached by config).

    `callback(step, backbone_with_ema_weights)` runs every `callback_every` steps and at the end."""
    run = prior_run(cfg, runs)
    if run.done:
        return run
    cfg = dataclasses.replace(cfg, batch_size=cfg.prior_batch_size, ema_decay=cfg.prior_ema_decay)
    bb = B.build(cfg.backbone, seed=0).adopt(cfg)
    src, preset = builtin_source(), load_preset(cfg.degradation)

    def batch(step: int, rank: int):
        hr, lr, _ = draw_pairs(src, preset, cfg, cfg.batch_size, data_generator(0, step, "prior-data", rank))
        return hr, lr, None

    plan = Fit(cfg, cfg.prior_steps, cfg.prior_lr, BASELINE, seed=0, stop_after=stop_after, progress=progress,
               desc=f"prior {cfg.backbone}", callback=callback, callback_every=callback_every,
               record={"stage": "prior", "data": src.description, "data_fingerprint": src.fingerprint})
    fit(bb, None, plan, batch, run)
    return run


@dataclasses.dataclass(frozen=True)
class Pretraining:
    """How a prior is pretrained: its schedule, its optimisation, and where it stops."""

    steps: int | None = None  # the run's length (constant LR after a 20-step warm-up); None: sized from `minutes`
    minutes: float | None = None  # as many steps as fit in this many minutes here (the card records the steps)
    batch_size: int = 64
    lr: float = 1e-3  # peak learning rate
    eval_every: int = 500  # held-out objective every N steps
    num_workers: int = 0  # data-loading processes
    stop_after: int | None = None  # stop at this step of the schedule and export that checkpoint's EMA weights
    residual_scale: float | None = None  # the prior denoises scale * (HR - bicubic(LR)); None: TrainConfig's
    target: str = "residual"  # residual, or image: the prior denoises the HR image itself (TrainConfig.target)


def pretrain(backbone: str, how: Pretraining, out: str | Path | None = None, runs: str | Path = "runs",
             progress: bool = True, command: str = "") -> dict:
    """Pretrain `backbone`'s unconditional prior and export it to `prior_folder(backbone, how.target)` (or `out`).

    Resumable: the run lives under runs/prior/. With `how.stop_after`, training stops at that step of the
    `how.steps`-long schedule and the EMA weights of that checkpoint are exported (the card records both numbers
    and the residual scale the prior learned)."""
    steps, batch_size, lr, stop_after = how.steps, how.batch_size, how.lr, how.stop_after
    if steps is None:
        if how.minutes is None:
            raise ValueError("give steps or minutes")
        steps = steps_for_minutes(backbone, how.minutes, batch_size, lr, how.num_workers, how.residual_scale)
    if stop_after is not None and not 0 < stop_after <= steps:
        raise ValueError(f"stop_after={stop_after} must lie in 1..steps ({steps})")
    cfg = TrainConfig(backbone=backbone, prior="train", prior_steps=steps, prior_lr=lr, prior_batch_size=batch_size,
                      batch_size=batch_size, mixed_precision="no", num_workers=how.num_workers,
                      ckpt_every=max(50, how.eval_every), log_every=50, target=how.target,
                      **({} if how.residual_scale is None else {"residual_scale": float(how.residual_scale)}))
    curve_file = prior_run(cfg, runs).heldout_curve

    def evaluate(step: int, ema_backbone) -> None:
        point = {"step": step, "heldout_objective": round(heldout_objective(ema_backbone, cfg), 6)}
        _add_to_curve(curve_file, point)  # saved at once: an interruption loses no point
        if progress:
            print(f"[pretrain {backbone}] step {step}: held-out objective {point['heldout_objective']:.5f}",
                  flush=True)

    t0 = time.time()
    run = train_prior(cfg, runs, progress, callback=evaluate, callback_every=how.eval_every, stop_after=stop_after)
    wall = time.time() - t0
    if run.done:
        done, trained = run.done_record(), steps
        bb = B.load(backbone, run.model_dir, with_vae=False).adopt(cfg)
    else:  # stopped early on purpose: the checkpoint's EMA weights are the prior
        bb, trained = _from_checkpoint(run.checkpoint, cfg), stop_after
        done = {**run.info(), "wall_s": _logged_wall(run.log_file)}
        if not any(p["step"] == trained for p in _read_curve(curve_file)):
            evaluate(trained, bb)
    out = Path(out or prior_folder(backbone, how.target))
    bb.model.save_pretrained(out)
    size_mb = weights_file(out).stat().st_size / 2**20
    if size_mb > MAX_WEIGHTS_MB:
        raise ValueError(f"{weights_file(out)}: {size_mb:.1f} MB exceeds the {MAX_WEIGHTS_MB} MB limit for shipped priors")
    card = provenance(
        backbone=backbone, model_class=type(bb.model).__name__, parameters=sum(p.numel() for p in bb.model.parameters()),
        objective=dataclasses.asdict(bb.objective), space=bb.space.describe(), target_kind=how.target,
        target="residual_scale * (HR - bicubic(LR))" if how.target == "residual" else "the HR image",
        residual_scale=cfg.residual_scale if how.target == "residual" else None,
        data=done.get("data"), data_fingerprint=done.get("data_fingerprint"), crop=cfg.image_size,
        crop_scale=cfg.crop_scale, degradation=cfg.degradation, steps=trained, schedule_steps=steps,
        batch_size=batch_size, lr=lr, ema_decay=cfg.prior_ema_decay, lr_schedule=cfg.lr_schedule,
        wall_s=round(done.get("wall_s") or wall, 1), device=_device_name(),
        heldout_curve=[p for p in _read_curve(curve_file) if p["step"] <= trained],
        heldout_data="validation photos (framer_nb.data.SPLITS['val']), fixed seeded batches",
        command=command or f"python -m framer_nb pretrain --backbone {backbone} --steps {steps} "
                           f"--batch-size {batch_size} --lr {lr} --residual-scale {cfg.residual_scale:g} "
                           f"--target {how.target}"
                           + (f" --stop-after {stop_after}" if stop_after else ""),
        weights_sha256=sha256(weights_file(out)), weights_mb=round(size_mb, 2))
    (out / "model_card.json").write_text(json.dumps(card, indent=2, default=str))
    save_samples_figure(bb, cfg, out / "samples.png")
    return card


def _read_curve(f: Path) -> list[dict]:
    return json.loads(f.read_text()) if f.exists() else []


def _add_to_curve(f: Path, point: dict) -> None:
    merged = {p["step"]: p for p in _read_curve(f) + [point]}
    f.write_text(json.dumps([merged[k] for k in sorted(merged)]))


def _from_checkpoint(path: Path, cfg: TrainConfig) -> B.Backbone:
    """The backbone carrying the EMA weights saved in a training checkpoint."""
    bb = B.build(cfg.backbone, seed=0).adopt(cfg)
    bb.model.load_state_dict(ckpt.ema_state(path))
    return bb


def _logged_wall(log_file: Path) -> float | None:
    """Training seconds summed from the CSV log's per-step times (log rows every 50 steps: an estimate)."""
    if not log_file.exists():
        return None
    with open(log_file) as f:
        rows = list(csv.DictReader(f))
    if not rows or "step_s" not in rows[0]:
        return None
    steps = [int(r["step"]) for r in rows]
    gaps = [b - a for a, b in zip([0] + steps[:-1], steps)]
    return sum(g * float(r["step_s"]) for g, r in zip(gaps, rows) if r["step_s"])


def steps_for_minutes(backbone: str, minutes: float, batch_size: int, lr: float, num_workers: int,
                      residual_scale: float | None = None) -> int:
    """How many steps fit in `minutes` here, from the speed of 20 timed steps after 5 warm-up steps."""
    cfg = TrainConfig(backbone=backbone, batch_size=batch_size,
                      **({} if residual_scale is None else {"residual_scale": float(residual_scale)}))
    device = "cuda" if torch.cuda.is_available() else "cpu"
    bb = B.build(backbone).to(device).adopt(cfg)
    opt = torch.optim.AdamW(bb.model.parameters(), lr=lr)
    src, preset, g = builtin_source(), load_preset(cfg.degradation), torch.Generator().manual_seed(0)
    for i in range(25):
        if i == 5:
            _sync()
            t0 = time.time()
        hr, lr, _ = draw_pairs(src, preset, cfg, batch_size, g)
        hr_m, lr_m = bb.to_model(hr.to(device)), bb.to_model(lr.to(device))
        loss = training_loss(bb, bb.sr_target(hr_m, lr_m), None, BASELINE, generator=g,
                             options=StepOptions(cfg.loss_space)).total
        opt.zero_grad()
        loss.backward()
        opt.step()
    _sync()
    per_step = (time.time() - t0) / 20
    if num_workers:
        per_step *= 0.85  # data loading overlaps with compute in worker processes
    return max(100, int(minutes * 60 / per_step))


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def _device_name() -> str:
    if torch.cuda.is_available():
        return torch.cuda.get_device_name()
    return f"CPU {platform.machine()}, {torch.get_num_threads()} threads"


@torch.no_grad()
def save_samples_figure(bb, cfg, path: Path, n: int = 8, steps: int = 20) -> Path:
    """Real targets of validation crops above unconditional samples of the prior: residuals (HR - bicubic up of its
    LR) in grey for a residual prior, RGB images for an image prior."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    bb = copy.deepcopy(bb).to("cpu")
    bb.model.eval()
    g = torch.Generator().manual_seed(0)
    hr = Pyramid.between(photos("val", 1.0), *cfg.crop_scale).crops(n, cfg.image_size, g)[0]
    hr_px, lr_px = sr_pair(hr, load_preset(cfg.degradation), cfg, g)
    residual = cfg.target == "residual"
    real = hr_px - lr_px if residual else hr_px
    shape = bb.to_model(real).shape
    s = bb.residual_scale or 1.0  # a residual prior's x0 is s * (HR - bicubic(LR)), within +-2 s
    z = D.sample(bb.objective, lambda x, t: bb.predict(x, t), shape, steps, torch.Generator().manual_seed(1),
                 clip=2.0 * s if residual else 1.0)
    fake = bb.to_pixels(z) / s  # shown on the real targets' scale
    fig, axes = plt.subplots(2, n, figsize=(1.4 * n, 3.2))
    scale = float(real.abs().quantile(0.99))
    what = "residuals" if residual else "images"
    for row, imgs, title in ((0, real, f"real {what} (validation photos)"), (1, fake, "prior samples")):
        for k in range(n):
            ax = axes[row, k]
            if residual:
                ax.imshow((imgs[k].mean(0) / (2 * scale) + 0.5).clamp(0, 1).numpy(), cmap="gray", vmin=0, vmax=1)
            else:
                ax.imshow(((imgs[k] + 1) / 2).clamp(0, 1).permute(1, 2, 0).numpy())
            ax.set_xticks([]), ax.set_yticks([])
        axes[row, 0].set_ylabel(title, fontsize=7)
    fig.suptitle(f"{bb.spec.name} prior: residual HR - bicubic(LR), grey = 0, ±{scale:.2f} at the extremes"
                 if residual else f"{bb.spec.name} prior: whole HR images", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
