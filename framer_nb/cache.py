"""Training pairs encoded once (the released code's `make_latent` step): fixed (crop, degradation) pairs in model
space, stored in one safetensors file and shared by every run that would draw the same pairs.

With a VAE the encoder costs about as much as a training step's forward pass; a cache pays it once per pair
instead of once per step. The price is a finite training set: `cache_pairs` pairs, each crop degraded once,
as the released code trains. The prompt embeddings are cached separately (`backbones.prompt_context`)."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from accelerate import PartialState
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file
from tqdm.auto import tqdm

from .pairs import DataSource, data_generator, draw_pairs
from .provenance import provenance
from .runs import latents_file

CACHE_FIELDS = ("backbone", "pretrained", "image_size", "scale", "degradation", "crop_scale", "cache_pairs")


@dataclass
class PairCache:
    """N training pairs in model space: HR [N, C, h, w], LR [N, C', h, w], and their images' names."""

    hr: torch.Tensor
    lr: torch.Tensor
    names: list[str]

    def __len__(self) -> int:
        return self.hr.shape[0]

    def batch(self, n: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
        """n pairs drawn uniformly with replacement by `g`."""
        idx = torch.randint(len(self), (n,), generator=g)
        return self.hr[idx], self.lr[idx], [self.names[i] for i in idx.tolist()]


def cache_path(cfg, source_fingerprint: str, runs: str | Path) -> Path:
    """Where the pairs of this config and data source live (seed-independent: every seed trains on them)."""
    fields = {k: getattr(cfg, k) for k in CACHE_FIELDS}
    if fields["pretrained"]:
        fields["pretrained"] = str(Path(fields["pretrained"]).resolve())
    payload = json.dumps([fields, source_fingerprint], sort_keys=True, default=str)
    return latents_file(runs, cfg.backbone, hashlib.sha256(payload.encode()).hexdigest()[:12])


def build(bb, pairs_fn, n: int, chunk: int, path: Path, meta: dict, progress: bool = True) -> PairCache:
    """Encode n pairs, `chunk` at a time (`pairs_fn(i)` gives chunk i: HR and upsampled LR images in [-1, 1] and
    names), and write them atomically to `path`."""
    hrs, lrs, names = [], [], []
    with torch.no_grad():
        for i in tqdm(range(-(-n // chunk)), desc=f"encode {n} pairs", disable=not progress):
            hr, lr, nm = pairs_fn(i)
            hrs.append(bb.to_model(hr).cpu())
            lrs.append(bb.to_model(lr).cpu())
            names += nm
    cache = PairCache(torch.cat(hrs)[:n].contiguous(), torch.cat(lrs)[:n].contiguous(), names[:n])
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    save_file({"hr": cache.hr, "lr": cache.lr}, str(tmp),
              metadata={"names": json.dumps(cache.names), "meta": json.dumps(meta, default=str)})
    tmp.replace(path)
    return cache


def load(path: str | Path) -> PairCache:
    """A cache written by `build`; a damaged file gets an error naming it and what to do."""
    try:
        with safe_open(str(path), "pt") as f:
            names = json.loads(f.metadata()["names"])
        t = load_file(str(path))
        cache = PairCache(t["hr"], t["lr"], names)
    except (SafetensorError, OSError, KeyError, TypeError, json.JSONDecodeError) as e:
        raise RuntimeError(f"{path}: unreadable pair cache ({e}); delete it and it will be rebuilt") from e
    if not (len(cache.names) == cache.hr.shape[0] == cache.lr.shape[0]):
        raise RuntimeError(f"{path}: pair cache holds {cache.hr.shape[0]} HR, {cache.lr.shape[0]} LR and "
                           f"{len(cache.names)} names; delete it and it will be rebuilt")
    return cache


def for_run(bb, cfg, preset, source: DataSource, runs: str | Path, progress: bool = True) -> PairCache:
    """A run's fixed training pairs in model space: loaded from the runs folder, or drawn and encoded there once
    (by the main process, with the VAE on the accelerator; the other processes then load them)."""
    path = cache_path(cfg, source.fingerprint, runs)
    state = PartialState(cpu=not torch.cuda.is_available())
    with state.main_process_first():
        if path.exists():
            return load(path)
        bb.space.prepare(state.device)
        chunk = min(cfg.batch_size, cfg.cache_pairs)

        def pairs(i: int):
            hr, lr, names = draw_pairs(source, preset, cfg, chunk, data_generator(0, i, "cache-data"))
            return hr.to(state.device), lr.to(state.device), names

        meta = {"fields": {k: getattr(cfg, k) for k in CACHE_FIELDS}, "data": source.description,
                "data_fingerprint": source.fingerprint, **provenance()}
        return build(bb, pairs, cfg.cache_pairs, chunk, path, meta, progress)
