"""Bad input and faults: each case a new user could meet gives one clear line, loses nothing, and never hangs."""

import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from framer_nb import data
from framer_nb import evaluate as E
from framer_nb import train as T
from framer_nb.__main__ import main
from framer_nb.config import FramerConfig, TrainConfig
from framer_nb.losses import framer_loss
from framer_nb.pairs import folder_source

SMOKE = ["--profile", "smoke", "--backbone", "tiny-dit", "--variant", "baseline", "--seed", "0"]


def _cli(capsys, *args):
    rc = main(list(args))
    out = capsys.readouterr()
    return rc, out.out, out.err


def _one_line_error(err: str, *needles: str) -> None:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for n in needles:
        assert n in lines[0], (n, lines[0])


@pytest.mark.parametrize("args,needle", [
    (["--steps", "0"], "--steps must be >= 1"),
    (["--steps", "-5"], "--steps must be >= 1"),
    (["--batch-size", "0"], "--batch-size must be >= 1"),
    (["--grad-accum", "0"], "--grad-accum must be >= 1"),
    (["--stop-after", "-1"], "--stop-after must be >= 1"),
    (["--seed", str(10 ** 20)], "seed must lie in"),
    (["--variant", ""], "names no variant"),
    (["--variant", "framre"], "unknown variant"),
    (["--degradation", "nope"], "no such degradation preset"),
])
def test_bad_train_arguments_are_one_line_errors(tmp_path, capsys, args, needle):
    base = [a for a in SMOKE if a not in ("--variant", "baseline")] if "--variant" in args else SMOKE
    base = [a for a in base if a not in ("--seed", "0")] if "--seed" in args else base
    rc, _, err = _cli(capsys, "train", *base, "--runs", str(tmp_path), *args)
    assert rc == 2
    _one_line_error(err, needle)
    assert not list(tmp_path.rglob("done.json"))  # nothing is marked done


def test_debug_shows_the_traceback(tmp_path):
    with pytest.raises(Exception, match="--steps must be >= 1"):
        main(["train", *SMOKE, "--runs", str(tmp_path), "--steps", "0", "--debug"])


def test_lr_and_hr_test_folders_go_together(tmp_path, capsys):
    for flag in ("--lr-folder", "--hr-test-folder"):
        rc, _, err = _cli(capsys, "evaluate", "--profile", "smoke", "--runs", str(tmp_path), flag, str(tmp_path))
        assert rc == 2
        _one_line_error(err, "--lr-folder and --hr-test-folder go together")


def test_non_finite_loss_stops_the_run_without_a_done_marker(tmp_path, capsys):
    rc, _, err = _cli(capsys, "train", *SMOKE, "--runs", str(tmp_path), "--lr", "1e30", "--steps", "8")
    assert rc == 3 and "loss is nan" in err.lower()
    assert not list(tmp_path.rglob("done.json"))
    ckpts = list(tmp_path.rglob("checkpoint.safetensors"))
    assert ("last good checkpoint" in err) == bool(ckpts) and ("no checkpoint had been saved" in err) == (not ckpts)
    assert all(all(torch.isfinite(v).all() for k, v in load_file(str(c)).items() if k.startswith("model."))
               for c in ckpts)  # what was kept is finite


def test_framer_loss_propagates_nan_and_survives_huge_magnitudes(maps):
    students, teacher = maps
    bad = students.detach().clone()
    bad[0, 0, 0, 0, 0] = float("nan")
    assert torch.isnan(framer_loss(bad, teacher, neg_layers=[1, 2, 3, 0]).distill)
    ref = framer_loss(students.detach(), teacher, neg_layers=[1, 2, 3, 0]).distill
    huge = framer_loss(students.detach() * 1e30, teacher * 1e30, neg_layers=[1, 2, 3, 0]).distill
    assert torch.isfinite(huge) and huge.item() == pytest.approx(ref.item(), rel=1e-4)  # not an overflowed 0


def test_truncated_checkpoint_names_the_file_and_the_way_out(tmp_path, capsys):
    args = ["train", *SMOKE, "--runs", str(tmp_path)]
    assert _cli(capsys, *args, "--stop-after", "2")[0] == 0
    ckpt = next(tmp_path.rglob("checkpoint.safetensors"))
    ckpt.write_bytes(ckpt.read_bytes()[:1000])
    rc, _, err = _cli(capsys, *args)
    assert rc == 2
    _one_line_error(err, str(ckpt), "--no-resume")
    assert _cli(capsys, *args, "--no-resume")[0] == 0 and list(tmp_path.rglob("done.json"))


def test_a_second_trainer_of_the_same_run_is_refused(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "framer_nb", "train", *SMOKE, "--runs", str(tmp_path), "--steps", "400"]
    first = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 120
        while not list(tmp_path.rglob("lock")) and time.time() < deadline:
            time.sleep(0.5)
        time.sleep(1.0)
        second = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
        assert second.returncode == 2 and "another process" in second.stderr
        assert len(second.stderr.strip().splitlines()) == 1
    finally:
        first.kill()
        first.wait()
    log = next(tmp_path.rglob("log.csv")).read_text().splitlines()
    steps = [r.split(",")[0] for r in log[1:]]
    assert len(steps) == len(set(steps))  # one writer: no step logged twice


