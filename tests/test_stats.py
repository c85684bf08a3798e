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
