"""The training checkpoint: one safetensors file holding model, heads, EMA, optimizer, scheduler, RNG and step.

One file rather than accelerate's `save_state` folder: it is replaced atomically (a kill or a full disk keeps the
previous checkpoint), and the noise of every step comes from a generator seeded by (seed, step), so the only RNG
state to keep is torch's global one. Its JSON metadata (`state`) holds the step, the optimizer's param groups, the
scheduler, the run's record and `trained_s`, the training seconds of every process that wrote it.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from .errors import CheckpointError


def save(path: Path, model, heads, opt, sched, step: int, extra: dict, ema=None) -> None:
    """Write everything a resume needs (atomically: a temporary file, then a rename)."""
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
    tmp = Path(path).with_suffix(".tmp")
    try:
        save_file(tensors, str(tmp), metadata={"state": json.dumps(meta, default=str)})
        tmp.replace(path)
    except BaseException:  # a full disk, Ctrl-C: the previous checkpoint stays, the partial file goes
        tmp.unlink(missing_ok=True)
        raise


def read(path: Path) -> tuple[dict, dict]:
    """(metadata, tensors) of a checkpoint; a damaged file raises CheckpointError naming it."""
    try:
        with safe_open(str(path), "pt") as f:
            meta = json.loads(f.metadata()["state"])
        return meta, load_file(str(path))
    except (SafetensorError, OSError, KeyError, TypeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{path}: unreadable checkpoint ({e}); delete it or pass --no-resume to start "
                              "over") from e


def metadata(path: Path) -> dict:
    """The checkpoint's metadata alone (no tensors loaded)."""
    try:
        with safe_open(str(path), "pt") as f:
            return json.loads(f.metadata()["state"])
    except (SafetensorError, OSError, KeyError, TypeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{path}: unreadable checkpoint ({e}); delete it or pass --no-resume to start "
                              "over") from e


def restore(path: Path, model, heads, opt, sched, ema=None) -> int:
    """Restore everything `save` wrote (EMA weights into `ema`); returns the step to continue from."""
    meta, tensors = read(path)
    model.load_state_dict(_part(tensors, "model."))
    if heads is not None:
        heads.load_state_dict(_part(tensors, "heads."))
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


def ema_state(path: Path) -> dict:
    """The model's state dict with its EMA weights in place of the trained ones (buffers as saved)."""
    _, tensors = read(path)
    return {**_part(tensors, "model."), **_part(tensors, "ema.")}


def step_of(path: Path) -> int:
    """The step a checkpoint was saved at (0 if there is none)."""
    return int(metadata(path)["step"]) if Path(path).exists() else 0


def trained_seconds(path: Path) -> float:
    """Training wall time up to a checkpoint, summed over the processes that wrote it. A resumed run adds its own
    time to this: the time after the last checkpoint of a killed process is not counted."""
    return float(metadata(path).get("trained_s", 0.0))


def _part(tensors: dict, prefix: str) -> dict:
    return {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
