"""Super-resolve a test set with a trained model, score it, and write per-image and per-set files.

Sampling starts from pure noise with the backbone's own sampler (Euler or DDIM) and never touches FRAMER
code. The model works in tiles of its training crop (in model space) that overlap and are averaged at every
step, as the authors do for SD3.5 latents; images of different sizes are processed in groups of one size.
Scores live in the run's folder, keyed by the test set's content fingerprint and the sampler step count.

The built-in held-out set is `make_test_set`: a few crops of the test photos, each sampled in tiles.
`grid_test_set` cuts every photo into non-overlapping crops instead, all of its area (research/eval_design.py: at
the training size, sampled whole, the tiny DiT falls below bicubic, so the tables do not use it).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch
from PIL import Image
from torch import Tensor

from . import diffusion as D
from .backbones import Backbone
from .data import SPLITS, fingerprint, paired_folders, photo, test_images
from .degrade import bicubic_up, degrade, load_preset
from .metrics import evaluate_images, psnr
from .provenance import provenance, write_sidecar
from .runs import Evaluation


@dataclass
class TestSet:
    """Paired HR and LR images (lists: sizes may differ), with a key that changes when any pixel does."""

    names: list[str]
    hr: list[Tensor]  # [3, H, W] in [0, 1]
    lr: list[Tensor]  # [3, H / scale, W / scale]
    scale: int
    description: str

    @property
    def key(self) -> str:
        return "test-" + fingerprint(self.hr + self.lr, f"{self.description}|{self.names}")[:12]

    def lr_up(self) -> list[Tensor]:
        return [bicubic_up(x[None], self.scale)[0] for x in self.lr]


def make_test_set(n: int, size: int, degradation: str, scale: int = 4, seed: int = 1234,
                  split: str = "test") -> TestSet:
    """The fixed held-out set: crops of the split's photos, one seeded degradation per image."""
    items = test_images(n, size, seed, split)
    preset = load_preset(degradation)
    lr = [degrade(img[None], preset, torch.Generator().manual_seed(seed + i))[0] for i, (_, img) in enumerate(items)]
    return TestSet([name for name, _ in items], [img for _, img in items], lr, scale,
                   f"builtin:{split} n={n} size={size} degradation={degradation} x{scale} seed={seed}")


def grid_test_set(size: int, degradation: str, scale: int = 4, seed: int = 1234, split: str = "test") -> TestSet:
    """Every photo of the split cut into non-overlapping `size`-px crops (row by row from the top left; a margin
    under `size` is left out), one seeded degradation per crop. Crop k of a photo is named `<photo>_<k>`."""
    preset = load_preset(degradation)
    names, hr = [], []
    for name in SPLITS[split]:
        img = photo(name)
        H, W = img.shape[-2:]
        boxes = [(y, x) for y in range(0, H - size + 1, size) for x in range(0, W - size + 1, size)]
        if not boxes:
            raise ValueError(f"grid_test_set: photo {name!r} ({H}x{W}) is smaller than the {size}-px grid")
        for k, (y, x) in enumerate(boxes):
            names.append(f"{name}_{k}")
            hr.append(img[:, y:y + size, x:x + size].contiguous())
    lr = [degrade(h[None], preset, torch.Generator().manual_seed(seed + i))[0] for i, h in enumerate(hr)]
    return TestSet(names, hr, lr, scale, f"builtin:{split} grid size={size} degradation={degradation} x{scale} "
                                         f"seed={seed}")


def folder_test_set(lr_folder: str | Path, hr_folder: str | Path, scale: int = 4) -> TestSet:
    """A paired LR/HR test set from folders (RealSR, DRealSR layout), matched by file stem."""
    pairs = paired_folders(lr_folder, hr_folder, scale)
    return TestSet([p.name for p in pairs], [p.hr for p in pairs], [p.lr for p in pairs], scale,
                   f"folders:{Path(lr_folder).resolve()}|{Path(hr_folder).resolve()}")


# The tiled sampler's rule, part of every evaluation folder's name: scores from another rule are not reused.
TILING = "stride-third-odd"
# Common random numbers: every run, whatever its variant or training seed, samples a test crop from the same
# starting noise, drawn from (SAMPLER_SEED, the crop's index in its test set). Paired differences then cancel the
# sampler's noise instead of adding it. Also part of the evaluation folder's name.
NOISE = "noise-per-crop"
SAMPLER_SEED = 0


