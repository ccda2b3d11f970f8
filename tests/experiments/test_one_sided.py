"""One-sided alternatives: p-values and intervals agree with each other and with scipy."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from statsmodels.stats.proportion import confint_proportions_2indep

from engagelab.experiments import analyze, analyze_experiment

Z05 = stats.norm.isf(0.05)


@pytest.mark.parametrize("alternative", ["greater", "less"])
@pytest.mark.parametrize("seed", range(3))
def test_welch_one_sided_matches_scipy(alternative, seed):
    rng = np.random.default_rng(40 + seed)
    n1, n2 = (int(x) for x in rng.integers(50, 2000, 2))
    y = np.concatenate([rng.lognormal(1, 1, n1), rng.lognormal(1.05, 1.1, n2)])
    df = pd.DataFrame({"arm": ["c"] * n1 + ["t"] * n2, "rev": y})
    row = (
        analyze(df, arm_col="arm", control="c", metrics=["rev:mean"], alternative=alternative,
                bayes_draws=1000)
        .to_pandas()
        .iloc[0]
    )  # fmt: skip
    ref = stats.ttest_ind(y[n1:], y[:n1], equal_var=False, alternative=alternative)
    assert row.p_value == pytest.approx(ref.pvalue, rel=1e-8)
    ci = ref.confidence_interval(0.95)  # one-sided: one end infinite
    assert (row.abs_ci_low, row.abs_ci_high) == pytest.approx((ci.low, ci.high), rel=1e-8)


def test_one_sided_decision_and_interval_never_disagree():
    rng = np.random.default_rng(9)
    out = []
    for i in range(40):
        n = 800
        p_t = 0.10 + rng.uniform(-0.03, 0.03)
        df = pd.DataFrame(
            {"experiment": f"e{i}", "arm": ["A"] * n + ["B"] * n,
             "y": np.r_[rng.random(n) < 0.10, rng.random(n) < p_t].astype(int)}
        )  # fmt: skip
        out.append(df)
    df = pd.concat(out)
    for alt in ("greater", "less"):
        t = analyze(
            df, arm_col="arm", control="A", metrics=["y:proportion"], experiment_col="experiment",
            alternative=alt, correction="none", bayes_draws=1000,
        ).to_pandas()  # fmt: skip
        excludes = (t.abs_ci_low > 0) if alt == "greater" else (t.abs_ci_high < 0)
        assert ((t.p_value < 0.05) == excludes).all()
        assert np.isinf(t.rel_ci_high if alt == "greater" else t.rel_ci_low).all()
        open_end = t.abs_ci_high if alt == "greater" else -t.abs_ci_low
        assert np.isinf(open_end).all() and (open_end > 0).all()
        # the closed end is the one-sided Wald bound (statsmodels' two-sided 90% interval)
        for r in t.head(5).itertuples():
            g = df[df.experiment == r.experiment]
            a, b = g[g.arm == "A"].y, g[g.arm == "B"].y
            lo, hi = confint_proportions_2indep(b.sum(), len(b), a.sum(), len(a), method="wald",
                                                compare="diff", alpha=0.10)  # fmt: skip
            closed = r.abs_ci_low if alt == "greater" else r.abs_ci_high
            assert closed == pytest.approx(lo if alt == "greater" else hi, rel=1e-9)


def test_one_sided_results_are_strict_json():
    rng = np.random.default_rng(1)
    df = pd.DataFrame({"arm": rng.choice(["a", "b"], 1000), "y": rng.normal(size=1000)})
    res = analyze(df, arm_col="arm", control="a", metrics=["y:mean"], alternative="greater")
    row = res.to_dicts()[0]
    assert row["abs_ci_high"] is None and math.isfinite(row["abs_ci_low"])
    json.dumps(res.to_dicts(), allow_nan=False)
    fig = res.plot(relative=False)  # the open end is simply not drawn
    assert len(fig.axes) == 1
    two = analyze_experiment(df, arm_col="arm", control="a", metrics=["y:mean"])
    json.dumps(two, allow_nan=False)


def test_open_ends_render_as_infinity():
    rng = np.random.default_rng(2)
    df = pd.DataFrame({"arm": rng.choice(["a", "b"], 1000), "y": rng.normal(size=1000)})
    res = analyze(df, arm_col="arm", control="a", metrics=["y:mean"], alternative="less")
    assert ", +∞]" not in repr(res) and "[-∞, " in repr(res)
    assert "[-∞, " in res._repr_html_() and "inf" not in res._repr_html_()
