"""Interval estimates for retention rates and their differences.

* :func:`wilson` — the Wilson score interval of a proportion (Wilson 1927), the
  interval statsmodels computes with ``proportion_confint(method='wilson')``.
* :func:`newcombe` — Newcombe's hybrid score interval for a difference of two
  independent proportions (Newcombe 1998, method 10): it combines the two Wilson
  intervals, keeps near-nominal coverage at small counts and rates near 0 or 1, and
  never leaves [-1, 1] (the Wald interval does both badly).

Example:
    >>> lo, hi = wilson(30, 100)
    >>> round(float(lo), 4), round(float(hi), 4)
    (0.2189, 0.3958)
    >>> d, lo, hi = newcombe(56, 70, 48, 80)   # Newcombe (1998), table II, example (a)
    >>> round(float(lo), 4), round(float(hi), 4)
    (0.0524, 0.3339)
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import stats

from engagelab.validate import check_number

__all__ = ["newcombe", "wilson", "z_value"]


def z_value(confidence: float) -> float:
    """The two-sided normal quantile for ``confidence`` (0.95 → 1.96)."""
    check_number("confidence", confidence, low=0, high=1, low_open=True, high_open=True)
    return float(stats.norm.ppf(0.5 + confidence / 2.0))


def wilson(retained: Any, size: Any, confidence: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval of ``retained / size`` (arrays broadcast; NaN where size is 0)."""
    x = np.asarray(retained, dtype=np.float64)
    n = np.asarray(size, dtype=np.float64)
    z = z_value(confidence)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = x / n
        denom = 1.0 + z * z / n
        centre = (p + z * z / (2.0 * n)) / denom
        half = z * np.sqrt(p * (1.0 - p) / n + z * z / (4.0 * n * n)) / denom
        lo = np.clip(centre - half, 0.0, 1.0)
        hi = np.clip(centre + half, 0.0, 1.0)
    bad = ~(n > 0)
    return np.where(bad, np.nan, lo), np.where(bad, np.nan, hi)


def newcombe(
    x1: Any, n1: Any, x2: Any, n2: Any, confidence: float = 0.95
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Difference ``x1/n1 - x2/n2`` with Newcombe's hybrid score interval.

    Returns:
        ``(difference, low, high)`` as arrays (NaN where either group is empty).
    """
    p1 = np.asarray(x1, dtype=np.float64) / np.asarray(n1, dtype=np.float64)
    p2 = np.asarray(x2, dtype=np.float64) / np.asarray(n2, dtype=np.float64)
    l1, u1 = wilson(x1, n1, confidence)
    l2, u2 = wilson(x2, n2, confidence)
    d = p1 - p2
    lo = d - np.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2)
    hi = d + np.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)
    return d, lo, hi
