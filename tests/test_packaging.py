import re
import subprocess
import sys
from pathlib import Path

import tomllib
import yaml

ROOT = Path(__file__).resolve().parents[1]


def _name(req: str) -> str:
    return re.split(r"[<>=!~\[ ]", req, maxsplit=1)[0].lower().replace("_", "-")


def test_environment_yml_agrees_with_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        reqs += extra
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    pip = [p for p in pip if not p.startswith("-e")]
    assert sorted(pip, key=_name) == sorted(reqs, key=_name), "environment.yml and pyproject.toml disagree"


def test_torch_pair_is_pinned_together():
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    pins = {_name(d): d for d in deps}
    assert pins["torch"] == "torch==2.14.1" and pins["torchvision"] == "torchvision==0.29.1"


def test_ci_calls_the_readme_test_command():
    assert "make test" in (ROOT / ".ci" / "run").read_text()
    assert "make test" in (ROOT / "README.md").read_text()


def test_git_commit_is_dirty_for_code_changes_not_for_generated_outputs(tmp_path):
    import subprocess

    from framer_nb.provenance import git_commit

    def git(*args):
        subprocess.run(["git", "-c", "user.email=t@t", "-c", "user.name=t", *args], cwd=tmp_path, check=True,
                       capture_output=True)
    (tmp_path / "figures").mkdir()
    (tmp_path / "code.py").write_text("a = 1\n")
    (tmp_path / "figures" / "fig.csv").write_text("x\n1\n")
    git("init", "-q")
    git("add", ".")
    git("commit", "-qm", "init")
    clean = git_commit(tmp_path)
    assert len(clean) >= 7 and not clean.endswith("+dirty")
    (tmp_path / "figures" / "fig.csv").write_text("x\n2\n")  # a regenerated figure
    assert git_commit(tmp_path) == clean
    (tmp_path / "code.py").write_text("a = 2\n")
    assert git_commit(tmp_path) == clean + "+dirty"


def test_package_data_loads_from_a_non_editable_install(tmp_path):
    # build the wheel, unpack it away from the checkout, and load every kind of package data from there
    import subprocess
    import sys
    import zipfile
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                    str(tmp_path / "dist"), str(ROOT)], check=True, capture_output=True)
    wheel = next((tmp_path / "dist").glob("framer_nb-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    for f in ("framer_nb/_data/degradations/light.yaml", "framer_nb/_data/paper/table1.csv",
              "framer_nb/_data/niqe/niqe_pris_params.npz", "framer_nb/_data/priors/tiny-dit/model_card.json"):
        assert f in names, f
    zipfile.ZipFile(wheel).extractall(tmp_path / "site")
    code = ("from framer_nb.paths import DATA_ROOT; from framer_nb.degrade import load_preset; "
            "from framer_nb.tables import paper_table1; from framer_nb.priors import shipped_prior; "
            "load_preset('light'); assert len(paper_table1()) > 10; shipped_prior('tiny-dit'); print(DATA_ROOT)")
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True,
                         env={"PYTHONPATH": str(tmp_path / "site"), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == str(tmp_path / "site" / "framer_nb" / "_data")


def test_code_and_notebooks_pass_ruff():
    """`make lint`'s check, notebooks included (ruff reads .ipynb cells)."""
    root = Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, "-m", "ruff", "check", "framer_nb", "tests", "benchmarks", "research",
                          "notebooks"],
                         cwd=root, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_bitsandbytes_import_warning_is_silenced_unless_the_user_set_its_level():
    """On CPUs with AVX512-BF16 bitsandbytes (via pyiqa) warns at import about an optional kernel; it must not be
    the first line of a CLI error (test_faults) or a stderr output in the notebooks."""
    code = ("import logging, sys; {pre}import framer_nb; "
            "sys.stdout.write(str(logging.getLogger('bitsandbytes').getEffectiveLevel()))")
    quiet = subprocess.run([sys.executable, "-c", code.format(pre="")], capture_output=True, text=True, check=True)
    assert int(quiet.stdout) == 40  # logging.ERROR
    kept = subprocess.run([sys.executable, "-c", code.format(pre="logging.getLogger('bitsandbytes').setLevel(10); ")],
                          capture_output=True, text=True, check=True)
    assert int(kept.stdout) == 10
