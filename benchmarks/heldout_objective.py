"""How much SR fine-tuning moves the diffusion objective: each trained run vs its prior, on held-out batches.

Needs the runs of `make reproduce` (or `python -m framer_nb train ...`) for the current config of
--profile. The prior is scored with its zero-initialised LR channels, i.e. as the SR stage starts.

python benchmarks/heldout_objective.py [--runs build/runs]  ->  benchmarks/results/heldout_objective.json
"""

import argparse
import json
from pathlib import Path

import torch

from framer_nb import backbones as B
from framer_nb.config import TrainConfig, profile
from framer_nb.pipeline import run_specs
from framer_nb.provenance import provenance
from framer_nb.train import heldout_objective, load_trained, sr_dir


def score(run: Path, cfg: TrainConfig) -> dict:
    """Held-out objective of one SR run and of the prior it started from."""
    done = json.loads((run / "done.json").read_text())
    sr, _ = load_trained(run, cfg.backbone)
    prior, _ = load_trained(done["prior"], cfg.backbone)
    B.grow_input_channels(prior, sr.lr_channels)
    a, b = heldout_objective(sr, cfg), heldout_objective(prior, cfg)
    return {"run": str(run), "run_commit": done.get("git_commit"), "sr": round(a, 5), "prior": round(b, 5),
            "ratio": round(a / b, 4)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", default="build/runs")
    ap.add_argument("--profile", default="small", help="whose runs: the current config's, not older ones")
    ap.add_argument("--variants", nargs="+", default=["baseline", "framer"])
    args = ap.parse_args()
    torch.set_num_threads(2)
    out = {}
    for s in run_specs(profile(args.profile)):
        run = sr_dir(s.train, s.variant, Path(args.runs))
        if s.variant in args.variants and (run / "done.json").exists():
            out.setdefault(f"{s.backbone}/{s.variant}", []).append(score(run, s.train))
            print(s.backbone, s.variant, out[f"{s.backbone}/{s.variant}"][-1], flush=True)
    if not out:
        raise SystemExit(f"no finished runs under {args.runs}: run `make reproduce` first")
    res = provenance(benchmark="heldout_objective", runs=out)
    path = Path("benchmarks/results/heldout_objective.json")
    path.write_text(json.dumps(res, indent=2))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
