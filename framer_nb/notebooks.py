"""The notebooks' shared setup (`setup`) and headless reproduction: run every notebook in order with papermill
and check what each must produce."""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from .paths import DATA_ROOT as DATA  # noqa: F401  (notebooks read data/paper through it)
from .provenance import write_sidecar
from .readme import TIMING, update

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"

# What each notebook must leave in the figures folder (checked after it runs).
EXPECTED: dict[str, tuple[str, ...]] = {
    "01_observations": ("fig2_band_densities.png", "fig_masks.png", "fig3_layer_similarity.png", "fig3_sweep.png",
                        "fig5_cross_sample.png", "observe_cross_sample.json", "observe_band_density.csv",
                        "observe_layer_similarity.csv", "observe_premise_gap.csv",
                        "observe_mask_statistics.csv", "verdicts_observations.csv"),
    "02_train_variants": ("training_runs.csv",),
    "03_evaluate_tables": ("table1_main.csv", "table1_main.md", "table1_main.tex", "table1_paper.md",
                           "table1_one_step.csv", "table1_one_step.md", "framer_vs_baseline.csv",
                           "table2_objective.md", "table_mask.md", "results_per_image.csv", "results_per_image_1step.csv",
                           "verdicts_tables.csv"),
    "04_figures": ("fig6_training_cost.png", "fig7_layer_similarity_trained.png", "fig8_stability.png",
                   "fig9_faw_fam.png", "fig_qualitative.png"),
    "05_explorer": ("explorer_snapshot.png",),
}
TABLE_SUFFIXES = (".csv", ".md", ".tex")


@dataclass
class Session:
    """What every notebook cell needs: the profile (with a pipeline folder applied), folders and provenance."""

    notebook: str
    profile: object
    runs: Path
    results: Path
    figures: Path
    seed: int
    pretrained: str | None = None
    extra: dict = field(default_factory=dict)

    @property
    def prov(self) -> dict:
        """Provenance fields of everything this notebook writes."""
        return {"profile": self.profile.name, "notebook": self.notebook, "shown_seed": self.seed,
                "seeds": list(self.profile.seeds), "pretrained": self.pretrained, **self.extra}

    def figure(self, fig, name: str, **extra) -> None:
        """Save a figure (PNG + provenance) into the figures folder and show it in the notebook."""
        from . import plots
        plots.save(fig, self.figures / name, show=True, **self.prov, **extra)

    def csv(self, df, name: str, **extra):
        """Save a table (CSV + provenance) into the figures folder; returns the DataFrame."""
        from .observe import save_csv
        save_csv(df, self.figures / name, **self.prov, **extra)
        return df

    def json(self, data, name: str, **extra):
        """Save JSON-ready data (+ provenance) into the figures folder; returns the data."""
        import json
        (self.figures / name).write_text(json.dumps(data))
        write_sidecar(self.figures / name, **self.prov, **extra)
        return data

    def read_scores(self, folder: str | Path, name: str):
        """Per-image scores an earlier evaluation stored (a CSV and its provenance sidecar), to rebuild the tables
        without the runs; copied with its sidecar into the figures folder when it lives elsewhere."""
        import shutil

        import pandas as pd
        src = Path(folder).expanduser().resolve() / name
        if not src.is_file():
            raise FileNotFoundError(f"{src}: no stored scores there (scores= names a folder that holds {name})")
        dst = self.figures / name
        self.extra["scores_from"] = str(src.parent)
        if src != dst.resolve():
            for suffix in ("", ".provenance.json"):
                if Path(f"{src}{suffix}").is_file():
                    shutil.copyfile(f"{src}{suffix}", f"{dst}{suffix}")
        return pd.read_csv(src)

    def stored_scores(self, folder: str | Path) -> dict:
        """Every score file (pipeline.SCORE_FILES) an earlier evaluation stored in `folder`, by name."""
        from .pipeline import SCORE_FILES
        return {name: self.read_scores(folder, name) for name in SCORE_FILES}

    def show(self, name: str) -> None:
        """Render a Markdown table of the figures folder as a table in the notebook."""
        from IPython.display import Markdown, display
        display(Markdown((self.figures / name).read_text()))

    def describe(self) -> str:
        p = self.profile
        src = f"pipeline {self.pretrained}" if self.pretrained else "shipped priors (data/priors)"
        return (f"profile {p.name}: backbones {', '.join(p.backbones)}, seeds {list(p.seeds)}, from {src}; "
                f"figures -> {self.figures}")


