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

from collections.abc import Callable

import numpy as np
from scipy import optimize, special

__all__ = [
    "conditional_rows",
    "dm_loglik",
    "fit_alpha",
    "group_priors",
    "loo_coefficients",
    "loo_conditionals",
    "loo_priors",
    "posterior_mean",
    "week_posterior",
]

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
    g = int(group.max()) + 1 if group.size else 1
    if g == 1:
        return _loo_one_group(x, smoothing)
    others = x.sum(axis=0)[None, :] - x + 1e-6  # everyone else, and a little uniform mass
    glob = others / others.sum(axis=1, keepdims=True)
    sums = _group_sums(x, group, g)
    out = sums[group] - x
    np.maximum(out, 0.0, out=out)
    out += smoothing * glob
    out /= out.sum(axis=1, keepdims=True)
    return out


def loo_coefficients(
    x: np.ndarray, smoothing: float = 1.0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One group's leave-one-out priors as an affine map of everyone's counts:
    ``loo_priors(x, 0)[u] == (total - x[u]) * c1[u] + c2[u]``; returns (total, c1, c2).

    With ``D = total - x[u]`` (everyone else's counts, never negative) the prior is
    ``(D + s * (D + e) / (sum(D) + K e)) / (sum(D) + s)``, so a row costs two numbers.
    """
    k = x.shape[1]
    total = x.sum(axis=0)
    rest = float(total.sum()) - x.sum(axis=1)  # sum of D per row
    s1 = rest + k * 1e-6
    s2 = rest + smoothing
    return total, (1.0 + smoothing / s1) / s2, smoothing * 1e-6 / (s1 * s2)


def _loo_one_group(x: np.ndarray, smoothing: float) -> np.ndarray:
    """:func:`loo_priors` for one group in a few passes (see :func:`loo_coefficients`)."""
    total, c1, c2 = loo_coefficients(x, smoothing)
    out = np.subtract(total[None, :], x)
    out *= c1[:, None]
    out += c2[:, None]
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


def fit_alpha(
    x: np.ndarray,
    prior: np.ndarray | Callable[[np.ndarray], np.ndarray],
    max_users: int = 20_000,
    seed: int = 0,
) -> float:
    """The prior strength maximising :func:`dm_loglik` (searched on log scale).

    A single scalar is well determined by a sample: at most ``max_users`` users with
    history (a seeded random sample) enter the fit. ``prior`` is the users' prior
    distributions (``(users, K)`` or ``(K,)``) or a function of the sampled rows' indices
    returning theirs (so the full array need not exist).

    >>> rng = np.random.default_rng(0)
    >>> p = rng.dirichlet(5.0 * np.full(4, 0.25), size=4000)
    >>> x = np.array([rng.multinomial(20, q) for q in p])
    >>> round(fit_alpha(x, np.full(4, 0.25)), 0)
    5.0
    """
    keep = np.flatnonzero(x.sum(axis=1) > 0)
    if keep.size == 0:
        raise ValueError("no user has any history: the prior strength cannot be fitted")
    if keep.size > max_users:
        keep = np.sort(np.random.default_rng(seed).choice(keep, max_users, replace=False))
    prior = prior(keep) if callable(prior) else np.broadcast_to(prior, x.shape)[keep]
    x = x[keep]
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


def posterior_mean(
    x: np.ndarray, prior: np.ndarray, alpha: float, *, overwrite_prior: bool = False
) -> np.ndarray:
    """``(x + alpha * prior) / (n + alpha)`` row by row (in ``prior``'s memory if
    ``overwrite_prior`` and it is a full ``x``-shaped array)."""
    n = x.sum(axis=1, keepdims=True)
    if overwrite_prior and prior.shape == x.shape:
        out = np.multiply(prior, alpha, out=prior)
        out += x
        out /= n + alpha
        return out
    return (x + alpha * prior) / (n + alpha)


def loo_conditionals(y: np.ndarray, group: np.ndarray, smoothing: float = 1.0) -> np.ndarray:
    """Each user's group share of weekday ``d`` among events at local hour ``h``, without
    the user's own counts (like :func:`loo_priors`), lightly smoothed toward everyone else.

    Args:
        y: ``(users, 7, 24)`` counts per weekday and hour.
        group: ``(users,)`` integer group codes.

    Returns:
        ``(users, 7, 24)``; every ``[u, :, h]`` sums to one.

    >>> y = np.zeros((2, 7, 24)); y[0, 0, 9] = 3; y[1, 5, 9] = 1
    >>> w = loo_conditionals(y, np.array([0, 0]))
    >>> round(float(w[0, 5, 9]), 3), round(float(w[1, 0, 9]), 3)
    (1.0, 1.0)
    """
    n, d, k = y.shape
    g = int(group.max()) + 1 if group.size else 1
    if g == 1:
        return _loo_conditionals_one_group(y, smoothing)
    flat = y.reshape(n, d * k)
    others = flat.sum(axis=0)[None, :] - flat + 1e-6
    others = others.reshape(n, d, k)
    glob = others / others.sum(axis=1, keepdims=True)
    sums = _group_sums(flat, group, g)
    out = (sums[group] - flat).reshape(n, d, k)
    np.maximum(out, 0.0, out=out)
    out += smoothing * glob
    out /= out.sum(axis=1, keepdims=True)
    return out


def _loo_conditionals_one_group(y: np.ndarray, smoothing: float) -> np.ndarray:
    """:func:`loo_conditionals` for one group in one ``y``-sized array: with
    ``D = total - y[u]`` the result is ``D * c1 + c2`` with ``c1, c2`` per (user, hour)
    (the same algebra as :func:`loo_coefficients`, per hour over the 7 weekdays)."""
    d = y.shape[1]
    total = y.sum(axis=0)  # (7, 24)
    rest = total.sum(axis=0)[None, :] - y.sum(axis=1)  # (users, 24): sum of D over weekdays
    s1 = rest + d * 1e-6
    s2 = rest + smoothing
    out = np.subtract(total[None, :, :], y)
    out *= ((1.0 + smoothing / s1) / s2)[:, None, :]
    out += (smoothing * 1e-6 / (s1 * s2))[:, None, :]
    return out


def conditional_rows(y: np.ndarray, base: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The ``(user, hour)`` pairs with history as rows of weekday counts and their base
    shares: the data :func:`fit_alpha` fits the weekday-given-hour prior strength on.

    Args:
        y: ``(users, 7, 24)`` counts; base: ``(users, 7, 24)`` prior shares.
    """
    users, hours = np.nonzero(y.sum(axis=1) > 0)
    return y[users, :, hours], base[users, :, hours]


def week_posterior(
    hour_post: np.ndarray, y: np.ndarray, base: np.ndarray, beta: float
) -> np.ndarray:
    """Posterior mean share of each (weekday, hour): ``p(h) * p(d | h)`` with
    ``p(d | h) = (y[d, h] + beta * base[d, h]) / (sum_d y[d, h] + beta)``.

    A Dirichlet over the 24 hours times, per hour, a Dirichlet over the 7 weekdays
    (a generalised Dirichlet over the 168 cells): with little history both factors fall
    back to the group's, so the result falls back to the group's hour-of-week prior.

    Returns:
        ``(users, 168)``, Monday 00:00 first; rows sum to one.
    """
    return week_posterior_(hour_post, y, base.copy(), beta)


def week_posterior_(
    hour_post: np.ndarray, y: np.ndarray, base: np.ndarray, beta: float
) -> np.ndarray:
    """:func:`week_posterior` computed in ``base``'s memory (which it overwrites)."""
    base *= beta
    base += y
    base /= (y.sum(axis=1) + beta)[:, None, :]
    base *= hour_post[:, None, :]
    return base.reshape(len(y), -1)
