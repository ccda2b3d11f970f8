"""Design with a CUPED covariate and for ratio metrics, against statsmodels' power
functions on the adjusted variance and against simulations with planted truth."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats
from statsmodels.stats.power import NormalIndPower, tt_ind_solve_power

from engagelab.errors import ValidationError
from engagelab.experiments import minimum_detectable_effect, power, sample_size
from engagelab.experiments.api import design_experiment


@pytest.mark.parametrize("rho", [0.0, 0.3, 0.6, 0.9])
def test_cuped_sample_size_is_normalindpower_on_the_adjusted_sd(rho):
    sd, d = 4.0, 0.5
    es = d / (sd * math.sqrt(1 - rho**2))
    ref = NormalIndPower().solve_power(effect_size=es, alpha=0.05, power=0.8, ratio=1.0)
    res = sample_size("mean", baseline=10.0, sd=sd, mde=d, cuped_rho=rho)
    assert res.n_per_arm[0] == math.ceil(ref - 1e-9)
    assert res.cuped_rho == rho
    ref_t = tt_ind_solve_power(effect_size=es, alpha=0.05, power=0.8, ratio=1.0)
    res_t = sample_size("mean", baseline=10.0, sd=sd, mde=d, cuped_rho=rho, method="t")
    assert res_t.n_per_arm[0] == math.ceil(ref_t - 1e-9)
    # power and mde at a fixed n: the same reference the other way round
    pw = power("mean", baseline=10.0, sd=sd, mde=d, n_per_arm=500, cuped_rho=rho).power
    assert pw == pytest.approx(NormalIndPower().power(es, 500, 0.05, ratio=1.0), rel=1e-9)
    mde = minimum_detectable_effect("mean", baseline=10.0, sd=sd, n_per_arm=500, cuped_rho=rho)
    es_ref = NormalIndPower().solve_power(nobs1=500, alpha=0.05, power=0.8, ratio=1.0)
    assert mde.mde_abs == pytest.approx(es_ref * sd * math.sqrt(1 - rho**2), rel=1e-6)


def test_cuped_proportion_closed_form():
    p1, p2, rho = 0.10, 0.12, 0.5
    z = stats.norm.isf(0.025) + stats.norm.isf(0.2)
    n = z**2 * (p1 * (1 - p1) + p2 * (1 - p2)) * (1 - rho**2) / (p2 - p1) ** 2
    res = sample_size("proportion", baseline=p1, mde=p2 - p1, cuped_rho=rho)
    assert res.n_per_arm[0] == math.ceil(n)  # the lower tail adds < 1e-6 of power


def test_cuped_power_by_simulation():
    """y = x + e with corr(x, y) = 0.6; a CUPED analysis at the designed n has 80 % power."""
    rng = np.random.default_rng(3)
    rho, sd, d = 0.6, 4.0, 0.5
    n = sample_size("mean", baseline=0.0, sd=sd, mde=d, cuped_rho=rho).n_per_arm[0]
    reps = 2000
    sx = rho * sd
    se_noise = sd * math.sqrt(1 - rho**2)

    def arm(shift):
        x = rng.normal(0, 1, (reps, n))
        return x, sx * x + rng.normal(0, se_noise, (reps, n)) + shift

    (xc, yc), (xt, yt) = arm(0.0), arm(d)
    xcd, xtd = xc - xc.mean(1, keepdims=True), xt - xt.mean(1, keepdims=True)
    ycd, ytd = yc - yc.mean(1, keepdims=True), yt - yt.mean(1, keepdims=True)
    theta = ((xcd * ycd).sum(1) + (xtd * ytd).sum(1)) / ((xcd**2).sum(1) + (xtd**2).sum(1))
    diff = yt.mean(1) - yc.mean(1) - theta * (xt.mean(1) - xc.mean(1))
    resid = np.concatenate([ycd - theta[:, None] * xcd, ytd - theta[:, None] * xtd], axis=1)
    se = np.sqrt(2 * resid.var(1, ddof=2) / n)
    empirical = np.mean(np.abs(diff / se) > stats.norm.isf(0.025))
    assert abs(empirical - 0.8) < 0.035


# a ratio metric (revenue per order): N ~ Poisson(2), Y | N ~ Gamma(2N, 5):
# E N = 2, Var N = 2, E Y = 20, Var Y = E[50 N] + 100 Var N = 300, Cov = 10 Var N = 20
MOMENTS = dict(
    numerator_mean=20.0,
    denominator_mean=2.0,
    numerator_var=300.0,
    denominator_var=2.0,
    covariance=20.0,
)
V_DELTA = (300 - 2 * 10 * 20 + 100 * 2) / 4  # 25


def test_ratio_design_is_a_mean_design_on_the_delta_variance():
    res = sample_size("ratio", mde=0.05, relative=True, ratio=MOMENTS)
    assert res.baseline == 10.0 and res.sd == pytest.approx(math.sqrt(V_DELTA))
    es = 0.5 / math.sqrt(V_DELTA)
    ref = NormalIndPower().solve_power(effect_size=es, alpha=0.05, power=0.8, ratio=1.0)
    assert res.n_per_arm[0] == math.ceil(ref - 1e-9)
    cuped = sample_size("ratio", mde=0.05, relative=True, ratio=MOMENTS, cuped_rho=0.5)
    ref = NormalIndPower().solve_power(
        effect_size=es / math.sqrt(0.75), alpha=0.05, power=0.8, ratio=1.0
    )
    assert cuped.n_per_arm[0] == math.ceil(ref - 1e-9)
    out = design_experiment(metric="ratio", mde=0.05, relative=True, ratio=MOMENTS)
    assert out["n_per_arm"] == list(res.n_per_arm) and out["cuped_rho"] == 0.0


def test_ratio_variance_and_power_by_simulation():
    """Users drawn from the model above; the treatment adds 0.5 per order (ratio +0.5,
    same linearised variance). Var of the ratio estimate ~ v / n; power at design n ~ 80 %."""
    rng = np.random.default_rng(8)
    n = sample_size("ratio", mde=0.5, ratio=MOMENTS).n_per_arm[0]
    reps = 2000

    def arm(shift):
        orders = rng.poisson(2.0, (reps, n))
        revenue = rng.gamma(np.maximum(2.0 * orders, 1e-300), 5.0) * (orders > 0)
        revenue = revenue + shift * orders
        r = revenue.sum(1) / orders.sum(1)
        lin = (revenue - r[:, None] * orders) / orders.mean(1, keepdims=True)
        return r, lin.var(1, ddof=1) / n

    (rc, vc), (rt, vt) = arm(0.0), arm(0.5)
    assert np.var(rc, ddof=1) == pytest.approx(V_DELTA / n, rel=0.08)
    assert np.mean(vc) == pytest.approx(V_DELTA / n, rel=0.02)
    empirical = np.mean(np.abs((rt - rc) / np.sqrt(vc + vt)) > stats.norm.isf(0.025))
    assert abs(empirical - 0.8) < 0.035


@pytest.mark.parametrize(
    "kwargs,field",
    [
        (dict(metric="mean", sd=1.0, cuped_rho=1.0), "cuped_rho"),
        (dict(metric="mean", sd=1.0, cuped_rho=-0.1), "cuped_rho"),
        (dict(metric="proportion", method="arcsine", cuped_rho=0.5), "cuped_rho"),
        (dict(metric="ratio", ratio={**MOMENTS, "covariance": 100.0}), "ratio.covariance"),
        (
            dict(metric="ratio", ratio={**MOMENTS, "denominator_mean": 0.0}),
            "ratio.denominator_mean",
        ),
        (dict(metric="ratio", ratio={"numerator_mean": 1.0}), "ratio.denominator_mean"),
        (dict(metric="ratio", ratio={**MOMENTS, "numer_mean": 1.0}), "ratio.numer_mean"),
        (dict(metric="ratio", ratio=MOMENTS, baseline=3.0), "baseline"),
        (dict(metric="ratio", ratio=MOMENTS, sd=2.0), "sd"),
        (dict(metric="mean", sd=1.0, ratio=MOMENTS), "ratio"),
        (dict(metric="ratio"), "ratio"),
    ],
)
def test_bad_design_input_names_the_field(kwargs, field):
    kwargs.setdefault("baseline", 0.1)
    if kwargs["metric"] == "ratio" and kwargs["baseline"] == 0.1:
        kwargs["baseline"] = None
    with pytest.raises(ValidationError) as exc:
        sample_size(mde=0.01, **kwargs)
    assert exc.value.field == field
