"""Paired comparisons over training seeds: the effect, its 95% interval, and a verdict with three outcomes.

A seed is the unit: each seed's variants are trained on the same data and scored on the same crops, so one seed
gives one paired difference (the mean over crops of variant A minus variant B). The interval is Student's t over
those per-seed differences; with few seeds it is wide, which is the honest answer. The minimum detectable effect
(MDE) is the true difference the design would find with 80% power at the 5% level (two-sided): (t_0.975 + t_0.8)
times the standard error.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

# The MDE of FRAMER - baseline in PSNR a design should reach to resolve effects of the size that matter here (dB)
MDE_TARGETS = {"one-step": 0.05, "sampled": 0.10}


@dataclass(frozen=True)
class Comparison:
    """A minus B on one metric: mean over seeds, its 95% interval and the design's minimum detectable effect."""

    metric: str
    effect: float
    low: float
    high: float
    mde: float
    n_seeds: int

    def verdict(self, higher_is_better: bool = True, margin: float = 0.0) -> str:
        """'better' or 'worse' when the interval lies past `margin` on one side of zero, else 'inconclusive'
        (also without an interval, e.g. one seed and no pooled spread: NaN never passes)."""
        if any(math.isnan(v) for v in (self.low, self.high)):
            return "inconclusive"
        if self.low > margin:
            return "better" if higher_is_better else "worse"
        if self.high < -margin:
            return "worse" if higher_is_better else "better"
        return "inconclusive"

    def describe(self, unit: str = "") -> str:
        """'+0.19 dB [−0.50, +0.88], MDE 0.98' (3 seeds)."""
        u = f" {unit}" if unit else ""
        return (f"{self.effect:+.3f}{u} [{self.low:+.3f}, {self.high:+.3f}], MDE {self.mde:.3f}"
                f" ({self.n_seeds} seed{'s' * (self.n_seeds != 1)})")


def _paired(df: pd.DataFrame, metric: str, a: str, b: str) -> pd.Series:
    """Variant `a` minus variant `b`, indexed by (seed, image): rows paired by image within a seed."""
    wide = df[df["variant"].isin([a, b])].pivot_table(index=["seed", "image"], columns="variant", values=metric)
    wide = wide.dropna()
    if a not in wide or b not in wide:
        return pd.Series(dtype=float)
    return wide[a] - wide[b]


def per_seed_differences(df: pd.DataFrame, metric: str, a: str, b: str) -> pd.Series:
    """Per seed, the mean over images of variant `a` minus variant `b` (rows paired by image; seeds present in both)."""
    d = _paired(df, metric, a, b)
    return d.groupby(level="seed").mean() if len(d) else d


def per_photo_differences(df: pd.DataFrame, metric: str, a: str, b: str) -> pd.DataFrame:
    """Per seed (rows) and photo (columns), the mean over the photo's crops of variant `a` minus variant `b`.
    Each column's mean over seeds is that photo's effect; with equal crops per photo, the mean over photos of
    those is the effect `per_seed_differences` gives."""
    d = _paired(df, metric, a, b)
    if not len(d):
        return pd.DataFrame()
    photos = d.index.get_level_values("image").map(photo_of)
    return d.groupby([d.index.get_level_values("seed"), photos]).mean().unstack()


def photo_effects(df: pd.DataFrame, metric: str, a: str, b: str) -> tuple[dict[str, Comparison], Comparison]:
    """`a` minus `b` on each photo (interval over seeds), and with the photos as the unit (t over the photos'
    seed-averaged effects): what the photos scored can say about other photos like them."""
    d = per_photo_differences(df, metric, a, b)
    return {ph: compare(d[ph], metric) for ph in d.columns}, compare(d.mean(axis=0), metric)


def compare(diffs: pd.Series | np.ndarray, metric: str = "") -> Comparison:
    """The t-interval (95%) and MDE (80% power) of the mean of per-seed differences."""
    d = np.asarray(diffs, dtype=float)
    n = len(d)
    if n == 0:
        nan = float("nan")
        return Comparison(metric, nan, nan, nan, nan, 0)
    mean = float(d.mean())
    if n < 2:
        return Comparison(metric, mean, float("nan"), float("nan"), float("nan"), n)
    se = float(d.std(ddof=1)) / math.sqrt(n)
    t975, t80 = stats.t.ppf(0.975, n - 1), stats.t.ppf(0.8, n - 1)
    return Comparison(metric, mean, mean - t975 * se, mean + t975 * se, float((t975 + t80) * se), n)


def pooled_comparison(effect: float, sd: float, df: int, metric: str = "") -> Comparison:
    """One paired difference (one seed) with the spread of a paired difference measured elsewhere: `sd`, the std
    over seeds of per-seed differences with `df` degrees of freedom (pooled from the main variants). The
    interval is effect +- t_0.975(df) * sd, the MDE (t_0.975 + t_0.8) * sd."""
    if df < 1 or math.isnan(sd):
        nan = float("nan")
        return Comparison(metric, effect, nan, nan, nan, 1)
    t975, t80 = stats.t.ppf(0.975, df), stats.t.ppf(0.8, df)
    return Comparison(metric, effect, effect - t975 * sd, effect + t975 * sd, float((t975 + t80) * sd), 1)


def pooled_sd(diff_sets: list[pd.Series | np.ndarray]) -> tuple[float, int]:
    """The pooled std over seeds of several sets of per-seed paired differences, and its degrees of freedom."""
    sets = [np.asarray(d, dtype=float) for d in diff_sets]
    sets = [d[~np.isnan(d)] for d in sets]
    sets = [d for d in sets if len(d) > 1]
    df = sum(len(d) - 1 for d in sets)
    if not df:
        return float("nan"), 0
    return math.sqrt(sum(((d - d.mean()) ** 2).sum() for d in sets) / df), df


def photo_of(image: str) -> str:
    """The photo a crop came from: 'grace_hopper_1' -> 'grace_hopper'. Crops of one photo are not independent
    draws, so intervals over images are taken over photos."""
    head, _, tail = image.rpartition("_")
    return head if head and tail.isdigit() else image