def tile_stride(tile: int) -> int:
    """The tiled sampler's stride in model positions for a tile of `tile` positions: about a third of the tile,
    rounded to an odd number. Each pixel is then averaged over about nine tiles, and neighbouring tiles put an SD3
    patch grid (2 x 2 positions) on different pixels. Chosen on the validation photos against half a tile
    (research/tile_overlap.py): the tiny DiT's one-step gain over bicubic rises by about 0.08 dB, the U-Net's
    moves by at most 0.02 dB."""
    stride = max(1, round(tile / 3))
    return stride if stride % 2 or stride == 1 else stride - 1


def tile_stride_px(tile: int, down: int) -> int:
    """`tile_stride` in pixels, for a tile of `tile` pixels in a model space `down` times smaller."""
    return down * tile_stride(tile // down)


def eval_key(test: TestSet, protocol: str) -> str:
    """The name part of a run's evaluation folder: the test set's content key, the metric protocol, the tiling."""
    return f"{test.key}-{protocol}-{TILING}-{NOISE}"


def tile_starts(size: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of overlapping tiles that cover [0, size)."""
    if size <= tile:
        return [0]
    stride = tile - overlap
    starts = list(range(0, size - tile, stride))
    return starts + [size - tile]


def tiled(fn, tile: int, overlap: int):
    """Wrap a (x_t, t, lr) -> prediction function to run on overlapping tiles, averaged where they overlap."""
    def run(x: Tensor, t: Tensor, lr: Tensor | None) -> Tensor:
        H, W = x.shape[-2:]
        ys, xs = tile_starts(H, tile, overlap), tile_starts(W, tile, overlap)
        if len(ys) == len(xs) == 1:
            return fn(x, t, lr)
        boxes = [(y, x0) for y in ys for x0 in xs]

        def crop(a: Tensor) -> Tensor:
            return torch.cat([a[..., y:y + tile, x0:x0 + tile] for y, x0 in boxes])

        pred = fn(crop(x), t.repeat(len(boxes)), crop(lr) if lr is not None else None)
        out, weight = torch.zeros_like(x), torch.zeros_like(x[:, :1])
        for k, (y, x0) in enumerate(boxes):
            out[..., y:y + tile, x0:x0 + tile] += pred[k * x.shape[0]:(k + 1) * x.shape[0]]
            weight[..., y:y + tile, x0:x0 + tile] += 1
        return out / weight
    return run


def crop_noise(shape: tuple[int, ...], seed: int, key: int) -> Tensor:
    """The sampler's starting noise of one image: a function of (seed, key) alone, not of its batch."""
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed * 100_003 + key))


