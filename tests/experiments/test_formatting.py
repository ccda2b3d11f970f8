"""One p-value and probability formatter, used by every surface.

Edge values are checked one by one; the tiny p-value of a real analysis is checked
against scipy's log survival function of the z statistic computed here from the counts,
and the repr, HTML, CLI-table and JSON outputs are checked to print that value (never
``0``) and a probability near 1 as ``> 0.9999`` (never ``1``).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from engagelab.cli.experiments import analyze_table
from engagelab.experiments import analyze, analyze_aggregates
from engagelab.experiments.api import analyze_experiment
from engagelab.experiments.formatting import format_p, format_probability

LN10 = math.log(10)


@pytest.mark.parametrize(
    ("p", "log10_p", "text"),
    [
        (0.0, None, "< 1e-300"),  # underflowed, nothing to go on: a true bound
        (0.0, -math.inf, "< 1e-300"),
        (0.0, -791.504, "3.13e-792"),  # log10 wins over the underflowed p
        (1e-320, None, "1.00e-320"),  # a subnormal float still prints its size
        (5e-324, None, "4.94e-324"),
        (0.5, None, "0.5"),
        (0.0312, None, "0.0312"),
        (0.001, None, "0.001"),
        (0.000999, None, "9.99e-4"),
        (9.996e-5, None, "1.00e-4"),  # mantissa rounding carries into the exponent
        (1.0, None, "1"),
        (1.0 + 1e-15, None, "1"),  # never above 1
        (math.nan, None, "n/a"),
        (None, None, "n/a"),
        (math.nan, -12.0, "1.00e-12"),
    ],
)
def test_format_p_edges(p, log10_p, text):
    assert format_p(p, log10_p) == text
    assert format_p(p, log10_p) != "0"


@pytest.mark.parametrize(
    ("p", "text"),
    [
        (0.5, "0.5000"),
        (0.97314, "0.9731"),
        (0.99994, "0.9999"),
        (0.99995, "> 0.9999"),  # would round to 1.0000
        (0.99999, "> 0.9999"),
        (1.0, "> 0.9999"),
        (1.0000000000000002, "> 0.9999"),
        (5e-5, "0.0001"),
        (4.9e-5, "< 0.0001"),
        (0.0, "< 0.0001"),
        (1e-320, "< 0.0001"),
        (math.nan, "n/a"),
        (None, "n/a"),
    ],
)
def test_format_probability_edges(p, text):
    assert format_probability(p) == text


def _huge_effect():
    """1M users per arm at 10 % vs 20 %: z ~ 200, p ~ 1e-8700, far below float range."""
    n, s_c, s_t = 1_000_000, 100_000, 200_000
    agg = pd.DataFrame(
        {
            "experiment": ["e", "e"],
            "arm": ["A", "B"],
            "n": [n, n],
            "sum:clicked": [float(s_c), float(s_t)],
            "sumsq:clicked": [float(s_c), float(s_t)],
        }
    )
    pc, pt = s_c / n, s_t / n
    z = (pt - pc) / math.sqrt(pc * (1 - pc) / n + pt * (1 - pt) / n)
    ref_log10 = (stats.norm.logsf(z) + math.log(2)) / LN10
    return agg, ref_log10


def test_tiny_p_is_printed_from_its_log_on_repr_and_html():
    agg, ref = _huge_effect()
    res = analyze_aggregates(
        agg, control="A", metrics=["clicked:proportion"], correction="none", bayes_draws=1000
    )
    row = res.to_pandas().iloc[0]
    assert row.p_value == 0.0  # the float underflowed
    assert row.log10_p == pytest.approx(ref, rel=1e-9)
    text = format_p(row.p_value, row.log10_p)
    assert text.endswith(f"e{math.floor(ref)}") and text != "0"
    assert f"p={text}" in repr(res) and f"p_adj={text}" in repr(res)
    assert "P(beat control) > 0.9999 [Bayesian]" in repr(res)
    html = res._repr_html_()
    assert f"<td>{text}</td>" in html and "<td>> 0.9999</td>" not in html  # escaped
    assert "<td>&gt; 0.9999</td>" in html
    assert "100.0%" not in html


def test_tiny_p_in_cli_table_and_json(tmp_path):
    rng = np.random.default_rng(5)
    n = 40_000
    arm = np.repeat(["A", "B"], n)
    clicked = np.concatenate([rng.random(n) < 0.02, rng.random(n) < 0.30]).astype(int)
    path = tmp_path / "ab.csv"
    pd.DataFrame({"arm": arm, "clicked": clicked}).to_csv(path, index=False)
    out = analyze_experiment(
        str(path), arm_col="arm", control="A", metrics=["clicked:proportion"], sequential=True
    )
    r = out["rows"][0]
    pc, pt = clicked[:n].mean(), clicked[n:].mean()
    z = (pt - pc) / math.sqrt(pc * (1 - pc) / n + pt * (1 - pt) / n)
    ref = (stats.norm.logsf(z) + math.log(2)) / LN10
    assert ref < -308 and r["p_value"] == 0.0
    assert r["log10_p"] == pytest.approx(ref, rel=1e-9)
    assert r["p_value_text"] == format_p(0.0, ref) and r["p_value_text"].endswith(
        f"e{math.floor(ref)}"
    )
    assert r["bayes_p_beat_control_text"] == "> 0.9999"
    assert 0.0 <= r["bayes_p_beat_control"] <= 1.0
    assert r["seq_p_text"] == format_p(r["seq_p"], r["log10_seq_p"])
    table = analyze_table(out)
    t = table.iloc[0]
    assert t["p_value"] == r["p_value_text"] and t["p_value"] != "0"
    assert t["bayes_p_beat_control"] == "> 0.9999"
    assert t["seq_p"] == r["seq_p_text"] and t["seq_ci_low"] != ""
    assert float(t["seq_ci_low"]) == pytest.approx(r["seq_ci_low"], rel=1e-3)


def test_sequential_figures_in_text_repr():
    rng = np.random.default_rng(11)
    n = 3000
    df = pd.DataFrame(
        {
            "arm": np.repeat(["A", "B"], n),
            "clicked": np.concatenate([rng.random(n) < 0.10, rng.random(n) < 0.13]).astype(int),
        }
    )
    res = analyze(
        df,
        arm_col="arm",
        control="A",
        metrics=["clicked:proportion"],
        sequential=True,
        gs_information=[0.5, 1.0],
        gs_look=1,
        bayes_draws=1000,
    )
    row = res.to_pandas().iloc[0]
    text = repr(res)
    assert f"seq_p={format_p(row.seq_p, row.log10_seq_p)}" in text
    assert f"[{row.seq_ci_low:+.4g}, {row.seq_ci_high:+.4g}]" in text
    assert f"|z| {abs(row.gs_z):.3f} vs bound {row.gs_bound:.3f}" in text
    assert ("stop, reject" if row.gs_reject else "continue") in text
    # the always-valid p is larger than the fixed-horizon one, and the sequence wider
    assert row.seq_p >= row.p_value
    assert row.seq_ci_high - row.seq_ci_low > row.abs_ci_high - row.abs_ci_low


@pytest.mark.parametrize("df", [3.0, 30.0, 300.0, 6000.0, 1e6])
def test_t_tail_continued_fraction_matches_scipy_where_scipy_is_finite(df):
    from engagelab.experiments._stats import _log_ibeta_tail

    t = np.array([1.5, 2.0, 5.0, 10.0, 20.0, 30.0, 38.0])
    ref = stats.t.logsf(t, df)
    ok = np.isfinite(ref)
    got = _log_ibeta_tail(df / (df + t**2), np.full(t.shape, df / 2), 0.5) - math.log(2)
    assert got[ok] == pytest.approx(ref[ok], rel=1e-9)


def test_welch_p_far_beyond_float_range_is_finite_in_log():
    """Welch's t at t ~ 90 with df ~ 6000: scipy's logsf is -inf; the log p is finite,
    between the normal tail (thinner) and the t tail at a smaller df (heavier)."""
    from engagelab.experiments._stats import t_logsf, welch

    rng = np.random.default_rng(2)
    n = 3000
    y = np.concatenate([rng.normal(0, 1, n), rng.normal(2.3, 1, n)])
    df = pd.DataFrame({"arm": np.repeat(["A", "B"], n), "y": y})
    res = analyze(df, arm_col="arm", control="A", metrics=["y:mean"], bayes_draws=1000)
    row = res.to_pandas().iloc[0]
    t, nu, logp, _ = welch(y[:n].mean(), y[:n].var(ddof=1), n, y[n:].mean(), y[n:].var(ddof=1), n)
    assert float(t) > 60 and np.isneginf(stats.t.logsf(float(t), float(nu)))
    assert row.test == "welch" and np.isfinite(row.log10_p)
    assert row.log10_p == pytest.approx(float(logp) / LN10, rel=1e-12)
    two = math.log(2)
    assert stats.norm.logsf(float(t)) + two < float(logp) < float(t_logsf(t, nu / 10)[()]) + two
    assert format_p(row.p_value, row.log10_p).endswith(f"e{math.floor(row.log10_p)}")
    assert "< 1e-300" not in repr(res)
