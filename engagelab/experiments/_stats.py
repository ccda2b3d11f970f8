"""Frequentist tests on per-arm summaries, in log space where tails get small.

All functions are vectorised over numpy arrays so simulations can run thousands of
experiments at once from sufficient statistics. Natural-log p-values (``logp``) are
kept alongside ``p`` so a p-value far below 1e-300 still has a printable value.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import special, stats

from engagelab.errors import ValidationError
from engagelab.experiments.formatting import format_p
from engagelab.validate import check_choice

__all__ = [
    "CORRECTIONS",
    "adjust_logp",
    "adjust_pvalues",
    "barnard",
    "fieller",
    "fisher",
    "format_p",
    "pooled_z",
    "relative_lift",
    "t_logsf",
    "welch",
    "z_test",
]

LN10 = math.log(10.0)
CORRECTIONS = ("holm", "hochberg", "bonferroni", "sidak", "holm-sidak", "bh", "by", "none")


def _two_sided_logp(log_sf: np.ndarray, alternative: str) -> np.ndarray:
    if alternative == "two-sided":
        return np.minimum(log_sf + math.log(2.0), 0.0)
    return log_sf


def z_test(diff, se, alternative: str = "two-sided"):
    """z statistic, natural-log p-value for ``diff / se`` (alternative ``two-sided|greater|less``)."""
    diff, se = np.asarray(diff, float), np.asarray(se, float)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = diff / se
    if alternative == "two-sided":
        logp = _two_sided_logp(stats.norm.logsf(np.abs(z)), alternative)
    elif alternative == "greater":
        logp = stats.norm.logsf(z)
    else:
        logp = stats.norm.logcdf(z)
    return z, logp


def t_logsf(t, df) -> np.ndarray:
    """Natural log of Student's t survival function, finite far into the tail.

    ``scipy.stats.t.logsf`` underflows to ``-inf`` beyond about ``|t| = 40`` at large
    ``df``; there ``sf = I_x(df/2, 1/2) / 2`` with ``x = df / (df + t²)`` is computed in
    log space from the continued fraction of the incomplete beta function (modified
    Lentz), which converges in a few terms in the tail.

    >>> float(t_logsf(3.0, 10.0)) == float(stats.t.logsf(3.0, 10.0))
    True
    >>> round(float(t_logsf(86.0, 6000.0)), 4)
    -2414.5619
    """
    t, df = np.broadcast_arrays(np.asarray(t, float), np.asarray(df, float))
    out = np.array(stats.t.logsf(t, df), dtype=float, ndmin=1).reshape(t.shape)
    far = np.isneginf(out) & np.isfinite(t) & (t > 1) & np.isfinite(df) & (df > 0)
    if far.any():
        nu = df[far]
        out[far] = _log_ibeta_tail(nu / (nu + t[far] ** 2), nu / 2, 0.5) - math.log(2.0)
    return out


def _log_ibeta_tail(x: np.ndarray, a: np.ndarray, b: float) -> np.ndarray:
    """``log I_x(a, b)`` by the incomplete beta continued fraction (Numerical Recipes'
    ``betacf``, modified Lentz), for ``x < (a + 1) / (a + b + 2)`` where it converges."""
    tiny = 1e-300

    def clip(v: np.ndarray) -> np.ndarray:
        return np.where(np.abs(v) < tiny, tiny, v)

    c = np.ones_like(x)
    d = 1 / clip(1 - (a + b) * x / (a + 1))
    h = d.copy()
    for m in range(1, 10_000):
        for aa in (
            m * (b - m) * x / ((a - 1 + 2 * m) * (a + 2 * m)),
            -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 1 + 2 * m)),
        ):
            d = 1 / clip(1 + aa * d)
            c = clip(1 + aa / c)
            h = h * d * c
        if (np.abs(d * c - 1) < 1e-15).all():
            break
    return a * np.log(x) + b * np.log1p(-x) - np.log(a) - special.betaln(a, b) + np.log(h)


def welch(mean_c, var_c, n_c, mean_t, var_t, n_t, alternative: str = "two-sided"):
    """Welch's t test: returns ``(t, df, logp, se)``; ``var_*`` are per-unit sample variances."""
    a = np.asarray(var_c, float) / np.asarray(n_c, float)
    b = np.asarray(var_t, float) / np.asarray(n_t, float)
    se = np.sqrt(a + b)
    with np.errstate(divide="ignore", invalid="ignore"):
        df = (a + b) ** 2 / (
            a**2 / (np.asarray(n_c, float) - 1) + b**2 / (np.asarray(n_t, float) - 1)
        )
        t = (np.asarray(mean_t, float) - np.asarray(mean_c, float)) / se
    if alternative == "two-sided":
        logp = _two_sided_logp(t_logsf(np.abs(t), df), alternative)
    elif alternative == "greater":
        logp = t_logsf(t, df)
    else:
        logp = t_logsf(-t, df)  # the t distribution is symmetric: cdf(t) = sf(-t)
    return t, df, logp, se


