"""Degradation presets: `bicubic`, or a Real-ESRGAN second-order preset in YAML (data/degradations/*.yaml or a
path), checked key by key. Light on purpose (yaml and the standard library only): the command line validates a
preset before it imports torch.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path

import yaml

from .paths import DATA_ROOT

PRESET_DIR = DATA_ROOT / "degradations"


@dataclass(frozen=True)
class DegradeConfig:
    """Ranges of the two degradation stages (see data/degradations/*.yaml)."""

    scale: int
    kernel_sizes: tuple
    kernel_types: tuple
    kernel_probs: tuple
    sinc_prob: float
    blur_sigma: tuple
    betag_range: tuple
    betap_range: tuple
    resize_prob: tuple
    resize_range: tuple
    gaussian_noise_prob: float
    noise_range: tuple
    poisson_scale_range: tuple
    gray_noise_prob: float
    jpeg_range: tuple
    second_blur_prob: float
    kernel_sizes2: tuple
    sinc_prob2: float
    blur_sigma2: tuple
    betag_range2: tuple
    betap_range2: tuple
    resize_prob2: tuple
    resize_range2: tuple
    gaussian_noise_prob2: float
    noise_range2: tuple
    poisson_scale_range2: tuple
    gray_noise_prob2: float
    jpeg_range2: tuple
    final_sinc_prob: float


@dataclass(frozen=True)
class BicubicConfig:
    """Classic x`scale` degradation: antialiased bicubic downsampling and 8-bit quantisation."""

    scale: int = 4


def preset_path(name_or_path: str) -> Path | None:
    """The YAML file of a degradation preset (a name in data/degradations/ or a path); None for `bicubic`."""
    if name_or_path == "bicubic":
        return None
    path = Path(name_or_path)
    return PRESET_DIR / f"{name_or_path}.yaml" if not path.suffix else path


KERNEL_TYPES = ("iso", "aniso", "generalized_iso", "generalized_aniso", "plateau_iso", "plateau_aniso")
_PROBS = ("sinc_prob", "gaussian_noise_prob", "gray_noise_prob", "second_blur_prob", "sinc_prob2",
          "gaussian_noise_prob2", "gray_noise_prob2", "final_sinc_prob")
_RANGES = {  # field: (lowest allowed value, highest allowed value)
    "blur_sigma": (0.0, 50.0), "betag_range": (0.0, 50.0), "betap_range": (0.0, 50.0), "resize_range": (0.01, 8.0),
    "noise_range": (0.0, 255.0), "poisson_scale_range": (0.0, 50.0), "jpeg_range": (1, 100),
    "blur_sigma2": (0.0, 50.0), "betag_range2": (0.0, 50.0), "betap_range2": (0.0, 50.0),
    "resize_range2": (0.01, 8.0), "noise_range2": (0.0, 255.0), "poisson_scale_range2": (0.0, 50.0),
    "jpeg_range2": (1, 100)}


def _number(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _check_preset(raw: dict, path: Path) -> None:
    """Types and ranges of every field; the first problem raises naming the file, the key, the value and what
    is allowed."""
    def bad(key: str, allowed: str):
        raise ValueError(f"{path}: {key}={raw[key]!r} is not allowed; expected {allowed}")
    if not (isinstance(raw["scale"], int) and not isinstance(raw["scale"], bool) and 2 <= raw["scale"] <= 8):
        bad("scale", "an integer in 2..8")
    for key in _PROBS:
        if not (_number(raw[key]) and 0 <= raw[key] <= 1):
            bad(key, "a probability in [0, 1]")
    for key, (lo, hi) in _RANGES.items():
        v = raw[key]
        if not (isinstance(v, list) and len(v) == 2 and all(_number(x) for x in v) and lo <= v[0] <= v[1] <= hi):
            bad(key, f"[low, high] with {lo} <= low <= high <= {hi}")
    for key in ("kernel_sizes", "kernel_sizes2"):
        v = raw[key]
        if not (isinstance(v, list) and len(v) == 2 and all(isinstance(x, int) and x >= 3 and x % 2 for x in v)
                and v[0] <= v[1]):
            bad(key, "[low, high]: odd integers >= 3, low <= high")
    if not (isinstance(raw["kernel_types"], list) and set(raw["kernel_types"]) <= set(KERNEL_TYPES)
            and raw["kernel_types"]):
        bad("kernel_types", f"a list of {', '.join(KERNEL_TYPES)}")
    probs = raw["kernel_probs"]
    if not (isinstance(probs, list) and len(probs) == len(raw["kernel_types"]) and all(_number(p) and p >= 0
                                                                                        for p in probs)
            and sum(probs) > 0):
        bad("kernel_probs", "one weight >= 0 per kernel type, not all 0")
    for key in ("resize_prob", "resize_prob2"):
        v = raw[key]
        if not (isinstance(v, list) and len(v) == 3 and all(_number(p) and p >= 0 for p in v) and sum(v) > 0):
            bad(key, "three weights >= 0 (up, down, keep), not all 0")


def load_preset(name_or_path: str, scale: int | None = None) -> DegradeConfig | BicubicConfig:
    """`bicubic`, or a Real-ESRGAN preset by name (data/degradations/<name>.yaml) or path. Every problem (a missing
    or malformed file, unknown or missing keys, a value of the wrong type or out of range, a scale other than the
    task's `scale`) raises naming the file, and the key where there is one."""
    path = preset_path(name_or_path)
    if path is None:
        return BicubicConfig(**({} if scale is None else {"scale": scale}))
    if not path.is_file():
        known = ", ".join(["bicubic"] + sorted(p.stem for p in PRESET_DIR.glob("*.yaml")))
        raise FileNotFoundError(f"{path}: no such degradation preset (known: {known})")
    try:
        raw = yaml.safe_load(path.read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
        raise ValueError(f"{path}: not a readable YAML file ({str(e).splitlines()[0]})") from e
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: a degradation preset is a YAML mapping of keys to values")
    names = {f.name for f in fields(DegradeConfig)}
    if set(raw) != names:
        raise ValueError(f"{path}: unknown keys {sorted(set(raw) - names)}, missing keys {sorted(names - set(raw))}")
    _check_preset(raw, path)
    if scale is not None and raw["scale"] != scale:
        raise ValueError(f"{path}: scale={raw['scale']} but the task is x{scale}")
    return DegradeConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in raw.items()})
