"""Verdicts are computed from the data: each label can come out either way."""

import numpy as np
import pandas as pd

from framer_nb import verdicts as V


def _rows(gaps: dict[str, float], seeds=(0, 1, 2), images=4, noise=0.05) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame([{"variant": v, "seed": s, "image": i, "psnr": 24 + g + rng.normal(0, noise)}
                         for v, g in gaps.items() for s in seeds for i in range(images)])


def test_ordering_says_reproduced_reversed_within_noise_or_untested():
    claim = ("a beats b", "scope")
    assert V.ordering(_rows({"a": 1.0, "b": 0.0}), "a", "b", *claim).verdict == "reproduced"
    assert V.ordering(_rows({"a": 0.0, "b": 1.0}), "a", "b", *claim).verdict == "reversed"
    assert V.ordering(_rows({"a": 0.0, "b": 0.0}, noise=1.0), "a", "b", *claim).verdict == "within noise"
    one = V.ordering(_rows({"a": 1.0, "b": 0.0}, seeds=(0,)), "a", "b", *claim)
    assert one.verdict == "untested (one seed)" and one.numbers["seeds"] == 1


def test_lower_is_better_metrics_are_oriented():
    df = _rows({"a": 0.0, "b": 1.0}).rename(columns={"psnr": "niqe"})
    assert V.ordering(df, "a", "b", "a beats b", "s", metric="niqe", higher_better=False).verdict == "reproduced"


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