@torch.no_grad()
def super_resolve(bb: Backbone, lr_up: Tensor, steps: int, seed: int, tile: int, overlap: int | None = None,
                  batch: int = 8, keys: list[int] | None = None) -> Tensor:
    """SR images in [0, 1] from upsampled LR [N, 3, H, W] in [0, 1] (one size), seeded, in batches.

    Image j starts from `crop_noise(.., seed, keys[j])` (keys: 0..N-1 by default), so its sample does not depend on
    the batch it is in. `tile` and `overlap` are in pixels: the training crop, and by default a stride of
    `tile_stride` positions."""
    bb.model.eval()
    down = bb.space.downscale
    overlap = tile - tile_stride_px(tile, down) if overlap is None else overlap
    fn = tiled(lambda x, t, lr: bb.predict(x, t, lr), tile // down, overlap // down)
    device = next(bb.model.parameters()).device
    clip = None if bb.space.latent else 2.0 * bb.residual_scale if bb.residual else 1.0
    keys = list(range(lr_up.shape[0])) if keys is None else keys
    outs = []
    for i in range(0, lr_up.shape[0], batch):
        cond = bb.to_model(lr_up[i:i + batch].to(device) * 2 - 1)
        shape = (bb.out_channels, *cond.shape[-2:])
        noise = torch.stack([crop_noise(shape, seed, k) for k in keys[i:i + batch]])
        x = D.sample(bb.objective, lambda x, t, c=cond: fn(x, t, c), (cond.shape[0], *shape), steps,
                     device=device, clip=clip, noise=noise)
        outs.append((bb.to_pixels(bb.sr_image(x, cond)) + 1).div(2).clamp(0, 1).cpu())
    return torch.cat(outs)


def super_resolve_set(bb: Backbone, test: TestSet, steps: int, seed: int, tile: int) -> list[Tensor]:
    """SR of every image of a test set, grouping images of equal size into batches."""
    ups = test.lr_up()
    out: list[Tensor | None] = [None] * len(ups)
    for size in sorted({tuple(u.shape) for u in ups}):
        idx = [i for i, u in enumerate(ups) if tuple(u.shape) == size]
        sr = super_resolve(bb, torch.stack([ups[i] for i in idx]), steps, seed, tile, keys=idx)
        for i, s in zip(idx, sr):
            out[i] = s
    return out


def score_table(names: list[str], sr: list[Tensor], hr: list[Tensor], protocol: str) -> tuple[pd.DataFrame, dict]:
    """Per-image scores as a DataFrame (n/a columns empty) and the reasons for n/a metrics."""
    rows, reasons = [], {}
    for name, s, h in zip(names, sr, hr):
        values, why = evaluate_images(s[None], h[None], protocol)
        reasons.update(why)
        rows.append({"image": name, **{k: (float(v[0]) if v is not None else float("nan")) for k, v in values.items()}})
    return pd.DataFrame(rows), reasons


def save_crops(out: Evaluation, names: list[str], images: dict[str, list[Tensor]], limit: int = 4) -> None:
    """PNG of each method's output for the first few test images (qualitative figures)."""
    out.crops.mkdir(parents=True, exist_ok=True)
    for method, batch in images.items():
        for name, img in list(zip(names, batch))[:limit]:
            arr = (img.clamp(0, 1).permute(1, 2, 0).numpy() * 255).round().astype("uint8")
            Image.fromarray(arr).save(out.crop(name, method))


def evaluate_run(bb: Backbone, test: TestSet, out: Evaluation, label: dict, steps: int, seed: int, tile: int,
                 protocol: str = "offline") -> pd.DataFrame:
    """Super-resolve and score the test set; write per_image.csv, summary.json and crops with provenance."""
    out.path.mkdir(parents=True, exist_ok=True)
    sr = super_resolve_set(bb, test, steps, seed, tile)
    df, reasons = score_table(test.names, sr, test.hr, protocol)
    for k, v in reversed(label.items()):
        df.insert(0, k, v)
    df.to_csv(out.per_image, index=False)
    info = dict(label=label, protocol=protocol, steps=steps, sampler_seed=seed, noise=NOISE, tile=tile, tiling=TILING,
                tile_stride_px=tile_stride_px(tile, bb.space.downscale), na_reasons=reasons,
                test_set=test.description, test_key=test.key)
    write_sidecar(out.per_image, **info)
    save_crops(out, test.names, {"sr": sr})
    torch.save(sr, out.sr_file)
    summary = provenance(**info, mean=df.select_dtypes("number").mean().to_dict())
    out.summary_file.write_text(json.dumps(summary, indent=2, default=str))  # written last: the scores exist
    return df


def evaluate_bicubic(test: TestSet, out: Evaluation, protocol: str = "offline") -> pd.DataFrame:
    """The bicubic-upsampling reference row, written like a model's results (with the HR crops beside it)."""
    out.path.mkdir(parents=True, exist_ok=True)
    ups = test.lr_up()
    df, reasons = score_table(test.names, ups, test.hr, protocol)
    df.insert(0, "method", "bicubic")
    df.to_csv(out.per_image, index=False)
    write_sidecar(out.per_image, label={"method": "bicubic"}, protocol=protocol, na_reasons=reasons,
                  test_set=test.description, test_key=test.key)
    save_crops(out, test.names, {"lr_up": ups, "hr": test.hr})
    return df


def validation_gain(bb: Backbone, steps: int = 10, n: int = 8, size: int = 128, degradation: str = "bicubic") -> dict:
    """PSNR of the one-step and `steps`-step SR of held-out *validation* crops, and their gain over bicubic.

    What recipe choices are made on (the test photos are never used for them)."""
    test = make_test_set(n, size, degradation, split="val")
    hr = torch.stack(test.hr)
    bicubic = float(psnr(torch.stack(test.lr_up()), hr).mean())
    out = {"bicubic_psnr": round(bicubic, 3), "tiling": TILING}
    for k in sorted({1, steps}):
        sr = torch.stack(super_resolve_set(bb, test, steps=k, seed=0, tile=64))
        out[f"psnr_{k}step"] = round(float(psnr(sr, hr).mean()), 3)
        out[f"gain_{k}step"] = round(out[f"psnr_{k}step"] - bicubic, 3)
    return out
