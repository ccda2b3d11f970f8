"""Closed-form cross-checks of the analysis against scipy and statsmodels on random inputs."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from scipy import integrate, stats
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.proportion import proportions_ztest
from statsmodels.stats.proportion import test_proportions_2indep as sm_prop_2indep

from engagelab.experiments import Metric, analyze, analyze_aggregates
from engagelab.experiments._stats import adjust_logp, barnard, fisher, format_p
from engagelab.experiments.bayes import bayes_summary
from engagelab.experiments.sequential import always_valid, group_sequential_bounds


def _prop_agg(cases):
    rows = []
    for i, (sc, nc, st, nt) in enumerate(cases):
        rows += [
            {
                "experiment": f"e{i:03d}",
                "arm": "A",
                "n": nc,
                "sum:y": float(sc),
                "sumsq:y": float(sc),
            },
            {
                "experiment": f"e{i:03d}",
                "arm": "B",
                "n": nt,
                "sum:y": float(st),
                "sumsq:y": float(st),
            },
        ]
    return pd.DataFrame(rows)


def _random_prop_cases(rng, k, nmin=200, nmax=50_000):
    out = []
    for _ in range(k):
        nc, nt = (int(x) for x in rng.integers(nmin, nmax, 2))
        p = rng.uniform(0.01, 0.6)
        out.append(
            (int(rng.binomial(nc, p)), nc, int(rng.binomial(nt, p * rng.uniform(0.9, 1.15))), nt)
        )
    return out


def test_unpooled_and_pooled_z_match_statsmodels():
    rng = np.random.default_rng(11)
    cases = _random_prop_cases(rng, 60)
    agg = _prop_agg(cases)
    z = analyze_aggregates(
        agg, control="A", metrics=["y:proportion"], test="z", bayes_draws=1000
    ).to_pandas()
    pz = analyze_aggregates(
        agg, control="A", metrics=["y:proportion"], test="pooled_z", bayes_draws=1000
    ).to_pandas()
    for (sc, nc, st, nt), rz, rp in zip(cases, z.itertuples(), pz.itertuples(), strict=True):
        wald = sm_prop_2indep(st, nt, sc, nc, method="wald", compare="diff")
        assert rz.p_value == pytest.approx(wald.pvalue, rel=1e-7, abs=1e-300)
        pooled = proportions_ztest([st, sc], [nt, nc])[1]
        assert rp.p_value == pytest.approx(pooled, rel=1e-7, abs=1e-300)
        # unpooled Wald interval for the difference
        diff, se = (
            st / nt - sc / nc,
            math.sqrt(st / nt * (1 - st / nt) / nt + sc / nc * (1 - sc / nc) / nc),
        )
        assert rz.abs_ci_low == pytest.approx(diff - 1.959963984540054 * se, rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("seed", range(8))
def test_welch_matches_scipy_on_raw_rows(seed):
    rng = np.random.default_rng(seed)
    n1, n2 = (int(x) for x in rng.integers(20, 3000, 2))
    y = np.concatenate([rng.lognormal(1, 1, n1), rng.lognormal(1.05, 1.2, n2)])
    df = pd.DataFrame({"arm": ["c"] * n1 + ["t"] * n2, "rev": y})
    row = (
        analyze(df, arm_col="arm", control="c", metrics=["rev:mean"], bayes_draws=1000)
        .to_pandas()
        .iloc[0]
    )
    ref = stats.ttest_ind(y[n1:], y[:n1], equal_var=False)
    assert row.test == "welch"
    assert row.p_value == pytest.approx(ref.pvalue, rel=1e-8)
    ci = ref.confidence_interval(0.95)
    assert (row.abs_ci_low, row.abs_ci_high) == pytest.approx((ci.low, ci.high), rel=1e-8)


def test_cuped_lift_equals_ols_with_arm_dummies():
    rng = np.random.default_rng(5)
    n = 6000
    arm = rng.choice(["a", "b", "c"], n)
    x = rng.gamma(2, 3, n)
    y = 2 + 0.8 * x + (arm == "b") * 0.4 + rng.normal(0, 2, n)
    df = pd.DataFrame({"arm": arm, "x": x, "y": y})
    res = analyze(
        df,
        arm_col="arm",
        control="a",
        metrics=[Metric("y", "mean", covariate="x")],
        bayes_draws=1000,
        cuped_theta="pooled",  # one slope from all arms: the OLS below
    ).to_pandas()
    X = sm.add_constant(pd.DataFrame({"b": (arm == "b") * 1.0, "c": (arm == "c") * 1.0, "x": x}))
    ols = sm.OLS(y, X).fit()
    for r in res.itertuples():
        assert r.abs_lift == pytest.approx(ols.params[r.arm], rel=1e-9, abs=1e-12)
        assert r.abs_ci_high - r.abs_ci_low == pytest.approx(2 * 1.96 * ols.bse[r.arm], rel=0.05)
    plain = analyze(
        df, arm_col="arm", control="a", metrics=["y:mean"], bayes_draws=1000
    ).to_pandas()
    # residual sd 2 vs total sd ~3.9: CUPED intervals are about half as wide
    assert (res.abs_ci_high - res.abs_ci_low).max() < 0.6 * (
        plain.abs_ci_high - plain.abs_ci_low
    ).min()


def test_ratio_delta_method_matches_closed_form():
    rng = np.random.default_rng(9)
    n = 4000
    den = rng.poisson(3, 2 * n)
    num = den * rng.gamma(2, 5, 2 * n)
    df = pd.DataFrame({"arm": ["A"] * n + ["B"] * n, "num": num, "den": den})
    row = (
        analyze(df, arm_col="arm", control="A", metrics=["num:ratio:den"], bayes_draws=1000)
        .to_pandas()
        .iloc[0]
    )

    def est(a, b):
        r = a.sum() / b.sum()
        cov = np.cov(a, b, ddof=1)
        v = (cov[0, 0] - 2 * r * cov[0, 1] + r * r * cov[1, 1]) / (len(a) * b.mean() ** 2)
        return r, v

    rc, vc = est(num[:n], den[:n])
    rt, vt = est(num[n:], den[n:])
    assert row.control_estimate == pytest.approx(rc) and row.arm_estimate == pytest.approx(rt)
    assert row.p_value == pytest.approx(
        2 * stats.norm.sf(abs(rt - rc) / math.sqrt(vc + vt)), rel=1e-6
    )
    assert row.metric == "num/den"


def test_exact_tests_match_scipy():
    rng = np.random.default_rng(3)
    for _ in range(40):
        nc, nt = (int(x) for x in rng.integers(3, 40, 2))
        sc, st = int(rng.integers(0, nc + 1)), int(rng.integers(0, nt + 1))
        for alt, ref_alt in (("two-sided", "two-sided"), ("greater", "less"), ("less", "greater")):
            ref = stats.fisher_exact([[sc, st], [nc - sc, nt - st]], alternative=ref_alt).pvalue
            assert math.exp(fisher(sc, nc, st, nt, alt)) == pytest.approx(ref, rel=1e-9, abs=1e-15)
    for sc, nc, st, nt in [(2, 10, 7, 10), (0, 8, 5, 9), (3, 12, 3, 12)]:
        ref = stats.barnard_exact([[sc, st], [nc - sc, nt - st]], pooled=False).pvalue
        assert math.exp(barnard(sc, nc, st, nt)) == pytest.approx(ref, rel=1e-9)


def test_small_samples_use_fisher_automatically():
    df = pd.DataFrame({"arm": ["A"] * 12 + ["B"] * 12, "y": [1] * 2 + [0] * 10 + [1] * 9 + [0] * 3})
    row = analyze(df, arm_col="arm", control="A", metrics=["y:proportion"]).to_pandas().iloc[0]
    assert row.test == "fisher"
    assert row.p_value == pytest.approx(stats.fisher_exact([[2, 9], [10, 3]]).pvalue, rel=1e-9)
    b = (
        analyze(df, arm_col="arm", control="A", metrics=["y:proportion"], test="barnard")
        .to_pandas()
        .iloc[0]
    )
    assert b.p_value == pytest.approx(
        stats.barnard_exact([[2, 9], [10, 3]], pooled=False).pvalue, rel=1e-9
    )


@pytest.mark.parametrize(
    "method, ref",
    [
        ("holm", "holm"),
        ("hochberg", "simes-hochberg"),
        ("bonferroni", "bonferroni"),
        ("bh", "fdr_bh"),
        ("by", "fdr_by"),
    ],
)
def test_corrections_match_multipletests(method, ref):
    rng = np.random.default_rng(len(method))
    for _ in range(15):  # statsmodels' holm takes ~0.3 s a call on a busy machine
        m = int(rng.integers(1, 25))
        p = np.where(rng.random(m) < 0.3, rng.random(m) * 1e-3, rng.random(m))
        mine = np.exp(adjust_logp(np.log(p), method))
        assert mine == pytest.approx(multipletests(p, method=ref)[1], rel=1e-9, abs=1e-15)


def test_tiny_p_values_survive_in_log_space():
    n = 1_000_000
    agg = _prop_agg([(100_000, n, 130_000, n)])
    row = (
        analyze_aggregates(agg, control="A", metrics=["y:proportion"], bayes_draws=1000)
        .to_pandas()
        .iloc[0]
    )
    p1, p2 = 0.1, 0.13
    z = (p2 - p1) / math.sqrt(p1 * (1 - p1) / n + p2 * (1 - p2) / n)
    # independent asymptotic tail: log(2 * phi(z) / z * (1 - 1/z^2 + 3/z^4))
    ref = (
        math.log(2)
        - z * z / 2
        - math.log(z * math.sqrt(2 * math.pi))
        + math.log1p(-1 / z**2 + 3 / z**4)
    ) / math.log(10)
    assert row.log10_p == pytest.approx(ref, abs=1e-3)
    assert row.log10_p < -900 and row.significant
    assert format_p(row.p_value, row.log10_p).endswith(f"e{math.floor(ref)}")
    assert "p=0," not in repr(
        analyze_aggregates(agg, control="A", metrics=["y:proportion"], bayes_draws=1000)
    )


def test_bayes_beta_binomial_matches_numerical_integration():
    rng = np.random.default_rng(4)
    for _ in range(5):
        nc, nt = 800, 900
        sc, st = int(rng.binomial(nc, 0.1)), int(rng.binomial(nt, 0.11))
        out = bayes_summary([(sc, nc), (st, nt)], "proportion", draws=200_000)
        a, b = stats.beta(1 + sc, 1 + nc - sc), stats.beta(1 + st, 1 + nt - st)
        p_beat = integrate.quad(
            lambda x, a=a, b=b: b.pdf(x) * a.cdf(x), 0, 1, points=[sc / nc, st / nt], limit=200
        )[0]
        assert out["p_beat_control"][1] == pytest.approx(p_beat, abs=0.004)
        assert out["p_best"][1] == pytest.approx(p_beat, abs=0.004)
        # E[(Xc - Xt)+] = ∫ f_t(y) (E[Xc; Xc > y] - y P(Xc > y)) dy, with E[X; X > y] closed form for a Beta
        a1 = stats.beta(2 + sc, 1 + nc - sc)
        mean_a = (1 + sc) / (2 + nc)
        loss = integrate.quad(
            lambda y, a=a, b=b, a1=a1, m=mean_a: b.pdf(y) * (m * a1.sf(y) - y * a.sf(y)),
            0,
            1,
            points=[sc / nc, st / nt],
            limit=200,
        )[0]
        assert out["expected_loss"][1] == pytest.approx(loss, rel=0.03, abs=2e-5)


def test_bayes_normal_matches_closed_forms():
    mc, sc, mt, stt = 10.0, 0.2, 10.3, 0.25
    out = bayes_summary([(mc, sc), (mt, stt)], "normal", draws=400_000)
    s = math.hypot(sc, stt)
    mu = mt - mc
    assert out["p_beat_control"][1] == pytest.approx(stats.norm.cdf(mu / s), abs=0.003)
    assert out["expected_loss"][1] == pytest.approx(
        s * stats.norm.pdf(mu / s) - mu * stats.norm.cdf(-mu / s), rel=0.02
    )
    assert (out["ci_low"][1], out["ci_high"][1]) == pytest.approx(
        (mu - 1.96 * s, mu + 1.96 * s), abs=0.005
    )
    low = bayes_summary([(mc, sc), (mt, stt)], "normal", lower_is_better=True, draws=400_000)
    assert low["p_beat_control"][1] == pytest.approx(1 - out["p_beat_control"][1], abs=1e-9)


def test_group_sequential_bounds_match_published_values():
    # rpact getDesignGroupSequential(kMax=5, alpha=0.05, sided=2, typeOfDesign="asOF"/"asP")
    obf = group_sequential_bounds([0.2, 0.4, 0.6, 0.8, 1.0], 0.05, "obf")
    assert obf == pytest.approx([4.877, 3.357, 2.680, 2.290, 2.031], abs=2e-3)
    poc = group_sequential_bounds([0.2, 0.4, 0.6, 0.8, 1.0], 0.05, "pocock")
    assert poc == pytest.approx([2.438, 2.427, 2.410, 2.397, 2.386], abs=2e-3)
    assert group_sequential_bounds([1.0]) == pytest.approx([1.959964], abs=1e-5)


def test_confidence_sequence_inverts_the_always_valid_p():
    rng = np.random.default_rng(8)
    d, v, n = rng.normal(0, 1, 200), rng.uniform(0.1, 2, 200), rng.integers(100, 100_000, 200)
    logp, lo, hi = always_valid(d, v, n, alpha=0.05, tuning_n=5000)
    inside = (lo < 0) & (hi > 0)
    assert np.array_equal(inside, np.exp(logp) > 0.05)
    # wider than the fixed-horizon interval
    assert np.all(hi - d > 1.96 * np.sqrt(v))
