"""Sequential testing: always-valid p-values, confidence sequences, group-sequential boundaries.

Always-valid inference uses the normal-mixture sequential probability ratio test
(mSPRT, Johari et al. 2017/2022) whose inversion is the two-sided normal-mixture
confidence sequence of Howard et al. (2021, eq. 14). For an estimated difference
``d`` with variance ``V = s2 / n`` (``s2`` the per-unit variance, ``n`` the total
sample) and mixing variance ``tau2 = s2 * rho2``::

    Lambda = sqrt(V / (V + tau2)) * exp(d**2 * tau2 / (2 V (V + tau2)))
    p      = min(1, 1 / Lambda)                      (always valid; take the running min)
    CS     = d +/- sqrt(V (V + tau2) / tau2 * (2 log(1/alpha) + log((V + tau2) / V)))

``rho2 = (2 log(1/alpha) + log(2 log(1/alpha) + 1)) / tuning_n`` makes the sequence
tightest near ``tuning_n`` users (GrowthBook uses the same tuning parameter).

Group-sequential boundaries use Lan-DeMets alpha spending with O'Brien-Fleming-type
or Pocock-type spending functions.

Example:
    >>> [round(b, 2) for b in group_sequential_bounds([0.2, 0.4, 0.6, 0.8, 1.0])]
    [4.88, 3.36, 2.68, 2.29, 2.03]
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import optimize, stats

from engagelab.errors import ValidationError
from engagelab.validate import check_choice, check_number

__all__ = ["always_valid", "group_sequential_bounds", "mixture_rho2", "spending"]


def mixture_rho2(alpha: float, tuning_n: float) -> float:
    """Mixing variance per unit variance, tuned to be tightest at ``tuning_n`` users."""
    check_number("alpha", alpha, low=0, high=1, low_open=True, high_open=True)
    check_number("tuning_n", tuning_n, low=0, low_open=True)
    a = 2 * math.log(1 / alpha)
    return (a + math.log(a + 1)) / tuning_n


def always_valid(diff, var, n, alpha: float = 0.05, tuning_n: float = 10_000):
    """Always-valid natural-log p-value and confidence sequence for a difference.

    Args:
        diff: estimated difference (array-like).
        var: variance of ``diff`` (``se**2``).
        n: total sample size behind ``diff`` (converts ``var`` to a per-unit variance).
        alpha: level of the confidence sequence.
        tuning_n: sample size at which the sequence is tightest.

    Returns:
        ``(logp, low, high)`` arrays. Take the running minimum of ``logp`` and the
        running intersection of the intervals over successive looks.
    """
    d, v = np.asarray(diff, float), np.asarray(var, float)
    tau2 = v * np.asarray(n, float) * mixture_rho2(alpha, tuning_n)
    with np.errstate(divide="ignore", invalid="ignore"):
        log_lambda = 0.5 * np.log(v / (v + tau2)) + d**2 * tau2 / (2 * v * (v + tau2))
        half = np.sqrt(v * (v + tau2) / tau2 * (2 * math.log(1 / alpha) + np.log((v + tau2) / v)))
    logp = np.minimum(0.0, -log_lambda)
    return logp, d - half, d + half


def spending(t, alpha: float = 0.05, kind: str = "obf"):
    """Lan-DeMets cumulative alpha spent at information fraction ``t`` (two-sided).

    ``obf``: O'Brien-Fleming type applied to each side at level ``alpha / 2``, as in
    gsDesign's ``sfLDOF`` and rpact's ``asOF``: ``2 (2 - 2 Phi(z_{1-alpha/4} / sqrt(t)))``;
    ``pocock``: ``alpha log(1 + (e - 1) t)``.
    """
    check_choice("spending", kind, ("obf", "pocock"))
    t = np.asarray(t, float)
    if kind == "obf":
        with np.errstate(divide="ignore"):
            return 4 * stats.norm.sf(stats.norm.isf(alpha / 4) / np.sqrt(t))
    return alpha * np.log1p((math.e - 1) * t)


def group_sequential_bounds(
    information: Sequence[float], alpha: float = 0.05, kind: str = "obf"
) -> list[float]:
    """Two-sided z boundaries for looks at the given information fractions.

    Reject at look *k* when ``|Z_k| >= bound_k``. The probability under H0 of first
    crossing at look *k* equals the alpha spent between looks *k-1* and *k*; the
    joint law of ``(Z_1..Z_K)`` has ``corr(Z_i, Z_j) = sqrt(t_i / t_j)``.
    """
    check_number("alpha", alpha, low=0, high=1, low_open=True, high_open=True)
    t = [
        float(check_number(f"information[{i}]", x, low=0, high=1, low_open=True))
        for i, x in enumerate(information)
    ]
    if not t or any(b <= a for a, b in zip(t, t[1:], strict=False)):
        raise ValidationError(
            "information", list(information), "must be increasing fractions in (0, 1]"
        )
    spent = spending(t, alpha, kind)
    bounds: list[float] = []
    cont_prev = 1.0  # P(no crossing up to the previous look)
    for k in range(len(t)):
        target = cont_prev - (spent[k] - (spent[k - 1] if k else 0.0))
        if k == 0:
            bounds.append(float(stats.norm.isf((spent[0]) / 2)))
            cont_prev = 1 - spent[0]
            continue
        tk = np.asarray(t[: k + 1])
        cov = np.sqrt(np.minimum.outer(tk, tk) / np.maximum.outer(tk, tk))
        mvn = stats.multivariate_normal(np.zeros(k + 1), cov, seed=12345)

        def cont(c, mvn=mvn, k=k):
            b = np.asarray(bounds + [c])
            return mvn.cdf(b, lower_limit=-b) if k else None

        b = optimize.brentq(lambda c, target=target: cont(c) - target, 0.5, 12.0, xtol=1e-6)
        bounds.append(float(b))
        cont_prev = target
    return bounds
