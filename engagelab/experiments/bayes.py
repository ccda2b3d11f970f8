"""Bayesian summaries of arms: probability to beat control, to be best, expected loss.

Proportions use a Beta-Binomial model (uniform ``Beta(1, 1)`` prior by default);
means, ratios and CUPED-adjusted metrics use a normal approximation of each arm's
posterior, ``N(estimate, se**2)`` (flat prior). Probabilities come from Monte Carlo
draws with a fixed seed, so results are reproducible. These numbers are Bayesian:
they are reported in their own ``bayes_*`` columns and never mixed with p-values.

Example:
    >>> out = bayes_summary([(100, 1000), (130, 1000)], kind="proportion")
    >>> round(float(out["p_beat_control"][1]), 2), round(float(out["p_best"][1]), 2)
    (0.98, 0.98)
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["bayes_summary", "posterior_draws"]


def posterior_draws(
    arms: Sequence[tuple[float, float]], kind: str, draws: int = 100_000, seed: int = 20261127,
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


def bayes_summary(
    arms: Sequence[tuple[float, float]], kind: str, control: int = 0, lower_is_better: bool = False,
    level: float = 0.95, draws: int = 100_000, seed: int = 20261127,
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
    diff = x - x[:, [control]]
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = x / x[:, [control]] - 1
    good = sign * diff
    best = np.argmax(sign * x, axis=1)
    q = [(1 - level) / 2, (1 + level) / 2]
    lo, hi = np.quantile(diff, q, axis=0)
    rlo, rhi = np.nanquantile(np.where(np.isfinite(rel), rel, np.nan), q, axis=0)
    return {
        "p_beat_control": (good > 0).mean(axis=0),
        "p_best": np.bincount(best, minlength=x.shape[1]) / x.shape[0],
        "expected_loss": np.maximum(-good, 0).mean(axis=0),
        "ci_low": lo,
        "ci_high": hi,
        "rel_ci_low": rlo,
        "rel_ci_high": rhi,
    }
