"""Dirichlet-multinomial empirical Bayes, checked against scipy and planted truth."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import special, stats

from engagelab.besttime._bayes import (
    dm_loglik,
    fit_alpha,
    group_priors,
    loo_priors,
    posterior_mean,
)


def _planted(alpha: float, n_users: int, seed: int, prior=None):
    rng = np.random.default_rng(seed)
    k = 24
    prior = rng.dirichlet(np.full(k, 3.0)) if prior is None else prior
    p = rng.dirichlet(alpha * prior, size=n_users)
    n = rng.integers(1, 30, size=n_users)
    x = np.array([rng.multinomial(ni, pi) for ni, pi in zip(n, p, strict=True)])
    return x, prior


def test_loglik_matches_scipy_dirichlet_multinomial():
    x, prior = _planted(4.0, 50, seed=1)
    for alpha in (0.5, 4.0, 30.0):
        ours = dm_loglik(alpha, x, prior)
        n = x.sum(axis=1)
        ref = stats.dirichlet_multinomial.logpmf(x, alpha * prior, n).sum()
        coef = (special.gammaln(n + 1) - special.gammaln(x + 1).sum(axis=1)).sum()
        assert ours == pytest.approx(ref - coef, rel=1e-10)


@pytest.mark.parametrize("alpha", [1.5, 6.0, 25.0])
def test_fit_recovers_planted_alpha(alpha):
    x, prior = _planted(alpha, 6000, seed=int(alpha * 10))
    est = fit_alpha(x, prior)
    assert est == pytest.approx(alpha, rel=0.15)


def test_fit_is_the_maximum_of_the_likelihood():
    x, prior = _planted(5.0, 800, seed=3)
    est = fit_alpha(x, prior)
    grid = np.exp(np.linspace(np.log(0.2), np.log(200), 400))
    best = grid[np.argmax([dm_loglik(a, x, prior) for a in grid])]
    assert est == pytest.approx(best, rel=0.03)


def test_users_without_history_do_not_move_the_fit():
    x, prior = _planted(5.0, 2000, seed=4)
    padded = np.vstack([x, np.zeros((3000, 24))])
    assert fit_alpha(padded, prior) == pytest.approx(fit_alpha(x, prior), rel=1e-6)
    with pytest.raises(ValueError, match="no user has any history"):
        fit_alpha(np.zeros((5, 24)), prior)


def test_posterior_mean_is_the_beta_binomial_closed_form():
    # K = 2: Beta(a p, a (1-p)) prior, x successes of n -> posterior mean (x + a p) / (n + a)
    x = np.array([[3.0, 1.0], [0.0, 0.0], [10.0, 0.0]])
    prior = np.array([0.2, 0.8])
    post = posterior_mean(x, prior, 5.0)
    assert post[:, 0] == pytest.approx([(3 + 1) / 9, 0.2, (10 + 1) / 15])
    assert post.sum(axis=1) == pytest.approx(1.0)


def test_group_priors_follow_their_groups():
    x = np.zeros((4, 3))
    x[0, 0] = x[1, 0] = 10
    x[2, 2] = x[3, 2] = 10
    pri = group_priors(x, np.array([0, 0, 1, 1]), smoothing=0.0)
    assert pri[0] == pytest.approx([1, 0, 0], abs=1e-6) and pri[1] == pytest.approx(
        [0, 0, 1], abs=1e-6
    )


def test_one_group_priors_and_scores_match_a_direct_leave_one_out():
    from engagelab.besttime.model import _one_group_scores, _smooth

    rng = np.random.default_rng(9)
    x = rng.poisson(rng.gamma(0.3, 2.0, size=(400, 24))).astype(float)
    x[:7] = 0.0
    fast = loo_priors(x, np.zeros(400, dtype=np.int64))
    for u in (0, 10, 399):
        others = x.sum(axis=0) - x[u]
        glob = (others + 1e-6) / (others + 1e-6).sum()
        ref = (others + glob) / (others + glob).sum()
        assert fast[u] == pytest.approx(ref, rel=1e-9, abs=1e-15)
    # the fused scores of the model equal smoothing the posterior means
    alpha, score = _one_group_scores(x, x.sum(axis=1))
    assert alpha == pytest.approx(fit_alpha(x, fast), rel=1e-9)
    ref = _smooth(posterior_mean(x, fast, alpha))
    assert score == pytest.approx(ref, rel=1e-9, abs=1e-15)
