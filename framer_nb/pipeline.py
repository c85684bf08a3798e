"""Orchestration of a profile: which runs exist, training them all, evaluating them all, collecting results."""

from __future__ import annotations

import multiprocessing as mp
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch
from tqdm.auto import tqdm

from . import evaluate as E
from . import train as T
from .config import ALIASES, Profile, TrainConfig
from .config import variant as variant_config
from .runs import Evaluation, Run, bicubic_evaluation


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

    def add(backbone: str, v: str, seeds, **over):
        specs.extend(RunSpec(backbone, v, s, p.train_for(backbone, seed=s, **over))
                     for s in seeds)
    for b in p.backbones:
        for v in p.main_variants:
            add(b, v, p.seeds)
    for v in p.ablations:
        if v not in p.main_variants and v not in ALIASES:
            add(p.backbones[0], v, p.ablation_seeds)
    if p.second_task:
        for v in p.main_variants:
            add(p.backbones[0], v, p.seeds, degradation=p.second_task)
    return specs


def run_of(s: RunSpec, runs: str | Path) -> Run:
    """The run folder of a spec (aliases resolve to the variant they are identical to)."""
    return T.sr_run(s.train, ALIASES.get(s.variant, s.variant), runs)


def train_all(p: Profile, runs: str | Path, progress: bool = True, workers: int | None = None) -> list[Run]:
    """Train (or skip, when done) every run of the profile; resumable. With `workers` > 1 the runs are spread over
    that many processes of one thread each (on a 2-core machine two such processes train about 1.5x faster than
    one with two threads); a run trains the same whatever the number of workers."""
    specs = run_specs(p)
    todo = sorted((s for s in specs if not run_of(s, runs).done), key=lambda s: -expected_cost(s))
    parallel(_train_one, [(s.train, s.variant, str(runs)) for s in todo], workers, progress, "train")
    return [T.train_sr(s.train, s.variant, runs, progress=False) for s in specs]  # all done: returns at once


def expected_cost(s: RunSpec) -> float:
    """Relative training time of a run, to start the longest first (so that no worker is left with a long run
    at the end): steps, times about 1.5 for a FRAMER term (benchmarks/results/overhead_tiny-*_cpu.json)."""
    return s.train.sr_steps * (1.0 if variant_config(ALIASES.get(s.variant, s.variant)).objective == "none" else 1.5)


def _train_one(cfg: TrainConfig, variant: str, runs: str) -> str:
    return str(T.train_sr(cfg, variant, runs, progress=False).path)


def default_workers() -> int:
    """One single-threaded worker per core, at most 2 (the small profile's machine), when runs are independent."""
    return max(1, min(2, os.cpu_count() or 1))


def parallel(fn, args: list[tuple], workers: int | None = None, progress: bool = True, desc: str = "") -> list:
    """fn(*a) for every a in `args`, in `workers` spawned processes of one thread each (in order of `args`)."""
    workers = default_workers() if workers is None else workers
    if workers <= 1 or len(args) <= 1:
        return [fn(*a) for a in tqdm(args, desc=desc, disable=not progress)]
    with ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn"), initializer=_one_thread) as pool:
        futures = [pool.submit(fn, *a) for a in args]
        for f in tqdm(futures, desc=desc, disable=not progress):
            f.result()  # re-raises a worker's error here
        return [f.result() for f in futures]


def _one_thread() -> None:
    torch.set_num_threads(1)


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
    return [RunSpec(p.backbones[0], a, s, p.train_for(p.backbones[0], seed=s))
            for a in ALIASES if a in p.ablations for s in p.ablation_seeds]


def evaluate_all(p: Profile, runs: str | Path, results: str | Path, protocol: str = "offline",
                 progress: bool = True, steps: int | None = None,
                 variants: tuple[str, ...] | None = None) -> pd.DataFrame:
    """Evaluate every finished run (skipping those already scored) plus bicubic, per task; their per-image rows.

    `steps` sampler steps (default: the profile's); `variants` restricts the runs. With steps=1 the output is
    the model's one-step estimate of E[x0 | LR], its PSNR-optimal answer."""
    steps = steps or p.train.sample_steps
    specs = [s for s in run_specs(p) if variants is None or s.variant in variants]
    frames = []
    for task in tasks(p):
        test = test_set(p, task)
        frames.append(_bicubic_rows(test, results, protocol, task))
        mine = [s for s in specs if s.task == task]
        todo = [(s, str(runs), test, steps, protocol) for s in mine
                if not run_of(s, runs).evaluation(E.eval_key(test, protocol), steps).done]
        parallel(score_run, todo, progress=progress, desc=f"evaluate {task} ({steps} steps)")
        frames += [score_run(s, runs, test, steps, protocol) for s in mine]  # cached: reads the CSVs
    df = pd.concat(frames, ignore_index=True)
    return _with_aliases(p, df)


