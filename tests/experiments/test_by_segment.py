"""Per-segment analysis (``analyze(..., by=...)``) against independent references.

Each segment's estimates are recomputed on that segment's rows alone with scipy /
statsmodels / numpy formulas written here; the heterogeneity test by hand and BH with
statsmodels' ``multipletests``; a planted world where one of 20 segments has another
effect; and an A/A-by-segment simulation of the flag rate.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from statsmodels.stats import proportion as sm_proportion
from statsmodels.stats.multitest import multipletests

from engagelab.errors import ValidationError
from engagelab.experiments import Experiment, Metric, analyze
from engagelab.experiments.analysis import analyze_by
from engagelab.experiments.segmented import MISSING, SegmentedResult

Z = stats.norm.isf(0.025)


@pytest.fixture(scope="module")
def world() -> pd.DataFrame:
    rng = np.random.default_rng(42)
    n = 30_000
    seg = rng.choice(["DE", "FR", "US"], n, p=[0.5, 0.3, 0.2])
    arm = rng.choice(["A", "B", "C"], n)
    pre = rng.gamma(2.0, 5.0, n)
    lift = np.where(seg == "US", 0.04, 0.01) * (arm != "A")
    clicked = (rng.random(n) < 0.1 + lift).astype(int)
    orders = rng.poisson(1.0 + 0.2 * (arm == "C"), n)
    revenue = 0.5 * pre + orders * rng.gamma(2.0, 10.0, n) + rng.normal(0, 5, n)
    return pd.DataFrame(
        dict(country=seg, arm=arm, clicked=clicked, revenue=revenue, pre=pre, orders=orders)
    )


METRICS = [
    Metric("clicked", "proportion"),
    Metric("revenue", "mean"),
    Metric("revenue_cuped", "mean", "revenue", covariate="pre"),
    Metric("revenue/orders", "ratio", "revenue", "orders"),
]


def _reference(sub: pd.DataFrame, arm: str) -> dict[str, tuple[float, float, float]]:
    """(lift, se, p) per metric of ``arm`` vs A from the raw rows, formulas written here."""
    a, b = sub[sub.arm == "A"], sub[sub.arm == arm]
    out = {}
    # proportion: unpooled Wald z test (statsmodels)
    res = sm_proportion.test_proportions_2indep(
        b.clicked.sum(), len(b), a.clicked.sum(), len(a), method="wald", compare="diff"
    )
    pa, pb = a.clicked.mean(), b.clicked.mean()
    se = np.sqrt(pa * (1 - pa) / len(a) + pb * (1 - pb) / len(b))
    out["clicked"] = (pb - pa, se, res.pvalue)
    # mean: Welch (scipy)
    w = stats.ttest_ind(b.revenue, a.revenue, equal_var=False)
    se = np.sqrt(b.revenue.var(ddof=1) / len(b) + a.revenue.var(ddof=1) / len(a))
    out["revenue"] = (b.revenue.mean() - a.revenue.mean(), se, w.pvalue)
    # CUPED: the treatment coefficient of OLS y ~ 1 + D + x over the pair (Frisch-Waugh)
    pair = pd.concat([a, b])
    d = (pair.arm == arm).to_numpy(float)
    X = np.column_stack([np.ones(len(pair)), d, pair.pre.to_numpy()])
    beta = np.linalg.lstsq(X, pair.revenue.to_numpy(), rcond=None)[0]
    out["revenue_cuped"] = (beta[1], np.nan, np.nan)
    # ratio: delta method from the linearised per-user values, z test
    parts = []
    for g in (a, b):
        r = g.revenue.sum() / g.orders.sum()
        lin = (g.revenue - r * g.orders) / g.orders.mean()
        parts.append((r, lin.var(ddof=1) / len(g)))
    diff, se = parts[1][0] - parts[0][0], np.sqrt(parts[0][1] + parts[1][1])
    out["revenue/orders"] = (diff, se, 2 * stats.norm.sf(abs(diff / se)))
    return out


def test_segment_rows_equal_independent_analysis_of_each_subset(world):
    res = analyze(world, arm_col="arm", control="A", metrics=METRICS, by="country")
    assert isinstance(res, SegmentedResult)
    t = res.to_pandas()
    assert sorted(t.segment.unique()) == ["DE", "FR", "US"]
    assert len(t) == 3 * 2 * 4
    for (seg, arm), rows in t.groupby(["segment", "arm"]):
        sub = world[world.country == seg]
        ref = _reference(sub, arm)
        for r in rows.itertuples():
            name = r.metric
            lift, se, p = ref[name]
            assert r.abs_lift == pytest.approx(lift, rel=1e-9, abs=1e-12), (seg, arm, name)
            if np.isfinite(se):
                crit = (r.abs_ci_high - r.abs_lift) / se
                assert crit == pytest.approx(Z, rel=2e-3)  # z, or Welch's t at large df
                assert r.p_value == pytest.approx(p, rel=1e-6)
    # the correction is the plain one within the segment (holm over arms x metrics)
    for _seg, rows in t.groupby("segment"):
        holm = multipletests(rows.p_value.to_numpy(), method="holm")[1]
        assert rows.p_adjusted.to_numpy() == pytest.approx(holm, rel=1e-9)
    assert set(t.kind) == {"proportion", "mean", "mean (CUPED)", "ratio"}


def test_segment_rows_equal_plain_analyze_on_the_subset(world):
    res = analyze(world, arm_col="arm", control="A", metrics=METRICS, by="country")
    t = res.to_pandas()
    cols = ["metric", "arm", "n_arm", "abs_lift", "abs_ci_low", "rel_ci_high", "p_adjusted"]
    for seg in ("DE", "US"):
        plain = analyze(
            world[world.country == seg], arm_col="arm", control="A", metrics=METRICS
        ).to_pandas()
        mine = t[t.segment == seg].reset_index(drop=True)
        pd.testing.assert_frame_equal(mine[cols], plain[cols], rtol=1e-9)


def test_difference_from_rest_by_hand_and_bh_by_statsmodels(world):
    res = analyze(world, arm_col="arm", control="A", metrics=["clicked:proportion"], by="country")
    t = res.to_pandas()
    for r in t.itertuples():
        own = world[world.country == r.segment]
        rest = world[world.country != r.segment]
        (l1, s1, _), (l2, s2, _) = (_reference(g, r.arm)["clicked"] for g in (own, rest))
        assert r.rest_abs_lift == pytest.approx(l2, rel=1e-9)
        assert r.rest_n == len(rest[rest.arm.isin(["A", r.arm])])
        z = (l1 - l2) / np.hypot(s1, s2)
        assert r.diff_from_rest == pytest.approx(l1 - l2, rel=1e-9)
        assert r.diff_p == pytest.approx(2 * stats.norm.sf(abs(z)), rel=1e-6)
        assert r.diff_ci_low == pytest.approx(l1 - l2 - Z * np.hypot(s1, s2), rel=1e-9)
    for _, rows in t.groupby("arm"):
        rej, q, *_ = multipletests(rows.diff_p.to_numpy(), alpha=0.05, method="fdr_bh")
        assert rows.diff_q.to_numpy() == pytest.approx(q, rel=1e-9)
        assert rows.differs.tolist() == rej.tolist()
    # the planted world: the US effect (+4 points) differs from the rest (+1 point)
    assert set(t[t.differs].segment) == {"US"}
    assert res.overall.to_pandas().abs_lift.notna().all()


def _planted(seed: int, k: int, n: int, special: int | None) -> pd.DataFrame:
    """Sufficient statistics of normal data: k segments x 2 arms, n users each."""
    rng = np.random.default_rng(seed)
    rows = []
    for s in range(k):
        for arm in ("A", "B"):
            mu = 10.0 + (0.5 if (arm == "B" and s == special) else 0.1 * (arm == "B"))
            mean = rng.normal(mu, 3.0 / np.sqrt(n))
            var = 9.0 * rng.chisquare(n - 1) / (n - 1)
            rows.append(
                {
                    "experiment": "all",
                    "segment": f"s{s:02d}",
                    "arm": arm,
                    "n": n,
                    "sum:y": n * mean,
                    "sumsq:y": (n - 1) * var + n * mean**2,
                }
            )
    return pd.DataFrame(rows)


EXP = Experiment(control="A", metrics=("y:mean",), bayes_draws=1000)


def test_planted_one_of_twenty_segments_is_flagged():
    """s07's lift is 0.5, the others' 0.1 (se of a segment's lift 0.047): s07 is found
    every time; the others are flagged rarely (their rest includes s07, so their true
    difference from the rest, -0.021, is small but not exactly 0)."""
    others, covered = [], 0
    for seed in range(20):
        t = analyze_by(None, EXP, "seg", agg=_planted(seed, 20, 8000, special=7)).to_pandas()
        flagged = t[t.differs].segment.tolist()
        assert "s07" in flagged, seed
        others.append(len(flagged) - 1)
        row = t[t.segment == "s07"].iloc[0]
        true_diff = 0.5 - 0.1  # every other segment, so the rest, has lift 0.1
        covered += row.diff_ci_low < true_diff < row.diff_ci_high
    assert np.mean(others) <= 0.5  # about 0.18 expected (0.05 x 19 x BH's step-up)
    assert covered >= 17  # a 95 % interval: 19 of 20 expected


def test_aa_by_segment_flag_rate_is_controlled():
    """A/A by segment (no segment differs): BH keeps P(any flag) = FDR near alpha."""
    reps, k = 150, 10
    any_flag, raw = 0, []
    for seed in range(reps):
        t = analyze_by(None, EXP, "seg", agg=_planted(1000 + seed, k, 500, None)).to_pandas()
        any_flag += bool(t.differs.any())
        raw += t.diff_p.tolist()
    rate = any_flag / reps
    # FDR under the global null is P(any flag) <= alpha; 3 binomial sds of slack
    assert rate <= 0.05 + 3 * np.sqrt(0.05 * 0.95 / reps)
    # and the unadjusted tests are calibrated (rejecting ~5 % each), so BH is not vacuous
    assert 0.035 < np.mean(np.array(raw) < 0.05) < 0.065


def test_missing_segment_values_form_a_named_segment():
    df = pd.DataFrame(
        {
            "arm": ["A", "B"] * 300,
            "country": ["DE"] * 200 + [None] * 200 + ["FR"] * 200,
            "clicked": [0, 1, 1, 0, 0, 0] * 100,
        }
    )
    t = analyze(df, arm_col="arm", control="A", metrics=["clicked:proportion"], by="country")
    assert sorted(t.to_pandas().segment) == sorted(["DE", "FR", MISSING])
    clash = df.assign(country=df.country.fillna("x")).copy()
    clash.loc[0, "country"] = MISSING
    clash.loc[1, "country"] = None
    with pytest.raises(ValidationError, match="missing"):
        analyze(clash, arm_col="arm", control="A", metrics=["clicked:proportion"], by="country")


def test_validation_of_by():
    df = pd.DataFrame({"arm": ["A", "B"] * 300, "clicked": [0, 1, 1] * 200, "uid": range(600)})
    with pytest.raises(ValidationError, match=r"by == 'cuntry', must be a column of data: 'arm'"):
        analyze(df, arm_col="arm", control="A", metrics=["clicked:proportion"], by="cuntry")
    with pytest.raises(ValidationError, match="600 distinct values, more than max_segments=200"):
        analyze(df, arm_col="arm", control="A", metrics=["clicked:proportion"], by="uid")
    with pytest.raises(ValidationError, match="at least 2 segments"):
        analyze(
            df.assign(one="x"), arm_col="arm", control="A", metrics=["clicked:proportion"], by="one"
        )


def test_an_arm_without_users_in_a_segment_gives_a_note():
    df = pd.DataFrame(
        {
            "arm": ["A", "B"] * 200 + ["A"] * 100,
            "seg": ["x"] * 400 + ["y"] * 100,
            "clicked": [0, 1, 1, 0] * 125,
        }
    )
    t = analyze(df, arm_col="arm", control="A", metrics=["clicked:proportion"], by="seg")
    t = t.to_pandas().set_index("segment")
    assert t.loc["y", "n_arm"] == 0 and "fewer than 2 users" in t.loc["y", "note"]
    assert np.isnan(t.loc["y", "diff_p"]) and not t.loc["y", "differs"]
    assert np.isfinite(t.loc["x", "abs_lift"])


def test_result_renders():
    agg = _planted(3, 4, 1000, special=1)
    res = analyze_by(None, EXP, "seg", agg=agg)
    html = res._repr_html_()
    assert html.count("<tr") == 5 and "el-differs" in html and "Benjamini-Hochberg" in html
    assert "SegmentedResult(by='seg': 4 segments" in repr(res)
    assert res.to_dicts()[0]["segment"] == "s00"
    assert "s01" in res.flagged().segment.tolist()
