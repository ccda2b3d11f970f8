"""Headless tests of ExperimentDesigner and VariantReport: trait changes and clicks,
values equal to the core functions' results (and to plain scipy references)."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from engagelab.widgets.experiment_designer import ExperimentDesigner
from engagelab.widgets.variant_report import VariantReport, forest_png
from scipy import stats

from engagelab.experiments import Metric, analyze, choose_winner, sample_size
from engagelab.experiments.formatting import format_p


def test_designer_live_values_equal_core():
    d = ExperimentDesigner(baseline=0.05, mde=0.10, relative=True, daily_traffic=5000)
    core = sample_size("proportion", baseline=0.05, mde=0.10, relative=True, daily_traffic=5000)
    assert d.n_per_arm == list(core.n_per_arm) and d.total_n == core.total_n and d.days == core.days
    assert "5.000% -&gt; 5.500%" in d.summary.value or "5.000% -> 5.500%" in d.summary.value
    assert "unpooled" in d.formula.value and f"{core.total_n:,}" in d.n_html.value
    assert d.plot_image.value[:4] == b"\x89PNG"
    # only the standard deviation is hidden for proportions (each input has its own Layout)
    assert d.sd.layout.display == "none"
    assert all(x.layout.display is None for x in (d.mde, d.baseline, d.alpha, d.power, d.variants))
    seen = []
    d.observe(lambda c: seen.append(c["new"]), names="total_n")
    d.mde.value = 0.2
    assert seen == [sample_size("proportion", baseline=0.05, mde=0.2, relative=True).total_n]
    d.relative.value = False
    d.mde.value = 0.01
    assert d.total_n == sample_size("proportion", baseline=0.05, mde=0.01).total_n
    d.alpha.value, d.power.value = 0.1, 0.9
    d.alternative.value = "one-sided"
    exp = sample_size(
        "proportion", baseline=0.05, mde=0.01, alpha=0.1, power=0.9, alternative="one-sided"
    )
    assert d.n_per_arm == list(exp.n_per_arm)
    d.method.value = "pooled"
    assert d.result.method == "pooled" and "Fleiss" in d.formula.value


def test_designer_multi_arm_weights_mean_and_spec(tmp_path):
    d = ExperimentDesigner(variants=["A", "B", "C"], weights=[0.5, 0.25, 0.25], plot=False)
    core = sample_size("proportion", baseline=0.05, mde=0.10, relative=True, arms=3,
                       weights=[0.5, 0.25, 0.25])  # fmt: skip
    assert d.n_per_arm == list(core.n_per_arm)
    d.weights.value = "40, 30, 30"  # percentages are accepted
    assert d.n_per_arm == list(sample_size("proportion", baseline=0.05, mde=0.10, relative=True,
                                           arms=3, weights=[0.4, 0.3, 0.3]).n_per_arm)  # fmt: skip
    d.correction.value = "none"
    assert d.result.alpha_per_comparison == 0.05
    d.metric.value = "mean"
    assert d.method.options == ("unpooled", "t") and d.sd.layout.display is None
    d.baseline.value, d.sd.value, d.relative.value, d.mde.value = 10.0, 4.0, False, 0.5
    d.method.value = "t"
    exp = sample_size("mean", baseline=10.0, sd=4.0, mde=0.5, arms=3, weights=[0.4, 0.3, 0.3],
                      correction="none", method="t")  # fmt: skip
    assert d.n_per_arm == list(exp.n_per_arm)
    d.export_button.click()
    spec = json.loads(d.spec_text.value)
    assert spec["variants"] == ["A", "B", "C"] and spec["control"] == "A"
    assert spec["design"]["n_per_arm"] == list(exp.n_per_arm) and spec["design"]["method"] == "t"
    d.export_spec(tmp_path / "spec.json")
    assert json.loads((tmp_path / "spec.json").read_text()) == spec


@pytest.mark.parametrize(
    "attr, value, field",
    [
        ("mde", 0.0, "mde"),
        ("weights", "0.5, 0.6", "weights"),
        ("weights", "0.5", "weights"),
        ("variants", "only", "variants"),
        ("alpha", 1.0, "alpha"),
        ("baseline", 1.5, "baseline"),
    ],
)
def test_designer_errors_shown_in_widget(attr, value, field):
    d = ExperimentDesigner(plot=False)
    getattr(d, attr).value = value
    assert d.total_n is None and d.result is None
    assert d.error_line.text.startswith("ValidationError: " + field)
    assert d.error_line.layout.display is None
    d.export_button.click()  # the export shows the same error, does not raise
    assert field in d.error_line.text
    fresh = ExperimentDesigner(plot=False)
    assert fresh.error_line.text == "" and fresh.total_n == 62462


@pytest.fixture(scope="module")
def campaigns():
    rng = np.random.default_rng(11)
    rows = []
    for camp, lift in (("c1", 0.05), ("c2", 0.0)):
        n = 3000
        arm = rng.choice(["A", "B", "ctrl"], size=n)
        click = rng.random(n) < np.where(arm == "B", 0.10 + lift, 0.10)
        unsub = rng.random(n) < 0.02
        rev = click * rng.gamma(2.0, 5.0, n)
        rows.append(pd.DataFrame({"campaign": camp, "variant": arm, "clicked": click.astype(int),
                                  "unsub": unsub.astype(int), "revenue": rev}))  # fmt: skip
    return pd.concat(rows, ignore_index=True)


def test_report_matches_core_and_scipy(campaigns):
    r = VariantReport(campaigns, arm_col="variant", control="ctrl", experiment_col="campaign",
                      metrics=["clicked:proportion", "revenue:mean"], rule="statistical")  # fmt: skip
    assert r.error_line.text == ""
    core = analyze(campaigns, arm_col="variant", control="ctrl", experiment_col="campaign",
                   metrics=["clicked:proportion", "revenue:mean"], sequential=True)  # fmt: skip
    pd.testing.assert_frame_equal(r.result.to_pandas(), core.to_pandas())
    assert len(r.verdicts) == len(core.table) and "el-vr-result" in r.table.value
    for exp in ("c1", "c2"):
        assert r.winners[exp] == choose_winner(
            core, rule="statistical", metric="clicked", experiment=exp
        )
        assert f"rule <code>{r.winners[exp].rule}</code>" in r.recommendation.value
    # the click lift of B in c1 against a plain two-proportion z interval
    g = campaigns[campaigns.campaign == "c1"]
    c, b = g[g.variant == "ctrl"].clicked, g[g.variant == "B"].clicked
    d = b.mean() - c.mean()
    se = math.sqrt(b.mean() * (1 - b.mean()) / len(b) + c.mean() * (1 - c.mean()) / len(c))
    row = r.result.table.query("experiment == 'c1' and metric == 'clicked' and arm == 'B'").iloc[0]
    assert row.abs_lift == pytest.approx(d, rel=1e-9)
    assert row.abs_ci_low == pytest.approx(d - stats.norm.isf(0.025) * se, rel=1e-9)
    assert "el-vr-srm-ok" in r.srm_banner.value and "Sequential status" in r.sequential.value
    assert r.plot_image.value[:4] == b"\x89PNG"


def test_report_picks_and_rules(campaigns):
    r = VariantReport(campaigns, arm_col="variant", control="ctrl", experiment_col="campaign",
                      metrics=["clicked:proportion", "unsub:proportion"], plot=False)  # fmt: skip
    r.experiments.value = ("c2",)
    assert set(r.result.table["experiment"]) == {"c2"} and list(r.winners) == ["c2"]
    r.metrics.value = ("clicked",)
    assert set(r.result.table["metric"]) == {"clicked"}
    r.rule.value = "clevertap"
    sub = campaigns[campaigns.campaign == "c2"]
    rates = sub.groupby("variant").clicked.mean()
    assert r.winner.variant == rates.idxmax() and r.winner.rule == "clevertap"
    assert r.winner.reason == f"highest clicked: {rates.max():.4g}"
    r.alpha.value = 0.01
    r.correction.value = "bonferroni"
    assert r.result.alpha == 0.01 and r.result.correction == "bonferroni"
    r.metrics.value = ()
    assert r.error_line.text.startswith("ValidationError: metrics == []")
    assert r.result is None and r.table.value == ""
    r.metrics.value = ("clicked", "unsub")
    r.refresh_button.click()
    assert r.error_line.text == "" and r.result is not None


def test_report_srm_banner_and_sequential_status(tmp_path):
    df = pd.DataFrame(
        {"arm": ["a"] * 700 + ["b"] * 300, "y": [0] * 600 + [1] * 100 + [0] * 100 + [1] * 200}
    )
    df.to_csv(tmp_path / "x.csv", index=False)
    r = VariantReport(
        str(tmp_path / "x.csv"), arm_col="arm", control="a", metrics=["y:proportion"], plot=False
    )
    assert "el-vr-srm-alarm" in r.srm_banner.value and "SAMPLE RATIO MISMATCH" in r.srm_banner.value
    seq = r.result.table.iloc[0]
    assert seq.seq_p < 0.05 and "can stop" in r.sequential.value


def test_report_workspace_sql_source(tmp_path):
    from engagelab import Workspace

    ws = Workspace.create(tmp_path / "ws")
    sql = ("SELECT i AS user_id, CASE WHEN i % 2 = 0 THEN 'A' ELSE 'B' END AS arm, "
           "CASE WHEN i % 7 = 0 THEN 1 ELSE 0 END AS y FROM range(400) t(i)")  # fmt: skip
    r = VariantReport(sql, ws=ws, arm_col="arm", control="A", metrics=["y:proportion"], plot=False)
    core = analyze(
        ws.sql(sql), arm_col="arm", control="A", metrics=["y:proportion"], sequential=True
    )
    pd.testing.assert_frame_equal(r.result.to_pandas(), core.to_pandas())


def test_report_bad_input():
    df = pd.DataFrame({"arm": ["a", "b"] * 10, "y": [0, 1] * 10})
    with pytest.raises(Exception, match="arm_col == 'nope'"):
        VariantReport(df, arm_col="nope", control="a", metrics=["y:proportion"])
    r = VariantReport(df, arm_col="arm", control="zz", metrics=["y:proportion"], plot=False)
    assert r.error_line.text.startswith("ValidationError: control == 'zz'") and r.result is None


@pytest.fixture(scope="module")
def planted() -> pd.DataFrame:
    """B is much worse than the control on both metrics, C much better; D is the same.
    ``unsub`` is lower-is-better: B unsubscribes far more (a loss), C far less (a win)."""
    rng = np.random.default_rng(5)
    n = 4000
    click_p = {"ctrl": 0.20, "B": 0.12, "C": 0.28, "D": 0.20}
    unsub_p = {"ctrl": 0.05, "B": 0.10, "C": 0.02, "D": 0.05}
    arms = np.repeat(list(click_p), n)
    return pd.DataFrame({
        "arm": arms,
        "clicked": (rng.random(arms.size) < np.vectorize(click_p.get)(arms)).astype(int),
        "unsub": (rng.random(arms.size) < np.vectorize(unsub_p.get)(arms)).astype(int),
    })  # fmt: skip


def _rows(html_text: str) -> list[str]:
    return html_text.split("<tr class='el-vr-row ")[1:]


def test_significant_losses_are_red_and_wins_green_direction_aware(planted):
    unsub = Metric("unsub", kind="proportion", column="unsub", lower_is_better=True)
    r = VariantReport(planted, arm_col="arm", control="ctrl", metrics=["clicked:proportion", unsub])
    t = r.result.table
    got = {(m, a): v for m, a, v in zip(t["metric"], t["arm"], r.verdicts, strict=True)}
    assert got == {("clicked", "B"): "loss", ("clicked", "C"): "win", ("clicked", "D"): "neutral",
                   ("unsub", "B"): "loss", ("unsub", "C"): "win", ("unsub", "D"): "neutral"}  # fmt: skip
    rows = _rows(r.table.value)
    assert len(rows) == 6
    for (m, a), verdict, row in zip(got, r.verdicts, rows, strict=True):
        assert row.startswith(f"el-vr-{verdict}'"), (m, a)
        colour = {"win": "#1a7f37", "loss": "#b00020", "neutral": "#555555"}[verdict]
        assert f"color:{colour}" in row
    # rates and lifts as percentages, p-values that never wrap
    b = rows[0]
    import re

    assert len(re.findall(r">\d\d\.\d%<", b)) == 2  # the control's and the variant's rate
    assert " pp [" in b and "white-space:nowrap" in b
    # the adjusted p-value as every surface writes it: from its log10, never rounded to 0
    p_adj = format_p(t["p_adjusted"].iloc[0], t["log10_p_adjusted"].iloc[0])
    assert t["p_adjusted"].iloc[0] < 0.001 and f">{p_adj}<" in b and "e-" in p_adj
    assert "significant loss" in b and "significant win" in rows[1]
    # the forest plot: red and green points, drawn at its natural size
    assert r.plot_image.value[:4] == b"\x89PNG" and r.plot_image.layout.width == "560px"
    pixels = _pixels(r.plot_image.value)
    assert _has(pixels, (0xB0, 0x00, 0x20)) and _has(pixels, (0x1A, 0x7F, 0x37))


def test_forest_plot_has_no_green_for_losses_only(planted):
    worse = planted[planted["arm"].isin(["ctrl", "B"])]
    res = analyze(worse, arm_col="arm", control="ctrl", metrics=["clicked:proportion"])
    png, size = forest_png(res, ["loss"])
    pixels = _pixels(png)
    assert _has(pixels, (0xB0, 0x00, 0x20)) and not _has(pixels, (0x1A, 0x7F, 0x37))
    assert size == (560, int((0.45 * 2 + 1.2) * 80))


def _pixels(png: bytes) -> np.ndarray:
    import io

    from matplotlib import image

    return (image.imread(io.BytesIO(png), format="png")[..., :3] * 255).round().astype(int)


def _has(pixels: np.ndarray, rgb: tuple[int, int, int]) -> bool:
    return bool((np.abs(pixels - np.array(rgb)).sum(axis=-1) <= 12).sum() >= 10)


def test_designer_durations_read_in_weeks_months_and_infeasible_designs_say_so():
    d = ExperimentDesigner(baseline=0.05, mde=0.10, relative=True, daily_traffic=3000, plot=False)
    assert 14 <= d.days < 90 and d.feasible
    assert d.duration == f"{d.days / 7:.1f} weeks ({d.days} days)" and d.duration in d.n_html.value
    d.daily_traffic.value = 500
    assert 90 <= d.days < 365 and "months" in d.duration and d.feasible
    d.mde.value = 0.01  # a 1 % relative lift on 5 %: millions of users
    core = sample_size("proportion", baseline=0.05, mde=0.01, relative=True, daily_traffic=500)
    assert d.days == core.days > 365 and not d.feasible
    assert "not feasible" in d.n_html.value and "el-ed-infeasible" in d.n_html.value
    assert f"{core.days / 365.25:.1f} years ({core.days:,} days)" in d.n_html.value
    assert "duration: <b" not in d.n_html.value  # no bare day count as if it were a plan
    d.daily_traffic.value = 0
    assert d.days is None and d.duration == "" and "duration" not in d.n_html.value
    with pytest.raises(Exception, match="max_days == 0"):
        ExperimentDesigner(max_days=0)


def test_designer_error_clears_the_curve_and_numbers_of_the_old_inputs():
    d = ExperimentDesigner(daily_traffic=1000)
    assert d.plot_image.value[:4] == b"\x89PNG" and d.formula.value
    d.mde.value = 0.0
    assert d.error_line.text.startswith("ValidationError: mde")
    assert d.plot_image.value == b"" and d.plot_image.layout.display == "none"
    assert d.summary.value == "" and d.formula.value == "" and d.duration == ""
    d.mde.value = 0.1
    assert d.error_line.text == "" and d.plot_image.value[:4] == b"\x89PNG"
    assert d.plot_image.layout.display is None


def test_designer_round_trips_a_spec_with_every_field_non_default():
    import inspect

    spec = {
        "variants": ["ctl", "X", "Y"], "control": "ctl", "weights": [0.5, 0.3, 0.2],
        "metric": "mean", "baseline": 12.0, "sd": 3.0, "mde": 0.4, "relative": False,
        "alpha": 0.1, "power": 0.9, "alternative": "one-sided", "correction": "none",
        "method": "t", "daily_traffic": 1200.0,
    }  # fmt: skip
    defaults = {k: p.default for k, p in inspect.signature(ExperimentDesigner).parameters.items()}
    inputs = {k for k in defaults if k not in ("plot", "max_days")}
    assert inputs <= set(spec), "every input of the designer is in the spec"
    for k in inputs:
        default = defaults[k]
        default = list(default) if isinstance(default, tuple) else default
        assert spec[k] != default and spec[k] is not None, k
    d = ExperimentDesigner.from_spec(spec, plot=False)
    got = d.spec
    assert got.pop("design") == sample_size(
        "mean", baseline=12.0, sd=3.0, mde=0.4, alpha=0.1, power=0.9, alternative="one-sided",
        arms=3, weights=[0.5, 0.3, 0.2], correction="none", method="t", daily_traffic=1200.0,
    ).to_dict()  # fmt: skip
    assert got == spec
    again = ExperimentDesigner.from_spec(d.export_spec(), plot=False).spec
    assert again == d.spec
