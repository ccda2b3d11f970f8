"""Design formulas checked against statsmodels' power functions on random inputs."""

from __future__ import annotations

import math

import numpy as np
import pytest
from statsmodels.stats.power import NormalIndPower, TTestIndPower
from statsmodels.stats.proportion import power_proportions_2indep

from engagelab.errors import ValidationError
from engagelab.experiments.design import minimum_detectable_effect, power, sample_size

RNG = np.random.default_rng(20261127)


def _cases(n=25):
    for _ in range(n):
        p1 = float(RNG.uniform(0.02, 0.6))
        rel = float(RNG.choice([-1, 1]) * RNG.uniform(0.05, 0.4))
        wc = float(RNG.uniform(0.3, 0.7))
        alpha = float(RNG.choice([0.01, 0.05, 0.1]))
        pw = float(RNG.uniform(0.6, 0.95))
        alt = str(RNG.choice(["two-sided", "one-sided"]))
        yield p1, rel, wc, alpha, pw, alt


@pytest.mark.parametrize("case", list(_cases()))
def test_unpooled_proportion_matches_normalindpower(case):
    p1, rel, wc, alpha, pw, alt = case
    d = sample_size(
        "proportion",
        baseline=p1,
        mde=rel,
        relative=True,
        alpha=alpha,
        power=pw,
        alternative=alt,
        weights=[wc, 1 - wc],
    )
    p2 = p1 * (1 + rel)
    ratio = (1 - wc) / wc
    es = abs(p2 - p1) / math.sqrt((p1 * (1 - p1) + p2 * (1 - p2) / ratio) / (1 + 1 / ratio))
    ref = NormalIndPower().solve_power(
        es,
        alpha=alpha,
        power=pw,
        ratio=ratio,
        alternative="two-sided" if alt == "two-sided" else "larger",
    )
    assert d.n_per_arm[0] == math.ceil(ref - 1e-6) or abs(d.n_per_arm[0] - ref) <= 1.0
    assert abs(d.n_per_arm[1] - ref * ratio) <= 1.0
    assert d.method == "unpooled" and "unpooled" in d.formula


@pytest.mark.parametrize("case", list(_cases(15)))
def test_arcsine_matches_cohens_h(case):
    p1, rel, wc, alpha, pw, alt = case
    d = sample_size(
        "proportion",
        baseline=p1,
        mde=rel,
        relative=True,
        alpha=alpha,
        power=pw,
        alternative=alt,
        weights=[wc, 1 - wc],
        method="arcsine",
    )
    h = abs(2 * math.asin(math.sqrt(p1 * (1 + rel))) - 2 * math.asin(math.sqrt(p1)))
    ratio = (1 - wc) / wc
    ref = NormalIndPower().solve_power(
        h,
        alpha=alpha,
        power=pw,
        ratio=ratio,
        alternative="two-sided" if alt == "two-sided" else "larger",
    )
    assert abs(d.n_per_arm[0] - ref) <= 1.0


@pytest.mark.parametrize("case", list(_cases(15)))
def test_pooled_power_matches_power_proportions_2indep(case):
    p1, rel, wc, alpha, _, alt = case
    if alt != "two-sided":
        return
    n1 = int(RNG.integers(200, 20000))
    ratio = (1 - wc) / wc
    mine = power(
        "proportion",
        baseline=p1,
        mde=rel,
        relative=True,
        n_per_arm=n1,
        alpha=alpha,
        weights=[wc, 1 - wc],
        method="pooled",
    ).power
    p2 = p1 * (1 + rel)
    # statsmodels: sample 1 is the treatment, sample 2 (nobs1 * ratio) the control
    ref = power_proportions_2indep(p2 - p1, p1, n1 * ratio, ratio=1 / ratio, alpha=alpha).power
    assert mine == pytest.approx(ref, abs=2e-6)


