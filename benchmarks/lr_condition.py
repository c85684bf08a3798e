"""How the LR condition is fed decides how fast the tiny DiT learns: the exploration behind `TrainConfig.lr_detail`.

Each probe fine-tunes one backbone's baseline (seed 0, the small profile's recipe with `lr_detail` 0, one thread)
with the LR condition transformed before it reaches the LR channels, and scores the one-step and 10-step PSNR gain
over bicubic on the validation photos (framer_nb.evaluate.validation_gain). Kinds:

    lr                   the upsampled LR alone (the recipe before lr_detail)
    lr*4                 the LR scaled by 4 (the same channels, a 4x larger input)
    hp<s>g<g>[s<k>]      [k * LR, g * (LR - blur_s(LR))]: detail channels, Gaussian sigma s px (k: LR scale, 1)
    lap                  [LR, 4 * (LR - b1), 4 * (b1 - b2), 4 * (b2 - b4)]: a Laplacian stack, b_s = blur_s(LR)
    detail               16 * (LR - blur_4(LR)) alone
    <kind>+w4            and the patch embedding widened to 4 x 4 (stride 2, zero-initialised new taps)
    pos:<sample_size>    the LR alone, the DiT built with another sample_size (its sincos position spacing:
                         (sample_size / patch) / pos_embed_max_size per token, 0.25 in the shipped DiT), from scratch

    python benchmarks/lr_condition.py hp4g16 tiny-dit [--steps 1800]   ->  merged into benchmarks/results/lr_condition.json
The package's own `lr_detail` (the channels of `hp4g<gain>`) is probed by benchmarks/recipe.py.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from contextlib import contextmanager
from pathlib import Path

import torch
from recipe import trained_widened  # benchmarks/recipe.py

from framer_nb import backbones as B
from framer_nb.backbones import gaussian_blur as blur
from framer_nb.config import profile, with_overrides
from framer_nb.evaluate import validation_gain
from framer_nb.provenance import provenance
from framer_nb.train import load_trained, train_sr


def transform(kind: str):
    """(condition function of (backbone, LR in model space), LR-channel multiple) for a kind."""
    if kind == "lr":
        return (lambda bb, lr: lr), 1
    if kind == "lr*4":
        return (lambda bb, lr: 4 * lr), 1
    if kind == "lap":
        def lap(bb, lr):
            px = bb.space.decode(lr)
            b1, b2, b4 = blur(px, 1), blur(px, 2), blur(px, 4)
            return torch.cat([lr] + [bb.space.encode(4 * d) for d in (px - b1, b1 - b2, b2 - b4)], 1)
        return lap, 4
    if kind == "detail":
        return (lambda bb, lr: bb.space.encode(16 * (bb.space.decode(lr) - blur(bb.space.decode(lr), 4)))), 1
    if kind.startswith("hp"):
        rest, _, k = kind[2:].partition("s")
        sigma, _, gain = rest.partition("g")

        def hp(bb, lr):
            px = bb.space.decode(lr)
            return torch.cat([lr * float(k or 1), bb.space.encode(float(gain) * (px - blur(px, float(sigma))))], 1)
        return hp, 2
    raise SystemExit(f"unknown kind {kind!r}")


@contextmanager
def conditioned(kind: str, widen_to: int = 0):
    """Backbones feed `kind`'s condition on their LR channels (grown to its width), optionally widened."""
    from framer_nb.adapters import widen
    fn, mult = transform(kind)
    predict, grow = B.Backbone.predict, B.Backbone.grow_lr_channels

    def patched_predict(self, x_t, t, lr=None, context=None):
        return predict(self, x_t, t, None if lr is None else fn(self, lr), context)

    def patched_grow(self, extra=None):
        grow(self, self.space.channels() * mult if extra is None else extra)
        if widen_to:
            self.adapter.set_input_conv(self.model, widen(self.adapter.get_input_conv(self.model), widen_to))

    B.Backbone.predict, B.Backbone.grow_lr_channels = patched_predict, patched_grow
    try:
        yield
    finally:
        B.Backbone.predict, B.Backbone.grow_lr_channels = predict, grow


def probe(kind: str, backbone: str, steps: int, runs: Path) -> dict:
    torch.set_num_threads(1)
    kind, _, w = kind.partition("+w")
    over = dict(backbone=backbone, seed=0, sr_steps=steps, lr_detail=0.0)
    if kind.startswith("pos:"):  # another DiT position spacing, from scratch (no prior has that config)
        size = int(kind[4:])
        base = B.REGISTRY[backbone]
        backbone = over["backbone"] = f"{backbone}@sample{size}"
        B.REGISTRY[backbone] = dataclasses.replace(base, name=backbone, config={**base.config, "sample_size": size},
                                                   prior=None)
        over["prior"], kind = "none", "lr"
    cfg = with_overrides(profile("small").train, **over)
    folder = runs / f"{kind}{'+w' + w if w else ''}"
    t0 = time.time()
    with conditioned(kind, int(w or 0)):
        run = train_sr(cfg, "baseline", folder, progress=False)
        # a widened embedding is not in the saved config: rebuilt, with the run's weights
        bb = trained_widened(run, cfg) if w else load_trained(run, backbone)[0]
        gains = validation_gain(bb, 10)
    return {"kind": kind + (f"+w{w}" if w else ""), "backbone": backbone, "sr_steps": steps,
            "train_s": run.done_record()["wall_s"], **gains, "s": round(time.time() - t0),
            "git_commit": provenance()["git_commit"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("kind")
    ap.add_argument("backbone", nargs="?", default="tiny-dit")
    ap.add_argument("--steps", type=int, default=profile("small").train.sr_steps)
    ap.add_argument("--runs", default="build/lr-condition-runs")
    ap.add_argument("--out", default="benchmarks/results/lr_condition.json")
    args = ap.parse_args()
    row = probe(args.kind, args.backbone, args.steps, Path(args.runs))
    print(json.dumps(row))
    out = Path(args.out)
    old = json.loads(out.read_text())["results"] if out.exists() else []
    same = (row["kind"], row["backbone"], row["sr_steps"])
    rows = [r for r in old if (r["kind"], r["backbone"], r["sr_steps"]) != same] + [row]
    out.write_text(json.dumps(provenance(benchmark="lr_condition", split="val", profile="small", results=rows),
                              indent=2, default=str))


if __name__ == "__main__":
    main()
