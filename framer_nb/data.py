"""Images: a dead-leaves generator, photos shipped inside installed packages, and user folders.

Every image is a float tensor [3, H, W] in [0, 1]; batches are [B, 3, H, W].
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError
from torch import Tensor

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")

# Fixed split by image. Photos are downscaled by PHOTO_SCALE first, so small crops hold structure.
TRAIN_PHOTOS = ("astronaut", "camera", "coffee", "rocket", "hubble_deep_field", "immunohistochemistry", "brick",
                "grass", "moon", "coins", "clock", "page", "text", "retina", "china")
TEST_PHOTOS = ("chelsea", "flower", "grace_hopper", "gravel")
PHOTO_SCALE = 0.5


class ImageLoadError(ValueError):
    """An image file that cannot be read or used; the message names the file."""


# ---------------------------------------------------------------- dead leaves

def dead_leaves(n: int, size: int, generator: torch.Generator | None = None, r_min: float = 1.0,
                r_max: float | None = None, alpha: float = 3.0, disks: int | None = None,
                blur: float = 0.0) -> Tensor:
    """Dead-leaves images [n, 3, size, size]: occluding disks, radius density ~ r^-alpha on [r_min, r_max].

    alpha = 3 is the scale-invariant model whose power spectrum falls as 1/f^2.
    """
    r_max = r_max if r_max is not None else size / 2
    k = disks or int(40 * size * size / (np.pi * r_min * r_max)) + 64
    u = torch.rand(n, k, generator=generator)
    a = 1.0 - alpha  # inverse CDF of the truncated power law
    radius = (r_min ** a + u * (r_max ** a - r_min ** a)) ** (1.0 / a)
    centre = torch.rand(n, k, 2, generator=generator) * (size + 2 * radius[..., None]) - radius[..., None]
    colour = torch.rand(n, k, 3, generator=generator)
    out = torch.from_numpy(np.stack([_paint(size, centre[i].numpy(), radius[i].numpy(), colour[i].numpy())
                                     for i in range(n)]))
    return gaussian_blur(out, blur) if blur > 0 else out


def _paint(size: int, centre: np.ndarray, radius: np.ndarray, colour: np.ndarray) -> np.ndarray:
    """Paint disks back to front (disk 0 ends on top), each only inside its bounding box: [3, H, W]."""
    img = np.empty((size, size, 3), dtype=np.float32)
    img[:] = colour[-1]
    grid = np.arange(size, dtype=np.float32) + 0.5
    for (cy, cx), r, c in zip(centre[::-1], radius[::-1], colour[::-1]):
        y0, y1 = max(0, int(cy - r)), min(size, int(cy + r) + 1)
        x0, x1 = max(0, int(cx - r)), min(size, int(cx + r) + 1)
        if y0 >= y1 or x0 >= x1:
            continue
        inside = (grid[y0:y1, None] - cy) ** 2 + (grid[None, x0:x1] - cx) ** 2 <= r * r
        img[y0:y1, x0:x1][inside] = c
    return img.transpose(2, 0, 1)


def gaussian_blur(x: Tensor, sigma: float) -> Tensor:
    """Separable Gaussian blur with reflect padding."""
    r = max(1, int(3 * sigma + 0.5))
    t = torch.arange(-r, r + 1, dtype=x.dtype)
    k = torch.exp(-t ** 2 / (2 * sigma ** 2))
    k = k / k.sum()
    c = x.shape[1]
    x = F.conv2d(F.pad(x, (r, r, 0, 0), mode="reflect"), k.view(1, 1, 1, -1).repeat(c, 1, 1, 1), groups=c)
    return F.conv2d(F.pad(x, (0, 0, r, r), mode="reflect"), k.view(1, 1, -1, 1).repeat(c, 1, 1, 1), groups=c)


def radial_power_spectrum(images: Tensor) -> tuple[Tensor, Tensor]:
    """Radially averaged power spectrum of grey images: (frequency in cycles/pixel, mean power)."""
    g = images.mean(1) - images.mean((1, 2, 3))[:, None, None]
    power = torch.fft.fftshift(torch.fft.fft2(g).abs() ** 2, dim=(-2, -1)).mean(0)
    h, w = power.shape
    fy = torch.fft.fftshift(torch.fft.fftfreq(h))
    fx = torch.fft.fftshift(torch.fft.fftfreq(w))
    r = torch.sqrt(fy[:, None] ** 2 + fx[None, :] ** 2)
    bins = torch.round(r * h).long()
    counts = torch.bincount(bins.flatten())
    sums = torch.bincount(bins.flatten(), weights=power.flatten().double())
    keep = counts > 0
    freq = torch.arange(len(counts))[keep] / h
    return freq, (sums[keep] / counts[keep]).float()


# ---------------------------------------------------------------- photos shipped in packages

def _package_photo(name: str) -> np.ndarray:
    if name in ("china", "flower"):
        from sklearn.datasets import load_sample_image
        return load_sample_image(f"{name}.jpg")
    if name == "grace_hopper":
        from matplotlib import cbook
        with cbook.get_sample_data("grace_hopper.jpg") as f:
            return np.asarray(Image.open(f).convert("RGB"))
    import skimage.data
    return getattr(skimage.data, name)()


@cache
def photo(name: str, scale: float = PHOTO_SCALE) -> Tensor:
    """A photo shipped inside scikit-image, scikit-learn or matplotlib: [3, H, W] in [0, 1]."""
    arr = _package_photo(name)
    x = to_rgb_tensor(arr, source=f"package photo {name!r}")
    if scale != 1.0:
        x = F.interpolate(x[None], scale_factor=scale, mode="bicubic", antialias=True, align_corners=False)[0]
    return x.clamp(0, 1)


def photos(split: str) -> list[Tensor]:
    """All photos of the fixed 'train' or 'test' split."""
    names = {"train": TRAIN_PHOTOS, "test": TEST_PHOTOS}[split]
    return [photo(n) for n in names]


def to_rgb_tensor(arr: np.ndarray, source: str = "array") -> Tensor:
    """Grey, grey+alpha, RGB, RGBA, bool, 8- or 16-bit arrays -> [3, H, W] float in [0, 1]."""
    a = np.asarray(arr)
    if a.dtype == bool:
        a = a.astype(np.float32)
    elif np.issubdtype(a.dtype, np.integer):
        a = a.astype(np.float32) / (65535.0 if a.max(initial=0) > 255 else 255.0)
    else:
        a = a.astype(np.float32)
    if a.ndim == 2:
        a = a[..., None]
    if a.ndim != 3 or a.shape[-1] not in (1, 2, 3, 4):
        raise ImageLoadError(f"{source}: unsupported image shape {arr.shape}")
    if a.shape[-1] in (2, 4):  # composite the alpha channel over white
        alpha = a[..., -1:]
        a = a[..., :-1] * alpha + (1.0 - alpha)
    if a.shape[-1] == 1:
        a = np.repeat(a, 3, axis=-1)
    return torch.from_numpy(np.ascontiguousarray(a)).permute(2, 0, 1).clamp(0, 1)


# ---------------------------------------------------------------- files and folders

def load_image(path: str | Path) -> Tensor:
    """Read an image file as [3, H, W] in [0, 1]; palette, grey, RGBA and 16-bit are converted."""
    path = Path(path)
    try:
        with Image.open(path) as im:
            im.load()
            if im.mode == "P":
                im = im.convert("RGBA")
            elif im.mode in ("CMYK", "YCbCr", "LAB", "HSV"):
                im = im.convert("RGB")
            arr = np.asarray(im)
            if im.mode.startswith("I;16") or im.mode == "I":
                arr = arr.astype(np.float64) / 65535.0
    except FileNotFoundError as e:
        raise ImageLoadError(f"{path}: file not found") from e
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise ImageLoadError(f"{path}: not a readable image ({e})") from e
    return to_rgb_tensor(arr, source=str(path))


def list_images(folder: str | Path) -> list[Path]:
    """Image files in a folder, sorted by name; a clear error if the folder is missing or empty."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: not a folder")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise FileNotFoundError(f"{folder}: no images with suffix {', '.join(IMAGE_SUFFIXES)}")
    return files


