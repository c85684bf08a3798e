"""Orchestration of a profile: which runs exist, training them all, evaluating them all, collecting results."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from . import evaluate as E
from . import train as T
from .config import ALIASES, Profile, TrainConfig, with_overrides
from .runs import Run


@dataclass(frozen=True)
class RunSpec:
    """One SR run of a profile."""

    backbone: str
    variant: str
    seed: int
    train: TrainConfig

    @property
    def task(self) -> str:
        return self.train.degradation

    @property
    def label(self) -> dict:
        return {"task": self.task, "backbone": self.backbone, "variant": self.variant, "seed": self.seed}


def run_specs(p: Profile) -> list[RunSpec]:
    """Main variants on every backbone and seed; ablations on the first backbone on the same seeds; the main
    variants on the second task (first backbone). Aliases (variants identical by construction) are not listed."""
    specs = []

    def add(backbone: str, v: str, **over):
        specs.extend(RunSpec(backbone, v, s, with_overrides(p.train, backbone=backbone, seed=s, **over))
                     for s in p.seeds)
    for b in p.backbones:
        for v in p.main_variants:
            add(b, v)
    for v in p.ablations:
        if v not in p.main_variants and v not in ALIASES:
            add(p.backbones[0], v)
    if p.second_task:
        for v in p.main_variants:
            add(p.backbones[0], v, degradation=p.second_task)
    return specs


def run_of(s: RunSpec, runs: str | Path) -> Run:
    """The run folder of a spec (aliases resolve to the variant they are identical to)."""
    return T.sr_run(s.train, ALIASES.get(s.variant, s.variant), runs)


def train_all(p: Profile, runs: str | Path, progress: bool = True) -> list[Run]:
    """Train (or skip, when done) every run of the profile; resumable."""
    return [T.train_sr(s.train, s.variant, runs, progress=progress) for s in run_specs(p)]


def tasks(p: Profile) -> list[str]:
    return [p.train.degradation] + ([p.second_task] if p.second_task else [])


def test_set(p: Profile, task: str | None = None) -> E.TestSet:
    """The profile's fixed held-out test set for one task (degradation)."""
    return E.make_test_set(p.n_test, p.test_size, task or p.train.degradation, p.train.scale)


def find_spec(p: Profile, backbone: str, variant: str, seed: int, task: str | None = None) -> RunSpec:
    """The profile's run of (backbone, variant, seed) on a task (default: the main one)."""
    task = task or p.train.degradation
    for s in run_specs(p) + _alias_specs(p):
        if (s.backbone, s.variant, s.seed, s.task) == (backbone, variant, seed, task):
            return s
    raise KeyError(f"profile {p.name} has no run {backbone}/{variant}/seed{seed} on task {task}")


def _alias_specs(p: Profile) -> list[RunSpec]:
    return [RunSpec(p.backbones[0], a, s, with_overrides(p.train, backbone=p.backbones[0], seed=s))
            for a in ALIASES if a in p.ablations for s in p.seeds]


def evaluate_all(p: Profile, runs: str | Path, results: str | Path, protocol: str = "offline",
                 progress: bool = True, steps: int | None = None,
                 variants: tuple[str, ...] | None = None) -> pd.DataFrame:
    """Evaluate every finished run (skipping those already scored) plus bicubic, per task; their per-image rows.

    `steps` sampler steps (default: the profile's); `variants` restricts the runs. With steps=1 the output is
    the model's one-step estimate of E[x0 | LR], its PSNR-optimal answer."""
    from tqdm.auto import tqdm
    steps = steps or p.train.sample_steps
    specs = [s for s in run_specs(p) if variants is None or s.variant in variants]
    frames = []
    for task in tasks(p):
        test = test_set(p, task)
        frames.append(_bicubic_rows(test, results, protocol, task))
        for s in tqdm([s for s in specs if s.task == task], desc=f"evaluate {task} ({steps} steps)",
                      disable=not progress):
            frames.append(score_run(s, runs, test, steps, protocol))
    df = pd.concat(frames, ignore_index=True)
    return _with_aliases(p, df)


def score_run(s: RunSpec, runs: str | Path, test: E.TestSet, steps: int, protocol: str) -> pd.DataFrame:
    """One run's per-image scores on a test set, computed once and cached in the run folder."""
    run = run_of(s, runs)
    out = run.eval_dir(f"{test.key}-{protocol}", steps)
    if not (out / "summary.json").exists():
        bb, _ = T.load_trained(run, s.backbone)
        E.evaluate_run(bb, test, out, s.label, steps, seed=s.seed, tile=s.train.image_size, protocol=protocol)
    return pd.read_csv(out / "per_image.csv")


def _bicubic_rows(test: E.TestSet, results: str | Path, protocol: str, task: str) -> pd.DataFrame:
    df = E.evaluate_bicubic(test, Path(results) / "bicubic" / protocol, protocol).drop(columns="method")
    return df.assign(task=task, backbone="bicubic", variant="bicubic", seed=0)


def _with_aliases(p: Profile, df: pd.DataFrame) -> pd.DataFrame:
    """Rows of each alias: the rows of the variant it is identical to, relabelled."""
    extra = [df[(df["variant"] == target) & (df["backbone"] == p.backbones[0])].assign(variant=alias)
             for alias, target in ALIASES.items() if alias in p.ablations]
    return pd.concat([df, *extra], ignore_index=True) if extra else df


def crops_dir(p: Profile, runs: str | Path, backbone: str, variant: str, seed: int, protocol: str = "offline",
              steps: int | None = None) -> Path:
    """Where one run's saved SR crops of the main test set are."""
    s = find_spec(p, backbone, variant, seed)
    return run_of(s, runs).eval_dir(f"{test_set(p).key}-{protocol}", steps or p.train.sample_steps) / "crops"


def bicubic_dir(p: Profile, results: str | Path, protocol: str = "offline") -> Path:
    """Where the bicubic reference (and the HR) crops of the main test set are."""
    return Path(results) / "bicubic" / protocol / test_set(p).key
