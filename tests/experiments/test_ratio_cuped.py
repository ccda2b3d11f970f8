"""CUPED for ratio metrics: checked against per-user linearisation + OLS, and by simulation.

The reference (b) never touches engagelab's sums: it builds the delta-method
linearised values of every user with numpy, regresses them on arm dummies and the
linearised pre-period ratio with statsmodels OLS (whose slope is the pooled
within-arm θ), and recomputes estimates, standard errors and p-values from there.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from scipy import stats

from engagelab.errors import ValidationError
from engagelab.experiments import Metric, aggregate, aggregate_sql, analyze, analyze_aggregates

Z = 1.959963984540054


def _users(rng, n, arms=("a", "b", "c"), lift=(0.0, 0.05, -0.03)):
    """Orders and revenue now and in the pre-period, driven by a shared user activity level."""
    arm = rng.choice(np.array(arms), n)
    eff = dict(zip(arms, lift, strict=True))
    act = rng.gamma(2.0, 1.0, n)
    value = rng.gamma(4.0, 5.0, n)  # a user's typical order value
    pre_orders = rng.poisson(1.5 * act)
    pre_rev = pre_orders * value * rng.gamma(8.0, 1 / 8.0, n)
    orders = rng.poisson(1.5 * act)
    rev = orders * value * rng.gamma(8.0, 1 / 8.0, n) * (1 + np.vectorize(eff.get)(arm))
    return pd.DataFrame(
        {"arm": arm, "rev": rev, "orders": orders, "rev_pre": pre_rev, "orders_pre": pre_orders}
    )


def _reference(df, control, x, m):
    """Ratio-CUPED estimate per arm, its variance, from per-user arrays with numpy + OLS."""
    y, d = df["rev"].to_numpy(float), df["orders"].to_numpy(float)
    arm = df["arm"].to_numpy()
    arms = sorted(set(arm))
    L, K = np.zeros(len(df)), np.zeros(len(df))
    R, C = {}, {}
    xv = df[x].to_numpy(float) if x else None
    mv = df[m].to_numpy(float) if m else np.ones(len(df))
    for a in arms:
        s = arm == a
        R[a] = y[s].sum() / d[s].sum()
        L[s] = (y[s] - R[a] * d[s]) / d[s].mean()
        if x:
            C[a] = xv[s].sum() / mv[s].sum()
            K[s] = (xv[s] - C[a] * mv[s]) / mv[s].mean()
    theta = 0.0
    if x:
        dummies = {a: (arm == a) * 1.0 for a in arms if a != control}
        X = sm.add_constant(pd.DataFrame(dummies | {"K": K}))
        theta = sm.OLS(L, X).fit().params["K"]
        c_all = xv.sum() / mv.sum()
    est, var = {}, {}
    for a in arms:
        s = arm == a
        est[a] = R[a] - (theta * (C[a] - c_all) if x else 0.0)
        var[a] = np.var(L[s] - theta * K[s], ddof=1) / s.sum()
    return est, var


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("covs", [("rev_pre", "orders_pre"), ("rev_pre", None), (None, None)])
@pytest.mark.parametrize("scope", ["pooled", "per_comparison"])
def test_ratio_cuped_matches_linearised_ols(seed, covs, scope):
    """``pooled``: the OLS over all three arms; ``per_comparison``: the OLS over the
    control and the compared arm only."""
    rng = np.random.default_rng(300 + seed)
    df = _users(rng, int(rng.integers(3000, 12000)))
    x, m = covs
    met = Metric("rpo", "ratio", "rev", "orders", covariate=x, denominator_covariate=m)
    res = analyze(
        df, arm_col="arm", control="a", metrics=[met], bayes_draws=1000, cuped_theta=scope
    ).to_pandas()
    assert len(res) == 2
    for r in res.itertuples():
        pair = df if scope == "pooled" else df[df.arm.isin(["a", r.arm])]
        est, var = _reference(pair, "a", x, m)
        assert r.cuped_theta_scope == (scope if x else "")
        assert r.kind == ("ratio (CUPED)" if x else "ratio") and r.note == ""
        assert r.control_estimate == pytest.approx(est["a"], rel=1e-10)
        assert r.arm_estimate == pytest.approx(est[r.arm], rel=1e-10)
        se = math.sqrt(var["a"] + var[r.arm])
        assert r.abs_ci_high - r.abs_ci_low == pytest.approx(2 * Z * se, rel=1e-7)
        diff = est[r.arm] - est["a"]
        assert r.abs_lift == pytest.approx(diff, rel=1e-9, abs=1e-12)
        assert r.p_value == pytest.approx(2 * stats.norm.sf(abs(diff) / se), rel=1e-6)
        # relative lift: delta method on the adjusted estimates (arms independent)
        rel_se = math.sqrt(var[r.arm] / est["a"] ** 2 + est[r.arm] ** 2 * var["a"] / est["a"] ** 4)
        assert r.rel_lift == pytest.approx(est[r.arm] / est["a"] - 1, rel=1e-9)
        assert r.rel_ci_high - r.rel_ci_low == pytest.approx(2 * Z * rel_se, rel=1e-7)


def test_numerator_covariate_alone_is_the_pre_period_mean():
    """Without a denominator covariate, K is the centred pre-period value itself."""
    rng = np.random.default_rng(7)
    df = _users(rng, 5000)
    met = Metric("rpo", "ratio", "rev", "orders", covariate="rev_pre")
    res = analyze(df, arm_col="arm", control="a", metrics=[met], bayes_draws=1000).to_pandas()
    df = df.assign(one=1.0)
    same = analyze(
        df,
        arm_col="arm",
        control="a",
        metrics=[met.replace(denominator_covariate="one")],
        bayes_draws=1000,
    ).to_pandas()
    assert np.allclose(res.abs_lift, same.abs_lift, rtol=1e-10)
    assert np.allclose(res.abs_ci_low, same.abs_ci_low, rtol=1e-9)


def _sim_aggregates(rng, reps, k, delta, chunk=250):
    """``reps`` two-arm experiments with ``k`` users per arm, summed per arm with numpy.

    Truth: R = E[rev] / E[orders] = E[value] (1 + delta in the treatment); the user's
    value and activity drive both periods, so the pre-period ratio is correlated.
    """
    names = ["y", "d", "x", "m"]
    out: dict[str, list] = {}
    for start in range(0, reps, chunk):
        shape = (min(chunk, reps - start), 2, k)
        act = rng.gamma(2.0, 1.0, shape)
        value = rng.gamma(2.0, 10.0, shape)  # E[value] = 20
        pre_orders = rng.poisson(1.5 * act).astype(float)
        pre_rev = pre_orders * value * rng.gamma(8.0, 1 / 8.0, shape)
        orders = rng.poisson(1.5 * act).astype(float)
        lift = np.array([1.0, 1 + delta])[:, None]
        rev = orders * value * rng.gamma(8.0, 1 / 8.0, shape) * lift
        cols = dict(zip(names, (rev, orders, pre_rev, pre_orders), strict=True))
        sums = {f"sum:{c}": v.sum(-1) for c, v in cols.items()}
        sums |= {f"sumsq:{c}": (v * v).sum(-1) for c, v in cols.items()}
        for i, a in enumerate(names):
            for b in names[i + 1 :]:
                sums[f"cross:{a}*{b}"] = (cols[a] * cols[b]).sum(-1)
        for key, v in sums.items():
            out.setdefault(key, []).append(v.ravel())
    frame = {"experiment": np.repeat([f"e{i:05d}" for i in range(reps)], 2)}
    frame |= {"arm": np.tile(["A", "B"], reps), "n": np.full(2 * reps, k)}
    return pd.DataFrame(frame | {key: np.concatenate(v) for key, v in out.items()})


def test_ratio_cuped_intervals_cover_planted_lift_and_are_narrower():
    rng = np.random.default_rng(2026)
    reps, k, delta = 4000, 1000, 0.04  # binomial sd of a coverage rate: 0.0034
    agg = _sim_aggregates(rng, reps, k, delta)
    true_abs, true_rel = 20.0 * delta, delta
    mets = [
        Metric("plain", "ratio", "y", "d"),
        Metric("cuped_num", "ratio", "y", "d", covariate="x"),
        Metric("cuped_ratio", "ratio", "y", "d", covariate="x", denominator_covariate="m"),
    ]
    res = analyze_aggregates(
        agg, control="A", metrics=mets, correction="none", bayes_draws=1000
    ).to_pandas()
    assert len(res) == 3 * reps and (res.note == "").all()
    width = {}
    for label, t in res.groupby("metric"):
        cover = ((t.abs_ci_low <= true_abs) & (true_abs <= t.abs_ci_high)).mean()
        rcover = ((t.rel_ci_low <= true_rel) & (true_rel <= t.rel_ci_high)).mean()
        assert abs(cover - 0.95) <= 0.015, (label, cover)
        assert abs(rcover - 0.95) <= 0.015, (label, rcover)
        width[label] = (t.abs_ci_high - t.abs_ci_low).to_numpy()
    # the pre-period ratio explains much of the current ratio: clearly narrower intervals
    assert np.median(width["cuped_ratio"]) < 0.85 * np.median(width["plain"])
    assert np.median(width["cuped_num"]) < np.median(width["plain"])
    # and each experiment's CUPED interval is narrower in the large majority of replications
    assert np.mean(width["cuped_ratio"] < width["plain"]) > 0.9


def test_aggregate_sql_has_each_cross_product_once():
    mets = [
        Metric("rev_cuped", "mean", "rev", covariate="rev_pre"),
        Metric(
            "rpo", "ratio", "rev", "orders", covariate="rev_pre", denominator_covariate="orders_pre"
        ),
        Metric("opr", "ratio", "orders", "rev"),  # (orders, rev) is (rev, orders) again
    ]
    sql = aggregate_sql(mets, "arm")
    assert sql.count(" AS cp") == 6  # columns rev, rev_pre, orders, orders_pre: 6 distinct pairs
    df = _users(np.random.default_rng(1), 500)
    agg = aggregate(df, mets, "arm")
    crosses = sorted(c for c in agg.columns if c.startswith("cross:"))
    assert len(crosses) == 6
    g = df[df.arm == "a"]
    row = agg[agg.arm == "a"].iloc[0]
    for c in crosses:
        a, b = c[len("cross:") :].split("*")
        assert row[c] == pytest.approx(float((g[a] * g[b]).sum()), rel=1e-12)


def test_parse_forms_and_cli_style_defaults():
    assert Metric.parse("rev:ratio:orders:rev_pre:orders_pre") == Metric(
        "rev/orders", "ratio", "rev", "orders", "rev_pre", denominator_covariate="orders_pre"
    )
    assert Metric.parse("rev:ratio:orders:rev_pre").denominator_covariate is None
    m = Metric.parse("rev:ratio:orders", "rev_pre", "orders_pre")
    assert (m.covariate, m.denominator_covariate) == ("rev_pre", "orders_pre")
    # the text wins over the defaults; means take only the numerator covariate
    assert Metric.parse("rev:ratio:orders:x", "rev_pre", "orders_pre").covariate == "x"
    assert Metric.parse("rev:ratio:orders:x", "rev_pre", "orders_pre").denominator_covariate is None
    assert Metric.parse("rev:mean", "rev_pre", "orders_pre").covariate == "rev_pre"
    assert Metric.parse("rev:mean:x", "rev_pre").covariate == "x"
    assert Metric.parse("rev:ratio:orders").columns == ("rev", "orders")


@pytest.mark.parametrize(
    "make, field",
    [
        (
            lambda: Metric("r", "mean", denominator_covariate="m"),
            "metrics['r'].denominator_covariate",
        ),
        (
            lambda: Metric("r", "ratio", "y", "d", denominator_covariate="m"),
            "metrics['r'].denominator_covariate",
        ),
        (lambda: Metric("r", "ratio", "y", "d", covariate=""), "metrics['r'].covariate"),
        (lambda: Metric("r", "ratio", "y", "d", covariate=3), "metrics['r'].covariate"),
        (lambda: Metric.parse("rev:ratio:orders:a:b:c"), "metric"),
        (lambda: Metric.parse("rev:mean:a:b"), "metric"),
        (lambda: Metric.parse("rev:ratio:orders::b"), "metric"),
        (lambda: Metric.parse("rev:ratio"), "metrics['rev'].denominator"),
    ],
)
def test_bad_specs_name_the_field(make, field):
    with pytest.raises(ValidationError) as e:
        make()
    assert e.value.field == field and "\n" not in str(e.value)


@pytest.mark.parametrize(
    "kwargs, field",
    [
        (dict(metrics=["rev:ratio:orders:nope"]), "metrics['rev/orders'].covariate"),
        (
            dict(metrics=["rev:ratio:orders:rev_pre:nope"]),
            "metrics['rev/orders'].denominator_covariate",
        ),
        (
            dict(metrics=["rev:ratio:orders:rev_pre:label"]),
            "metrics['rev/orders'].denominator_covariate",
        ),
        (
            dict(metrics=["rev:ratio:orders"], denominator_covariate="orders_pre"),
            "denominator_covariate",
        ),
        (dict(metrics=["rev:ratio:orders"], covariate=""), "covariate"),
    ],
)
def test_bad_analyze_input_names_the_field(kwargs, field):
    df = _users(np.random.default_rng(2), 300).assign(label="x")
    with pytest.raises(ValidationError) as e:
        analyze(df, arm_col="arm", control="a", bayes_draws=1000, **kwargs)
    assert e.value.field == field and "\n" not in str(e.value)


def test_degenerate_covariates_fall_back_with_a_note():
    rng = np.random.default_rng(3)
    df = _users(rng, 3000)
    plain = analyze(df, arm_col="arm", control="a", metrics=["rev:ratio:orders"], bayes_draws=1000)
    base = plain.to_pandas()
    # pre-period orders all zero in arm "b": the pre-period ratio is undefined there
    zero = df.assign(orders_pre=np.where(df.arm == "b", 0, df.orders_pre))
    skipped = "'orders_pre' sums to 0 in an arm: CUPED adjustment skipped"
    res = analyze(
        zero, arm_col="arm", control="a", metrics=["rev:ratio:orders:rev_pre:orders_pre"],
        bayes_draws=1000, cuped_theta="pooled",
    ).to_pandas()  # fmt: skip
    assert res.note.str.contains(skipped).all()
    assert np.allclose(res.abs_lift, base.abs_lift) and np.allclose(res.p_value, base.p_value)
    # per comparison only the comparison with arm b loses its adjustment
    res = analyze(
        zero, arm_col="arm", control="a", metrics=["rev:ratio:orders:rev_pre:orders_pre"],
        bayes_draws=1000,
    ).to_pandas().set_index("arm")  # fmt: skip
    assert skipped in res.loc["b"].note and res.loc["c"].note == ""
    b = base.set_index("arm")
    assert res.loc["b"].abs_lift == pytest.approx(b.loc["b"].abs_lift, rel=1e-12)
    assert res.loc["c"].abs_ci_high - res.loc["c"].abs_ci_low < (
        b.loc["c"].abs_ci_high - b.loc["c"].abs_ci_low
    )
    # a constant covariate carries no information
    const = df.assign(rev_pre=5.0)
    res = analyze(
        const, arm_col="arm", control="a", metrics=["rev:ratio:orders:rev_pre"], bayes_draws=1000
    ).to_pandas()
    assert res.note.str.contains("has no variance within arms").all()
    assert np.allclose(res.abs_ci_low, base.abs_ci_low)
    # one user in an arm: no inference, no crash
    tiny = pd.concat([df[df.arm != "c"], df[df.arm == "c"].head(1)])
    res = analyze(
        tiny, arm_col="arm", control="a", metrics=["rev:ratio:orders:rev_pre:orders_pre"],
        bayes_draws=1000,
    ).to_pandas()  # fmt: skip
    c = res[res.arm == "c"].iloc[0]
    assert "fewer than 2 users" in c.note and math.isnan(c.p_value)
    assert res[res.arm == "b"].iloc[0].note == "" and np.isfinite(
        res[res.arm == "b"].iloc[0].p_value
    )


BIN = Path(sys.executable).with_name("engagelab")


def test_cli_ratio_covariates(tmp_path, capsys):
    from engagelab.cli import main

    df = _users(np.random.default_rng(4), 4000)
    path = tmp_path / "users.parquet"
    df.to_parquet(path)
    base = ["experiment", "analyze", "--data", str(path), "--arm-col", "arm", "--control", "a",
            "--format", "json"]  # fmt: skip
    # the real executable once; the other forms in-process (the CLI costs seconds to start)
    both = subprocess.run(
        [str(BIN), *base, "--metric", "rev:ratio:orders", "--metric", "rev:mean",
         "--covariate", "rev_pre,orders_pre"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert both.returncode == 0, both.stderr
    rows = json.loads(both.stdout)["rows"]
    assert main([*base, "--metric", "rev:ratio:orders:rev_pre:orders_pre"]) == 0
    inline = json.loads(capsys.readouterr().out)["rows"]
    ratio_rows = [r for r in rows if r["metric"] == "rev/orders"]
    for r, r2 in zip(ratio_rows, inline, strict=True):
        assert r["kind"] == "ratio (CUPED)" and r["cuped_theta_scope"] == "per_comparison"
        assert r["abs_lift"] == pytest.approx(r2["abs_lift"], rel=1e-12)
        est, _ = _reference(df[df.arm.isin(["a", r["arm"]])], "a", "rev_pre", "orders_pre")
        assert r["arm_estimate"] == pytest.approx(est[r["arm"]], rel=1e-10)
    # --cuped-theta pooled: one slope from all three arms
    assert main([*base, "--metric", "rev:ratio:orders:rev_pre:orders_pre",
                 "--cuped-theta", "pooled"]) == 0  # fmt: skip
    pooled = json.loads(capsys.readouterr().out)["rows"]
    est, _ = _reference(df, "a", "rev_pre", "orders_pre")
    for r in pooled:
        assert r["cuped_theta_scope"] == "pooled"
        assert r["arm_estimate"] == pytest.approx(est[r["arm"]], rel=1e-10)
    assert main([*base, "--metric", "rev:ratio:orders:rev_pre", "--cuped-theta", "arms"]) == 1
    assert "cuped_theta == 'arms', must be one of 'per_comparison', 'pooled'" in (
        capsys.readouterr().err
    )
    mean_rows = [r for r in rows if r["metric"] == "rev"]
    assert [r["kind"] for r in mean_rows] == ["mean (CUPED)"] * 2
    # numerator covariate only: the pre-period mean
    assert main([*base, "--metric", "rev:ratio:orders", "--covariate", "rev_pre"]) == 0
    num_only = json.loads(capsys.readouterr().out)["rows"]
    arm0 = num_only[0]["arm"]
    est1, _ = _reference(df[df.arm.isin(["a", arm0])], "a", "rev_pre", None)
    assert num_only[0]["arm_estimate"] == pytest.approx(est1[num_only[0]["arm"]], rel=1e-10)
    for bad in ("a,b,c", "a,", ",b"):
        assert main([*base, "--metric", "rev:ratio:orders", "--covariate", bad]) == 1
        err = capsys.readouterr().err.strip().splitlines()  # --format json: one JSON line
        assert len(err) == 1
        assert json.loads(err[0])["error"]["message"].startswith(f"--covariate == {bad!r}")


def test_variant_report_widget_takes_ratio_covariates():
    from engagelab.widgets.variant_report import VariantReport

    df = _users(np.random.default_rng(6), 3000)
    kw = dict(arm_col="arm", control="a", metrics=["rev:ratio:orders", "rev:mean"])
    r = VariantReport(df, **kw, covariate="rev_pre", denominator_covariate="orders_pre", plot=False)
    assert r.error_line.text == ""
    core = analyze(
        df, **kw, covariate="rev_pre", denominator_covariate="orders_pre", sequential=True
    )
    pd.testing.assert_frame_equal(r.result.to_pandas(), core.to_pandas())
    assert set(r.result.to_pandas().kind) == {"ratio (CUPED)", "mean (CUPED)"}
    with pytest.raises(ValidationError, match="^denominator_covariate =="):
        VariantReport(df, **kw, denominator_covariate="orders_pre", plot=False)
