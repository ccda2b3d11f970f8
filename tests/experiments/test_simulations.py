"""Simulations with planted truth, vectorised over sufficient statistics.

Tolerances are binomial: with R replications a rate's standard error is
sqrt(r (1 - r) / R); we allow three standard errors (or the brief's 1.5 points).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from engagelab.experiments import Metric, _stats, analyze, analyze_aggregates, sample_size
from engagelab.experiments.analysis import _arm_stats, _compare
from engagelab.experiments.sequential import always_valid, group_sequential_bounds

ALPHA = 0.05
R = 2000
TOL = 3 * math.sqrt(ALPHA * (1 - ALPHA) / R)  # 0.0146


def _aa_proportions(rng, reps=R, n=2000, p=0.1):
    nc = rng.binomial(2 * n, 0.5, reps)
    nt = 2 * n - nc
    return rng.binomial(nc, p), nc, rng.binomial(nt, p), nt


def test_aa_false_positive_rate_proportions_and_means():
    rng = np.random.default_rng(101)
    sc, nc, st, nt = _aa_proportions(rng)
    _, logp = _stats.z_test(
        st / nt - sc / nc, np.sqrt(sc / nc * (1 - sc / nc) / nc + st / nt * (1 - st / nt) / nt)
    )
    fpr = np.mean(np.exp(logp) < ALPHA)
    assert abs(fpr - ALPHA) <= TOL, fpr
    # means: skewed revenue, 500 users per arm, Welch on sufficient statistics
    y = rng.lognormal(1.0, 1.0, (R, 2, 500))
    s, ss = y.sum(-1), (y * y).sum(-1)
    mean, var = s / 500, (ss - s * s / 500) / 499
    _, _, logp_t, _ = _stats.welch(mean[:, 0], var[:, 0], 500, mean[:, 1], var[:, 1], 500)
    fpr_t = np.mean(np.exp(logp_t) < ALPHA)
    assert abs(fpr_t - ALPHA) <= TOL, fpr_t


def test_analyze_aggregates_agrees_with_vectorised_decisions():
    rng = np.random.default_rng(102)
    sc, nc, st, nt = _aa_proportions(rng, reps=120)
    exp = np.repeat([f"e{i:03d}" for i in range(120)], 2)
    s = np.column_stack([sc, st]).ravel().astype(float)
    agg = pd.DataFrame(
        {
            "experiment": exp,
            "arm": np.tile(["A", "B"], 120),
            "n": np.column_stack([nc, nt]).ravel(),
            "sum:y": s,
            "sumsq:y": s,
        }
    )
    res = analyze_aggregates(
        agg, control="A", metrics=["y:proportion"], correction="none", bayes_draws=1000
    ).to_pandas()
    _, logp = _stats.z_test(
        st / nt - sc / nc, np.sqrt(sc / nc * (1 - sc / nc) / nc + st / nt * (1 - st / nt) / nt)
    )
    assert np.allclose(res["log10_p"].to_numpy(), logp / math.log(10))
    assert res["significant"].sum() == int(np.sum(np.exp(logp) < ALPHA))


def test_interval_coverage_proportion_mean_ratio_cuped():
    rng = np.random.default_rng(103)
    # proportions: truth 0.10 -> 0.11, absolute and relative intervals
    reps, n = 4000, 5000
    sc, st = rng.binomial(n, 0.10, reps), rng.binomial(n, 0.11, reps)
    pc, pt = sc / n, st / n
    se2c, se2t = pc * (1 - pc) / n, pt * (1 - pt) / n
    half = 1.959963984540054 * np.sqrt(se2c + se2t)
    cover = np.abs(pt - pc - 0.01) <= half
    assert abs(cover.mean() - 0.95) <= 0.015, cover.mean()
    rel, lo, hi = _stats.relative_lift(pc, se2c, pt, se2t, 1.959963984540054)
    rcover = (lo <= 0.1) & (hi >= 0.1)
    assert abs(rcover.mean() - 0.95) <= 0.015, rcover.mean()

    # ratio (revenue per converter style) and CUPED mean, through the analysis code path
    m_ratio, m_cuped = Metric("r", "ratio", "num", "den"), Metric("y", "mean", covariate="x")
    hits_r = hits_c = 0
    reps2, k = 1500, 800
    for _ in range(reps2):
        den = rng.poisson(2.0, (2, k)).astype(float)
        num = den * rng.gamma(2.0, np.array([[5.0], [5.5]]), (2, k))  # true ratios 10 and 11
        x = rng.normal(10, 3, (2, k))
        y = 0.9 * x + rng.normal(0, 2, (2, k)) + np.array([[0.0], [0.3]])  # true lift 0.3
        rows = []
        for a in range(2):
            rows.append(
                {
                    "n": k,
                    "sum:num": num[a].sum(),
                    "sumsq:num": (num[a] ** 2).sum(),
                    "sum:den": den[a].sum(),
                    "sumsq:den": (den[a] ** 2).sum(),
                    "cross:num*den": (num[a] * den[a]).sum(),
                    "sum:y": y[a].sum(),
                    "sumsq:y": (y[a] ** 2).sum(),
                    "sum:x": x[a].sum(),
                    "sumsq:x": (x[a] ** 2).sum(),
                    "cross:y*x": (y[a] * x[a]).sum(),
                }
            )
        c, t = _arm_stats(rows[0], m_ratio, 0, 0), _arm_stats(rows[1], m_ratio, 0, 0)
        out = _compare(m_ratio, c, t, "auto", ALPHA, "two-sided")
        hits_r += out["abs_ci_low"] <= 1.0 <= out["abs_ci_high"]
        sxx = sum(r["sumsq:x"] - r["sum:x"] ** 2 / k for r in rows)
        sxy = sum(r["cross:y*x"] - r["sum:y"] * r["sum:x"] / k for r in rows)
        theta, xbar = sxy / sxx, (rows[0]["sum:x"] + rows[1]["sum:x"]) / (2 * k)
        c, t = _arm_stats(rows[0], m_cuped, theta, xbar), _arm_stats(rows[1], m_cuped, theta, xbar)
        out = _compare(m_cuped, c, t, "auto", ALPHA, "two-sided")
        hits_c += out["abs_ci_low"] <= 0.3 <= out["abs_ci_high"]
    tol = 3 * math.sqrt(0.95 * 0.05 / reps2)
    assert abs(hits_r / reps2 - 0.95) <= tol, hits_r / reps2
    assert abs(hits_c / reps2 - 0.95) <= tol, hits_c / reps2


def test_daily_peeking_inflates_naive_but_not_sequential():
    rng = np.random.default_rng(104)
    days, per_day, p = 14, 400, 0.1
    s = rng.binomial(per_day, p, (R, 2, days)).cumsum(-1)
    n = per_day * np.arange(1, days + 1)
    pc, pt = s[:, 0] / n, s[:, 1] / n
    var = pc * (1 - pc) / n + pt * (1 - pt) / n
    _, logp = _stats.z_test(pt - pc, np.sqrt(var))
    naive = np.mean((np.exp(logp) < ALPHA).any(axis=1))
    assert naive > 2 * ALPHA, naive  # peeking inflates the false-positive rate (about 0.2)
    lp_seq, lo, hi = always_valid(pt - pc, var, 2 * n, ALPHA, tuning_n=2 * per_day * days)
    seq = np.mean((np.exp(np.minimum.accumulate(lp_seq, axis=1)) < ALPHA).any(axis=1))
    assert seq <= ALPHA + TOL, seq
    cs_miss = np.mean(((lo > 0) | (hi < 0)).any(axis=1))  # the confidence sequence never excludes 0
    assert cs_miss <= ALPHA + TOL, cs_miss


def test_group_sequential_obf_keeps_alpha():
    bounds = np.array(group_sequential_bounds([0.25, 0.5, 0.75, 1.0], ALPHA, "obf"))
    rng = np.random.default_rng(105)
    inc = rng.normal(0, 1, (40_000, 4)) * math.sqrt(0.25)
    z = inc.cumsum(1) / np.sqrt([0.25, 0.5, 0.75, 1.0])
    rate = np.mean((np.abs(z) >= bounds).any(1))
    assert abs(rate - ALPHA) <= 3 * math.sqrt(ALPHA * (1 - ALPHA) / 40_000), rate


def test_design_power_is_achieved_in_simulation():
    d = sample_size("proportion", baseline=0.08, mde=0.15, relative=True, power=0.8)
    n = d.n_per_arm[0]
    rng = np.random.default_rng(106)
    sc, st = rng.binomial(n, 0.08, R), rng.binomial(n, 0.092, R)
    pc, pt = sc / n, st / n
    _, logp = _stats.z_test(pt - pc, np.sqrt(pc * (1 - pc) / n + pt * (1 - pt) / n))
    achieved = np.mean(np.exp(logp) < ALPHA)
    assert abs(achieved - 0.8) <= 3 * math.sqrt(0.8 * 0.2 / R), achieved


def test_planted_effect_is_recovered_end_to_end():
    rng = np.random.default_rng(107)
    n = 60_000
    arm = rng.choice(["ctrl", "B", "C"], n)
    p = np.where(arm == "B", 0.12, 0.10)
    conv = (rng.random(n) < p).astype(int)
    pre = rng.gamma(2, 10, n)
    rev = conv * rng.gamma(3, 10, n) + 0.3 * pre + np.where(arm == "C", 1.5, 0.0)
    df = pd.DataFrame({"arm": arm, "conv": conv, "rev": rev, "pre": pre})
    res = analyze(
        df,
        arm_col="arm",
        control="ctrl",
        metrics=["conv:proportion", Metric("rev_cuped", "mean", "rev", covariate="pre")],
    )
    t = res.to_pandas().set_index(["metric", "arm"])
    assert t.loc[("conv", "B"), "significant"] and not t.loc[("conv", "C"), "significant"]
    assert t.loc[("conv", "B"), "abs_ci_low"] <= 0.02 <= t.loc[("conv", "B"), "abs_ci_high"]
    assert (
        t.loc[("rev_cuped", "C"), "abs_ci_low"] <= 1.5 <= t.loc[("rev_cuped", "C"), "abs_ci_high"]
    )
    assert t.loc[("rev_cuped", "C"), "significant"]
    assert t.loc[("conv", "B"), "bayes_p_beat_control"] > 0.99
    assert stats.chisquare(list(res.srm["all"].observed)).pvalue == pytest.approx(
        res.srm["all"].p_value
    )
