"""CUPED θ per comparison (the default) and pooled over all arms (the option).

References never use engagelab's sums: θ is the within-arm slope computed with numpy on
the control + compared arm's user rows, and the lift and its standard error come from a
statsmodels OLS of the outcome on a treatment dummy and the covariate over that pair.
A simulation with a planted effect (and a third arm whose slope differs) checks
unbiasedness, coverage and the variance reduction of ``1 - ρ²``.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm

from engagelab.errors import SpecError
from engagelab.experiments import Experiment, Metric, analyze, analyze_aggregates

Z = 1.959963984540054


def _users(rng, n, slopes=(0.8, 0.8, 2.0), effects=(0.0, 0.4, 0.0)):
    arm = rng.choice(np.array(["a", "b", "c"]), n)
    x = rng.gamma(2.0, 3.0, n)
    idx = np.searchsorted(np.array(["a", "b", "c"]), arm)
    y = 2 + np.asarray(slopes)[idx] * x + np.asarray(effects)[idx] + rng.normal(0, 2, n)
    return pd.DataFrame({"arm": arm, "x": x, "y": y})


def _pair_theta(df, control, arm):
    """Within-arm slope of y on x over the two arms, with numpy."""
    sxy = sxx = 0.0
    for a in (control, arm):
        g = df[df.arm == a]
        dx, dy = g.x - g.x.mean(), g.y - g.y.mean()
        sxy, sxx = sxy + float(np.dot(dx, dy)), sxx + float(np.dot(dx, dx))
    return sxy / sxx


def _analyze(df, scope, **kw):
    return analyze(
        df,
        arm_col="arm",
        control="a",
        metrics=[Metric("y", "mean", covariate="x")],
        cuped_theta=scope,
        bayes_draws=1000,
        **kw,
    ).to_pandas()


@pytest.mark.parametrize("seed", range(3))
def test_per_comparison_theta_and_lift_match_numpy_and_ols_on_the_pair(seed):
    rng = np.random.default_rng(40 + seed)
    df = _users(rng, 9000)
    res = _analyze(df, "per_comparison").set_index("arm")
    for arm in ("b", "c"):
        r = res.loc[arm]
        assert r.cuped_theta_scope == "per_comparison"
        assert r.cuped_theta == pytest.approx(_pair_theta(df, "a", arm), rel=1e-10)
        pair = df[df.arm.isin(["a", arm])]
        X = sm.add_constant(
            pd.DataFrame({"t": (pair.arm == arm).astype(float), "x": pair.x}).to_numpy()
        )
        ols = sm.OLS(pair.y.to_numpy(), X).fit()
        assert r.cuped_theta == pytest.approx(ols.params[2], rel=1e-9)
        assert r.abs_lift == pytest.approx(ols.params[1], rel=1e-9)
        # unpooled (Welch-type) SE vs OLS's homoscedastic SE: close, not identical
        se = (r.abs_ci_high - r.abs_ci_low) / (2 * Z)
        assert se == pytest.approx(ols.bse[1], rel=0.05)


def test_pooled_option_is_the_all_arms_ols_slope():
    rng = np.random.default_rng(5)
    df = _users(rng, 9000)
    res = _analyze(df, "pooled")
    X = sm.add_constant(
        pd.DataFrame({"b": (df.arm == "b") * 1.0, "c": (df.arm == "c") * 1.0, "x": df.x}).to_numpy()
    )
    ols = sm.OLS(df.y.to_numpy(), X).fit()
    assert (res.cuped_theta_scope == "pooled").all()
    assert res.cuped_theta.to_numpy() == pytest.approx([ols.params[3]] * 2, rel=1e-9)
    for r in res.itertuples():
        assert r.abs_lift == pytest.approx(ols.params[1 if r.arm == "b" else 2], rel=1e-9)


def test_an_arm_result_does_not_depend_on_another_arm_by_default():
    rng = np.random.default_rng(9)
    df = _users(rng, 9000)
    other = df.copy()
    c = other.arm == "c"
    other.loc[c, "y"] = other.loc[c, "y"] * 3 + rng.normal(0, 5, c.sum())  # arm c changes
    cols = ["abs_lift", "abs_ci_low", "abs_ci_high", "p_value", "cuped_theta", "rel_lift"]
    per = [_analyze(d, "per_comparison").set_index("arm").loc["b", cols] for d in (df, other)]
    pooled = [_analyze(d, "pooled").set_index("arm").loc["b", cols] for d in (df, other)]
    assert per[0].to_numpy(float) == pytest.approx(per[1].to_numpy(float), rel=1e-12)
    assert abs(pooled[0].cuped_theta - pooled[1].cuped_theta) > 0.1
    assert abs(pooled[0].abs_lift - pooled[1].abs_lift) > 1e-4


def test_two_arms_give_the_same_answer_either_way():
    rng = np.random.default_rng(3)
    df = _users(rng, 6000)
    df = df[df.arm != "c"]
    per, pooled = _analyze(df, "per_comparison"), _analyze(df, "pooled")
    for col in ("abs_lift", "abs_ci_low", "p_value", "cuped_theta", "bayes_p_beat_control"):
        assert per[col].iloc[0] == pytest.approx(pooled[col].iloc[0], rel=1e-12)


def _sim(rng, reps, k):
    """``reps`` three-arm experiments, ``k`` users per arm, summed per arm with numpy.

    y = 2 + slope x + effect + N(0, 2²), x ~ Gamma(2, 3); slopes 0.8, 0.8, 2.0 and
    effects 0, 0.4, 0: the true lift of b is 0.4, of c (2.0 - 0.8) E[x] = 7.2.
    """
    slopes = np.array([0.8, 0.8, 2.0])[None, :, None]
    effects = np.array([0.0, 0.4, 0.0])[None, :, None]
    x = rng.gamma(2.0, 3.0, (reps, 3, k))
    y = 2 + slopes * x + effects + rng.normal(0, 2, (reps, 3, k))
    frame = {
        "experiment": np.repeat([f"e{i:05d}" for i in range(reps)], 3),
        "arm": np.tile(["a", "b", "c"], reps),
        "n": np.full(3 * reps, k),
        "sum:y": y.sum(-1).ravel(),
        "sumsq:y": (y * y).sum(-1).ravel(),
        "sum:x": x.sum(-1).ravel(),
        "sumsq:x": (x * x).sum(-1).ravel(),
        "cross:x*y": (x * y).sum(-1).ravel(),
    }
    return pd.DataFrame(frame)


@pytest.mark.slow
def test_simulation_unbiased_covering_and_reducing_variance():
    rng = np.random.default_rng(2027)
    reps, k = 2000, 400  # binomial sd of a coverage rate at 2000 reps: 0.0049
    agg = _sim(rng, reps, k)
    exp = Experiment(
        control="a",
        metrics=(Metric("y", "mean", covariate="x"),),
        correction="none",
        bayes_draws=1000,
    )
    plain = analyze_aggregates(agg, exp.replace(metrics=("y:mean",))).to_pandas()
    per = analyze_aggregates(agg, exp).to_pandas()
    pooled = analyze_aggregates(agg, exp.replace(cuped_theta="pooled")).to_pandas()
    truth = {"b": 0.4, "c": 1.2 * 6.0}
    for res in (plain, per):
        for arm, true in truth.items():
            t = res[res.arm == arm]
            se = t.abs_lift.std(ddof=1) / math.sqrt(reps)
            assert abs(t.abs_lift.mean() - true) < 4 * se, (arm, t.abs_lift.mean())
            cover = ((t.abs_ci_low <= true) & (true <= t.abs_ci_high)).mean()
            assert abs(cover - 0.95) <= 0.015, (arm, cover)
    # b vs a: same slope 0.8 in both arms; var(x) = 18, residual sd 2, so
    # rho^2 = 0.64 * 18 / (0.64 * 18 + 4) = 0.742: CUPED variance ~ 0.258 of plain
    vb = {n: r[r.arm == "b"].abs_lift.var(ddof=1) for n, r in (("plain", plain), ("per", per))}
    rho2 = 0.64 * 18 / (0.64 * 18 + 4)
    assert vb["per"] / vb["plain"] == pytest.approx(1 - rho2, rel=0.12)
    # pooling arm c's slope into b's comparison inflates b's variance
    pb, qb = per[per.arm == "b"], pooled[pooled.arm == "b"]
    assert qb.abs_lift.var(ddof=1) > 1.3 * pb.abs_lift.var(ddof=1)
    assert np.median(qb.abs_ci_high - qb.abs_ci_low) > np.median(pb.abs_ci_high - pb.abs_ci_low)
    assert (per.cuped_theta_scope == "per_comparison").all()


def test_bad_scope_names_the_field_and_choices():
    with pytest.raises(
        SpecError, match=r"cuped_theta == 'all', must be one of 'per_comparison', 'pooled'"
    ):
        Experiment(control="a", metrics=("y:mean:x",), cuped_theta="all")


def test_scope_is_named_in_repr_and_html():
    rng = np.random.default_rng(1)
    df = _users(rng, 3000)
    res = analyze(
        df,
        arm_col="arm",
        control="a",
        metrics=[Metric("y_cuped", "mean", "y", covariate="x"), "y:mean"],
        bayes_draws=1000,
    )
    t = res.to_pandas()
    assert (t[t.kind == "mean (CUPED)"].cuped_theta_scope == "per_comparison").all()
    assert (t[t.kind == "mean"].cuped_theta_scope == "").all()
    assert t[t.kind == "mean"].cuped_theta.isna().all()
    th = t[(t.kind == "mean (CUPED)") & (t.arm == "b")].cuped_theta.iloc[0]
    assert f"CUPED θ={th:.4g} (per comparison)" in repr(res)
    assert "CUPED θ" in res._repr_html_() and f"{th:.4g} (per comparison)" in res._repr_html_()
