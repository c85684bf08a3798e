"""Explorer response time per control change on the trained `small` models (budget: under a second), rendering
included: each move is `set()`, the figure's update and the PNG the notebook displays.

python benchmarks/explorer_latency.py [--runs build/runs]  ->  benchmarks/results/explorer_latency.json
(benchmarks/browser_check.py measures the same moves in JupyterLab, as a user sees them)
"""

import argparse
import io
import json
import statistics
import time
from pathlib import Path

from framer_nb import observe as O
from framer_nb.config import profile
from framer_nb.provenance import provenance
from framer_nb.widgets import Explorer, model_from


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def render(ex) -> None:
    """What a move costs a user: the widget's figure updated and encoded as the PNG the notebook shows."""
    ex.figure().savefig(io.BytesIO(), format="png", bbox_inches="tight")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--runs", default="build/runs", help="training runs of the small profile")
    ap.add_argument("--profile", default="small", help="profile whose runs to load")
    args = ap.parse_args()
    p = profile(args.profile)
    crops = O.observation_images(p, size=p.train.image_size)
    loaded = O.load_runs(p, args.runs, variants=("framer",)) or O.load_priors(p, args.runs)
    ex = Explorer({k: model_from(bb, crops) for k, bb in loaded.items()}, crops["names"])
    out = {}
    for backbone in ex.models:
        ex.set(backbone=backbone, t=300, layer=0)
        layer = [timed(lambda i=i: (ex.set(layer=i), render(ex))) for i in range(ex.state["n_layers"])]
        tstep = [timed(lambda t=t: (ex.set(t=t), render(ex))) for t in (100, 200, 400, 500, 600, 800)]
        out[backbone] = {"layer_move_s_median": round(statistics.median(layer), 4),
                         "layer_move_s_max": round(max(layer), 4),
                         "timestep_move_s_median": round(statistics.median(tstep), 4),
                         "timestep_move_s_max": round(max(tstep), 4)}
        print(backbone, out[backbone])
    path = Path("benchmarks/results/explorer_latency.json")
    path.write_text(json.dumps(provenance(benchmark="explorer_latency", profile=p.name, results=out), indent=2))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
