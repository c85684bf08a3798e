"""Every command the README shows is executed here (with a smoke budget appended; only weight paths differ)."""

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from framer_nb.__main__ import main

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", README, re.S)


def commands() -> list[str]:
    return [line.split("#")[0].strip() for b in blocks("bash") for line in b.splitlines() if line.strip()]


def test_every_readme_command_is_covered_here():
    covered = ("make reproduce", "make test", "python -m framer_nb", "accelerate launch")
    assert commands() and all(c.startswith(covered) for c in commands()), commands()


def test_make_targets_exist():
    for target in ("reproduce", "test", "pretrain", "gpu-check", "lint", "bench", "test-slow"):
        out = subprocess.run(["make", "-n", target], cwd=ROOT, capture_output=True, text=True)
        assert out.returncode == 0, (target, out.stderr)
    assert "pytest" in subprocess.run(["make", "-n", "test"], cwd=ROOT, capture_output=True, text=True).stdout


def test_the_python_example_runs_as_written():
    (code,) = blocks("python")
    exec(compile(code, "README.md", "exec"), {})


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("readme")
    hr = root / "hr"
    hr.mkdir()
    for k in range(3):
        img = (np.random.default_rng(k).random((80, 96, 3)) * 255).astype(np.uint8)
        Image.fromarray(img).save(hr / f"img{k}.png")
    lr_test, hr_test = root / "RealSR" / "LR", root / "RealSR" / "HR"
    lr_test.mkdir(parents=True), hr_test.mkdir(parents=True)
    for k, (h, w) in enumerate(((64, 64), (64, 96))):
        img = (np.random.default_rng(10 + k).random((h, w, 3)) * 255).astype(np.uint8)
        Image.fromarray(img).save(hr_test / f"p{k}.png")
        Image.fromarray(img).resize((w // 4, h // 4), Image.BICUBIC).save(lr_test / f"p{k}.png")
    from framer_nb.toy import make_pipeline
    pipes = {"/models/stable-diffusion-3.5-medium": make_pipeline("sd35-medium", root / "sd35"),
             "/models/stable-diffusion-2-base": make_pipeline("sd2-base", root / "sd2")}
    return {"root": root, "/data/DIV2K_HR": hr, "RealSR/LR": lr_test, "RealSR/HR": hr_test, **pipes}


SMOKE = {"train": ["--profile", "smoke", "--steps", "2"],
         "evaluate": ["--profile", "smoke", "--steps", "2", "--sample-steps", "1"],
         "observe": ["--profile", "smoke"],
         "pretrain": ["--steps", "3", "--stop-after", "2", "--batch-size", "2", "--eval-every", "1"]}
PAPER = ["--profile", "smoke", "--image-size", "64", "--steps", "2", "--batch-size", "2", "--mixed-precision", "no"]


def _args(cmd: str, folders: dict) -> list[str]:
    for placeholder, real in folders.items():
        cmd = cmd.replace(placeholder, str(real))
    return shlex.split(cmd)


def test_cli_commands_run(folders, capsys, monkeypatch):
    runs = folders["root"] / "runs"
    monkeypatch.chdir(folders["root"])
    for cmd in commands():
        if not cmd.startswith("python -m framer_nb") or "--profile paper" in cmd or "reproduce" in cmd:
            continue
        args = _args(cmd, folders)[3:]
        sub = args[0]
        if "<key>" in cmd:  # the run trained by the first command
            run = next(runs.glob("tiny-unet/framer/seed0-*"))
            args = [a.replace(str(folders["root"] / "runs/tiny-unet/framer/seed0-<key>"), str(run))
                    .replace("runs/tiny-unet/framer/seed0-<key>", str(run)) for a in args]
        extra = SMOKE.get(sub, [])
        extra += ["--runs", str(runs)] if sub != "evaluate" or "--run" not in args else []
        extra += ["--out", str(folders["root"] / f"out-{sub}")] if sub in ("observe", "pretrain") else []
        extra += ["--results", str(folders["root"] / "results")] if sub == "evaluate" else []
        assert main(args + extra) == 0, cmd
    out = capsys.readouterr().out
    assert "framer" in out and "n/a: ms_ssim" in out


def test_paper_commands_run_on_tiny_pipelines(folders, monkeypatch):
    monkeypatch.chdir(folders["root"])
    runs = folders["root"] / "paper-runs"
    for cmd in commands():
        if "--profile paper" not in cmd or "reproduce" in cmd:
            continue
        args = _args(cmd, folders)
        if args[0] == "accelerate":  # two gloo processes on this CPU, into their own runs folder
            launcher = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", *args[2:args.index("-m")]]
            full = launcher + ["-m", "framer_nb", *args[args.index("framer_nb") + 1:], *PAPER, "--runs",
                               str(runs / "two")]
            env = {**os.environ, "OMP_NUM_THREADS": "1"}
            proc = subprocess.run(full, capture_output=True, text=True, timeout=900, env=env)
            assert proc.returncode == 0, proc.stderr[-3000:]
            continue
        cache = ["--cache-pairs", "4"] if "--cache-pairs" in args else []  # smoke budget
        assert main(args[3:] + PAPER + cache + ["--runs", str(runs / "one")]) == 0, cmd
    assert any("--cache-pairs" in c for c in commands()) and len(list((runs / "one" / "latents").iterdir())) == 1
    import json
    done = {p.parent.parent.parent.name + "/" + str(json.loads(p.read_text())["num_processes"])
            for p in runs.rglob("done.json")}
    assert done == {"sd35-medium/1", "sd2-base/1", "sd35-medium/2"}


def test_the_readme_and_results_page_say_what_the_committed_figures_say(tmp_path):
    # the generated sections are never edited by hand, nor left behind by a change to what generates them
    from framer_nb.readme import update
    readme, page = tmp_path / "README.md", tmp_path / "results.md"
    readme.write_text(README)
    assert update(readme, ROOT / "figures", page)
    assert readme.read_text() == README
    assert page.read_text() == (ROOT / "docs" / "results.md").read_text()


def test_the_timing_names_its_commit_when_the_tables_were_rebuilt_later(tmp_path):
    import json

    from framer_nb.readme import _timing
    timing = tmp_path / "reproduce_timing.json"
    timing.write_text(json.dumps({"notebooks_s": {"01_x": 60.0, "02_y": 4800.0}, "total_s": 4860.0, "cpu_count": 2,
                                  "budget_min": 90.0, "within_budget": True}))
    for name, commit in (("reproduce_timing.json", "aaa1111"), ("table1_main.md", "aaa1111")):
        (tmp_path / f"{name}.provenance.json").write_text(json.dumps({"git_commit": commit}))
    assert _timing(timing).startswith("This run took 81.0 min") and "**yes**" in _timing(timing)
    (tmp_path / "table1_main.md.provenance.json").write_text(json.dumps({"git_commit": "bbb2222"}))
    assert _timing(timing).startswith("The timed run (commit `aaa1111`; the tables were rebuilt from its trained "
                                      "runs at `bbb2222`) took 81.0 min")
