"""Wilson and Newcombe intervals against statsmodels, published values and simulation."""

from __future__ import annotations

import numpy as np
import pytest
from statsmodels.stats.proportion import proportion_confint

from engagelab.retention import newcombe, wilson


@pytest.mark.parametrize(("x", "n"), [(0, 10), (1, 10), (5, 10), (10, 10), (37, 250), (999, 1000)])
@pytest.mark.parametrize("conf", [0.9, 0.95, 0.99])
def test_wilson_matches_statsmodels(x, n, conf):
    lo, hi = wilson(x, n, conf)
    ref = proportion_confint(x, n, alpha=1 - conf, method="wilson")
    assert float(lo) == pytest.approx(ref[0], abs=1e-12)
    assert float(hi) == pytest.approx(ref[1], abs=1e-12)


def test_wilson_empty_group_is_nan():
    lo, hi = wilson([0, 3], [0, 5])
    assert np.isnan(lo[0]) and np.isnan(hi[0]) and 0 < lo[1] < hi[1] < 1


@pytest.mark.parametrize(
    ("counts", "published"),
    [
        ((56, 70, 48, 80), (0.0524, 0.3339)),  # Newcombe (1998) Table II, examples (a)-(d)
        ((9, 10, 3, 10), (0.1705, 0.8090)),
        ((6, 7, 2, 7), (0.0582, 0.8062)),
        ((5, 56, 0, 29), (-0.0381, 0.1926)),
    ],
)
def test_newcombe_matches_published_values(counts, published):
    _, lo, hi = newcombe(*counts)
    assert (round(float(lo), 4), round(float(hi), 4)) == published


def test_newcombe_coverage_by_simulation():
    rng = np.random.default_rng(3)
    for p1, p2, n1, n2 in [(0.3, 0.2, 200, 60), (0.05, 0.02, 150, 150), (0.9, 0.8, 40, 25)]:
        reps = 20_000
        x1 = rng.binomial(n1, p1, reps)
        x2 = rng.binomial(n2, p2, reps)
        _, lo, hi = newcombe(x1, n1, x2, n2)
        cover = np.mean((lo <= p1 - p2) & (p1 - p2 <= hi))
        assert 0.935 <= cover <= 0.97, (p1, p2, n1, n2, cover)