def pooled_z(s_c, n_c, s_t, n_t, alternative: str = "two-sided"):
    """Two-proportion z test with the pooled variance under H0: returns ``(z, logp)``."""
    s_c, n_c, s_t, n_t = (np.asarray(x, float) for x in (s_c, n_c, s_t, n_t))
    p = (s_c + s_t) / (n_c + n_t)
    se = np.sqrt(p * (1 - p) * (1 / n_c + 1 / n_t))
    return z_test(s_t / n_t - s_c / n_c, se, alternative)


def fisher(s_c: int, n_c: int, s_t: int, n_t: int, alternative: str = "two-sided") -> float:
    """Natural-log p-value of Fisher's exact test, from hypergeometric log-probabilities.

    Two-sided: the sum of the probabilities of all tables no more likely than the
    observed one (the usual definition, with a relative tolerance of 1e-7).
    """
    total_s, total = s_c + s_t, n_c + n_t
    lo, hi = max(0, total_s - n_c), min(total_s, n_t)
    ks = np.arange(lo, hi + 1)
    logpmf = stats.hypergeom.logpmf(ks, total, total_s, n_t)
    obs = logpmf[s_t - lo]
    if alternative == "greater":
        sel = ks >= s_t
    elif alternative == "less":
        sel = ks <= s_t
    else:
        sel = logpmf <= obs + math.log1p(1e-7)
    return float(min(0.0, special.logsumexp(logpmf[sel])))


def barnard(s_c: int, n_c: int, s_t: int, n_t: int, alternative: str = "two-sided") -> float:
    """Natural-log p-value of Barnard's exact test (scipy's implementation, Wald statistic, unpooled)."""
    alt = {"two-sided": "two-sided", "greater": "less", "less": "greater"}[alternative]
    table = np.array([[s_c, s_t], [n_c - s_c, n_t - s_t]])
    # scipy orders the columns (control, treatment): "less" there means p_control < p_treatment
    p = stats.barnard_exact(table, alternative=alt, pooled=False, n=64).pvalue
    return math.log(p) if p > 0 else -math.inf


def relative_lift(mean_c, se2_c, mean_t, se2_t, z: float):
    """Relative lift ``mean_t / mean_c - 1`` and its delta-method CI (arms independent).

    ``var = se2_t / mean_c**2 + mean_t**2 * se2_c / mean_c**4``. Returns ``(rel, low, high)``.
    """
    mc, mt = np.asarray(mean_c, float), np.asarray(mean_t, float)
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = mt / mc - 1
        se = np.sqrt(np.asarray(se2_t, float) / mc**2 + mt**2 * np.asarray(se2_c, float) / mc**4)
    return rel, rel - z * se, rel + z * se


def fieller(mean_c, se2_c, mean_t, se2_t, z: float, alternative: str = "two-sided"):
    """Fieller's interval for the relative lift ``mean_t / mean_c - 1`` (arms independent).

    The interval is every ``rho`` with ``(mean_t - rho mean_c)**2 <= z**2 (se2_t + rho**2 se2_c)``
    (Fieller 1954), minus 1. Unlike the delta method it is exact for normal estimates,
    asymmetric when the control estimate is noisy, and it excludes 0 exactly when the
    z (or, with the t quantile as ``z``, Welch) test of the difference rejects. When the
    control estimate is not significantly different from 0 (``mean_c**2 <= z**2 se2_c``)
    the set is unbounded and ``(-inf, inf)`` is returned. With a one-sided
    ``alternative`` (``z`` then the one-sided quantile) the open end is infinite.
    Returns ``(rel, low, high)``.

    >>> rel, lo, hi = fieller(10.0, 0.25, 12.0, 0.25, 1.959963984540054)
    >>> round(float(rel), 3), round(float(lo), 4), round(float(hi), 4)
    (0.2, 0.0574, 0.3659)
    """
    mc, mt = np.asarray(mean_c, float), np.asarray(mean_t, float)
    vc, vt = np.asarray(se2_c, float), np.asarray(se2_t, float)
    k = z * z
    a = mc * mc - k * vc
    with np.errstate(divide="ignore", invalid="ignore"):
        half = np.sqrt(k * (mt * mt * vc + vt * a))
        lo = (mt * mc - half) / a - 1
        hi = (mt * mc + half) / a - 1
        rel = mt / mc - 1
    bounded = a > 0
    lo = np.where(bounded, lo, -np.inf)
    hi = np.where(bounded, hi, np.inf)
    if alternative == "greater":
        hi = np.full_like(hi, np.inf)
    elif alternative == "less":
        lo = np.full_like(lo, -np.inf)
    return rel, lo, hi


