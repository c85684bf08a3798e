"""The whole notebook suite on the smoke profile, headless with papermill (what `make reproduce` runs), on the
shipped tiny priors and on a tiny random SD3 pipeline folder (the `pretrained` parameter)."""

import datetime as dt
import json
import re
from pathlib import Path

import nbformat
import pandas as pd
import pytest

from framer_nb.__main__ import main
from framer_nb.notebooks import EXPECTED, notebook_paths, reproduce_timing

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def test_notebooks_are_committed_clean_with_a_parameters_cell():
    paths = notebook_paths()
    assert [p.stem for p in paths] == list(EXPECTED)
    for p in paths:
        nb = nbformat.read(p, as_version=4)
        tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
        assert len(tagged) == 1, f"{p.name}: needs exactly one parameters cell"
        names = []
        for line in tagged[0].source.splitlines():
            assert "#" in line and "=" in line, f"{p.name}: parameters must be commented literals: {line}"
            names.append(line.split("=")[0].strip())
        assert "pretrained" in names and "profile" in names
        later = "\n".join(c.source for c in nb.cells[nb.cells.index(tagged[0]) + 1:] if c.cell_type == "code")
        for name in names:  # every parameter is used
            assert re.search(rf"\b{name}\b", later), f"{p.name}: parameter {name} is never used"
        for c in nb.cells:
            if c.cell_type == "code":
                assert not c.outputs and c.execution_count is None, f"{p.name}: committed with outputs"
        assert "notebooks.setup(" in nb.cells[2].source, f"{p.name}: the cell after the parameters sets up"


def _check_outputs(build: Path, figures: Path, profile: str) -> None:
    for name, files in EXPECTED.items():
        for f in files:
            assert (figures / f).exists(), f"{name} did not write {f}"
            prov = json.loads((figures / f"{f}.provenance.json").read_text())
            assert prov["profile"] == profile and "git_commit" in prov
    executed = list((build / profile / "executed").glob("*.ipynb"))
    assert len(executed) == len(EXPECTED)
    for nb_path in executed:  # every figure is shown in the notebook, not only saved
        nb = nbformat.read(nb_path, as_version=4)
        saves = sum(json.loads(p.read_text()).get("notebook") == nb_path.stem
                    for p in figures.glob("*.png.provenance.json"))
        shown = sum(1 for c in nb.cells if c.cell_type == "code" for o in c.outputs if "image/png" in o.get("data", {}))
        assert shown >= saves, f"{nb_path.name}: {saves} figures saved, {shown} shown"
        assert not any("bitsandbytes" in o.get("text", "") for c in nb.cells if c.cell_type == "code"
                       for o in c.outputs), f"{nb_path.name}: a bitsandbytes warning is shown"


def test_smoke_suite_runs_headless_and_produces_every_file(tmp_path):
    assert "python -m framer_nb reproduce --profile smoke" in README
    assert main(["reproduce", "--profile", "smoke", "--build", str(tmp_path / "build"), "--figures",
                 str(tmp_path / "figures")]) == 0
    _check_outputs(tmp_path / "build", tmp_path / "figures", "smoke")
    _check_readme_section(tmp_path / "figures", tmp_path)


def _check_readme_section(figures: Path, tmp_path: Path) -> None:
    # the README's generated finding and results, and the full results page, from these figures
    from framer_nb.readme import FINDING, RESULTS, finding, readme_results, results_page, update
    timing = json.loads((figures / "reproduce_timing.json").read_text())  # written by this reproduce, with its sidecar
    assert json.loads((figures / "reproduce_timing.json.provenance.json").read_text())["profile"] == "smoke"
    assert set(timing["notebooks_s"]) == {p.stem for p in notebook_paths()} and timing["within_budget"] is None
    text = readme_results(figures)
    assert f"This run took {timing['total_s'] / 60:.1f} min" in text and "budget" not in text.split("\n\n")[1]
    assert (figures / "table1_one_step.md").read_text().strip() in text and "docs/results.md" in text
    said = finding(figures)
    assert said.count("inconclusive") >= 1 and "one-step PSNR" in said and "(1 seed)" not in said  # smoke: one seed
    assert "on 2 test crops of 2 photos" in said and "in HF spectral distance" in said
    page = results_page(figures)
    assert "(computed)" in page and said in page
    for name in re.findall(r"\]\(\.\./figures/([^)]+)\)", page):
        assert (figures / name).exists(), name
    _check_linear_yardstick(figures, tmp_path)
    readme = tmp_path / "README.md"
    readme.write_text(f"head\n{FINDING[0]}\nSTALE-1\n{FINDING[1]}\nmiddle\n{RESULTS[0]}\nSTALE-2\n{RESULTS[1]}\ntail\n")
    assert update(readme, figures)
    out = readme.read_text()
    assert "STALE" not in out and out.endswith("tail\n") and said in out and (tmp_path / "docs" / "results.md").exists()
    readme.write_text("no markers\n")
    assert not update(readme, figures)


