"""How long a usage error takes: each command is run as a user would (a fresh interpreter), with an argument it
refuses, and timed to its exit (median of --repeats). The arguments are checked before torch, diffusers or pyiqa
are imported, so the time is the interpreter's start-up and the check.

    python benchmarks/cli_latency.py   ->  benchmarks/results/cli_latency.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

from framer_nb.provenance import provenance

CASES = {
    "train, unknown backbone": ["train", "--backbone", "nope"],
    "train, --steps 0": ["train", "--steps", "0"],
    "pretrain, --minutes 0": ["pretrain", "--minutes", "0"],
    "reproduce, --only 99": ["reproduce", "--only", "99"],
    "evaluate, missing --run": ["evaluate", "--run", "/nonexistent"],
    "train, --image-size 36 on the tiny DiT": ["train", "--backbone", "tiny-dit", "--image-size", "36"],
    "train, --hr-folder without images": ["train", "--hr-folder", "/"],
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=5, help="runs per case (default 5)")
    ap.add_argument("--out", default="benchmarks/results/cli_latency.json", help="JSON path")
    args = ap.parse_args()
    results = {}
    for name, argv in CASES.items():
        times, codes = [], set()
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            codes.add(subprocess.run([sys.executable, "-m", "framer_nb", *argv], capture_output=True).returncode)
            times.append(time.perf_counter() - t0)
        results[name] = {"exit_codes": sorted(codes), "median_s": round(statistics.median(times), 3),
                         "max_s": round(max(times), 3)}
        print(f"{name:28s} exit {sorted(codes)}  median {results[name]['median_s']} s, max {results[name]['max_s']} s")
    out = Path(args.out)
    out.write_text(json.dumps(provenance(benchmark="cli_latency", repeats=args.repeats, results=results), indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
