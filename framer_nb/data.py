"""Images: natural photos shipped inside installed packages (fixed train/val/test split) and user folders.

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
from PIL import Image, ImageOps, UnidentifiedImageError
from torch import Tensor

from .errors import ImageLoadError
from .inputs import IMAGE_SUFFIXES

# Natural photos that ship inside installed packages: name -> (package, file or loader). Fixed split by image:
# no training crop comes from a validation or test photo. Grey photos are replicated to RGB.
PHOTOS: dict[str, tuple[str, str]] = {
    "astronaut": ("skimage", "astronaut.png"), "rocket": ("skimage", "rocket.jpg"), "china": ("sklearn", "china"),
    "motorcycle_left": ("skimage", "motorcycle_left.png"), "motorcycle_right": ("skimage", "motorcycle_right.png"),
    "street_night": ("pyiqa", "frame_7gzdcz9sif0ekg31.jpg"), "sunset": ("pyiqa", "frame_9ogwhvvy7gfj6jzh.jpg"),
    "camera": ("skimage", "camera.png"), "brick": ("skimage", "brick.png"), "grass": ("skimage", "grass.png"),
    "moon": ("skimage", "moon.png"), "coins": ("skimage", "coins.png"),
    "coffee": ("skimage", "coffee.png"), "garden": ("pyiqa", "SPAQ_10241.jpg"), "gravel": ("skimage", "gravel.png"),
    "hubble": ("skimage", "hubble_deep_field.jpg"),
    "chelsea": ("skimage", "chelsea.png"), "flower": ("sklearn", "flower"),
    "grace_hopper": ("matplotlib", "grace_hopper.jpg"), "snow_road": ("pyiqa", "frame_4wrwr48cdk6rbcjl.jpg"),
}
SPLITS: dict[str, tuple[str, ...]] = {
    "train": ("astronaut", "rocket", "china", "motorcycle_left", "motorcycle_right", "street_night", "sunset",
              "camera", "brick", "grass", "moon", "coins"),
    "val": ("coffee", "garden", "gravel", "hubble"),  # recipe choices are made here, never on test
    "test": ("chelsea", "flower", "grace_hopper", "snow_road"),
}
TRAIN_PHOTOS, VAL_PHOTOS, TEST_PHOTOS = SPLITS["train"], SPLITS["val"], SPLITS["test"]
PHOTO_SCALE = 0.5  # validation and test photos are downscaled by this first (antialiased), so crops hold structure


# ---------------------------------------------------------------- photos shipped in packages

def _package_file(package: str, name: str) -> Path:
    """The path of a photo inside an installed package (pyiqa ships four natural photos with its tests)."""
    import importlib.metadata as md
    if package == "skimage":
        import skimage
        return Path(skimage.__file__).parent / "data" / name
    if package == "matplotlib":
        import matplotlib
        return Path(matplotlib.get_data_path()) / "sample_data" / name
    if package == "pyiqa":
        return Path(md.distribution("pyiqa").locate_file(f"tests/test_efficiency_img_dir/{name}"))
    raise KeyError(package)


def _package_photo(name: str) -> np.ndarray:
    if name not in PHOTOS:
        raise KeyError(f"unknown package photo {name!r}; known: {', '.join(PHOTOS)}")
    package, ref = PHOTOS[name]
    if package == "sklearn":
        from sklearn.datasets import load_sample_image
        return load_sample_image(f"{ref}.jpg")
    path = _package_file(package, ref)
    if not path.exists():
        raise ImageLoadError(f"{path}: photo {name!r} is not where {package} installs it (package version changed?)")
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


@cache
def photo(name: str, scale: float = PHOTO_SCALE) -> Tensor:
    """A photo shipped inside an installed package: [3, H, W] in [0, 1], downscaled by `scale` (antialiased)."""
    x = to_rgb_tensor(_package_photo(name), source=f"package photo {name!r}")
    if scale != 1.0:
        x = F.interpolate(x[None], scale_factor=scale, mode="bicubic", antialias=True, align_corners=False)[0]
    return x.clamp(0, 1)


def photos(split: str, scale: float = PHOTO_SCALE) -> list[Tensor]:
    """All photos of the fixed 'train', 'val' or 'test' split."""
    if split not in SPLITS:
        raise KeyError(f"unknown split {split!r}; known: {', '.join(SPLITS)}")
    return [photo(n, scale) for n in SPLITS[split]]


def fingerprint(images: list[Tensor], source: str) -> str:
    """A content fingerprint of a list of images (16 hex digits of a SHA-256 over their bytes and shapes)."""
    import hashlib
    h = hashlib.sha256(source.encode())
    for img in images:
        h.update(str(tuple(img.shape)).encode())
        h.update(img.contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


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
    """Read an image file as [3, H, W] in [0, 1]; palette, grey, RGBA and 16-bit are converted.

    32-bit integer images are taken as 16-bit if their values fit, else refused; floating-point images must
    hold values in [0, 1]. Nothing is clipped silently; every refusal names the file."""
    path = Path(path)
    try:
        with Image.open(path) as im:
            im.load()
            im = ImageOps.exif_transpose(im)  # as a viewer shows it: the camera's orientation tag applied
            if im.mode == "P":
                im = im.convert("RGBA")
            elif im.mode in ("CMYK", "YCbCr", "LAB", "HSV"):
                im = im.convert("RGB")
            arr = _scaled(np.asarray(im), im.mode, path)
    except FileNotFoundError as e:
        raise ImageLoadError(f"{path}: file not found") from e
    except Image.DecompressionBombError as e:
        raise ImageLoadError(f"{path}: refused as a possible decompression bomb ({e})") from e
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise ImageLoadError(f"{path}: not a readable image ({e})") from e
    return to_rgb_tensor(arr, source=str(path))


def _scaled(arr: np.ndarray, mode: str, path: Path) -> np.ndarray:
    """16- and 32-bit integer and float pixel values -> [0, 1], or a clear refusal."""
    if mode.startswith("I;16"):
        return arr.astype(np.float64) / 65535.0
    if mode == "I":
        lo, hi = int(arr.min(initial=0)), int(arr.max(initial=0))
        if lo < 0 or hi > 65535:
            raise ImageLoadError(f"{path}: 32-bit integer pixels in [{lo}, {hi}] do not fit 16 bits; "
                                 "convert the image to 8- or 16-bit")
        return arr.astype(np.float64) / 65535.0
    if mode == "F":
        lo, hi = float(np.nanmin(arr)), float(np.nanmax(arr))
        if not (np.isfinite(arr).all() and 0.0 <= lo and hi <= 1.0):
            raise ImageLoadError(f"{path}: floating-point pixels in [{lo:g}, {hi:g}]; expected values in [0, 1]")
        return arr.astype(np.float64)
    return arr


def list_images(folder: str | Path) -> list[Path]:
    """Image files in a folder, sorted by name; a clear error if the folder is missing or empty."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: not a folder")
    # regular files only: a FIFO, socket or device named like an image would block or fail the read
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise FileNotFoundError(f"{folder}: no images with suffix {', '.join(IMAGE_SUFFIXES)}")
    stems: dict[str, Path] = {}
    for p in files:
        if p.stem in stems:
            raise ImageLoadError(f"{stems[p.stem]} and {p.name}: two images with the stem {p.stem!r} in {folder}; "
                                 "images are matched and named by stem, so rename or remove one")
        stems[p.stem] = p
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
    return Pyramid(images, (1.0,)).crops(n, crop, generator, flip=flip)[0]


