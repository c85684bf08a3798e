"""Bad input and faults, by category (docs/faults.md): every input is checked where it enters, with one line that
names the file, key or flag; a run folder is trusted only when whole; filesystem faults and Ctrl-C end with one
line and lose nothing; images load as a viewer shows them; paths are the user's."""

import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from framer_nb import data
from framer_nb import train as T
from framer_nb.__main__ import main
from framer_nb.config import BACKBONES, TrainConfig
from framer_nb.errors import IncompleteRunError
from framer_nb.presets import PRESET_DIR, load_preset

ROOT = Path(__file__).resolve().parents[1]
SMOKE = ["--profile", "smoke", "--backbone", "tiny-dit", "--variant", "baseline", "--seed", "0"]
TINY = dict(batch_size=2, sr_steps=2, ckpt_every=1, log_every=1)


def _one_line(capsys, args: list[str], *needles: str, rc: int = 2) -> str:
    assert main(args) == rc
    err = [line for line in capsys.readouterr().err.strip().splitlines() if "%|" not in line]  # not progress bars
    assert len(err) == 1, err
    for n in needles:
        assert n in err[0], (n, err[0])
    return err[0]


# ---------------------------------------------------------------- arguments, before the heavy imports

@pytest.mark.parametrize("args,needle", [
    (["train", "--backbone", "tiny-ditt"], "--backbone 'tiny-ditt' is not one of tiny-dit"),
    (["pretrain", "--backbone", "sd35-medium", "--steps", "3"], "real pipelines are loaded with --pretrained"),
    (["pretrain", "--backbone", "tiny-unet", "--minutes", "0"], "--minutes must be > 0"),
    (["pretrain", "--backbone", "tiny-unet", "--steps", "4", "--stop-after", "9"], "lies beyond --steps 4"),
    (["reproduce", "--only", "99"], "--only '99' matches no notebook"),
    (["train", "--profile", "smal"], "--profile 'smal' is not one of"),
    (["train", "--lr", "-1"], "--lr must be > 0"),
    (["train", "--ema-decay", "1.5"], "--ema-decay must be in [0, 1)"),
    (["train", "--backbone", "tiny-dit", "--image-size", "36"], "--image-size 36 does not fit tiny-dit"),
    (["evaluate", "--run", "/nonexistent/run"], "--run /nonexistent/run: no such folder"),
])
def test_usage_errors_name_the_flag_and_what_is_allowed(capsys, args, needle):
    _one_line(capsys, args, needle)


@pytest.mark.parametrize("args", [["train", "--backbone", "nope"], ["train", "--backbone", "tiny-dit", "--image-size", "36"],
                                  ["train", "--hr-folder", "{fifo_only}"]])
