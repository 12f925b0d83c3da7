"""The statistics of the comparison tables: bootstrap CIs over seeds, pairwise tests, ranks.

    mean_ci(values)        mean and 95% percentile-bootstrap CI (scipy.stats.bootstrap, fixed seed);
                           with one value the CI is undefined (NaN, NaN)
    mean_sd(values)        mean and sd of the finite values, without overflow where they are representable

Values near the float maximum (a diverging metric, a hostile store) are scaled by a power of two
before they are summed (`scale_of`), which is exact: the sum of 3 x 1.7e308 overflows, their mean
does not. An aggregate that still cannot be represented (the sd of -1.7e308 and 1.7e308) is
infinite, and tables print it as `overflow`, never as a number.
    holm(pvalues)          Holm-Bonferroni adjusted p-values (step-down, monotone, capped at 1)
    pairwise_tests(...)    two-sided Mann-Whitney U between every pair of settings, per dataset
                           and metric; Holm-corrected within that family (one dataset, one metric)
    rank_table(...)        each setting's rank within each metric (1 = best, ties averaged,
                           respecting the metric's direction) and its mean rank over metrics
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd
from scipy import stats

from vaebench.metrics.registry import declaration_of

CONFIDENCE = 0.95
BOOTSTRAP_RESAMPLES = 9999
BOOTSTRAP_SEED = 20240601
ALPHA = 0.05


def higher_is_better(value_name: str) -> bool:
    """The declared direction of a stored value (undeclared names count as lower-is-better)."""
    declared = declaration_of(value_name)
    return bool(declared is not None and declared.higher_is_better)


def natural_key(text: object) -> tuple:
    """Sort key that orders numbers in text by value: 'beta=2.0' before 'beta=16.0'."""
    parts = re.split(r"(-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)", str(text))
    return tuple((0, float(p), "") if i % 2 else (1, 0.0, p) for i, p in enumerate(parts))


SCALE_ABOVE = 2.0**1000  # finite values this large are scaled before they are summed


def scale_of(x: np.ndarray) -> float:
    """A power of two s such that sums of x / s cannot overflow: 1 for ordinary values (results unchanged)."""
    big = float(np.max(np.abs(x))) if x.size else 0.0
    if not math.isfinite(big) or big < SCALE_ABOVE:
        return 1.0
    return math.ldexp(1.0, math.frexp(big)[1] - 10)  # x / s is below 2**10


def finite_values(values: Iterable[float]) -> np.ndarray:
    """The finite numbers among `values` (None, NaN and infinities left out), as float64."""
    return np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=np.float64)


def mean_sd(values: Iterable[float]) -> tuple[float, float]:
    """(mean, sd with ddof 1) of the finite `values`, computed on the scaled values (see the module
    docstring); NaN where undefined, infinite where the result overflows."""
    x = finite_values(values)
    if x.size == 0:
        return math.nan, math.nan
    s = scale_of(x)
    with np.errstate(over="ignore"):
        y = x / s
        return float(y.mean() * s), float(y.std(ddof=1) * s) if x.size > 1 else math.nan


def mean_ci(values: Iterable[float], *, seed: int = BOOTSTRAP_SEED) -> tuple[float, float, float]:
    """(mean, CI low, CI high) of the finite `values`; the CI is NaN with fewer than two values.

    The interval is scipy's percentile bootstrap of the mean with a freshly seeded generator, so
    a cell's interval depends only on its own values. Percentile rather than BCa: with the 2 to 10
    seeds of a benchmark BCa's jackknife acceleration is unstable and can come out undefined.
    """
    x = finite_values(values)
    if x.size == 0:
        return math.nan, math.nan, math.nan
    s = scale_of(x)
    x = x / s
    mean = float(x.mean()) * s
    if x.size < 2:
        return mean, math.nan, math.nan
    if np.all(x == x[0]):
        return mean, float(x[0]) * s, float(x[0]) * s
    res = stats.bootstrap(
        (x,), np.mean, n_resamples=BOOTSTRAP_RESAMPLES, confidence_level=CONFIDENCE, method="percentile",
        vectorized=True, random_state=np.random.default_rng(seed),
    )
    return mean, float(res.confidence_interval.low) * s, float(res.confidence_interval.high) * s


def holm(pvalues: Sequence[float]) -> np.ndarray:
    """Holm (1979) step-down adjusted p-values, in the input order; NaNs stay NaN and are not counted.

    With the m finite p-values sorted ascending, p_(1) <= ... <= p_(m):
        adj_(i) = min(1, max_{j <= i} (m - j + 1) p_(j))
    Rejecting where adj < alpha controls the family-wise error rate at alpha.
    """
    p = np.asarray(pvalues, dtype=np.float64)
    out = np.full(p.shape, np.nan)
    finite = np.flatnonzero(np.isfinite(p))
    m = finite.size
    if m == 0:
        return out
    order = finite[np.argsort(p[finite], kind="stable")]
    scaled = (m - np.arange(m)) * p[order]
    out[order] = np.minimum(1.0, np.maximum.accumulate(scaled))
    return out


def min_attainable_p(n1: int, n2: int) -> float:
    """The smallest two-sided exact Mann-Whitney p-value with n1 and n2 observations (no ties)."""
    return min(1.0, 2.0 / math.comb(n1 + n2, n1))


def pairwise_tests(runs: pd.DataFrame, metrics: Sequence[str], *, alpha: float = ALPHA) -> pd.DataFrame:
    """One row per (dataset, metric, pair of settings): U, p, Holm-adjusted p, significance, better.

    `runs`: completed runs, one row each, with `dataset`, `setting` and a column per metric.
    A pair where either side has fewer than two finite values is untestable (p = NaN).
    """
    rows = []
    for dataset, group in runs.groupby("dataset", sort=True):
        settings = sorted(group["setting"].unique(), key=natural_key)
        for metric in metrics:
            if metric not in group:
                continue
            family = []
            for a, b in itertools.combinations(settings, 2):
                xa = finite_values(group.loc[group["setting"] == a, metric].tolist())
                xb = finite_values(group.loc[group["setting"] == b, metric].tolist())
                u = p = math.nan
                if len(xa) >= 2 and len(xb) >= 2:
                    if np.all(np.concatenate([xa, xb]) == xa[0]):
                        u, p = len(xa) * len(xb) / 2.0, 1.0
                    else:
                        res = stats.mannwhitneyu(xa, xb, alternative="two-sided", method="auto")
                        u, p = float(res.statistic), float(res.pvalue)
                better = ""
                if len(xa) and len(xb) and _mean(xa) != _mean(xb):
                    a_higher = _mean(xa) > _mean(xb)
                    better = a if a_higher == higher_is_better(metric) else b
                family.append(
                    {"dataset": dataset, "metric": metric, "setting_a": a, "setting_b": b, "n_a": len(xa),
                     "n_b": len(xb), "mean_a": _mean(xa), "mean_b": _mean(xb), "u": u, "p": p, "better": better}
                )
            adjusted = holm([r["p"] for r in family])
            for r, adj in zip(family, adjusted):
                r["p_holm"] = float(adj)
                r["significant"] = bool(np.isfinite(adj) and adj < alpha)
            rows.extend(family)
    columns = ["dataset", "metric", "setting_a", "setting_b", "n_a", "n_b", "mean_a", "mean_b", "u", "p", "p_holm",
               "significant", "better"]
    return pd.DataFrame(rows, columns=columns)


def rank_table(means: pd.DataFrame, metrics: Sequence[str]) -> pd.DataFrame:
    """Per dataset: each setting's rank on each metric (1 = best) and the mean over its ranked metrics.

    `means`: one row per setting with `dataset`, `setting` and each metric's mean. A metric with no
    value for a setting is left out of that setting's mean rank; `ranked` counts the metrics used.
    """
    parts = []
    for _, group in means.groupby("dataset", sort=True):
        out = group[["dataset", "setting"]].copy()
        used = []
        for metric in metrics:
            if metric not in group or group[metric].notna().sum() == 0:
                continue
            out[metric] = group[metric].rank(ascending=not higher_is_better(metric), method="average")
            used.append(metric)
        out["mean_rank"] = out[used].mean(axis=1) if used else math.nan
        out["ranked"] = out[used].notna().sum(axis=1) if used else 0
        parts.append(out.sort_values(["mean_rank", "setting"], na_position="last"))
    if not parts:
        return pd.DataFrame(columns=["dataset", "setting", "mean_rank", "ranked"])
    return pd.concat(parts, ignore_index=True)


def _mean(x: np.ndarray) -> float:
    return mean_sd(x)[0]
