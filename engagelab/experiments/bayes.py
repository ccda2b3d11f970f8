"""Bayesian summaries of arms: probability to beat control, to be best, expected loss.

Proportions use a Beta-Binomial model (uniform ``Beta(1, 1)`` prior by default);
means, ratios and CUPED-adjusted metrics use a normal approximation of each arm's
posterior, ``N(estimate, se**2)`` (flat prior). ``P(beat control)`` and the expected
loss are computed exactly (closed forms for normal posteriors, numerical integration
on a fine grid for Beta posteriors); ``P(best)`` and the credible intervals come from
Monte Carlo draws with a fixed seed, so results are reproducible. These numbers are
Bayesian: they are reported in their own ``bayes_*`` columns and never mixed with
p-values.

Example:
    >>> out = bayes_summary([(100, 1000), (130, 1000)], kind="proportion")
    >>> round(float(out["p_beat_control"][1]), 3), round(float(out["p_best"][1]), 2)
    (0.982, 0.98)
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import special, stats

__all__ = ["bayes_summary", "posterior_draws"]

_GRID = 4001
_SQRT2PI = math.sqrt(2 * math.pi)


def posterior_draws(
    arms: Sequence[tuple[float, float]],
    kind: str,
    draws: int = 20_000,
    seed: int = 20261127,
    prior: tuple[float, float] = (1.0, 1.0),
) -> np.ndarray:
    """Posterior draws, one column per arm.

    ``arms`` holds ``(successes, n)`` for ``kind="proportion"`` and ``(estimate, se)``
    otherwise.
    """
    rng = np.random.default_rng(seed)
    cols = []
    for a, b in arms:
        if kind == "proportion":
            cols.append(rng.beta(prior[0] + a, prior[1] + b - a, size=draws))
        else:
            cols.append(rng.normal(a, b, size=draws))
    return np.column_stack(cols)


def _exact_beta(
    c: tuple[float, float], t: tuple[float, float], sign: float, prior
) -> tuple[float, float]:
    """P(sign * (X_t - X_c) > 0) and E[(sign * (X_c - X_t))+] for Beta posteriors, by quadrature."""
    bc = stats.beta(prior[0] + c[0], prior[1] + c[1] - c[0])
    bc1 = stats.beta(prior[0] + c[0] + 1, prior[1] + c[1] - c[0])
    bt = stats.beta(prior[0] + t[0], prior[1] + t[1] - t[0])
    # integrate over mean +/- 12 sd of both posteriors (Beta tails beyond that are < 1e-12)
    (mc, vc), (mt, vt) = bc.stats(), bt.stats()
    lo = max(0.0, min(mc - 12 * np.sqrt(vc), mt - 12 * np.sqrt(vt)))
    hi = min(1.0, max(mc + 12 * np.sqrt(vc), mt + 12 * np.sqrt(vt)))
    y = np.linspace(lo, hi, _GRID)
    ft = bt.pdf(y)
    mean_c = bc.mean()
    p_t_gt = np.trapezoid(ft * bc.cdf(y), y)  # P(X_t > X_c)
    loss_hi = np.trapezoid(ft * (mean_c * bc1.sf(y) - y * bc.sf(y)), y)  # E[(X_c - X_t)+]
    if sign > 0:
        return float(p_t_gt), float(max(loss_hi, 0.0))
    # lower is better: E[(X_t - X_c)+] = E[X_t - X_c] + E[(X_c - X_t)+]
    return float(1 - p_t_gt), float(max(bt.mean() - mean_c + loss_hi, 0.0))


def bayes_summary(
    arms: Sequence[tuple[float, float]],
    kind: str,
    control: int = 0,
    lower_is_better: bool = False,
    level: float = 0.95,
    draws: int = 20_000,
    seed: int = 20261127,
    prior: tuple[float, float] = (1.0, 1.0),
) -> dict[str, np.ndarray]:
    """Per-arm Bayesian summary against ``arms[control]``.

    Returns arrays (one entry per arm, control included) ``p_beat_control``,
    ``p_best``, ``expected_loss`` (expected shortfall versus control when choosing the
    arm, in metric units), and the credible interval of the absolute
    (``ci_low``/``ci_high``) and relative (``rel_ci_low``/``rel_ci_high``) lift.
    """
    x = posterior_draws(arms, kind, draws, seed, prior)
    sign = -1.0 if lower_is_better else 1.0
    k = x.shape[1]
    p_beat, loss = np.zeros(k), np.zeros(k)
    lo, hi = np.zeros(k), np.zeros(k)
    for i in range(k):
        if i == control:
            continue
        if kind == "proportion":
            p_beat[i], loss[i] = _exact_beta(arms[control], arms[i], sign, prior)
            lo[i], hi[i] = np.quantile(x[:, i] - x[:, control], [(1 - level) / 2, (1 + level) / 2])
        else:
            mu = sign * (arms[i][0] - arms[control][0])
            s = float(np.hypot(arms[i][1], arms[control][1]))
            # scipy.special's ndtr/ndtri: the same values as stats.norm without its overhead
            p_beat[i] = special.ndtr(mu / s)
            loss[i] = s * math.exp(-0.5 * (mu / s) ** 2) / _SQRT2PI - mu * special.ndtr(-mu / s)
            d, z = arms[i][0] - arms[control][0], -special.ndtri((1 - level) / 2)
            lo[i], hi[i] = d - z * s, d + z * s
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = x / x[:, [control]] - 1
    rel = np.where(np.isfinite(rel), rel, np.nan)
    q = [(1 - level) / 2, (1 + level) / 2]
    # np.quantile is several times faster than np.nanquantile; use it when nothing is NaN
    rlo, rhi = (np.nanquantile if np.isnan(rel).any() else np.quantile)(rel, q, axis=0)
    best = np.argmax(sign * x, axis=1)
    return {
        "p_beat_control": p_beat,
        "p_best": np.bincount(best, minlength=k) / x.shape[0],
        "expected_loss": loss,
        "ci_low": lo,
        "ci_high": hi,
        "rel_ci_low": np.where(np.arange(k) == control, 0.0, rlo),
        "rel_ci_high": np.where(np.arange(k) == control, 0.0, rhi),
    }
