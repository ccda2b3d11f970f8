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

Group-sequential boundaries use Lan-DeMets alpha spending with O'Brien-Fleming-type,
Pocock-type or power-family spending functions, computed by numerical integration.

Example:
    >>> [round(b, 2) for b in group_sequential_bounds([0.2, 0.4, 0.6, 0.8, 1.0])]
    [4.88, 3.36, 2.68, 2.29, 2.03]
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import lru_cache

import numpy as np
from scipy import optimize, stats
from scipy.special import ndtr

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


SPENDING_KINDS = ("obf", "pocock", "power")


def spending(t, alpha: float = 0.05, kind: str = "obf", rho: float = 1.0):
    """Lan-DeMets cumulative alpha spent at information fraction ``t`` (two-sided).

    ``obf``: O'Brien-Fleming type applied to each side at level ``alpha / 2``, as in
    gsDesign's ``sfLDOF`` and rpact's ``asOF``: ``2 (2 - 2 Phi(z_{1-alpha/4} / sqrt(t)))``;
    ``pocock``: ``alpha log(1 + (e - 1) t)``; ``power``: the Kim-DeMets power family
    ``alpha t**rho`` (``rho = 1`` is close to Pocock, ``rho = 3`` to O'Brien-Fleming).

    Example:
        >>> float(spending(0.5, 0.05, "power", rho=2))
        0.0125
    """
    check_choice("spending", kind, SPENDING_KINDS)
    t = np.asarray(t, float)
    if kind == "obf":
        with np.errstate(divide="ignore"):
            return 4 * stats.norm.sf(stats.norm.isf(alpha / 4) / np.sqrt(t))
    if kind == "power":
        check_number("rho", rho, low=0, low_open=True)
        return alpha * t**rho
    return alpha * np.log1p((math.e - 1) * t)


def group_sequential_bounds(
    information: Sequence[float], alpha: float = 0.05, kind: str = "obf", rho: float = 1.0
) -> list[float]:
    """Two-sided z boundaries for looks at the given information fractions.

    Reject at look *k* when ``|Z_k| >= bound_k``. The probability under H0 of first
    crossing at look *k* equals the alpha spent between looks *k-1* and *k*.

    The boundaries come from the numerical-integration recursion of Armitage,
    McPherson and Rowe (1969; Jennison and Turnbull 2000, ch. 19): the sub-density of
    the score ``S_k = Z_k sqrt(t_k)`` on the continuation region is carried from look
    to look on a Simpson grid whose spacing follows the increment's standard
    deviation, and each boundary solves one one-dimensional equation. Thirty looks
    take a few tens of milliseconds; results are cached per design.

    Example:
        >>> [round(b, 2) for b in group_sequential_bounds([0.5, 1.0], kind="pocock")]
        [2.16, 2.2]
    """
    check_number("alpha", alpha, low=0, high=1, low_open=True, high_open=True)
    check_choice("spending", kind, SPENDING_KINDS)
    if kind == "power":
        check_number("rho", rho, low=0, low_open=True)
    t = [
        float(check_number(f"information[{i}]", x, low=0, high=1, low_open=True))
        for i, x in enumerate(information)
    ]
    if not t or any(b <= a for a, b in zip(t, t[1:], strict=False)):
        raise ValidationError(
            "information", list(information), "must be increasing fractions in (0, 1]"
        )
    return list(_bounds(tuple(t), float(alpha), kind, float(rho) if kind == "power" else 1.0))


#: Grid points per standard deviation of the increment between looks.
_PER_SD = 8
#: The continuation region is cut at this many standard deviations of ``S_k``.
_TRUNCATE = 10.0
_MAX_POINTS = 4001


def _phi(z: np.ndarray) -> np.ndarray:
    return np.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)


def _simpson_grid(half: float, step: float) -> tuple[np.ndarray, np.ndarray]:
    """Odd-sized grid on ``[-half, half]`` with composite Simpson weights."""
    n = min(_MAX_POINTS, max(3, 2 * math.ceil(half / step) + 1))
    x = np.linspace(-half, half, n)
    h = x[1] - x[0]
    w = np.full(n, 2.0)
    w[1::2] = 4.0
    w[0] = w[-1] = 1.0
    return x, w * h / 3


@lru_cache(maxsize=256)
def _bounds(t: tuple[float, ...], alpha: float, kind: str, rho: float) -> tuple[float, ...]:
    spent = np.asarray(spending(t, alpha, kind, rho), float)
    incr = np.diff(np.concatenate([[0.0], spent]))
    bounds: list[float] = []
    # grid of S_{k-1} and its sub-density times the Simpson weights
    grid: np.ndarray = np.empty(0)
    weights: np.ndarray = np.empty(0)
    for k, tk in enumerate(t):
        if k == 0:
            c = float(stats.norm.isf(incr[0] / 2)) if incr[0] > 0 else math.inf
        else:
            sd = math.sqrt(tk - t[k - 1])
            root = math.sqrt(tk)
            g, wts = grid, weights

            def cross(c: float, g=g, wts=wts, sd=sd, root=root) -> float:
                # P(|S_k| >= c sqrt(t_k), no earlier crossing); ndtr is the normal CDF
                return float(wts @ (ndtr((g - c * root) / sd) + ndtr((-c * root - g) / sd)))

            target = incr[k]
            if target <= 0 or cross(_TRUNCATE * 4) >= target:
                c = math.inf
            else:
                c = float(
                    optimize.brentq(
                        lambda c, a=target: cross(c) - a, 0.0, _TRUNCATE * 4, xtol=1e-10
                    )
                )
        bounds.append(c)
        if k + 1 == len(t):
            break
        # sub-density of S_k on its continuation region, on a grid for the next look
        half = min(c, _TRUNCATE) * math.sqrt(tk)
        step = math.sqrt(t[k + 1] - tk) / _PER_SD
        x, simpson = _simpson_grid(half, step)
        if k == 0:
            dens = _phi(x / math.sqrt(tk)) / math.sqrt(tk)
        else:
            sd = math.sqrt(tk - t[k - 1])
            dens = _phi((x[:, None] - grid[None, :]) / sd) @ weights / sd
        grid, weights = x, dens * simpson
    return tuple(bounds)
