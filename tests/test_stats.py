"""framer_nb.stats: each verdict outcome happens, and NaN never passes."""

import math

import numpy as np
import pandas as pd
import pytest

from framer_nb.stats import compare, per_seed_differences


def test_each_outcome_of_a_verdict():
    assert compare([0.30, 0.32, 0.31]).verdict() == "better"
    assert compare([-0.30, -0.32, -0.31]).verdict() == "worse"
    assert compare([-0.30, -0.32, -0.31]).verdict(higher_is_better=False) == "better"  # e.g. NIQE went down
    assert compare([0.5, -0.4, 0.2]).verdict() == "inconclusive"
    assert compare([0.30, 0.32, 0.31]).verdict(margin=0.5) == "inconclusive"  # the claim needs more than the margin


def test_nan_and_single_seeds_never_pass():
    assert compare([0.3]).verdict() == "inconclusive" and math.isnan(compare([0.3]).low)
    assert compare([0.3, float("nan"), 0.4]).verdict() == "inconclusive"
    assert compare([]).n_seeds == 0 and compare([]).verdict() == "inconclusive"


def test_interval_and_mde_match_students_t():
    c = compare([1.0, 2.0, 3.0])
    assert c.effect == 2.0 and c.high - c.effect == pytest.approx(4.302653 * 1 / math.sqrt(3), rel=1e-5)
    assert c.mde == pytest.approx((4.302653 + 1.060660) / math.sqrt(3), rel=1e-5)
    assert "+2.000 dB [" in c.describe("dB") and "(3 seeds)" in c.describe()


def test_differences_are_paired_by_image_within_seed():
    rows = [{"seed": s, "image": i, "variant": v, "psnr": base + (0.1 if v == "framer" else 0.0) + s}
            for s in range(3) for i, base in (("a", 20.0), ("b", 30.0)) for v in ("baseline", "framer")]
    rows.append({"seed": 3, "image": "a", "variant": "framer", "psnr": 99.0})  # no baseline to pair with: dropped
    d = per_seed_differences(pd.DataFrame(rows), "psnr", "framer", "baseline")
    assert list(d.index) == [0, 1, 2] and np.allclose(d.values, 0.1)


def test_pooled_spread_for_one_seed_comparisons():
    from framer_nb.stats import pooled_comparison, pooled_sd
    sd, dof = pooled_sd([[1.0, 2.0, 3.0], [0.0, 2.0], [5.0]])  # the one-value set adds nothing
    assert dof == 3 and sd == pytest.approx(math.sqrt((2.0 + 2.0) / 3))
    c = pooled_comparison(0.5, 0.1, 3)
    assert c.high - c.effect == pytest.approx(3.182446 * 0.1, rel=1e-5) and c.verdict() == "better"
    assert pooled_comparison(0.5, float("nan"), 0).verdict() == "inconclusive"


def test_crops_are_grouped_by_their_photo():
    from framer_nb.stats import photo_of
    assert photo_of("grace_hopper_1") == "grace_hopper" and photo_of("snow_road_0") == "snow_road"
    assert photo_of("coffee") == "coffee" and photo_of("motorcycle_left") == "motorcycle_left"


def test_per_photo_differences_average_a_photos_crops_within_each_seed():
    from framer_nb.stats import per_photo_differences
    gain = {"cat_0": 0.1, "cat_1": 0.3, "road_0": -0.2, "road_1": -0.2}
    rows = [{"seed": s, "image": i, "variant": v, "psnr": 25.0 + s + (g + 0.01 * s if v == "framer" else 0.0)}
            for s in range(3) for i, g in gain.items() for v in ("baseline", "framer")]
    df = pd.DataFrame(rows)
    d = per_photo_differences(df, "psnr", "framer", "baseline")
    assert list(d.columns) == ["cat", "road"] and list(d.index) == [0, 1, 2]
    assert np.allclose(d["cat"], [0.20, 0.21, 0.22]) and np.allclose(d["road"], [-0.20, -0.19, -0.18])
    # two crops per photo: the mean over photos is the per-seed effect
    assert np.allclose(d.mean(axis=1), per_seed_differences(df, "psnr", "framer", "baseline"))
    assert per_photo_differences(df[df["variant"] == "framer"], "psnr", "framer", "baseline").empty
