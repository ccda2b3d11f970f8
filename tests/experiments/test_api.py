"""The analysis API: inputs, bad input, degenerate data, rendering, winner rules, CLI layer."""

from __future__ import annotations

import json
import subprocess
import sys

import duckdb
import numpy as np
import pandas as pd
import pytest

from engagelab.errors import ValidationError
from engagelab.experiments import (
    Metric,
    Winner,
    aggregate_sql,
    analyze,
    analyze_experiment,
    choose_winner,
    design_experiment,
)


@pytest.fixture(scope="module")
def df():
    rng = np.random.default_rng(7)
    n = 9000
    arm = rng.choice(["A", "B", "C"], n)
    clicked = (rng.random(n) < np.where(arm == "B", 0.14, 0.10)).astype(int)
    unsub = (rng.random(n) < np.where(arm == "C", 0.05, 0.02)).astype(int)
    pre = rng.gamma(2, 5, n)
    revenue = clicked * rng.gamma(2, 10, n) + 0.5 * pre
    return pd.DataFrame(
        {
            "variant": arm,
            "clicked": clicked,
            "unsub": unsub,
            "revenue": revenue,
            "pre": pre,
            "campaign": np.where(rng.random(n) < 0.5, "c1", "c2"),
        }
    )


def test_every_input_kind_gives_the_same_result(df, tmp_path):
    kw = dict(
        arm_col="variant",
        control="A",
        metrics=["clicked:proportion", "revenue:mean", "revenue:ratio:clicked"],
    )
    ref = analyze(df, **kw).to_pandas()
    csv, pq = tmp_path / "d.csv", tmp_path / "d.parquet"
    df.to_csv(csv, index=False)
    df.to_parquet(pq)
    con = duckdb.connect()
    con.register("t", df)
    import polars as pl
    import pyarrow as pa

    sources = (
        str(csv),
        pq,
        str(pq),
        con.table("t"),
        f"SELECT * FROM read_parquet('{pq}')",
        pl.from_pandas(df),
        pa.Table.from_pandas(df),
    )
    for data in sources:
        got = analyze(data, **kw).to_pandas()
        pd.testing.assert_frame_equal(got, ref, rtol=1e-9)


def test_many_experiments_and_metrics_in_one_call(df):
    res = analyze(
        df,
        arm_col="variant",
        control="A",
        experiment_col="campaign",
        metrics=["clicked:proportion", Metric("revenue", covariate="pre")],
        sequential=True,
    )
    t = res.to_pandas()
    assert len(t) == 2 * 2 * 2 and set(t.experiment) == {"c1", "c2"}
    assert {"seq_p", "seq_ci_low", "seq_ci_high", "bayes_p_best", "p_adjusted"} <= set(t.columns)
    assert (t.seq_ci_high - t.seq_ci_low > t.abs_ci_high - t.abs_ci_low).all()
    # Holm over the 4 comparisons of each experiment
    from statsmodels.stats.multitest import multipletests

    for _, g in t.groupby("experiment"):
        assert np.allclose(g.p_adjusted, multipletests(g.p_value, method="holm")[1])
    assert set(res.srm) == {"c1", "c2"}
    sql = aggregate_sql([Metric("clicked", "proportion")], "variant", "campaign")
    assert "FROM src) AS u GROUP BY experiment, arm" in sql and "ORDER BY experiment, arm" in sql


def test_rendering_marks_significance_and_srm(df):
    res = analyze(df, arm_col="variant", control="A", metrics=["clicked:proportion"])
    html = res._repr_html_()
    assert "el-significant" in html and "★" in html and "SAMPLE RATIO MISMATCH" not in html
    assert "[Bayes]" in html
    assert "clicked | B vs A" in repr(res) and "*" in repr(res)
    fig = res.plot()
    assert fig.axes[0].get_xlabel().startswith("relative lift")
    skewed = pd.concat([df, df[df.variant == "B"]])
    bad = analyze(skewed, arm_col="variant", control="A", metrics=["clicked:proportion"])
    assert bad.srm_alarms() and "SAMPLE RATIO MISMATCH" in bad._repr_html_()
    assert "SAMPLE RATIO MISMATCH" in repr(bad)
    assert "el-srm-banner" in bad._repr_html_()
    assert "SAMPLE RATIO MISMATCH" in bad.plot().axes[0].get_title()


