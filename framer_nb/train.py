"""The SR stage: fine-tune a starting point (shipped prior, a prior pretrained here, a real pipeline, or random
weights) for x`scale` super-resolution with one FRAMER variant, in a run folder keyed by everything that shapes it.

    train_sr(cfg, "framer")        -> runs.Run (trained, or skipped when its done marker exists)
    probe_sr(cfg, "framer", runs, fn, every) -> the same, calling fn(step, backbone) along the way
    load_trained(run)              -> the fine-tuned backbone and its lens heads
    starting_point(cfg, runs)      -> the backbone the SR stage starts from

The loop itself is framer_nb.loop; the prior stage framer_nb.priors; data framer_nb.pairs.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import torch
from safetensors.torch import load_file

from . import backbones as B
from . import cache as C
from .captions import Captions
from .config import FramerConfig, TrainConfig, variant
from .degrade import load_preset, preset_path
from .loop import Fit, fit
from .pairs import DataSource, builtin_source, data_generator, draw_pairs
from .priors import prior_folder, prior_run, shipped_prior, train_prior
from .runs import Run, prompt_cache


def head_grad_applies(fcfg: FramerConfig, backbone: str) -> bool:
    """Whether FramerConfig.head_grad changes training: a FRAMER term read through the model's own output head
    (not the baseline, not U-Net lens heads)."""
    return fcfg.objective != "none" and not B.spec(backbone).adapter.needs_heads


def framer_key(fcfg: FramerConfig, backbone: str) -> dict:
    """The FRAMER fields that change what is trained on `backbone` (`head_grad` only where it applies)."""
    key = dataclasses.asdict(fcfg)
    if not head_grad_applies(fcfg, backbone):
        key.pop("head_grad")
    return key


def prior_identity(cfg: TrainConfig, runs: str | Path) -> dict:
    """What the SR stage starts from: a pipeline/model folder, the shipped prior, a prior trained here, or nothing."""
    if cfg.pretrained:
        return {"kind": "pretrained", "path": str(Path(cfg.pretrained).resolve())}
    if cfg.prior == "shipped":
        card = shipped_prior(cfg.backbone, target=cfg.target)
        return {"kind": "shipped", "path": str(prior_folder(cfg.backbone, cfg.target)), "sha256": card["weights_sha256"]}
    if cfg.prior == "train":
        return {"kind": "trained", "path": str(prior_run(cfg, runs).path)}
    return {"kind": "none"}


def input_files(cfg: TrainConfig) -> dict:
    """The content of the files a config names (a degradation YAML, a captions file): a run's key covers them, so
    an edit at the same path trains a new run."""
    named = {"degradation": preset_path(cfg.degradation), "captions": Path(cfg.captions) if cfg.captions else None}
    return {k: _sha256(p) for k, p in named.items() if p is not None}


def _sha256(path: Path) -> str:
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError as e:
        raise FileNotFoundError(f"{path}: cannot be read ({e.strerror or e})") from e


def _key_parts(cfg: TrainConfig, fcfg: FramerConfig, runs, source: DataSource) -> tuple:
    prior = prior_identity(cfg, runs)
    if prior["kind"] in ("shipped", "trained"):
        prior.pop("path")  # runs may move; the hash stays
    parts = (cfg.key(), framer_key(fcfg, cfg.backbone), B.spec(cfg.backbone).objective, source.fingerprint, prior)
    files = input_files(cfg)
    return parts + (files,) if files else parts


def sr_run(cfg: TrainConfig, variant_name: str, runs: str | Path, source: DataSource | None = None,
           framer: FramerConfig | None = None) -> Run:
    """The run folder of one SR run: keyed by config, FRAMER config, objective, data source and prior."""
    parts = _key_parts(cfg, framer or variant(variant_name), runs, source or builtin_source())
    return Run.sr(runs, cfg.backbone, variant_name, cfg.seed, *parts)


def starting_point(cfg: TrainConfig, runs: str | Path, progress: bool = True) -> B.Backbone:
    """The backbone the SR stage fine-tunes: a real pipeline, the shipped prior, a prior trained here, or random;
    with the config's conventions (target, LR detail channels)."""
    if cfg.pretrained:
        bb = B.load(cfg.backbone, cfg.pretrained, prompt_cache=prompt_cache(runs))
    elif cfg.prior == "shipped":
        bb = B.load(cfg.backbone, prior_folder(cfg.backbone, cfg.target))
    elif cfg.prior == "train":
        bb = load_trained(train_prior(cfg, runs, progress))[0]
    else:
        bb = B.build(cfg.backbone, seed=cfg.seed)
    return bb.adopt(cfg)