def _log_sidak(logp: np.ndarray, k: np.ndarray) -> np.ndarray:
    """``log(1 - (1 - p)**k)``, exact where it can be and ``log(k p)`` where p underflows."""
    with np.errstate(divide="ignore", invalid="ignore"):
        p = np.exp(logp)
        exact = np.log(-np.expm1(k * np.log1p(-p)))
    tiny = p < 1e-12  # (1 - p)**k = 1 - k p to within k**2 p**2 / 2
    return np.where(tiny, logp + np.log(k), exact)


def adjust_pvalues(pvalues, method: str = "holm") -> np.ndarray:
    """Adjust any list of p-values for multiple comparisons.

    Args:
        pvalues: p-values (array-like; NaN entries are left out of the family).
        method: one of ``holm``, ``hochberg``, ``bonferroni``, ``sidak``,
            ``holm-sidak``, ``bh`` (Benjamini-Hochberg FDR), ``by``
            (Benjamini-Yekutieli FDR) or ``none``.

    Returns:
        Adjusted p-values, as ``statsmodels.stats.multitest.multipletests`` gives them.

    Example:
        >>> adjust_pvalues([0.01, 0.04, 0.03], "holm").round(4).tolist()
        [0.03, 0.06, 0.06]
        >>> adjust_pvalues([0.01, 0.02], "sidak").round(6).tolist()
        [0.0199, 0.0396]
    """
    p = np.asarray(pvalues, float)
    bad = ~np.isnan(p) & ((p < 0) | (p > 1))
    if bad.any():
        raise ValidationError("pvalues", float(p[bad][0]), "must be probabilities in [0, 1]")
    with np.errstate(divide="ignore"):
        return np.exp(adjust_logp(np.log(p), method))


def adjust_logp(logp, method: str = "holm") -> np.ndarray:
    """Multiple-comparison adjusted p-values, computed on natural-log p-values.

    Same definitions as ``statsmodels.stats.multitest.multipletests`` (``holm``,
    ``hochberg`` = ``simes-hochberg``, ``bonferroni``, ``sidak``, ``holm-sidak``,
    ``bh`` = ``fdr_bh``, ``by`` = ``fdr_by``); NaN entries are left out of the family
    and stay NaN.
    """
    check_choice("correction", method, CORRECTIONS)
    logp = np.asarray(logp, float)
    out = np.full(logp.shape, np.nan)
    ok = ~np.isnan(logp)
    lp = logp[ok]
    m = lp.size
    if m == 0 or method == "none":
        out[ok] = lp
        return out
    order = np.argsort(lp, kind="stable")
    s = lp[order]
    i = np.arange(1, m + 1)
    if method == "bonferroni":
        adj = s + math.log(m)
    elif method == "sidak":
        adj = _log_sidak(s, np.full(m, float(m)))
    elif method == "holm-sidak":
        adj = np.maximum.accumulate(_log_sidak(s, (m - i + 1).astype(float)))
    elif method == "holm":
        adj = np.maximum.accumulate(s + np.log(m - i + 1))
    elif method == "hochberg":
        adj = np.minimum.accumulate((s + np.log(m - i + 1))[::-1])[::-1]
    else:
        c = math.log(np.sum(1.0 / i)) if method == "by" else 0.0
        adj = np.minimum.accumulate((s + math.log(m) - np.log(i) + c)[::-1])[::-1]
    res = np.empty(m)
    res[order] = np.minimum(adj, 0.0)
    out[ok] = res
    return out
