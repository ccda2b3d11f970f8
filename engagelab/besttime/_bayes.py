"""Empirical Bayes for hour histograms: a Dirichlet-multinomial with a fitted prior strength.

Each user's hour distribution ``p_u ~ Dirichlet(alpha * prior[g_u])`` where ``prior[g]``
is the pooled hour distribution of the user's group; the counts ``x_u`` are multinomial
given ``p_u``. ``alpha`` maximises the Dirichlet-multinomial marginal likelihood

    sum_u  lgamma(alpha) - lgamma(alpha + n_u)
           + sum_k lgamma(x_uk + alpha * prior_k) - lgamma(alpha * prior_k)

over users with history (only non-zero cells contribute to the inner sum), and the
posterior mean ``(x_u + alpha * prior) / (n_u + alpha)`` shrinks sparse users toward
their group. A user's prior leaves out the user's own counts (:func:`loo_priors`). Fractional (recency-weighted) counts use the same formula.
"""

from __future__ import annotations

import numpy as np
from scipy import optimize, special

__all__ = ["dm_loglik", "fit_alpha", "group_priors", "loo_priors", "posterior_mean"]

_LOG_ALPHA_BOUNDS = (-6.0, 12.0)


def _group_sums(x: np.ndarray, group: np.ndarray, g: int) -> np.ndarray:
    """``(g, K)`` column sums of ``x`` per group code."""
    if g == 1:
        return x.sum(axis=0)[None, :].astype(np.float64)
    return np.stack(
        [np.bincount(group, weights=x[:, j], minlength=g) for j in range(x.shape[1])], axis=1
    )


def group_priors(x: np.ndarray, group: np.ndarray, smoothing: float = 1.0) -> np.ndarray:
    """Pooled hour distribution of each group (rows), lightly smoothed toward the global one.

    Args:
        x: ``(users, K)`` counts.
        group: ``(users,)`` integer group codes ``0..G-1``.
        smoothing: pseudo-count mass of the global distribution added to every group.
    """
    k = x.shape[1]
    total = x.sum(axis=0) + 1e-9
    glob = total / total.sum()
    g = int(group.max()) + 1 if group.size else 1
    sums = _group_sums(x, group, g)
    sums += smoothing * k * glob
    return sums / sums.sum(axis=1, keepdims=True)


def loo_priors(x: np.ndarray, group: np.ndarray, smoothing: float = 1.0) -> np.ndarray:
    """Each user's group prior computed without the user's own counts (leave one out).

    With few users the pooled prior would otherwise already contain each user's
    history, explaining it twice and pushing the fitted prior strength to infinity.

    >>> x = np.array([[4.0, 0.0], [0.0, 4.0]])
    >>> loo_priors(x, np.array([0, 0])).round(3)
    array([[0., 1.],
           [1., 0.]])
    """
    others = x.sum(axis=0)[None, :] - x + 1e-6  # everyone else, and a little uniform mass
    glob = others / others.sum(axis=1, keepdims=True)
    g = int(group.max()) + 1 if group.size else 1
    sums = _group_sums(x, group, g)
    out = sums[group] - x
    np.maximum(out, 0.0, out=out)
    out += smoothing * glob
    out /= out.sum(axis=1, keepdims=True)
    return out


def dm_loglik(alpha: float, x: np.ndarray, prior: np.ndarray) -> float:
    """Dirichlet-multinomial log marginal likelihood (without the multinomial coefficient).

    Args:
        alpha: prior strength.
        x: ``(users, K)`` counts.
        prior: ``(users, K)`` or ``(K,)`` prior distribution of each user.
    """
    prior = np.broadcast_to(prior, x.shape)
    n = x.sum(axis=1)
    keep = n > 0
    x, prior, n = x[keep], prior[keep], n[keep]
    a = alpha * prior
    nz = x > 0
    inner = special.gammaln(x[nz] + a[nz]) - special.gammaln(a[nz])
    return float(
        keep.sum() * special.gammaln(alpha) - special.gammaln(alpha + n).sum() + inner.sum()
    )


def fit_alpha(x: np.ndarray, prior: np.ndarray, max_users: int = 50_000, seed: int = 0) -> float:
    """The prior strength maximising :func:`dm_loglik` (searched on log scale).

    A single scalar is well determined by a sample: at most ``max_users`` users with
    history (a seeded random sample) enter the fit.

    >>> rng = np.random.default_rng(0)
    >>> p = rng.dirichlet(5.0 * np.full(4, 0.25), size=4000)
    >>> x = np.array([rng.multinomial(20, q) for q in p])
    >>> round(fit_alpha(x, np.full(4, 0.25)), 0)
    5.0
    """
    prior = np.broadcast_to(prior, x.shape)
    keep = np.flatnonzero(x.sum(axis=1) > 0)
    if keep.size == 0:
        raise ValueError("no user has any history: the prior strength cannot be fitted")
    if keep.size > max_users:
        keep = np.sort(np.random.default_rng(seed).choice(keep, max_users, replace=False))
    x, prior = x[keep], prior[keep]
    n = x.sum(axis=1)
    nz = x > 0
    xs, ps = x[nz], prior[nz]

    def nll(log_alpha: float) -> float:
        a = float(np.exp(log_alpha))
        inner = special.gammaln(xs + a * ps) - special.gammaln(a * ps)
        return -float(n.size * special.gammaln(a) - special.gammaln(a + n).sum() + inner.sum())

    res = optimize.minimize_scalar(
        nll, bounds=_LOG_ALPHA_BOUNDS, method="bounded", options={"xatol": 1e-4}
    )
    return float(np.exp(res.x))


def posterior_mean(x: np.ndarray, prior: np.ndarray, alpha: float) -> np.ndarray:
    """``(x + alpha * prior) / (n + alpha)`` row by row."""
    n = x.sum(axis=1, keepdims=True)
    return (x + alpha * prior) / (n + alpha)
