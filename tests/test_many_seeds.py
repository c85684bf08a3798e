"""research/many_seeds.py: FRAMER - baseline over the first k seeds, measured, beside the power projection."""

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from framer_nb.stats import compare, per_seed_differences

SCRIPT = Path(__file__).parents[1] / "research" / "many_seeds.py"


def _load():
    sys.path.insert(0, str(SCRIPT.parent))
    spec = importlib.util.spec_from_file_location("many_seeds", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _scores(effect: float, seed_sd: float, n_seeds: int, crops: int = 8, rng_seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(rng_seed)
    level = rng.normal(effect, seed_sd, n_seeds)
    return pd.DataFrame([{"backbone": "dit", "variant": v, "seed": s, "image": f"photo_{i}",
                          "psnr": 25.0 + 0.1 * i + (level[s] + rng.normal(0, 0.05) if v == "framer" else 0.0)}
                         for v in ("baseline", "framer") for s in range(n_seeds) for i in range(crops)])


def test_by_seeds_reports_every_prefix_with_the_readmes_method():
    M = _load()
    df = _scores(-0.3, 0.1, 6)
    rows = M.by_seeds(df, "dit", "one-step", projected={"s_a": 0.1, "s_e": 0.05})
    assert [r["seeds"] for r in rows] == [2, 3, 4, 5, 6]
    d = per_seed_differences(df, "psnr", "framer", "baseline")
    for r in rows:
        c = compare(d.iloc[:r["seeds"]])
        assert (r["effect"], r["low"], r["high"], r["mde"]) == pytest.approx((c.effect, c.low, c.high, c.mde), abs=1e-4)
        assert r["meets_target"] == (r["mde"] <= 0.05)
    assert rows[-1]["verdict"] == "worse"
    assert rows[0]["mde_projected"] > rows[-1]["mde_projected"]  # more seeds, a smaller projected MDE


@pytest.mark.parametrize("effect, sd, verdict, meets", [(-0.3, 0.02, "worse", True), (0.3, 0.02, "better", True),
                                                         (0.0, 0.3, "inconclusive", False)])
def test_by_seeds_can_say_each_outcome_and_fail_the_target(effect, sd, verdict, meets):
    M = _load()
    last = M.by_seeds(_scores(effect, sd, 12, rng_seed=3), "dit", "sampled")[-1]
    assert last["verdict"] == verdict and last["meets_target"] is meets and last["target"] == 0.10
    assert "mde_projected" not in last  # no power analysis given: no projection


def test_many_seeds_runs_end_to_end_on_smoke_and_reports_trained_pairs_only(tmp_path):
    runs, out = tmp_path / "runs", tmp_path / "out"
    args = [sys.executable, str(SCRIPT), "--profile", "smoke", "--seeds", "2", "--runs", str(runs), "--workers", "1",
            "--results", str(tmp_path / "results"), "--out", str(out)]
    subprocess.run(args, check=True, capture_output=True, timeout=900)
    doc = json.loads((out / "by_seeds.json").read_text())
    assert doc["seeds"] == [0, 1] and {o["output"] for o in doc["outputs"]} == {"one-step", "sampled"}
    assert (out / "mde_by_seeds.png").exists() and (out / "results_per_image.csv.provenance.json").exists()
    assert json.loads((out / "mde_by_seeds.png.provenance.json").read_text())["command"] == doc["command"]
    for o in doc["outputs"]:
        name = "results_per_image_1step.csv" if o["output"] == "one-step" else "results_per_image.csv"
        df = pd.read_csv(out / name)
        assert set(df["variant"]) == {"bicubic", "baseline", "framer"}
        c = compare(per_seed_differences(df[df["backbone"] == o["backbone"]], "psnr", "framer", "baseline"))
        assert o["all_seeds"]["effect"] == pytest.approx(c.effect, abs=1e-4) and o["all_seeds"]["seeds"] == 2

    M = _load()
    assert M.trained_seeds(M.design(4, "smoke"), runs) == (0, 1)  # seeds 2, 3 not trained: reported over 0, 1
    again = subprocess.run([*args[:5], "4", *args[6:], "--no-train"], capture_output=True, text=True, timeout=900)
    assert again.returncode == 0 and json.loads((out / "by_seeds.json").read_text())["outputs"] == doc["outputs"]
    bad = subprocess.run([*args, "--no-train", "--runs", str(tmp_path / "empty")], capture_output=True, text=True,
                         timeout=900)
    assert bad.returncode != 0 and "fewer than two leading seeds trained" in bad.stderr


@pytest.mark.parametrize("sd, word", [(0.01, "within"), (0.3, "above")])
def test_the_readme_says_whether_the_many_seed_mde_reaches_the_target(tmp_path, sd, word):
    from framer_nb.readme import _more_seeds
    df = _scores(-0.3, sd, 10).assign(task="bicubic")
    for name in ("results_per_image_1step.csv", "results_per_image.csv"):
        df.to_csv(tmp_path / name, index=False)
    (tmp_path / "results_per_image.csv.provenance.json").write_text(
        json.dumps({"steps": 10, "command": "python research/many_seeds.py --seeds 10"}))
    said = _more_seeds(tmp_path)
    c = compare(per_seed_differences(df, "psnr", "framer", "baseline"))
    assert f"over 10 seeds is dit {c.effect:+.2f} dB [{c.low:+.2f}, {c.high:+.2f}]" in said
    assert f"{word} the 0.05 dB target) one step" in said and f"{word} the 0.10 dB target) in 10-step PSNR" in said
    assert "`python research/many_seeds.py --seeds 10`" in said and "seeds 0-9" in said


def _photo_scores(photo_effects: list[float], n_seeds: int = 10, seed_sd: float = 0.02) -> pd.DataFrame:
    """Two crops per photo; FRAMER's effect on photo j is photo_effects[j] plus seed-level noise."""
    rng = np.random.default_rng(7)
    return pd.DataFrame([{"backbone": "dit", "variant": v, "seed": s, "image": f"p{j}_{i}",
                          "psnr": 25.0 + i + (e + rng.normal(0, seed_sd) if v == "framer" else 0.0)}
                         for v in ("baseline", "framer") for s in range(n_seeds)
                         for j, e in enumerate(photo_effects) for i in range(2)])


@pytest.mark.parametrize("effects, each, over", [([-0.4, -0.5, -0.45, -0.55], "worse", "worse"),
                                                  ([-0.4, -1.5, -0.1, -0.6], "worse", "inconclusive"),
                                                  ([-0.5, 0.5, -0.4, 0.6], None, "inconclusive")])
def test_by_photo_says_where_the_effect_lies_and_whether_it_generalises(effects, each, over):
    M = _load()
    res = M.by_photo(_photo_scores(effects), "dit")
    verdicts = [r["verdict"] for r in res["photos"].values()]
    assert len(verdicts) == 4 and (each is None or set(verdicts) == {each})
    if each is None:  # photos that disagree in sign: each decided its own way
        assert set(verdicts) == {"better", "worse"}
    o = res["over_photos"]
    assert o["verdict"] == over and o["n_photos"] == 4
    assert o["effect"] == pytest.approx(np.mean(effects), abs=0.02) and o["mde"] > 0


@pytest.mark.parametrize("effects, said", [
    ([-0.4, -0.5, -0.45, -0.55], ("worse on all 4 test photos (from -0.40 dB, p0, to -0.55 dB, p3)",
                                  "(FRAMER worse;", "the 4 test photos say it extends")),
    ([-0.4, -1.5, -0.1, -0.6], ("worse on all 4 test photos", "(inconclusive;", "4 test photos cannot say")),
    ([-0.5, 0.5, -0.4, 0.6], ("worse on 2, better on 2 of the 4 test photos", "4 test photos cannot say")),
    ([-0.5], ("worse on the one test photo;", "one test photo cannot say")),
])
def test_the_readme_says_on_which_photos_and_whether_the_photos_generalise(effects, said):
    from framer_nb.readme import _photos
    text = _photos(_photo_scores(effects), "dit")
    assert all(s in text for s in said), text
