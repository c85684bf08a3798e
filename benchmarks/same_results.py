"""Does a reproduce give the same results twice on one machine?

Compares two reproduces of one profile: every table CSV and per-image score CSV of two figures folders, cell by
cell, and (with --runs) the weights of every SR run both trained, tensor by tensor. Writes
benchmarks/results/same_results.json: what was compared, what differs (nothing, when reproducible).

    python benchmarks/same_results.py figures /tmp/second/figures --runs build/runs /tmp/second/build/runs
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd
import torch
from safetensors.torch import load_file

from framer_nb.provenance import provenance

OUT = Path(__file__).parent / "results" / "same_results.json"


def compare_csvs(a: Path, b: Path) -> dict:
    """{file: 'same' | what differs} for every CSV of folder a (a file missing from b differs)."""
    out = {}
    for f in sorted(Path(a).glob("*.csv")):
        other = Path(b) / f.name
        if not other.exists():
            out[f.name] = "missing in the second"
            continue
        x, y = pd.read_csv(f), pd.read_csv(other)
        if list(x.columns) != list(y.columns) or x.shape != y.shape:
            out[f.name] = f"shape or columns differ: {x.shape} against {y.shape}"
            continue
        diff = [c for c in x.columns if not x[c].equals(y[c])]
        out[f.name] = "same" if not diff else f"columns differ: {', '.join(diff)}"
    return out


def compare_runs(a: Path, b: Path) -> dict:
    """{run: 'same' | what differs} for every finished SR run (model weights) found under both run folders."""
    out = {}
    for done in sorted(Path(a).glob("*/*/seed*/done.json")):
        rel = done.parent.relative_to(a)
        other = Path(b) / rel / "model" / "diffusion_pytorch_model.safetensors"
        if not other.exists():
            continue
        x, y = load_file(str(done.parent / "model" / "diffusion_pytorch_model.safetensors")), load_file(str(other))
        same = x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x)
        out[str(rel)] = "same" if same else "weights differ"
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("figures", nargs=2, help="the two figures folders")
    ap.add_argument("--runs", nargs=2, default=None, help="the two run folders (compares the trained weights)")
    ap.add_argument("--note", default="", help="how the two reproduces were made (kept in the result)")
    args = ap.parse_args()
    tables = compare_csvs(*map(Path, args.figures))
    runs = compare_runs(*map(Path, args.runs)) if args.runs else {}
    differs = sorted(k for k, v in {**tables, **runs}.items() if v != "same")
    doc = provenance(benchmark="same_results", note=args.note, figures=args.figures, runs=args.runs, csvs=tables,
                     trained_runs=runs, compared=len(tables) + len(runs), differing=differs, same=not differs)
    OUT.write_text(json.dumps(doc, indent=2, default=str))
    print(f"{len(tables)} CSVs and {len(runs)} runs compared; differing: {differs or 'none'}")


if __name__ == "__main__":
    main()