def load_folder(folder: str | Path, skip_bad: bool = False) -> list[tuple[Path, Tensor]]:
    """Every image of a folder; unreadable ones raise, or with skip_bad warn (naming the file) and are left out."""
    out = []
    for p in list_images(folder):
        try:
            out.append((p, load_image(p)))
        except ImageLoadError as e:
            if not skip_bad:
                raise
            warnings.warn(f"skipped {e}", stacklevel=2)
    if not out:
        raise ImageLoadError(f"{folder}: no readable images")
    return out


def fit_to_crop(img: Tensor, crop: int, source: str = "image", small: str = "resize") -> Tensor:
    """Images smaller than the crop are upscaled (bicubic, short side = crop) with a warning, or rejected."""
    h, w = img.shape[-2:]
    if min(h, w) >= crop:
        return img
    if small == "error":
        raise ImageLoadError(f"{source}: {w}x{h} is smaller than the {crop}px crop")
    warnings.warn(f"{source}: {w}x{h} is smaller than the {crop}px crop; upscaled", stacklevel=2)
    s = crop / min(h, w)
    size = (max(crop, round(h * s)), max(crop, round(w * s)))
    return F.interpolate(img[None], size=size, mode="bicubic", align_corners=False)[0].clamp(0, 1)


def random_crops(images: list[Tensor], n: int, crop: int, generator: torch.Generator | None = None,
                 flip: bool = True) -> Tensor:
    """n random crops (with random horizontal flips) from a list of images: [n, 3, crop, crop]."""
    idx = torch.randint(0, len(images), (n,), generator=generator)
    out = []
    for i in idx.tolist():
        img = images[i]
        h, w = img.shape[-2:]
        y = int(torch.randint(0, h - crop + 1, (1,), generator=generator))
        x = int(torch.randint(0, w - crop + 1, (1,), generator=generator))
        c = img[:, y:y + crop, x:x + crop]
        if flip and bool(torch.rand(1, generator=generator) < 0.5):
            c = c.flip(-1)
        out.append(c)
    return torch.stack(out)


