"""Provenance for every results file and figure: git commit, profile, seed, versions, time."""

from __future__ import annotations

import datetime as dt
import importlib.metadata as md
import json
import platform
import subprocess
from pathlib import Path

PACKAGES = ("torch", "torchvision", "diffusers", "accelerate", "pyiqa", "numpy", "framer_nb")
# generated outputs (of the README and docs/results.md: their generated sections)
OUTPUTS = ("figures", "benchmarks/results", "research/results", "README.md", "docs/results.md")


def git_commit(root: str | Path | None = None) -> str:
    """Current commit (with '+dirty' if tracked files outside OUTPUTS have changes), or 'unknown' outside git."""
    root = root or Path(__file__).resolve().parents[1]
    try:
        sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True,
                             check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".",
                                *(f":(exclude){o}" for o in OUTPUTS)], cwd=root, capture_output=True,
                               text=True).stdout.strip()
        return sha + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def versions() -> dict[str, str]:
    """Installed versions of the packages that shape results."""
    out = {}
    for name in PACKAGES:
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            out[name] = "absent"
    return out


def provenance(**fields) -> dict:
    """A provenance record: caller's fields plus commit, versions, machine and UTC time."""
    return {**fields, "git_commit": git_commit(), "versions": versions(), "python": platform.python_version(),
            "machine": f"{platform.system()} {platform.machine()}",
            "created_utc": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}


def write_sidecar(path: str | Path, **fields) -> Path:
    """Write `<path>.provenance.json` beside a results file or figure."""
    side = Path(str(path) + ".provenance.json")
    side.write_text(json.dumps(provenance(**fields), indent=2, sort_keys=True))
    return side