# The per-image score files of a reproduce: name -> one step (else the profile's sampler steps). Sampled: every run;
# one step: the main variants.
SCORE_FILES: dict[str, bool] = {"results_per_image.csv": False, "results_per_image_1step.csv": True}


def score_all(p: Profile, runs: str | Path, results: str | Path, protocol: str = "offline",
              progress: bool = True) -> dict[str, tuple[pd.DataFrame, dict]]:
    """Every score file of the profile (`SCORE_FILES`): its per-image rows and what its provenance records (output
    steps, test set, what each backbone diffuses)."""
    targets = {b: p.train_for(b).target for b in p.backbones}
    out = {}
    for name, one in SCORE_FILES.items():
        steps = 1 if one else p.train.sample_steps
        df = evaluate_all(p, runs, results, protocol, progress, steps=steps, variants=p.main_variants if one else None)
        out[name] = df, dict(protocol=protocol, steps=steps, test_images=p.n_test, size=p.test_size, targets=targets)
    return out


def score_run(s: RunSpec, runs: str | Path, test: E.TestSet, steps: int, protocol: str) -> pd.DataFrame:
    """One run's per-image scores on a test set, computed once and cached in the run folder."""
    run = run_of(s, runs)
    out = run.evaluation(E.eval_key(test, protocol), steps)
    if not out.done:
        bb, _ = T.load_trained(run)
        E.evaluate_run(bb, test, out, s.label, steps, seed=E.SAMPLER_SEED, tile=s.train.image_size, protocol=protocol)
    return pd.read_csv(out.per_image)


def _bicubic_rows(test: E.TestSet, results: str | Path, protocol: str, task: str) -> pd.DataFrame:
    df = E.evaluate_bicubic(test, bicubic_evaluation(results, protocol, test.key), protocol).drop(columns="method")
    return df.assign(task=task, backbone="bicubic", variant="bicubic", seed=0)


def _with_aliases(p: Profile, df: pd.DataFrame) -> pd.DataFrame:
    """Rows of each alias: the rows of the variant it is identical to, relabelled."""
    extra = [df[(df["variant"] == target) & (df["backbone"] == p.backbones[0])].assign(variant=alias)
             for alias, target in ALIASES.items() if alias in p.ablations]
    return pd.concat([df, *extra], ignore_index=True) if extra else df


def evaluation_of(p: Profile, runs: str | Path, backbone: str, variant: str, seed: int, protocol: str = "offline",
                  steps: int | None = None) -> Evaluation:
    """One run's evaluation on the profile's main test set (its saved SR crops: `.crop(image)`)."""
    s = find_spec(p, backbone, variant, seed)
    return run_of(s, runs).evaluation(E.eval_key(test_set(p), protocol), steps or p.train.sample_steps)


def bicubic_of(p: Profile, results: str | Path, protocol: str = "offline") -> Evaluation:
    """The bicubic reference of the profile's main test set (its crops: 'lr_up' and 'hr')."""
    return bicubic_evaluation(results, protocol, test_set(p).key)


def gallery(p: Profile, runs: str | Path, results: str | Path, scores: pd.DataFrame, seed: int, n: int = 3,
            variants: tuple[str, ...] = ("baseline", "framer")) -> tuple[dict, list[str], dict]:
    """The qualitative figure's columns (bicubic, each backbone's `variants` of one seed, HR: crop files of the
    first `n` saved test images), the images' names and each crop's PSNR from the per-image `scores`."""
    bic = bicubic_of(p, results)
    names = bic.crop_images("hr")[:n]
    main = scores[scores["task"] == p.train.degradation]

    def psnr(backbone: str, variant: str, s: int) -> list[str]:
        rows = main[(main["backbone"] == backbone) & (main["variant"] == variant) & (main["seed"] == s)]
        by_image = dict(zip(rows["image"], rows["psnr"]))
        return [f"PSNR {by_image[k]:.2f} dB" if k in by_image else "" for k in names]

    cols, text = {"bicubic": [bic.crop(k, "lr_up") for k in names]}, {"bicubic": psnr("bicubic", "bicubic", 0)}
    for b in p.backbones:
        for v in variants:
            cols[f"{b} {v}"] = [evaluation_of(p, runs, b, v, seed).crop(k) for k in names]
            text[f"{b} {v}"] = psnr(b, v, seed)
    cols["HR"] = [bic.crop(k, "hr") for k in names]
    return cols, names, text
