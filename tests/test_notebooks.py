"""The whole notebook suite on the smoke profile, headless with papermill (what `make reproduce` runs)."""

import json

import nbformat

from framer_nb.notebooks import EXPECTED, notebook_paths, run_all


def test_notebooks_are_committed_clean_with_a_parameters_cell():
    paths = notebook_paths()
    assert [p.stem for p in paths] == list(EXPECTED)
    for p in paths:
        nb = nbformat.read(p, as_version=4)
        tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
        assert len(tagged) == 1, f"{p.name}: needs exactly one parameters cell"
        for line in tagged[0].source.splitlines():
            assert "#" in line and "=" in line, f"{p.name}: parameters must be commented literals: {line}"
        for c in nb.cells:
            if c.cell_type == "code":
                assert not c.outputs and c.execution_count is None, f"{p.name}: committed with outputs"


def test_smoke_suite_runs_headless_and_produces_every_file(tmp_path):
    rc = run_all("smoke", tmp_path / "build", figures=str(tmp_path / "figures"))
    assert rc == 0
    figures = tmp_path / "figures"
    for name, files in EXPECTED.items():
        for f in files:
            assert (figures / f).exists(), f"{name} did not write {f}"
            prov = json.loads((figures / f"{f}.provenance.json").read_text())
            assert prov["profile"] == "smoke" and "git_commit" in prov
    executed = list((tmp_path / "build" / "smoke" / "executed").glob("*.ipynb"))
    assert len(executed) == len(EXPECTED)