def setup(notebook: str, profile: str, seed: int = 0, runs: str = "build/runs", results: str = "",
          figures: str = "", pretrained: str = "") -> Session:
    """The notebooks' one setup call, given the parameters the notebook has: resolve folders, apply a pipeline
    folder to the profile, seed torch."""
    import warnings

    import torch

    from .config import profile as get_profile
    from .config import with_pipeline
    warnings.filterwarnings("ignore", message=".*bitsandbytes.*")
    p = get_profile(profile)
    if pretrained:
        p = with_pipeline(p, str(resolve(pretrained)))
    torch.manual_seed(seed)
    figs = resolve(figures or default_figures(profile))
    figs.mkdir(parents=True, exist_ok=True)
    return Session(notebook, p, resolve(runs), resolve(results or f"build/{profile}/results"), figs, seed,
                   str(resolve(pretrained)) if pretrained else None)


def resolve(path: str | Path) -> Path:
    """A path from a notebook's parameters: absolute, or relative to the repository root."""
    p = Path(path)
    return p if p.is_absolute() else ROOT / p


def default_figures(profile: str) -> str:
    """Committed gallery for the default `small` profile; other profiles write under build/."""
    return "figures" if profile == "small" else f"build/{profile}/figures"


def notebook_paths(only: str | None = None) -> list[Path]:
    """The ordered notebooks, optionally only those whose names start with one of a comma list."""
    paths = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
    if only:
        prefixes = tuple(x.strip() for x in only.split(","))
        paths = [p for p in paths if p.name.startswith(prefixes)]
    return paths


def missing_outputs(name: str, figures: Path) -> list[str]:
    """Expected files of a notebook that are not in the figures folder (each needs its provenance sidecar)."""
    missing = []
    for f in EXPECTED.get(name, ()):
        if not (figures / f).exists():
            missing.append(f)
        elif not (figures / f"{f}.provenance.json").exists():
            missing.append(f"{f}.provenance.json")
    return missing


def cell_timeout(profile: str, notebook: str) -> int | None:
    """Seconds after which a cell fails the run instead of hanging it (an intermittent papermill hang seen under
    heavy CPU load: README, limitations). Only the training notebook has long cells: on `small` about 80 min; on
    `gpu` and `paper` as long as the training takes, so no limit there."""
    if profile == "smoke":
        return 900
    if notebook.startswith("02_"):
        return 3 * 3600 if profile == "small" else None
    return 1800 if profile == "small" else 6 * 3600


KERNEL_INFO_TIMEOUT_S = 120


def cells_completed(executed: Path) -> bool:
    """Whether papermill recorded every code cell of an executed notebook as completed (it saves after each)."""
    if not Path(executed).exists():
        return False
    cells = [c for c in json.loads(Path(executed).read_text())["cells"] if c["cell_type"] == "code"]
    return bool(cells) and all(c["metadata"].get("papermill", {}).get("status") == "completed" for c in cells)