@pytest.mark.parametrize("seed", range(12))
def test_mean_methods_match_statsmodels(seed):
    r = np.random.default_rng(seed)
    sd, alpha, pw = r.uniform(0.5, 5), 0.05, r.uniform(0.6, 0.95)
    mde = sd * r.uniform(0.05, 0.5)
    d = sample_size("mean", baseline=3.0, sd=sd, mde=mde, alpha=alpha, power=pw)
    ref = NormalIndPower().solve_power(effect_size=mde / sd, alpha=alpha, power=pw)
    assert abs(d.n_per_arm[0] - ref) <= 1.0
    t = sample_size("mean", baseline=3.0, sd=sd, mde=mde, alpha=alpha, power=pw, method="t")
    # the smallest n whose statsmodels t-test power reaches the target
    n = t.n_per_arm[0]
    assert TTestIndPower().power(mde / sd, nobs1=n, alpha=alpha) >= pw - 1e-9
    assert TTestIndPower().power(mde / sd, nobs1=n - 1, alpha=alpha) < pw
    assert t.n_per_arm[0] >= d.n_per_arm[0]


def test_inverse_problems_round_trip():
    d = sample_size("proportion", baseline=0.05, mde=0.004, arms=3)
    assert d.alpha_per_comparison == pytest.approx(0.025)
    assert d.power >= 0.8
    back = minimum_detectable_effect("proportion", baseline=0.05, n_per_arm=d.n_per_arm[0], arms=3)
    assert back.mde_abs == pytest.approx(0.004, rel=2e-3)
    assert back.effect_text.startswith("detects 5.000% -> 5.4")
    pw = power("proportion", baseline=0.05, mde=0.004, n_per_arm=d.n_per_arm[0], arms=3).power
    assert 0.8 <= pw < 0.8005
    down = minimum_detectable_effect(
        "mean", baseline=10, sd=2, n_per_arm=1000, direction="decrease"
    )
    assert down.mde_abs < 0 and down.target < 10


def test_multi_arm_needs_more_than_two_arms_and_duration():
    two = sample_size("proportion", baseline=0.1, mde=0.01)
    four = sample_size("proportion", baseline=0.1, mde=0.01, arms=4, daily_traffic=5000)
    assert four.n_per_arm[0] > two.n_per_arm[0]
    assert four.days == math.ceil(four.total_n / 5000)
    half = sample_size(
        "proportion", baseline=0.1, mde=0.01, arms=4, daily_traffic=5000, traffic_fraction=0.5
    )
    assert half.days == math.ceil(four.total_n / 2500)
    assert set(four.to_dict()) >= {"n_per_arm", "total_n", "method", "formula", "effect_text"}
    assert "<table" in four._repr_html_() and "n_per_arm=" in repr(four)
    assert list(four.to_pandas()["n"]) == list(four.n_per_arm)


@pytest.mark.parametrize(
    "kwargs, field",
    [
        (dict(baseline=0.05, mde=0.0), "mde"),
        (dict(baseline=0.05, mde=0.1, alpha=1.2), "alpha"),
        (dict(baseline=0.05, mde=0.1, alpha=0), "alpha"),
        (dict(baseline=0.05, mde=0.1, weights=[0.6, 0.6]), "weights"),
        (dict(baseline=0.05, mde=0.1, arms=3, weights=[0.5, 0.5]), "weights"),
        (dict(baseline=1.5, mde=0.1), "baseline"),
        (dict(baseline=0.95, mde=0.1), "mde"),
        (dict(baseline=0.05, mde=0.1, power=1.0), "power"),
        (dict(baseline=0.05, mde=0.1, method="t"), "method"),
        (dict(baseline=0.05, mde=0.1, arms=1), "arms"),
    ],
)
def test_bad_input_names_the_field(kwargs, field):
    with pytest.raises(ValidationError) as e:
        sample_size("proportion", **kwargs)
    assert e.value.field == field
    assert str(e.value).startswith(field) and "\n" not in str(e.value)


def test_mean_needs_sd_and_too_small_sample_is_reported():
    with pytest.raises(ValidationError, match="^sd =="):
        sample_size("mean", baseline=1.0, mde=0.1)
    with pytest.raises(ValidationError, match="too small"):
        minimum_detectable_effect("proportion", baseline=0.5, n_per_arm=2, alpha=0.001, power=0.99)