def test_intended_weights_for_srm(df):
    res = analyze(
        df,
        arm_col="variant",
        control="A",
        metrics=["clicked:proportion"],
        weights={"A": 0.5, "B": 0.25, "C": 0.25},
    )
    assert res.srm["all"].p_value < 1e-10
    ok = analyze(
        df,
        arm_col="variant",
        control="A",
        metrics=["clicked:proportion"],
        weights=[1 / 3, 1 / 3, 1 / 3],
    )
    assert ok.srm["all"].p_value > 0.001


@pytest.mark.parametrize(
    "kwargs, field",
    [
        (dict(control="Z"), "control"),
        (dict(arm_col="nope"), "arm_col"),
        (dict(metrics=["missing:mean"]), "metrics['missing'].column"),
        (dict(metrics=["variant:mean"]), "metrics['variant'].column"),
        (dict(metrics=["revenue:proportion"]), "metrics['revenue'].column"),
        (dict(metrics=["clicked:median"]), "metrics['clicked'].kind"),
        (dict(alpha=1.5), "alpha"),
        (dict(correction="sidakk"), "correction"),
        (dict(weights={"A": 0.5, "B": 0.5, "D": 0.2}), "weights"),
        (dict(weights=[0.5, 0.3, 0.3]), "weights"),
        (dict(arms=["A", "B", "C", "D"]), "arms"),
        (dict(test="fisher", metrics=["revenue:mean"]), "test"),
        (dict(metrics=[]), "metrics"),
    ],
)
def test_bad_input_is_one_clear_error(df, kwargs, field):
    base = dict(arm_col="variant", control="A", metrics=["clicked:proportion"])
    with pytest.raises(ValidationError) as e:
        analyze(df, **(base | kwargs))
    assert e.value.field == field
    assert "\n" not in str(e.value) and str(e.value).startswith(field)


def test_bad_data_argument():
    with pytest.raises(ValidationError, match="^data =="):
        analyze("does-not-exist.parquet", arm_col="a", control="A", metrics=["y:mean"])
    with pytest.raises(ValidationError, match="^data =="):
        analyze(42, arm_col="a", control="A", metrics=["y:mean"])
    with pytest.raises(ValidationError, match="^data =="):
        analyze("SELEC nonsense", arm_col="a", control="A", metrics=["y:mean"])


def test_degenerate_data_gives_notes_not_crashes():
    zeros = pd.DataFrame({"arm": ["A"] * 50 + ["B"] * 50, "y": 0, "rev": 0.0, "den": 0})
    res = analyze(
        zeros, arm_col="arm", control="A", metrics=["y:proportion", "rev:mean", "rev:ratio:den"]
    )
    t = res.to_pandas()
    assert (t.note.str.contains("no inference possible")).all()
    assert t.p_value.isna().all() and (t.n_arm == 50).all()
    one = pd.DataFrame({"arm": ["A", "B", "B"], "y": [1, 0, 1]})
    r1 = analyze(one, arm_col="arm", control="A", metrics=["y:proportion"]).to_pandas().iloc[0]
    assert "fewer than 2 users" in r1.note and np.isnan(r1.p_value)
    assert "no inference possible" in repr(
        analyze(one, arm_col="arm", control="A", metrics=["y:proportion"])
    )
    ctrl0 = pd.DataFrame({"arm": ["A"] * 40 + ["B"] * 40, "y": [0] * 40 + [1] * 10 + [0] * 30})
    r2 = analyze(ctrl0, arm_col="arm", control="A", metrics=["y:proportion"]).to_pandas().iloc[0]
    assert r2.p_value < 0.01 and np.isnan(r2.rel_lift) and "relative lift undefined" in r2.note
    json.dumps(analyze_experiment(zeros, arm_col="arm", control="A", metrics=["y:proportion"]))


