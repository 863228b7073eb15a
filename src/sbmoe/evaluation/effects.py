"""Effect sizes of paired per-query differences: a bootstrap confidence interval, an equivalence test
and the smallest effect the study could detect.

Every function takes the per-query differences ``a - b`` of two systems on the same queries (one
metric), as a sequence of floats:

- :func:`bootstrap_interval`: the percentile interval of the mean difference over queries resampled
  with replacement (seeded, so the same inputs always give the same interval);
- :func:`tost`: the p-value of Schuirmann's two one-sided paired t-tests of |mean difference| < δ;
  a small p-value shows the two systems equivalent within ±δ;
- :func:`minimal_detectable_effect`: the true mean difference a two-sided paired t-test at level α
  detects with the given power, given the observed spread of the differences.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import stats

DEFAULT_RESAMPLES = 10_000

# Resampled means are computed this many query draws at a time (bounds memory on large query sets).
_DRAWS_PER_CHUNK = 4_000_000


def _differences(differences: Sequence[float]) -> np.ndarray:
    values = np.asarray(differences, dtype=float)
    if values.ndim != 1 or values.size == 0:
        raise ValueError("expected a non-empty sequence of per-query differences")
    if not np.isfinite(values).all():
        raise ValueError("per-query differences must be finite numbers")
    return values


def bootstrap_interval(
    differences: Sequence[float], resamples: int = DEFAULT_RESAMPLES, confidence: float = 0.95, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean per-query difference.

    Queries are drawn with replacement ``resamples`` times (each draw as many queries as given); the
    interval holds the central ``confidence`` share of the resampled means.
    """
    if resamples < 1:
        raise ValueError(f"resamples must be positive, got {resamples}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence}")
    values = _differences(differences)
    rng = np.random.default_rng(seed)
    chunk = max(1, _DRAWS_PER_CHUNK // values.size)
    means = np.empty(resamples)
    for start in range(0, resamples, chunk):
        size = min(chunk, resamples - start)
        means[start : start + size] = values[rng.integers(0, values.size, size=(size, values.size))].mean(axis=1)
    tail = (1 - confidence) / 2
    low, high = np.quantile(means, [tail, 1 - tail])
    return float(low), float(high)


def tost(differences: Sequence[float], delta: float) -> float:
    """p-value of the paired two one-sided t-tests (TOST) that the mean difference lies within ±``delta``.

    The larger of the two one-sided p-values (H0: mean <= -delta; H0: mean >= +delta). Differences
    without spread (e.g. identical systems) give 0 when their mean lies strictly inside the margin,
    else 1.
    """
    if delta <= 0:
        raise ValueError(f"the equivalence margin must be positive, got {delta}")
    values = _differences(differences)
    mean = float(values.mean())
    spread = float(values.std(ddof=1)) if values.size > 1 else 0.0
    if spread == 0.0:
        return 0.0 if abs(mean) < delta else 1.0
    error = spread / np.sqrt(values.size)
    freedom = values.size - 1
    above_lower = stats.t.sf((mean + delta) / error, freedom)  # H0: mean <= -delta
    below_upper = stats.t.cdf((mean - delta) / error, freedom)  # H0: mean >= +delta
    return float(max(above_lower, below_upper))


def minimal_detectable_effect(differences: Sequence[float], alpha: float, power: float = 0.8) -> float:
    """The smallest true mean difference a two-sided paired t-test at level ``alpha`` detects with
    probability ``power``: ``(t[1 - alpha/2] + t[power]) * sd / sqrt(n)`` on n - 1 degrees of
    freedom, with sd the sample standard deviation of the differences. Infinite for one query."""
    if not 0 < alpha < 1 or not 0 < power < 1:
        raise ValueError(f"alpha and power must lie in (0, 1), got {alpha} and {power}")
    values = _differences(differences)
    if values.size < 2:
        return float("inf")
    freedom = values.size - 1
    spread = float(values.std(ddof=1))
    return float((stats.t.ppf(1 - alpha / 2, freedom) + stats.t.ppf(power, freedom)) * spread / np.sqrt(values.size))
