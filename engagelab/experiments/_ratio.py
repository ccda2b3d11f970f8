"""Ratio metrics on sufficient statistics: delta method, optionally CUPED-adjusted.

A ratio metric ``R = ΣY / ΣN`` (revenue per order, clicks per send) is a ratio of
means, so its per-user contribution is the linearised value (delta method)::

    L_i = (Y_i - R N_i) / N̄          Var(R̂) ≈ Var(L) / n

CUPED for ratios (Deng et al. 2013, §3.3; the ``RatioOfMeans`` covariates of
tea-tasting and GrowthBook's regression-adjusted ratio) regresses ``L`` on the
linearised pre-period ratio ``C = ΣX / ΣM`` (``M ≡ 1`` without a denominator
covariate, making ``C`` the mean of ``X``)::

    K_i = (X_i - C M_i) / M̄
    θ   = pooled within-arm Cov(L, K) / Var(K)
    R_adj = R - θ (C_arm - C_all)                   Var(R_adj) ≈ Var(L - θ K) / n

θ and ``C_all`` (the covariate ratio) are taken over the control and the compared arm
(``cuped_theta="per_comparison"``, the default of the analysis) or over all arms
(``"pooled"``); :func:`cuped_theta` computes them over whichever arms it is given.
The adjustment removes the chance pre-period imbalance between arms. Every variance
and covariance comes from ``n``, ``Σ``, ``Σ²`` and cross-products ``Σab``, which the
engine aggregates in SQL. The pooled within-arm θ equals the slope on ``K`` of an OLS
of ``L`` on arm dummies and ``K`` over those arms; tea-tasting estimates θ per pair of arms from the two arms pooled as one
sample, which differs in the fourth significant digit or so.

Example (``var_y = 5/3``, ``var_d = 2/3``, ``cov = 1``, ``R = 2.5``, ``N̄ = 1``, so
``Var(L) = 5/3 - 2 * 2.5 * 1 + 2.5**2 * 2/3 = 5/6``):
    >>> row = {"n": 4, "sum:y": 10.0, "sumsq:y": 30.0, "sum:d": 4.0, "sumsq:d": 6.0,
    ...        "cross:y*d": 13.0}
    >>> mom = moments(row, "y", "d", None, None)
    >>> mom.ratio, round(mom.var_l, 4)
    (2.5, 0.8333)
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from engagelab.experiments.metrics import cross

__all__ = ["RatioMoments", "cuped_theta", "moments"]


@dataclass(frozen=True)
class RatioMoments:
    """Per-arm moments of a ratio metric and of its pre-period covariate ratio.

    ``ratio`` = ΣY/ΣN and ``cov_ratio`` = ΣX/ΣM; ``var_l``, ``var_k`` and ``cov_lk``
    are the sample (``n - 1``) variances and covariance of the linearised values.
    """

    n: float
    ratio: float
    var_l: float
    cov_ratio: float = math.nan
    var_k: float = math.nan
    cov_lk: float = math.nan


def _cov(row: Mapping[str, Any], n: float, a: str | None, b: str | None) -> float:
    """Sample covariance of two columns from sums; a missing column is the constant 1."""
    if a is None or b is None:
        return 0.0
    return float((cross(row, a, b) - row[f"sum:{a}"] * row[f"sum:{b}"] / n) / (n - 1))


def _mean(row: Mapping[str, Any], n: float, a: str | None) -> float:
    return 1.0 if a is None else float(row[f"sum:{a}"]) / n


def moments(row: Mapping[str, Any], y: str, d: str, x: str | None, m: str | None) -> RatioMoments:
    """Moments of ``Y/N`` (and of ``X/M`` when ``x`` is given) from one arm's sums.

    Needs ``n >= 2`` and ``ΣN != 0`` (and ``ΣM != 0`` for the covariate); otherwise
    the undefined parts are NaN.
    """
    n = float(row["n"])
    if n == 0:  # an arm with no users (in a segment)
        return RatioMoments(n, math.nan, math.nan)
    ybar, dbar = _mean(row, n, y), _mean(row, n, d)
    if n < 2 or dbar == 0:
        return RatioMoments(n, math.nan if dbar == 0 else ybar / dbar, math.nan)
    r = ybar / dbar
    var_l = (_cov(row, n, y, y) - 2 * r * _cov(row, n, y, d) + r * r * _cov(row, n, d, d)) / dbar**2
    if x is None:
        return RatioMoments(n, r, max(var_l, 0.0))
    xbar, mbar = _mean(row, n, x), _mean(row, n, m)
    if mbar == 0:
        return RatioMoments(n, r, max(var_l, 0.0))
    c = xbar / mbar
    var_k = (_cov(row, n, x, x) - 2 * c * _cov(row, n, x, m) + c * c * _cov(row, n, m, m)) / mbar**2
    cov_lk = (
        _cov(row, n, y, x)
        - c * _cov(row, n, y, m)
        - r * _cov(row, n, d, x)
        + r * c * _cov(row, n, d, m)
    ) / (dbar * mbar)
    return RatioMoments(n, r, max(var_l, 0.0), c, max(var_k, 0.0), cov_lk)


def cuped_theta(
    rows: Sequence[Mapping[str, Any]], y: str, d: str, x: str, m: str | None
) -> tuple[float, float, str]:
    """Pooled within-arm θ and the covariate ratio ``C_all`` over the arms of ``rows``.

    ``rows`` are the aggregate rows of the arms θ is estimated on (all arms, or the
    control and one compared arm). Returns ``(theta, c_all, note)``;
    when no adjustment is possible ``theta`` is 0 and ``note`` says why.
    """
    mom = [moments(r, y, d, x, m) for r in rows]
    if any(k.n >= 2 and not math.isnan(k.var_l) and math.isnan(k.cov_ratio) for k in mom):
        return (
            0.0,
            math.nan,
            (f"denominator covariate {m!r} sums to 0 in an arm: CUPED adjustment skipped"),
        )
    ok = [k for k in mom if not math.isnan(k.var_k)]
    sxx = sum((k.n - 1) * k.var_k for k in ok)
    if not ok or sxx <= 0:
        what = f"covariate {x!r}" + (f" / {m!r}" if m else "")
        return 0.0, math.nan, f"{what} has no variance within arms: CUPED adjustment skipped"
    sxy = sum((k.n - 1) * k.cov_lk for k in ok)
    x_all = sum(float(r[f"sum:{x}"]) for r in rows)
    m_all = sum(float(r[f"sum:{m}"] if m else r["n"]) for r in rows)
    return sxy / sxx, x_all / m_all, ""