def test_winner_rules(df):
    res = analyze(
        df,
        arm_col="variant",
        control="A",
        metrics=["clicked:proportion", Metric("unsub", "proportion", lower_is_better=True)],
    )
    ct = choose_winner(res)
    assert isinstance(ct, Winner) and ct.rule == "clevertap" and ct.variant == "B"
    stat = choose_winner(res, "statistical", metric="clicked", guardrails=["unsub"])
    assert stat.variant == "B" and stat.rule == "statistical" and "holm" in stat.reason
    # a guardrail that B fails: make B's unsubscribes much worse
    worse = df.copy()
    worse.loc[worse.variant == "B", "unsub"] = (
        np.random.default_rng(1).random((worse.variant == "B").sum()) < 0.2
    ).astype(int)
    r2 = analyze(
        worse,
        arm_col="variant",
        control="A",
        metrics=["clicked:proportion", Metric("unsub", "proportion", lower_is_better=True)],
    )
    w2 = choose_winner(r2, "statistical", metric="clicked", guardrails=["unsub"])
    assert w2.variant == "A" and "guardrails excluded ['B', 'C']" in w2.reason
    tie = pd.DataFrame(
        {"variant": ["B"] * 100 + ["A"] * 100, "views": [1, 0] * 100, "clicks": [0] * 200}
    )
    rt = analyze(
        tie, arm_col="variant", control="B", metrics=["views:proportion", "clicks:proportion"]
    )
    w = choose_winner(rt, channel="email")
    assert w.variant == "A" and "tie" in w.reason and "views" in w.reason
    none = choose_winner(rt, "statistical", metric="views", fallback="clevertap")
    assert none.rule == "statistical+clevertap" and none.variant == "A"
    with pytest.raises(ValidationError, match="^metric =="):
        choose_winner(rt, metric="revenue")
    with pytest.raises(ValidationError, match="^rule =="):
        choose_winner(rt, rule="best")


def test_cli_layer_returns_plain_data(df, tmp_path):
    d = design_experiment(metric="proportion", baseline=0.05, mde=0.10, relative=True, arms=2)
    assert (
        d["solved_for"] == "sample_size"
        and d["method"] == "unpooled"
        and d["total_n"] == sum(d["n_per_arm"])
    )
    m = design_experiment(metric="proportion", baseline=0.05, n_per_arm=d["n_per_arm"][0])
    assert m["solved_for"] == "mde" and abs(m["mde_rel"] - 0.10) < 1e-3
    p = design_experiment(
        metric="proportion", baseline=0.05, mde=0.10, relative=True, n_per_arm=d["n_per_arm"][0]
    )
    assert p["solved_for"] == "power" and abs(p["power"] - 0.8) < 1e-3
    with pytest.raises(ValidationError, match="^mde =="):
        design_experiment(baseline=0.05)
    path = tmp_path / "d.csv"
    df.to_csv(path, index=False)
    out = analyze_experiment(
        str(path),
        arm_col="variant",
        control="A",
        metrics=["clicked:proportion", "revenue:mean"],
        covariate="pre",
    )
    json.dumps(out)
    assert len(out["rows"]) == 4 and out["srm_alarm"] is False
    row = out["rows"][0]
    for key in (
        "n_arm",
        "arm_estimate",
        "abs_lift",
        "rel_lift",
        "abs_ci_low",
        "p_value",
        "p_adjusted",
        "bayes_p_beat_control",
        "srm_p",
    ):
        assert key in row
    assert out["rows"][2]["kind"] == "mean (CUPED)"


def test_import_is_light():
    code = (
        "import sys, engagelab.experiments; "
        "print(any(m.split('.')[0] in ('ipywidgets', 'IPython', 'pyspark', 'matplotlib') for m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert out == "False"


def test_group_sequential_option(df):
    kw = dict(arm_col="variant", control="A", metrics=["clicked:proportion"])
    first = analyze(df, **kw, gs_information=[0.5, 1.0], gs_look=1).to_pandas()
    last = analyze(df, **kw, gs_information=[0.5, 1.0]).to_pandas()
    # rpact getDesignGroupSequential(kMax=2, alpha=0.05, sided=2, typeOfDesign="asOF")
    assert first.gs_bound.iloc[0] == pytest.approx(2.963, abs=2e-3)
    assert last.gs_bound.iloc[0] == pytest.approx(1.969, abs=2e-3)
    z = first.abs_lift / ((first.abs_ci_high - first.abs_ci_low) / (2 * 1.959963984540054))
    assert np.allclose(first.gs_z, z)
    assert (first.gs_reject == (first.gs_z.abs() >= first.gs_bound)).all()
    html = analyze(df, **kw, gs_information=[0.5, 1.0], gs_look=1)._repr_html_()
    assert "group-sequential" in html
    with pytest.raises(ValidationError, match="^gs_look =="):
        analyze(df, **kw, gs_information=[0.5, 1.0], gs_look=3)
    assert "gs_z" not in analyze(df, **kw).to_pandas().columns


def test_public_surface_is_sorted_and_resolves():
    import engagelab.experiments as ex

    assert list(ex.__all__) == sorted(ex.__all__)
    for name in ex.__all__:
        assert getattr(ex, name) is not None