def test_a_usage_error_imports_nothing_heavy(args, tmp_path):
    fifo_only = tmp_path / "hr"
    fifo_only.mkdir()
    os.mkfifo(fifo_only / "x.png")  # named like an image, but not a regular file: never opened
    args = [a.format(fifo_only=fifo_only) for a in args]
    code = (f"import sys; from framer_nb.__main__ import main; rc = main({args!r}); "
            "print(rc, sorted(m for m in ('torch', 'diffusers', 'pyiqa', 'pandas') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.split() == ["2", "[]"], out.stdout + out.stderr


def test_the_light_backbone_list_is_the_registry():
    from framer_nb.backbones import REGISTRY
    assert tuple(REGISTRY)[:len(BACKBONES)] == BACKBONES


# ---------------------------------------------------------------- degradation presets

def _preset(tmp_path, **changes) -> Path:
    raw = yaml.safe_load((PRESET_DIR / "light.yaml").read_text())
    path = tmp_path / "mine.yaml"
    path.write_text(yaml.safe_dump({**raw, **changes}))
    return path


@pytest.mark.parametrize("changes,needle", [
    ({"noise_range": [-3, 5]}, "noise_range=[-3, 5] is not allowed"),
    ({"blur_sigma": "wide"}, "blur_sigma='wide' is not allowed"),
    ({"jpeg_range": [30, 120]}, "jpeg_range=[30, 120] is not allowed; expected [low, high] with 1 <= low"),
    ({"sinc_prob": 1.5}, "sinc_prob=1.5 is not allowed; expected a probability"),
    ({"kernel_sizes": [6, 11]}, "kernel_sizes=[6, 11] is not allowed"),
    ({"kernel_probs": [1.0]}, "kernel_probs"),
    ({"scale": 4.5}, "scale=4.5"),
])
def test_bad_preset_values_name_the_file_and_the_key(tmp_path, changes, needle):
    path = _preset(tmp_path, **changes)
    with pytest.raises(ValueError, match="mine.yaml") as e:
        load_preset(str(path))
    assert needle in str(e.value)


def test_malformed_yaml_and_scale_mismatch_are_named(tmp_path, capsys):
    bad = tmp_path / "broken.yaml"
    bad.write_text("scale: [4\nnoise: {")
    _one_line(capsys, ["train", *SMOKE, "--runs", str(tmp_path / "r"), "--degradation", str(bad)],
              "broken.yaml: not a readable YAML file")
    with pytest.raises(ValueError, match="scale=4 but the task is x2"):
        load_preset(str(_preset(tmp_path)), scale=2)
    assert load_preset("light").scale == 4


# ---------------------------------------------------------------- captions, pipelines, run folders

def test_bad_captions_and_pipeline_folders_are_one_line(tmp_path, capsys):
    captions = tmp_path / "c.json"
    captions.write_text("{not json")
    _one_line(capsys, ["train", *SMOKE, "--captions", str(captions)], "c.json: the captions file is not readable JSON")
    pipe = tmp_path / "pipe"
    (pipe / "transformer").mkdir(parents=True)
    (pipe / "model_index.json").write_text(json.dumps({"transformer": ["diffusers", "SD3Transformer2DModel"]}))
    (pipe / "transformer" / "config.json").write_text("{}")
    _one_line(capsys, ["train", "--pretrained", str(pipe)], "transformer: no weights")
    (pipe / "transformer" / "config.json").write_text("{oops")
    _one_line(capsys, ["train", "--pretrained", str(pipe)], "config.json: config.json is not readable JSON")
    (pipe / "model_index.json").write_text("[]")
    _one_line(capsys, ["train", "--pretrained", str(pipe)], "model_index.json: not a JSON object")


@pytest.fixture(scope="module")
def done_run(tmp_path_factory):
    cfg = TrainConfig(**TINY)
    return cfg, T.train_sr(cfg, "baseline", tmp_path_factory.mktemp("done") / "runs", progress=False)


def test_a_run_is_done_only_when_whole(done_run, tmp_path):
    cfg, run = done_run
    record = run.done_record()
    assert run.done and any(k.startswith("model/") for k in record["files"])
    text = run.done_file.read_text()
    weights = next(p for p in run.model_dir.iterdir() if p.suffix == ".safetensors")
    try:
        run.done_file.write_text("garbage{")
        with pytest.raises(IncompleteRunError, match="done.json: unreadable done marker.*delete .*done.json"):
            assert run.done
        run.done_file.write_text(text)
        saved = weights.read_bytes()
        weights.unlink()
        with pytest.raises(IncompleteRunError, match="missing, though done.json lists it"):
            T.train_sr(cfg, "baseline", run.root, progress=False)
        weights.write_bytes(saved[:100])
        with pytest.raises(IncompleteRunError, match="100 bytes"):
            assert run.done
        weights.write_bytes(saved)
        assert run.done
    finally:
        run.done_file.write_text(text)


def test_a_deleted_done_marker_is_rebuilt_from_the_final_checkpoint(done_run, tmp_path):
    cfg, run = done_run
    text = run.done_file.read_text()
    run.done_file.unlink()
    again = T.train_sr(cfg, "baseline", run.root, progress=False)  # resumes at the last step: nothing to train
    assert again == run and run.done and json.loads(run.done_file.read_text())["resumed_from"] == cfg.sr_steps
    json.loads(text)


def test_editing_a_preset_or_captions_at_the_same_path_is_a_new_run(tmp_path):
    path = _preset(tmp_path)
    cfg = TrainConfig(degradation=str(path), **TINY)
    before = T.sr_run(cfg, "baseline", tmp_path / "runs")
    path.write_text(path.read_text().replace("gray_noise_prob: 0.4", "gray_noise_prob: 0.5"))
    assert T.sr_run(cfg, "baseline", tmp_path / "runs") != before
    assert "degradation" in T.input_files(cfg) and T.input_files(TrainConfig()) == {}


# ---------------------------------------------------------------- filesystem faults and interrupts

def test_a_full_disk_while_checkpointing_is_one_line_and_keeps_the_last_checkpoint(tmp_path, capsys, monkeypatch):
    from framer_nb import checkpoint
    runs = tmp_path / "runs"
    assert main(["train", *SMOKE, "--runs", str(runs), "--stop-after", "1"]) == 0
    ckpt = next(runs.rglob("checkpoint.safetensors"))
    kept = ckpt.read_bytes()
    real = checkpoint.save_file

    def full(tensors, filename, metadata=None):
        real(tensors, filename, metadata=metadata)
        raise OSError(errno.ENOSPC, "No space left on device", filename)

    monkeypatch.setattr(checkpoint, "save_file", full)
    capsys.readouterr()
    _one_line(capsys, ["train", *SMOKE, "--runs", str(runs)], "No space left on device")
    assert ckpt.read_bytes() == kept  # the atomic rename never happened


def test_runs_under_a_file_is_one_line(tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    _one_line(capsys, ["train", *SMOKE, "--runs", str(tmp_path / "file")], "a file, not a folder")
    _one_line(capsys, ["train", *SMOKE, "--runs", str(tmp_path / "file" / "below")], "Not a directory")


def test_ctrl_c_during_training_exits_130_with_one_line_and_resumes(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "framer_nb", "train", *SMOKE, "--runs", str(tmp_path), "--steps", "400"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 180
    while not list(tmp_path.rglob("checkpoint.safetensors")) and time.time() < deadline:
        time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-2000:]
    lines = [line for line in err.splitlines() if line.strip() and "it/s]" not in line and "s/it]" not in line
             and "%|" not in line]
    assert lines == ["interrupted: what was saved is kept; the same command resumes"], lines
    again = subprocess.run(cmd[:-2] + ["--steps", "400", "--stop-after", "2"], env=env, capture_output=True,
                           text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-2000:]


# ---------------------------------------------------------------- images

def test_only_regular_files_are_read_from_image_folders(tmp_path):
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "a.png")
    os.mkfifo(tmp_path / "b.png")  # reading it would block forever
    (tmp_path / "c.png").mkdir()
    assert [p.name for p in data.list_images(tmp_path)] == ["a.png"]


def test_jpeg_orientation_is_applied_as_a_viewer_shows_it(tmp_path):
    img = np.zeros((20, 40, 3), np.uint8)
    img[:, :20] = 255  # left half white
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise when shown
    Image.fromarray(img).save(tmp_path / "r.jpg", exif=exif.tobytes(), quality=95)
    x = data.load_image(tmp_path / "r.jpg")
    assert tuple(x.shape) == (3, 40, 20)  # shown upright: taller than wide
    assert x[:, :20].mean() > 0.9 and x[:, 20:].mean() < 0.1  # the white half is now on top


# ---------------------------------------------------------------- paths are the user's

def test_reproduce_resolves_relative_paths_against_the_current_folder(tmp_path, monkeypatch, capsys):
    from framer_nb import notebooks
    seen = {}
    monkeypatch.setattr(notebooks, "run_all", lambda profile, build, figures, only, pretrained=None:
                        seen.update(build=build, figures=figures) or 0)
    monkeypatch.chdir(tmp_path)
    assert main(["reproduce", "--profile", "smoke", "--build", "b", "--figures", "f"]) == 0
    assert seen == {"build": tmp_path / "b", "figures": str(tmp_path / "f")}
    assert main(["reproduce", "--profile", "small", "--only", "05"]) == 0
    assert "into the checkout" in capsys.readouterr().err and seen["figures"] == str(ROOT / "figures")


def test_a_swallowed_ctrl_c_still_stops_training_at_the_next_step(tmp_path):
    """A KeyboardInterrupt that lands in a finalizer is swallowed by Python; the flag the CLI's handler sets stops
    the loop anyway, and the same call resumes once it is cleared."""
    from framer_nb import train as T
    from framer_nb.config import TrainConfig
    from framer_nb.errors import INTERRUPTED
    cfg = TrainConfig(**TINY)
    INTERRUPTED.set()
    try:
        with pytest.raises(KeyboardInterrupt):
            T.train_sr(cfg, "baseline", tmp_path, progress=False)
    finally:
        INTERRUPTED.clear()
    assert T.train_sr(cfg, "baseline", tmp_path, progress=False).done
