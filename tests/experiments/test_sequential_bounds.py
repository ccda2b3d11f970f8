"""Group-sequential boundaries against independent computations.

* published rpact values (in test_references.py);
* scipy's multivariate-normal CDF (Genz's integration, independent of the recursion)
  to 1e-5 for five looks, recorded, and recomputed live for three looks;
* Monte Carlo type-I error over one million Brownian paths.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import optimize, stats

from engagelab.errors import ValidationError
from engagelab.experiments.sequential import group_sequential_bounds, spending


def mvn_bounds(t, alpha=0.05, kind="obf", rho=1.0, abseps=1e-9):
    """Boundaries from scipy's multivariate-normal CDF (Genz's algorithm), look by look.

    ``corr(Z_i, Z_j) = sqrt(t_i / t_j)``; each bound solves
    ``P(cross by look k) = spent(t_k)``. Independent of the recursion under test.
    """
    t = np.asarray(t, float)
    spent = spending(t, alpha, kind, rho)
    bounds = [stats.norm.isf(spent[0] / 2)]
    for k in range(1, len(t)):
        tk = t[: k + 1]
        cov = np.sqrt(np.minimum.outer(tk, tk) / np.maximum.outer(tk, tk))
        mvn = stats.multivariate_normal(
            np.zeros(k + 1), cov, seed=7, maxpts=400_000 * (k + 1), abseps=abseps, releps=abseps
        )

        def crossed(c, mvn=mvn, k=k):
            b = np.r_[bounds, c]
            return 1 - mvn.cdf(b, lower_limit=-b) - spent[k]

        bounds.append(optimize.brentq(crossed, 1.0, 10.0, xtol=1e-7))
    return np.array(bounds)


# mvn_bounds(...) for these designs, computed once (30-70 s each): the recursion must
# reproduce Genz's integration to 1e-5.
MVN_REFERENCE = [
    (
        [0.2, 0.4, 0.6, 0.8, 1.0],
        "obf",
        1.0,
        [4.87688495, 3.35701192, 2.68028007, 2.28981697, 2.03103203],
    ),
    (
        [0.2, 0.4, 0.6, 0.8, 1.0],
        "pocock",
        1.0,
        [2.43797669, 2.42681386, 2.41019388, 2.39664868, 2.38599027],
    ),
    (
        [0.1, 0.25, 0.55, 0.9, 1.0],
        "power",
        2.0,
        [3.4807564, 2.99660765, 2.48327555, 2.13732281, 2.1385549],
    ),
]


@pytest.mark.parametrize("t,kind,rho,expected", MVN_REFERENCE)
def test_bounds_agree_with_genz_integration(t, kind, rho, expected):
    ours = np.array(group_sequential_bounds(t, 0.05, kind, rho))
    assert np.max(np.abs(ours - np.array(expected))) < 1e-5, ours


@pytest.mark.slow
def test_bounds_agree_with_genz_integration_computed_now():
    t = [0.25, 0.5, 1.0]
    ours = np.array(group_sequential_bounds(t, 0.05, "power", 3.0))
    assert np.max(np.abs(ours - mvn_bounds(t, 0.05, "power", 3.0))) < 1e-4


def test_bounds_agree_with_the_multivariate_normal_cdf():
    t = np.array([0.3, 0.6, 1.0])
    b = np.array(group_sequential_bounds(list(t), 0.05, "pocock"))
    cov = np.sqrt(np.minimum.outer(t, t) / np.maximum.outer(t, t))
    mvn = stats.multivariate_normal(np.zeros(3), cov, seed=1, maxpts=2_000_000, abseps=1e-8)
    no_cross = mvn.cdf(b, lower_limit=-b)
    assert 1 - no_cross == pytest.approx(0.05, abs=2e-5)


@pytest.mark.parametrize("kind,rho", [("obf", 1.0), ("pocock", 1.0), ("power", 3.0)])
def test_thirty_looks_keep_alpha_over_a_million_brownian_paths(kind, rho):
    t = np.arange(1, 31) / 30
    b = np.array(group_sequential_bounds(list(t), 0.05, kind, rho))
    rng = np.random.default_rng(2026)
    crossed = np.zeros(1_000_000, bool)
    first = np.zeros(30)
    for chunk in range(10):
        inc = rng.standard_normal((100_000, 30)) * math.sqrt(1 / 30)
        z = inc.cumsum(1) / np.sqrt(t)
        hit = np.abs(z) >= b
        any_hit = hit.any(1)
        crossed[chunk * 100_000 : (chunk + 1) * 100_000] = any_hit
        first += np.bincount(hit[any_hit].argmax(1), minlength=30)
    rate = crossed.mean()
    assert abs(rate - 0.05) <= 0.001, rate
    # the spending function is honoured look by look, not only in total
    spent = np.diff(np.concatenate([[0.0], spending(t, 0.05, kind, rho)]))
    assert np.allclose(np.cumsum(first) / 1e6, np.cumsum(spent), atol=0.001)


def test_spending_families_and_their_errors():
    assert float(spending(1.0, 0.05, "obf")) == pytest.approx(0.05)
    assert float(spending(1.0, 0.05, "pocock")) == pytest.approx(0.05)
    assert float(spending(0.5, 0.05, "power", rho=3)) == pytest.approx(0.05 / 8)
    # power with rho = 1 spends linearly, so the first of two equal looks spends 0.025
    b = group_sequential_bounds([0.5, 1.0], 0.05, "power", rho=1)
    assert b[0] == pytest.approx(stats.norm.isf(0.0125), abs=1e-9)
    with pytest.raises(ValidationError, match="rho"):
        group_sequential_bounds([0.5, 1.0], 0.05, "power", rho=0)
    with pytest.raises(ValidationError, match="spending"):
        group_sequential_bounds([0.5, 1.0], 0.05, "linear")
    with pytest.raises(ValidationError, match="increasing"):
        group_sequential_bounds([0.5, 0.5, 1.0])


def test_many_looks_are_cached_and_tiny_early_spends_give_finite_bounds():
    t = [i / 30 for i in range(1, 31)]
    first = group_sequential_bounds(t, 0.05, "obf")
    assert all(math.isfinite(x) for x in first)
    assert first[0] > 10 and 2.0 < first[-1] < 2.2
    # monotone for O'Brien-Fleming: boundaries fall as information accrues
    assert all(a > b for a, b in zip(first, first[1:], strict=False))
    assert group_sequential_bounds(t, 0.05, "obf") == first