def test_runs_are_keyed_and_recorded_by_their_data(tmp_path):
    for name, shade in (("a", 40), ("b", 200)):
        (tmp_path / name).mkdir()
        Image.fromarray(np.full((80, 80, 3), shade, np.uint8)).save(tmp_path / name / "x.png")
    cfg = TrainConfig(batch_size=2, sr_steps=2, ckpt_every=1)
    a, b = (folder_source(tmp_path / n, 64) for n in ("a", "b"))
    ra, rb = T.sr_run(cfg, "baseline", tmp_path / "runs", a), T.sr_run(cfg, "baseline", tmp_path / "runs", b)
    assert ra != rb != T.sr_run(cfg, "baseline", tmp_path / "runs")  # A, B and the built-in photos differ
    T.train_sr(cfg, "baseline", tmp_path / "runs", progress=False, source=a)
    done = ra.done_record()
    assert done["data"].endswith("/a") and done["data_fingerprint"] == a.fingerprint
    Image.fromarray(np.full((80, 80, 3), 41, np.uint8)).save(tmp_path / "a" / "x.png")  # same folder, new content
    assert T.sr_run(cfg, "baseline", tmp_path / "runs", folder_source(tmp_path / "a", 64)) != ra


def test_evaluation_is_keyed_by_test_set_and_handles_mixed_sizes(tmp_path, capsys):
    lr, hr = tmp_path / "LR", tmp_path / "HR"
    lr.mkdir(), hr.mkdir()
    for k, (h, w) in enumerate(((64, 64), (64, 96))):  # RealSR pairs differ in size
        img = (np.random.default_rng(k).random((h, w, 3)) * 255).astype(np.uint8)
        Image.fromarray(img).save(hr / f"p{k}.png")
        Image.fromarray(img).resize((w // 4, h // 4), Image.BICUBIC).save(lr / f"p{k}.png")
    runs = tmp_path / "runs"
    assert _cli(capsys, "train", *SMOKE, "--runs", str(runs))[0] == 0
    common = ["evaluate", *SMOKE, "--runs", str(runs), "--results", str(tmp_path / "res"), "--sample-steps", "1"]
    rc, out, _ = _cli(capsys, *common, "--lr-folder", str(lr), "--hr-test-folder", str(hr))
    assert rc == 0 and "n/a: ms_ssim" in out  # the reason of every n/a metric is printed
    rc, out2, _ = _cli(capsys, *common)
    assert rc == 0
    evals = sorted(p.name for p in runs.rglob("eval/*"))
    assert len(evals) == 2 and evals[0] != evals[1]  # two test sets: two score folders, neither overwritten
    folder = E.folder_test_set(lr, hr)
    assert [tuple(x.shape) for x in folder.hr] == [(3, 64, 64), (3, 64, 96)]


def test_duplicate_stems_are_refused_with_both_names(tmp_path):
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "a.png")
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "a.jpg")
    with pytest.raises(data.ImageLoadError, match=r"a\.jpg.*a\.png|a\.png.*a\.jpg"):
        data.list_images(tmp_path)


def test_32_bit_and_float_tiffs_are_read_exactly_or_refused(tmp_path):
    fits = tmp_path / "fits.tif"
    Image.fromarray(np.full((4, 4), 65535, np.int32), mode="I").save(fits)
    assert torch.allclose(data.load_image(fits), torch.ones(3, 4, 4))
    big = tmp_path / "big.tif"
    Image.fromarray(np.full((4, 4), 2 ** 20, np.int32), mode="I").save(big)
    with pytest.raises(data.ImageLoadError, match="big.tif.*do not fit 16 bits"):
        data.load_image(big)
    unit = tmp_path / "unit.tif"
    Image.fromarray(np.full((4, 4), 0.25, np.float32), mode="F").save(unit)
    assert torch.allclose(data.load_image(unit), torch.full((3, 4, 4), 0.25))
    hdr = tmp_path / "hdr.tif"
    Image.fromarray(np.full((4, 4), 7.5, np.float32), mode="F").save(hdr)
    with pytest.raises(data.ImageLoadError, match=r"hdr.tif.*expected values in \[0, 1\]"):
        data.load_image(hdr)


def test_decompression_bomb_names_the_file(tmp_path):
    bomb = tmp_path / "bomb.png"
    Image.new("1", (15000, 15000)).save(bomb)  # 225 Mpx in a few kB
    with pytest.raises(data.ImageLoadError, match="bomb.png.*decompression bomb"):
        data.load_image(bomb)


def test_same_seed_same_weights(tmp_path):
    # the contrastive variants and the U-Net used to drift between identical runs
    cfg = TrainConfig(backbone="tiny-unet", batch_size=16, sr_steps=3, ckpt_every=3)
    runs = [T.train_sr(cfg, "framer", tmp_path / name, progress=False) for name in ("one", "two")]
    a, b = (load_file(str(r.checkpoint)) for r in runs)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert FramerConfig().objective == "contrastive"
    assert json.loads(runs[0].info_file.read_text())["key_parts"] == json.loads(runs[1].info_file.read_text())["key_parts"]
