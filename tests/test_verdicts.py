"""Verdicts are computed from the data: each label can come out either way."""

import numpy as np
import pandas as pd

from framer_nb import verdicts as V


def _rows(gaps: dict[str, float], seeds=(0, 1, 2), images=4, noise=0.05) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame([{"variant": v, "seed": s, "image": i, "psnr": 24 + g + rng.normal(0, noise)}
                         for v, g in gaps.items() for s in seeds for i in range(images)])


def test_ordering_says_reproduced_reversed_or_inconclusive():
    claim = ("a beats b", "scope")
    assert V.ordering(_rows({"a": 1.0, "b": 0.0}), "a", "b", *claim).verdict == "reproduced"
    assert V.ordering(_rows({"a": 0.0, "b": 1.0}), "a", "b", *claim).verdict == "reversed"
    noisy = V.ordering(_rows({"a": 0.0, "b": 0.0}, noise=1.0), "a", "b", *claim)
    assert noisy.verdict.startswith("inconclusive (MDE") and noisy.numbers["ci95"].startswith("[")
    one = V.ordering(_rows({"a": 1.0, "b": 0.0}, seeds=(0,)), "a", "b", *claim)
    assert one.verdict == "inconclusive (one seed)" and one.numbers["seeds"] == 1


def test_one_seed_ordering_borrows_a_pooled_spread_and_says_so():
    claim = ("a beats b", "scope")
    tight = V.ordering(_rows({"a": 1.0, "b": 0.0}, seeds=(0,)), "a", "b", *claim, pooled=(0.05, 4))
    assert tight.verdict == "reproduced" and "pooled" in tight.numbers["spread"]
    wide = V.ordering(_rows({"a": 1.0, "b": 0.0}, seeds=(0,)), "a", "b", *claim, pooled=(2.0, 4))
    assert wide.verdict.startswith("inconclusive (MDE")


def test_lower_is_better_metrics_are_oriented():
    df = _rows({"a": 0.0, "b": 1.0}).rename(columns={"psnr": "niqe"})
    assert V.ordering(df, "a", "b", "a beats b", "s", metric="niqe", higher_better=False).verdict == "reproduced"


def _gaps(per_photo: dict[str, float], noise: float = 0.01, t=(300, 700)) -> pd.DataFrame:
    rng = np.random.default_rng(1)
    return pd.DataFrame([{"model": "m", "t": tt, "photo": ph, "image": f"{ph}_{k}", "gap": g + rng.normal(0, noise)}
                         for tt in t for ph, g in per_photo.items() for k in range(2)])


def test_low_first_high_later_has_three_outcomes_with_intervals_over_photos():
    lag = V.low_first_high_later(_gaps({"p1": 0.20, "p2": 0.22, "p3": 0.18, "p4": 0.21}))
    assert [v.verdict for v in lag] == ["reproduced", "reproduced"] and lag[0].numbers["photos"] == 4
    # the tiny U-Net's case: HF ahead of LF over depth, consistently across photos
    unet = V.low_first_high_later(_gaps({"p1": -0.09, "p2": -0.10, "p3": -0.08, "p4": -0.11}))
    assert [v.verdict for v in unet] == ["opposite", "opposite"]
    unclear = V.low_first_high_later(_gaps({"p1": 0.05, "p2": -0.04, "p3": 0.03, "p4": -0.02}))
    assert all(v.verdict.startswith("inconclusive (MDE") for v in unclear)
    one_photo = V.low_first_high_later(_gaps({"p1": 0.3}))
    assert all(v.verdict.startswith("inconclusive") for v in one_photo)  # one unit: no interval, never a pass


def test_cross_sample_uses_other_photos_only_and_has_three_outcomes():
    names = ["a_0", "b_0", "c_0", "a_1", "b_1", "c_1"]
    photos = [n[0] for n in names]

    def mats(lf_other, hf_other, same=0.99, jitter=0.0):
        rng = np.random.default_rng(2)
        lf = [[1.0 if i == j else same if photos[i] == photos[j] else lf_other + rng.normal(0, jitter)
               for j in range(6)] for i in range(6)]
        hf = [[1.0 if i == j else same if photos[i] == photos[j] else hf_other + rng.normal(0, jitter)
               for j in range(6)] for i in range(6)]
        return {"m": {"lf": lf, "hf": hf}}
    assert V.cross_sample(mats(0.9, 0.3, jitter=0.01), names)[0].verdict == "reproduced"
    assert V.cross_sample(mats(0.3, 0.9, jitter=0.01), names)[0].verdict == "opposite"
    # same-photo pairs (0.99 in both bands) are left out: otherwise they would pull LF and HF together
    v = V.cross_sample(mats(0.5, 0.5, jitter=0.2), names)[0]
    assert v.verdict.startswith("inconclusive") and v.numbers["photos"] == 3


def test_beats_bicubic_needs_the_margin_and_both_perceptual_measures():
    def table(psnr, spec_hf, niqe):
        rows = [{"backbone": "bicubic", "variant": "bicubic", "seed": 0, "image": i, "psnr": 24.0, "spec_hf": 8.0,
                 "niqe": 10.0} for i in range(3)]
        rows += [{"backbone": "net", "variant": "framer", "seed": s, "image": i, "psnr": psnr, "spec_hf": spec_hf,
                  "niqe": niqe} for s in (0, 1) for i in range(3)]
        return pd.DataFrame(rows)
    good = V.beats_bicubic(table(25.2, 5.0, 8.0), table(23.0, 5.0, 8.0))
    assert [v.verdict for v in good] == ["reproduced", "reproduced"]
    bad = V.beats_bicubic(table(24.5, 9.0, 8.0), table(23.0, 9.0, 8.0))
    assert [v.verdict for v in bad] == ["not reproduced", "not reproduced"]
    untested = V.beats_bicubic(table(25.2, 5.0, float("nan")), table(23.0, 5.0, float("nan")))
    assert untested[1].verdict == "untested (niqe n/a)"  # NaN never passes