class Pyramid:
    """Images at several scales (antialiased bicubic, made once on first use), for random multi-scale crops.

    A crop at scale s is a crop of the image downscaled by s: one photo yields views at many scales, and
    drawing a batch is only indexing."""

    def __init__(self, images: list[Tensor], levels: tuple[float, ...]):
        self.images, self.levels = images, tuple(sorted(levels))
        self._scaled: dict[tuple[int, float], Tensor] = {}

    @classmethod
    def between(cls, images: list[Tensor], low: float, high: float, step: float = 0.05) -> Pyramid:
        levels = np.round(np.arange(low, high + 1e-9, step), 4) if high > low else np.array([low])
        return cls(images, tuple(float(x) for x in levels))

    def scaled(self, i: int, s: float) -> Tensor:
        if (i, s) not in self._scaled:
            img = self.images[i]
            self._scaled[(i, s)] = img if s == 1.0 else F.interpolate(
                img[None], scale_factor=s, mode="bicubic", antialias=True, align_corners=False)[0].clamp(0, 1)
        return self._scaled[(i, s)]

    def crops(self, n: int, crop: int, generator: torch.Generator | None = None, flip: bool = True,
              rotate: bool = False) -> tuple[Tensor, list[int]]:
        """n crops [n, 3, crop, crop] (random image, scale level, position, flip, rotation) and their image index."""
        idx = torch.randint(0, len(self.images), (n,), generator=generator).tolist()
        lv = torch.randint(0, len(self.levels), (n,), generator=generator).tolist()
        out = []
        for i, k in zip(idx, lv):
            h, w = self.images[i].shape[-2:]
            fits = [s for s in self.levels if round(min(h, w) * s) >= crop] or [1.0]  # too small to downscale
            s = min(fits, key=lambda x: abs(x - self.levels[k]))
            img = self.scaled(i, s)
            if min(img.shape[-2:]) < crop:
                raise ImageLoadError(f"image {i} ({w}x{h}) is smaller than the {crop}px crop")
            y = int(torch.randint(0, img.shape[-2] - crop + 1, (1,), generator=generator))
            x = int(torch.randint(0, img.shape[-1] - crop + 1, (1,), generator=generator))
            c = img[:, y:y + crop, x:x + crop]
            if flip and bool(torch.rand(1, generator=generator) < 0.5):
                c = c.flip(-1)
            if rotate:
                c = torch.rot90(c, int(torch.randint(0, 4, (1,), generator=generator)), dims=(-2, -1))
            out.append(c)
        return torch.stack(out), idx


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
    lr_by, hr_by = _by_stem(list_images(lr_dir)), _by_stem(list_images(hr_dir))
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


def _by_stem(files: list[Path]) -> dict[str, Path]:
    out: dict[str, Path] = {}
    for p in files:
        if _stem(p) in out:
            raise ImageLoadError(f"{out[_stem(p)]} and {p.name}: both pair as {_stem(p)!r}; rename or remove one")
        out[_stem(p)] = p
    return out


def _stem(p: Path) -> str:
    """File stem without common LR/HR tags (RealSR names pairs like x_LR4.png / x_HR.png)."""
    s = p.stem
    for tag in ("_LR4", "_LR3", "_LR2", "_HR", "_lr", "_hr", "x4", "_x4"):
        if s.endswith(tag):
            return s[: -len(tag)]
    return s


# ---------------------------------------------------------------- the embedded default

def test_images(n: int, size: int, seed: int = 1234, split: str = "test") -> list[tuple[str, Tensor]]:
    """A fixed held-out set: n crops of the split's photos, cycling over them, at fixed positions."""
    g = torch.Generator().manual_seed(seed)
    names = SPLITS[split]
    out = []
    for i in range(n):
        name = names[i % len(names)]
        crop = random_crops([photo(name)], 1, size, g, flip=False)[0]
        out.append((f"{name}_{i // len(names)}", crop))
    return out