def hr_folder(folder: str | Path, crop: int, skip_bad: bool = False, small: str = "resize") -> list[Tensor]:
    """An HR training folder as a list of images ready for `random_crops`."""
    return [fit_to_crop(img, crop, str(p), small) for p, img in load_folder(folder, skip_bad)]


@dataclass
class Pair:
    name: str
    lr: Tensor
    hr: Tensor


def paired_folders(lr_dir: str | Path, hr_dir: str | Path, scale: int = 4) -> list[Pair]:
    """LR/HR test pairs (RealSR, DRealSR layout) matched by sorted file stem."""
    lr_files, hr_files = list_images(lr_dir), list_images(hr_dir)
    lr_by, hr_by = {_stem(p): p for p in lr_files}, {_stem(p): p for p in hr_files}
    for stem, p in sorted({**lr_by, **hr_by}.items()):
        if stem not in lr_by or stem not in hr_by:
            other = lr_dir if stem not in lr_by else hr_dir
            raise ImageLoadError(f"{p}: no file with stem {stem!r} in {other}")
    pairs = []
    for stem in sorted(lr_by):
        lr, hr = load_image(lr_by[stem]), load_image(hr_by[stem])
        if tuple(hr.shape[-2:]) != (lr.shape[-2] * scale, lr.shape[-1] * scale):
            raise ImageLoadError(f"{hr_by[stem]}: HR {tuple(hr.shape[-2:])} is not x{scale} of LR "
                                 f"{lr_by[stem]} {tuple(lr.shape[-2:])}")
        pairs.append(Pair(stem, lr, hr))
    return pairs


def _stem(p: Path) -> str:
    """File stem without common LR/HR tags (RealSR names pairs like x_LR4.png / x_HR.png)."""
    s = p.stem
    for tag in ("_LR4", "_LR3", "_LR2", "_HR", "_lr", "_hr", "x4", "_x4"):
        if s.endswith(tag):
            return s[: -len(tag)]
    return s


# ---------------------------------------------------------------- the embedded default

def test_images(n: int, size: int, seed: int = 1234) -> list[tuple[str, Tensor]]:
    """The fixed held-out test set: n crops of the test photos, cycling over them, at fixed positions."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for i in range(n):
        name = TEST_PHOTOS[i % len(TEST_PHOTOS)]
        img = photo(name)
        crop = random_crops([img], 1, size, g, flip=False)[0]
        out.append((f"{name}_{i // len(TEST_PHOTOS)}", crop))
    return out

