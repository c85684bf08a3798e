"""Checks of what a user points the command line at, before anything heavy is imported: pipeline folders, image
folders, captions files and run folders. Each returns nothing, or raises ValueError / FileNotFoundError with one
line that names the path, what is wrong and what is allowed."""

from __future__ import annotations

import json
from pathlib import Path

from .runs import Run

WEIGHT_SUFFIXES = (".safetensors", ".bin")


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


def _json(path: Path, what: str):
    try:
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"{path}: {what} is not readable JSON ({e})") from e


def pipeline_folder(path: str | Path, flag: str = "--pretrained") -> None:
    """A diffusers pipeline folder (model_index.json, a transformer or unet subfolder) or a bare model folder:
    its configs parse and its model has weights."""
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"{flag} {path}: no such folder")
    if (path / "model_index.json").exists():
        index = _json(path / "model_index.json", "model_index.json")
        if not isinstance(index, dict):
            raise ValueError(f"{path / 'model_index.json'}: not a JSON object")
        parts = [p for p in ("transformer", "unet") if p in index]
        if not parts:
            raise ValueError(f"{path / 'model_index.json'}: lists neither a transformer nor a unet; not an SD3 or "
                             "SD2 pipeline")
        model = path / parts[0]
    else:
        model = path
    if not (model / "config.json").is_file():
        raise FileNotFoundError(f"{model}: no config.json; {flag} must be a diffusers pipeline or model folder")
    _json(model / "config.json", "config.json")
    if not any(p.suffix in WEIGHT_SUFFIXES for p in model.iterdir() if p.is_file()):
        raise FileNotFoundError(f"{model}: no weights ({' or '.join(WEIGHT_SUFFIXES)} files); the download or copy "
                                "is incomplete")


def folder(path: str | Path, flag: str, images: bool = False) -> None:
    """A folder that exists and is a folder (with `images`: holding at least one regular image file)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{flag} {path}: no such folder")
    if not path.is_dir():
        raise NotADirectoryError(f"{flag} {path}: not a folder")
    if images and not any(p.suffix.lower() in IMAGE_SUFFIXES and p.is_file() for p in path.iterdir()):
        raise FileNotFoundError(f"{flag} {path}: no regular image files ({', '.join(IMAGE_SUFFIXES)})")


def captions(path: str | Path) -> None:
    """A JSON object {image stem: caption text}."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"--captions {path}: no such file")
    table = _json(path, "the captions file")
    if not isinstance(table, dict) or not all(isinstance(v, str) for v in table.values()):
        raise ValueError(f"{path}: captions must be a JSON object {{image stem: text}}")


def runs_folder(path: str | Path) -> None:
    """Where runs are written: a folder, or nothing yet (created on first use)."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise NotADirectoryError(f"--runs {path}: a file, not a folder")


def run_folder(path: str | Path) -> None:
    """An SR run folder written by `train`: it has its run record."""
    run = Run(Path(path))
    if not run.path.is_dir():
        raise FileNotFoundError(f"--run {run.path}: no such folder")
    if not run.info_file.is_file():
        raise FileNotFoundError(f"--run {run.path}: not a run folder (no {run.info_file.name}); pass a folder that "
                                "`train` made")
    record = _json(run.info_file, run.info_file.name)
    if not isinstance(record, dict) or not isinstance(record.get("config"), dict):
        raise ValueError(f"{run.info_file}: holds no training config")