def load_trained(run: str | Path | Run) -> tuple[B.Backbone, torch.nn.Module | None]:
    """A trained backbone (and its lens heads, if any) from a run folder, with the conventions it trained with."""
    run = run if isinstance(run, Run) else Run(Path(run))
    cfg = run.config()
    bb = B.load(cfg.backbone, str(run.model_dir), with_vae=False)
    if cfg.pretrained and bb.spec.latent:  # the VAE and text conditioning come from the pipeline
        base = B.load(cfg.backbone, cfg.pretrained, with_vae=True, prompt_cache=prompt_cache(run.root))
        bb.space, bb.context, bb.objective = base.space, base.context, base.objective
    bb.adopt(cfg)
    heads = None
    if run.heads_file.exists():
        heads = bb.make_heads()
        heads.load_state_dict(load_file(str(run.heads_file)))
    return bb, heads


def train_sr(cfg: TrainConfig, variant_name: str, runs: str | Path = "runs", resume: bool = True,
             stop_after: int | None = None, progress: bool = True, source: DataSource | None = None,
             framer: FramerConfig | None = None) -> Run:
    """Fine-tune the starting point with one named variant (or the FRAMER config `framer`, named `variant_name`,
    for research probes); returns the run."""
    return _train_sr(cfg, variant_name, runs, source, framer,
                     {"resume": resume, "stop_after": stop_after, "progress": progress})


def probe_sr(cfg: TrainConfig, variant_name: str, runs: str | Path, callback: Callable, every: int,
             framer: FramerConfig | None = None) -> Run:
    """`train_sr` for research probes, calling callback(step, backbone with the EMA weights) every `every` steps
    and at the last (a validation score over training). A run that is done already is returned as it is."""
    return _train_sr(cfg, variant_name, runs, None, framer,
                     {"progress": False, "callback": callback, "callback_every": every})


def _train_sr(cfg: TrainConfig, variant_name: str, runs: str | Path, source: DataSource | None,
              framer: FramerConfig | None, drive: dict) -> Run:
    """The SR run; `drive` holds the `loop.Fit` fields that say how it is driven (resume, progress, callback...)."""
    fcfg = framer or variant(variant_name)
    source = source or builtin_source()
    run = sr_run(cfg, variant_name, runs, source, fcfg)
    if run.done:
        return run
    progress = drive.get("progress", True)
    bb = starting_point(cfg, runs, progress)
    if bb.lr_channels == 0:
        bb.grow_lr_channels()
    torch.manual_seed(cfg.seed)
    heads = bb.make_heads() if fcfg.objective != "none" else None
    preset = load_preset(cfg.degradation)
    captions = Captions.load(cfg.captions, bb, cfg.pretrained, runs) if cfg.captions else None
    cached = C.for_run(bb, cfg, preset, source, runs, progress) if cfg.cache_pairs else None

    def batch(step: int, rank: int):
        g = data_generator(cfg.seed, step, "sr-data", rank)
        hr, lr, names = cached.batch(cfg.batch_size, g) if cached is not None else \
            draw_pairs(source, preset, cfg, cfg.batch_size, g)
        return hr, lr, captions.context(names) if captions else None

    record = {"stage": "sr", "variant": variant_name, "framer": dataclasses.asdict(fcfg),
              "prior": prior_identity(cfg, runs), "data": source.description, "data_fingerprint": source.fingerprint,
              "key_parts": json.loads(json.dumps(_key_parts(cfg, fcfg, runs, source), default=_plain))}
    plan = Fit(cfg, cfg.sr_steps, cfg.lr, fcfg, cfg.seed, cfg.time_bias, desc=f"{cfg.backbone} {variant_name} "
               f"s{cfg.seed}", record=record, in_model_space=cached is not None, **drive)
    fit(bb, heads, plan, batch, run)
    return run


def _plain(x):
    return dataclasses.asdict(x) if dataclasses.is_dataclass(x) else str(x)
