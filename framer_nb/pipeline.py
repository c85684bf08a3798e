"""Orchestration of a profile: which runs exist, training them all, evaluating them all, collecting results."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from . import evaluate as E
from . import train as T
from .config import Profile, TrainConfig, with_overrides


@dataclass(frozen=True)
class RunSpec:
    """One SR run of a profile."""

    backbone: str
    variant: str
    seed: int
    train: TrainConfig

    @property
    def label(self) -> dict:
        return {"backbone": self.backbone, "variant": self.variant, "seed": self.seed}


def run_specs(p: Profile) -> list[RunSpec]:
    """Main variants on every backbone and seed; ablations on the first backbone, on `ablation_seeds`."""
    specs = []
    for b in p.backbones:
        for v in p.main_variants:
            specs += [RunSpec(b, v, s, with_overrides(p.train, backbone=b, seed=s)) for s in p.seeds]
    for v in p.ablations:
        if v not in p.main_variants:
            specs += [RunSpec(p.backbones[0], v, s, with_overrides(p.train, backbone=p.backbones[0], seed=s))
                      for s in p.ablation_seeds]
    return specs


def train_all(p: Profile, runs: str | Path, progress: bool = True) -> list[Path]:
    """Train (or skip, when done) every run of the profile; resumable."""
    return [T.train_sr(s.train, s.variant, runs, progress=progress) for s in run_specs(p)]


def test_set(p: Profile) -> dict:
    """The profile's fixed held-out test set."""
    return E.make_test_set(p.n_test, p.test_size, p.train.degradation, p.train.scale)


def eval_dir(results: str | Path, s: RunSpec, name: str = "eval") -> Path:
    """Where one run's scores live: named like its run folder (seed and config key), so the scores of a run
    trained with another config are never taken for this one's."""
    return Path(results) / name / s.backbone / s.variant / T.sr_dir(s.train, s.variant, Path(".")).name


def find_spec(p: Profile, backbone: str, variant: str, seed: int) -> RunSpec:
    """The profile's run of (backbone, variant, seed)."""
    for s in run_specs(p):
        if (s.backbone, s.variant, s.seed) == (backbone, variant, seed):
            return s
    raise KeyError(f"profile {p.name} has no run {backbone}/{variant}/seed{seed}")


def evaluate_all(p: Profile, runs: str | Path, results: str | Path, protocol: str = "framer",
                 progress: bool = True, steps: int | None = None, name: str = "eval",
                 variants: tuple[str, ...] | None = None) -> pd.DataFrame:
    """Evaluate every finished run (skipping those already scored) plus bicubic; their per-image rows.

    `steps` sampler steps (default: the profile's) into results/<name>; `variants` restricts the runs. With
    steps=1 the output is the model's one-step estimate of E[x0 | LR], its PSNR-optimal answer.
    """
    from tqdm.auto import tqdm
    test = test_set(p)
    steps = steps or p.train.sample_steps
    E.evaluate_bicubic(test, Path(results) / name / "bicubic", protocol)  # cheap: always from the current test set
    specs = [s for s in run_specs(p) if variants is None or s.variant in variants]
    for s in tqdm(specs, desc=f"evaluate ({steps} steps)", disable=not progress):
        out = eval_dir(results, s, name)
        if (out / "summary.json").exists():
            continue
        bb, _ = T.load_trained(T.sr_dir(s.train, s.variant, runs), s.backbone)
        E.evaluate_run(bb, test, out, s.label, steps, seed=s.seed, tile=p.train.image_size, protocol=protocol)
    return collect(results, name, specs)


def collect(results: str | Path, name: str = "eval", specs: list[RunSpec] | None = None) -> pd.DataFrame:
    """Per-image rows under results/<name>: of `specs` (and bicubic) if given, else of every run there.
    Bicubic rows get backbone and variant 'bicubic'."""
    root = Path(results) / name
    if specs is None:
        files = sorted(root.glob("**/per_image.csv"))
    else:
        files = [f for f in [root / "bicubic" / "per_image.csv", *(eval_dir(results, s, name) / "per_image.csv"
                                                                    for s in specs)] if f.exists()]
    frames = []
    for f in files:
        df = pd.read_csv(f)
        if "method" in df.columns:
            df = df.drop(columns="method").assign(backbone="bicubic", variant="bicubic", seed=0)
        frames.append(df)
    if not frames:
        raise FileNotFoundError(f"{root}: no evaluation results (run evaluate_all first)")
    return pd.concat(frames, ignore_index=True)
