"""The premise measure (observe.premise_gaps, research/premise.py) and the power analysis (research/power.py)."""

import importlib.util
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from framer_nb import backbones as B
from framer_nb.config import profile


def _load(name):
    spec = importlib.util.spec_from_file_location(name, Path(__file__).parents[1] / "research" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("backbone", ["tiny-dit", "tiny-unet"])
def test_premise_gaps_per_crop_over_the_first_three_quarters_of_depth(backbone):
    from framer_nb.observe import observation_images, premise_gaps
    bb = B.build(backbone, seed=0)
    images = observation_images(profile("smoke"), n=4, size=64, photos=("coffee", "garden"))
    gaps = premise_gaps(bb, images, timesteps=(300,))
    assert list(gaps["image"]) == ["coffee_0", "garden_0", "coffee_1", "garden_1"]
    assert list(gaps["photo"]) == ["coffee", "garden", "coffee", "garden"]
    L = bb.num_students
    assert (gaps["layers"] == sum(i / (L - 1) <= 0.75 for i in range(L))).all()
    assert np.allclose(gaps["gap"], gaps["lf"] - gaps["hf"], atol=1e-6)
    from framer_nb.observe import premise_summary
    summary = premise_summary(gaps)["300"]
    assert (summary["photos"], summary["crops"]) == (2, 4)  # the interval is over photos, not crops
    assert summary["gap"] == pytest.approx(gaps.groupby("photo")["gap"].mean().mean(), abs=1e-4)
    assert summary["reading"] in ("lag", "opposite", "inconclusive")


def test_premise_candidates_register_their_shapes_and_targets(monkeypatch):
    monkeypatch.setattr(B, "REGISTRY", dict(B.REGISTRY))  # the candidates' registrations end with the test
    P = _load("premise")
    for name in P.CANDIDATES:
        cfg = P.prior_config(name, steps=2)
        assert cfg.target in ("image", "residual") and B.spec(cfg.backbone).config  # registered
    deep = B.build(P.prior_config("dit12-image", 2).backbone)
    assert deep.num_students == 11  # 12 blocks: the last one's output is the teacher


def test_power_components_recover_known_variances_and_the_mde_formula():
    W = _load("power")
    rng = np.random.default_rng(0)
    k, n, s_a, s_e = 400, 64, 0.1, 0.3
    d = pd.DataFrame(0.2 + rng.normal(0, s_a, (k, 1)) + rng.normal(0, 0.2, (1, n)) + rng.normal(0, s_e, (k, n)))
    c = W.components(d)
    assert c["s_e"] == pytest.approx(s_e, rel=0.03) and c["s_a"] == pytest.approx(s_a, rel=0.15)
    assert c["effect"] == pytest.approx(float(d.to_numpy().mean())) and (c["seeds"], c["crops"]) == (k, n)
    assert W.mde(3, 8, 0.0, 0.2) == pytest.approx((4.302653 + 1.060660) * 0.2 / math.sqrt(24), rel=1e-5)
    assert W.smallest_design(0.0, 0.2, 0.2)["seeds"] == 3  # noise alone: crops are enough
    assert W.smallest_design(1.0, 0.2, 0.1) is None  # a seed-level spread no crop count can beat


def test_image_target_comparison_reads_framer_minus_baseline_with_intervals():
    probe = _load("image_target")
    assert probe.PROFILE.train_for("tiny-dit").target == "image" and probe.PROFILE.backbones == ("tiny-dit",)
    rows = [{"variant": "bicubic", "seed": 0, "image": i, "psnr": 24.0, "ssim": 0.7, "psnr_hf": 20.0}
            for i in ("a", "b")]
    rows += [{"variant": v, "seed": s, "image": i, "psnr": 25.0 + (0.2 + 0.01 * s if v == "framer" else 0.0),
              "ssim": 0.75, "psnr_hf": 21.0} for v in ("baseline", "framer") for s in (0, 1, 2) for i in ("a", "b")]
    out = {r["metric"]: r for r in probe.comparison(pd.DataFrame(rows), steps=1)}
    assert out["psnr"]["verdict"] == "FRAMER better" and out["psnr"]["framer_minus_baseline"] == pytest.approx(0.21)
    assert out["ssim"]["verdict"] == "inconclusive"  # no difference at all: never a direction
    assert out["psnr gain over bicubic, baseline"]["value"] == pytest.approx(1.0)


def test_the_finding_says_where_the_premise_holds_and_what_framer_did_there():
    from framer_nb.readme import _lags, _where
    rng = np.random.default_rng(0)
    gaps = pd.DataFrame([{"backbone": b, "t": t, "photo": f"p{i}", "gap": g + 0.01 * rng.standard_normal()}
                         for b, g300, g700 in (("dit", 0.15, 0.14), ("unet", 0.0, -0.09))
                         for t, g in ((300, g300), (700, g700)) for i in range(8)])
    assert _lags(gaps, "dit") and not _lags(gaps, "unet")  # the U-Net: no lag at 300, HF leads at 700
    scores = pd.DataFrame([{"backbone": b, "variant": v, "seed": s, "image": i,
                            "psnr": 25 + (d + 0.01 * s if v == "framer" else 0.0) + 0.1 * i}
                           for b, d in (("dit", -0.5), ("unet", 0.0)) for v in ("baseline", "framer")
                           for s in (0, 1, 2) for i in range(4)])
    said = _where(["dit", "unet"], gaps, scores, scores, 10)
    assert said.startswith("Where the premise holds (dit), FRAMER's PSNR is dit: worse one step and worse in")
    assert "where it does not (unet), FRAMER's PSNR is unet: not distinguishable one step" in said
    none_lag = gaps.assign(gap=-gaps["gap"].abs())
    assert _where(["dit", "unet"], none_lag, scores, scores, 10).startswith("Where it does not (dit, unet)")


def test_the_residual_contrast_is_said_from_its_stored_scores():
    import json

    from framer_nb.readme import CONTRAST, _contrast
    from framer_nb.stats import compare, per_seed_differences
    said = _contrast(CONTRAST)
    prov = json.loads((CONTRAST / "results_per_image.csv.provenance.json").read_text())
    one = pd.read_csv(CONTRAST / "results_per_image_1step.csv")
    c = compare(per_seed_differences(one[one["backbone"] == "tiny-unet"], "psnr", "framer", "baseline"), "psnr")
    assert f"tiny-unet {c.effect:+.2f} dB [{c.low:+.2f}, {c.high:+.2f}]" in said
    assert "research/results/small_residual/" in said and f"in {prov['steps']}-step samples" in said
    assert "premise holds (" not in said.lower()  # neither residual prior lags at both timesteps


def test_seed_noise_wander_is_the_spread_around_the_trend():
    N = _load("seed_noise")
    assert N.wander({100: 1.0, 200: 2.0, 300: 3.0, 400: 4.0}) == pytest.approx(0.0, abs=1e-9)  # a trend is not wander
    zigzag = {s: 20.0 + 0.001 * s + (0.1 if i % 2 else -0.1) for i, s in enumerate(range(50, 450, 50))}
    assert N.wander(zigzag) == pytest.approx(0.1, rel=0.2)
    assert N.wander({1: 1.0, 2: 2.0}) is None


def test_power_reports_each_variants_spread_over_seeds_and_their_correlation(tmp_path):
    W = _load("power")
    rng = np.random.default_rng(1)
    base, fram = rng.normal(0, 0.1, 6), rng.normal(0, 0.3, 6)  # per-seed offsets, drawn independently
    rows = [{"task": "bicubic", "backbone": "tiny-dit", "variant": v, "seed": s, "image": f"im{i}",
             "psnr": 25.0 + (0.0 if v == "baseline" else -0.5) + off[s] + 0.01 * i}
            for v, off in (("baseline", base), ("framer", fram)) for s in range(6) for i in range(4)]
    pd.DataFrame(rows).to_csv(tmp_path / "scores.csv", index=False)
    (r,) = W.analyse(tmp_path / "scores.csv", "one-step")
    assert r["sd_over_seeds_baseline"] == pytest.approx(base.std(ddof=1), abs=1e-4)
    assert r["sd_over_seeds_framer"] == pytest.approx(fram.std(ddof=1), abs=1e-4)
    assert r["corr_over_seeds"] == pytest.approx(np.corrcoef(base, fram)[0, 1], abs=1e-3)
    assert r["effect"] == pytest.approx(-0.5 + (fram - base).mean(), abs=1e-4)


def test_seed_noise_over_training_gives_the_spread_over_seeds_per_step():
    N = _load("seed_noise")
    runs = [{"schedule": "cosine", "variant": "framer", "seed": k, "trace": {"50": 20.0 + k, "100": 21.0}}
            for k in range(3)] + [{"schedule": "constant", "variant": "framer", "seed": 0, "trace": {"50": 5.0}}]
    rows = {(r["schedule"], r["step"]): r for r in N.over_training(runs)}
    assert rows["cosine", 50]["mean"] == 21.0 and rows["cosine", 50]["sd_over_seeds"] == 1.0
    assert rows["cosine", 100]["sd_over_seeds"] == 0.0 and rows["cosine", 100]["seeds"] == 3
    assert rows["constant", 50]["sd_over_seeds"] is None  # one seed: no spread


def test_seed_noise_runs_end_to_end_on_smoke(tmp_path):
    import json
    import subprocess
    import sys
    script = Path(__file__).parents[1] / "research" / "seed_noise.py"
    out = tmp_path / "noise.json"
    args = [sys.executable, str(script), "--profile", "smoke", "--constant-seeds", "0", "--cosine-seeds", "0", "1",
            "--trace", "4", "--every", "2", "--runs", str(tmp_path / "runs"), "--out", str(out)]
    subprocess.run(args, check=True, capture_output=True, timeout=900)
    doc = json.loads(out.read_text())
    assert {(r["schedule"], r["variant"], r["seed"]) for r in doc["runs"]} == {
        (s, v, k) for s, ks in (("constant", [0]), ("cosine", [0, 1])) for v in ("baseline", "framer") for k in ks}
    assert all(sorted(map(int, r["trace"])) == [2, 4] and set(r["final"]) == {"1", "2"} for r in doc["runs"])
    cosine_1step = next(r for r in doc["summary"] if (r["schedule"], r["steps"]) == ("cosine", 1))
    assert cosine_1step["seeds"] == 2 and len(cosine_1step["effect"]) == 3  # an interval over the two seeds
    assert out.with_suffix(".png").exists() and doc["profile"] == "smoke"
    first = {(r["schedule"], r["variant"], r["seed"]): r["final"] for r in doc["runs"]}
    subprocess.run(args, check=True, capture_output=True, timeout=900)  # runs and scores are kept: the same
    assert {(r["schedule"], r["variant"], r["seed"]): r["final"] for r in json.loads(out.read_text())["runs"]} == first
