"""Headless reproduction: run every notebook in order with papermill and check what each must produce."""

from __future__ import annotations

import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"

# What each notebook must leave in the figures folder (checked after it runs).
EXPECTED: dict[str, tuple[str, ...]] = {
    "01_observations": ("fig2_band_densities.png", "fig3_layer_similarity.png", "fig3_sweep.png",
                        "fig5_cross_sample.png", "observe_band_density.csv", "observe_layer_similarity.csv"),
    "02_train_variants": ("training_runs.csv",),
    "03_evaluate_tables": ("table1_main.csv", "table1_main.md", "table1_main.tex", "table1_paper.md",
                           "table1_one_step.md",
                           "table2_objective.md", "table_mask.md", "results_per_image.csv"),
    "04_figures": ("fig6_training_cost.png", "fig7_layer_similarity_trained.png", "fig8_stability.png",
                   "fig9_faw_fam.png", "fig_qualitative.png"),
    "05_explorer": ("explorer_snapshot.png",),
}
TABLE_SUFFIXES = (".csv", ".md", ".tex")


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


def run_all(profile: str, build: Path, figures: str | None = None, only: str | None = None) -> int:
    """Execute the notebooks in order on a profile; 0 if all ran and produced their outputs."""
    import papermill as pm
    build = resolve(build) / profile
    figs = resolve(figures or default_figures(profile))
    params = {"profile": profile, "runs": str(build.parent / "runs"), "results": str(build / "results"),
              "figures": str(figs)}  # absolute paths: notebooks resolve relative ones against the repo root
    (build / "executed").mkdir(parents=True, exist_ok=True)
    for nb in notebook_paths(only):
        t0 = time.time()
        print(f"[reproduce] {nb.name} (profile {profile}) ...", flush=True)
        try:
            pm.execute_notebook(str(nb), str(build / "executed" / nb.name), parameters=params, cwd=str(ROOT),
                                kernel_name="python3", progress_bar=False, log_output=False)
        except pm.PapermillExecutionError as e:
            print(f"[reproduce] {nb.name} failed in cell {e.exec_count}: {e.ename}: {e.evalue}", file=sys.stderr)
            return 1
        missing = missing_outputs(nb.stem, figs)
        if missing:
            print(f"[reproduce] {nb.name} did not produce: {', '.join(missing)} in {figs}", file=sys.stderr)
            return 1
        print(f"[reproduce] {nb.name} done in {time.time() - t0:.0f}s", flush=True)
    print(f"[reproduce] figures and tables in {figs}; executed notebooks in {build / 'executed'}")
    return 0