def _check_linear_yardstick(figures: Path, tmp_path: Path) -> None:
    # the one-step gains against research/linear_bound.py's filter, only where it was scored on the same crops
    from framer_nb.readme import results_page
    table = pd.read_csv(figures / "table1_one_step.csv")
    bicubic = float(table.loc[table["variant"] == "bicubic", "psnr_mean"].iloc[0])
    models = table[table["variant"] != "bicubic"]
    linear = tmp_path / "linear.json"

    def section(bicubic_psnr: float, gain: float) -> str:
        linear.write_text(json.dumps({"git_commit": "abc", "filters": [
            {"kernel": 3, "split": "val", "fit_s": 1.0, "bicubic_psnr": bicubic, "gain": -99.0},
            {"kernel": 3, "split": "test", "fit_s": 1.0, "bicubic_psnr": round(bicubic_psnr, 3), "gain": gain}]}))
        return results_page(figures, linear)
    lowest = models.loc[models["psnr_mean"].idxmin()]
    low = f"{lowest.backbone} {lowest.variant} {lowest.psnr_mean - bicubic:+.3f}"
    text = section(bicubic, float(lowest.psnr_mean - bicubic))  # ties count as not above
    assert "gains +" in text or "gains -" in text
    assert "**A linear yardstick**" in text and f"at or below it: {low}" in text
    assert "above it (computed): none;" in section(bicubic, 99.0)
    assert "at or below it: none." in section(bicubic, -99.0)
    assert "linear yardstick" not in section(bicubic + 0.5, 0.0)  # scored on other crops: left out


def test_notebooks_run_on_a_pipeline_folder(tmp_path):
    # the README's `reproduce --profile paper --pretrained <SD3.5 folder>`, on a tiny random SD3 pipeline, smoke budget
    assert "python -m framer_nb reproduce --profile paper --pretrained /models/stable-diffusion-3.5-medium" in README
    from framer_nb.toy import make_pipeline
    pipe = make_pipeline("sd35-medium", tmp_path / "pipe")
    assert main(["reproduce", "--profile", "smoke", "--pretrained", str(pipe), "--build", str(tmp_path / "build"),
                 "--figures", str(tmp_path / "figures")]) == 0
    _check_outputs(tmp_path / "build", tmp_path / "figures", "smoke")
    runs = json.loads((tmp_path / "figures" / "training_runs.csv.provenance.json").read_text())
    assert runs["pretrained"] == str(pipe)


def _executed(folder: Path, spans: dict[str, tuple[float, float]]) -> Path:
    """Executed notebooks whose papermill metadata starts and ends at the given seconds after 09:00."""
    folder.mkdir()
    nine = dt.datetime(2026, 11, 29, 9, tzinfo=dt.timezone.utc)
    for name, (start, end) in spans.items():
        nb = nbformat.v4.new_notebook()
        nb.metadata["papermill"] = {"start_time": (nine + dt.timedelta(seconds=start)).isoformat(),
                                    "end_time": (nine + dt.timedelta(seconds=end)).isoformat()}
        nbformat.write(nb, folder / f"{name}.ipynb")
    return folder


def test_reproduce_timing_spans_first_start_to_last_end_against_the_budget(tmp_path):
    spans = {"01_observations": (0, 30), "02_train_variants": (32, 3000), "03_evaluate_tables": (3001, 3100)}
    t = reproduce_timing(_executed(tmp_path / "a", spans), "small")
    assert t["notebooks_s"] == {"01_observations": 30, "02_train_variants": 2968, "03_evaluate_tables": 99}
    assert t["total_s"] == 3100 and t["budget_min"] == 90 and t["within_budget"] is True
    over = reproduce_timing(_executed(tmp_path / "b", {**spans, "04_figures": (3101, 5401)}), "small")
    assert over["total_s"] == 5401 and over["within_budget"] is False
    assert reproduce_timing(tmp_path / "a", "smoke")["within_budget"] is None  # smoke has no budget
    bad = tmp_path / "c"
    bad.mkdir()
    nbformat.write(nbformat.v4.new_notebook(), bad / "01_observations.ipynb")
    with pytest.raises(ValueError, match="01_observations.ipynb: no papermill start/end time"):
        reproduce_timing(bad, "small")


def test_reproduce_survives_papermill_failing_after_the_last_cell(tmp_path, monkeypatch, capsys):
    # papermill can hang waiting for the kernel's info reply once every cell has run (nteract/papermill#711); that
    # wait is bounded, and a notebook whose cells all completed counts as run (its outputs are still checked)
    import papermill as pm

    from framer_nb import notebooks as N
    figs = tmp_path / "figs"

    def hangs_at_the_end(inp, out, parameters, **kw):
        assert kw["execution_timeout"] == N.KERNEL_INFO_TIMEOUT_S
        assert kw["timeout_func"](None) == N.cell_timeout("smoke", "05_explorer")
        nb = nbformat.read(inp, as_version=4)
        nb.metadata["papermill"] = {"start_time": "2026-11-29T09:00:00+00:00"}
        for cell in nb.cells:
            cell.metadata["papermill"] = {"status": "completed", "end_time": "2026-11-29T09:00:10+00:00"}
        nbformat.write(nb, out)
        figs.mkdir(exist_ok=True)
        for f in N.EXPECTED["05_explorer"]:
            (figs / f).write_text("x")
            (figs / f"{f}.provenance.json").write_text("{}")
        raise AssertionError  # what nbclient raises when that wait times out

    monkeypatch.setattr(pm, "execute_notebook", hangs_at_the_end)
    assert N.run_all("smoke", tmp_path / "build", str(figs), only="05") == 0
    assert "nteract/papermill#711" in capsys.readouterr().err
    assert reproduce_timing(tmp_path / "build" / "smoke" / "executed", "smoke")["total_s"] == 10

    def fails_midway(inp, out, parameters, **kw):
        raise AssertionError("boom")

    monkeypatch.setattr(pm, "execute_notebook", fails_midway)  # cells not all completed: the error propagates
    with pytest.raises(AssertionError, match="boom"):
        N.run_all("smoke", tmp_path / "build2", str(figs), only="05")