def reproduce_timing(executed: Path, profile: str) -> dict:
    """How long a reproduce took, from papermill's start and end times in the executed notebooks: each notebook's
    seconds and the whole, from the first notebook's start to the last one's end (what `make reproduce` adds
    around it, the install check and interpreter start-up, is left out), against the profile's budget."""
    from .config import profile as get_profile
    times = {}
    for nb in sorted(Path(executed).glob("[0-9][0-9]_*.ipynb")):
        doc = json.loads(nb.read_text())
        meta = doc.get("metadata", {}).get("papermill", {})
        # after papermill's final hang (see run_all) the notebook has no end time: its last cell's end is the end
        ends = [c["metadata"].get("papermill", {}).get("end_time") for c in doc.get("cells", [])]
        end = meta.get("end_time") or max((e for e in ends if e), default=None)
        if not meta.get("start_time") or not end:
            raise ValueError(f"{nb}: no papermill start/end time; was it executed by papermill to the end?")
        times[nb.stem] = (dt.datetime.fromisoformat(meta["start_time"]), dt.datetime.fromisoformat(end))
    if not times:
        raise FileNotFoundError(f"{executed}: no executed notebooks")
    total = (max(e for _, e in times.values()) - min(s for s, _ in times.values())).total_seconds()
    budget = get_profile(profile).budget_min
    return {"profile": profile, "cpu_count": os.cpu_count(), "source": "papermill start/end times of " + str(executed),
            "notebooks_s": {k: round((e - s).total_seconds(), 1) for k, (s, e) in times.items()},
            "total_s": round(total, 1), "budget_min": budget,
            "within_budget": None if budget is None else total <= 60 * budget}


def run_all(profile: str, build: Path, figures: str | None = None, only: str | None = None,
            pretrained: str | None = None) -> int:
    """Execute the notebooks in order on a profile; 0 if all ran and produced their outputs."""
    import papermill as pm
    build = resolve(build) / profile
    figs = resolve(figures or default_figures(profile))
    params = {"profile": profile, "runs": str(build.parent / "runs"), "results": str(build / "results"),
              "figures": str(figs)}  # absolute paths: notebooks resolve relative ones against the repo root
    if pretrained:
        params["pretrained"] = str(resolve(pretrained))
    (build / "executed").mkdir(parents=True, exist_ok=True)
    for nb in notebook_paths(only):
        t0 = time.time()
        declared = pm.inspect_notebook(str(nb))  # each notebook gets only the parameters its cell declares
        print(f"[reproduce] {nb.name} (profile {profile}) ...", flush=True)
        out = build / "executed" / nb.name
        limit = cell_timeout(profile, nb.stem)
        try:
            # cells get `limit` (timeout_func); papermill's last wait, for the kernel's info reply after every cell
            # has run, gets the short execution_timeout: that wait is where papermill hangs (nteract/papermill#711)
            pm.execute_notebook(str(nb), str(out), parameters={k: v for k, v in params.items() if k in declared},
                                cwd=str(ROOT), kernel_name="python3",
                                progress_bar=False, log_output=False, execution_timeout=KERNEL_INFO_TIMEOUT_S,
                                timeout_func=lambda cell, limit=limit: limit)
        except pm.PapermillExecutionError as e:
            print(f"[reproduce] {nb.name} failed in cell {e.exec_count}: {e.ename}: {e.evalue}", file=sys.stderr)
            return 1
        except Exception as e:  # nbclient ends that wait with an AssertionError
            if not cells_completed(out):
                raise
            print(f"[reproduce] {nb.name}: every cell ran, then papermill failed waiting for the kernel "
                  f"({type(e).__name__}; nteract/papermill#711); its outputs are checked as usual", file=sys.stderr)
        missing = missing_outputs(nb.stem, figs)
        if missing:
            print(f"[reproduce] {nb.name} did not produce: {', '.join(missing)} in {figs}", file=sys.stderr)
            return 1
        print(f"[reproduce] {nb.name} done in {time.time() - t0:.0f}s", flush=True)
    if not only:
        timing = reproduce_timing(build / "executed", profile)
        (figs / TIMING).write_text(json.dumps(timing, indent=2))
        write_sidecar(figs / TIMING, profile=profile)
        print(f"[reproduce] notebooks took {timing['total_s'] / 60:.1f} min in all; wrote {figs / TIMING}")
    if figs == ROOT / "figures" and not only:
        if update(ROOT / "README.md", figs):
            print("[reproduce] README.md results section regenerated from figures/")
    print(f"[reproduce] figures and tables in {figs}; executed notebooks in {build / 'executed'}")
    return 0
