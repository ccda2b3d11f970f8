"""Censoring, the result object (matrix, long table, HTML, plot) and bad input."""

from __future__ import annotations

import matplotlib
import numpy as np
import pandas as pd
import pytest

from engagelab import Workspace
from engagelab.errors import ValidationError
from engagelab.retention import retention

matplotlib.use("Agg")


@pytest.fixture
def tiny(tmp_path):
    """Hand-made: cohort Jan 1 (a, b, c), cohort Jan 5 (d); data ends Jan 6."""
    t = lambda s: pd.Timestamp(s, tz="UTC")  # noqa: E731
    rows = [
        ("a", "2026-01-01 10:00"),
        ("a", "2026-01-02 09:00"),
        ("a", "2026-01-04 09:00"),
        ("b", "2026-01-01 11:00"),
        ("c", "2026-01-01 23:00"),
        ("c", "2026-01-03 01:00"),
        ("d", "2026-01-05 08:00"),
        ("e", "2026-01-06 12:00"),
    ]
    ev = pd.DataFrame(
        {"user_id": [r[0] for r in rows], "event": "Open", "ts": [t(r[1]) for r in rows]}
    )
    ev["ts"] = ev["ts"].astype("datetime64[us, UTC]")
    ws = Workspace.create(tmp_path / "ws")
    ws.append("events", ev)
    yield ws
    ws.close()


def test_censored_cells_are_missing_not_zero_and_all_row_averages_reached_cohorts(tiny):
    res = retention(tiny, "Open", periods=4)
    m = res.to_pandas()
    # data through Jan 6: cohort Jan 1 sees days 0..3 (Jan 1..Jan 4)
    assert m.loc["2026-01-01", "size"] == 3
    assert m.loc["2026-01-01", ["Day 1", "Day 2", "Day 3"]].tolist() == pytest.approx(
        [1 / 3, 1 / 3, 1 / 3]
    )
    # cohort Jan 5 (d): day 1 = Jan 6 observed, d did not return -> 0, not missing
    assert m.loc["2026-01-05", "Day 1"] == 0.0
    # day 2 = Jan 7 is after the data: missing, never 0
    assert np.isnan(m.loc["2026-01-05", "Day 2"]) and np.isnan(m.loc["2026-01-06", "Day 1"])
    # "All cohorts" of day 2 pools only the Jan 1 cohort (size 3), not Jan 5/6
    ov = res.overall().set_index("period")
    assert int(ov.loc["Day 2", "size"]) == 3 and ov.loc["Day 2", "rate"] == pytest.approx(1 / 3)
    assert int(ov.loc["Day 1", "size"]) == 4 and ov.loc["Day 1", "rate"] == pytest.approx(1 / 4)
    long = res.long()
    cens = long[long["censored"]]
    assert cens["retained"].isna().all() and cens["ci_low"].isna().all()
    assert (long.loc[~long["censored"], "ci_low"] <= long.loc[~long["censored"], "rate"]).all()


def test_rolling_windows_and_explicit_until(tiny):
    res = retention(tiny, "Open", periods=4, window="rolling", until="2026-01-09")
    m = res.to_pandas()
    # a: +23 h (rolling day 0, calendar day 1), +71 h (rolling day 2, calendar day 3);
    # c: +26 h (rolling day 1, calendar day 2)
    assert m.loc["2026-01-01", ["Day 1", "Day 2", "Day 3"]].tolist() == pytest.approx(
        [1 / 3, 1 / 3, 0]
    )
    cal = retention(tiny, "Open", periods=4, until="2026-01-09").to_pandas()
    assert cal.loc["2026-01-01", "Day 3"] == pytest.approx(1 / 3)
    # d started Jan 5 08:00: rolling day 2 ends Jan 8 08:00 < until, day 3 ends Jan 9 08:00 > until
    assert m.loc["2026-01-05", "Day 2"] == 0.0 and np.isnan(m.loc["2026-01-05", "Day 3"])


def test_html_plot_and_repr(tiny):
    res = retention(tiny, "Open", periods=4)
    html = res._repr_html_()
    assert html.count("el-censored") == int(res.long(all_cohorts=False)["censored"].sum())
    assert "All cohorts" in html and "background:rgba" in html
    assert "3 cohorts; all cohorts: Day 0=1.000, Day 1=0.250, Day 2=0.333" in repr(res)
    fig = res.plot()
    ax = fig.axes[0]
    curves = [ln for ln in ax.get_lines() if not ln.get_label().startswith("_")]
    assert len(ax.collections) == 1 and len(curves) == 1  # one band, one curve
    hollow = [ln for ln in ax.get_lines() if ln.get_label() == "_partial"]
    assert len(hollow) == 1 and hollow[0].get_markerfacecolor() == "white"  # Day 1 is partial
    fig2 = res.plot(cohorts=True)
    assert len([ln for ln in fig2.axes[0].get_lines() if not ln.get_label().startswith("_")]) == 4


def test_bad_input_messages(tiny):
    with pytest.raises(
        ValidationError,
        match="start_event == 'Opn', must be an event in the workspace \\(known: 'Open'\\)",
    ):
        retention(tiny, "Opn")
    with pytest.raises(ValidationError, match="return_event == 'Buy'"):
        retention(tiny, "Open", "Buy")
    with pytest.raises(ValidationError, match="period == 'year'"):
        retention(tiny, "Open", period="year")
    with pytest.raises(
        ValidationError, match="start_where column == 'plan', must be an event property"
    ):
        retention(tiny, "Open", start_where={"plan": "pro"})
    with pytest.raises(ValidationError, match="breakdown == 'plan', must be a profile property"):
        retention(tiny, "Open", breakdown="plan")
    with pytest.raises(ValidationError, match="does not fit the data range"):
        retention(tiny, "Open", period="month", periods=2)
    with pytest.raises(ValidationError, match="since == .*must be before the end of the data"):
        retention(tiny, "Open", since="2026-03-01")
    with pytest.raises(ValidationError, match="brackets"):
        retention(tiny, "Open", brackets=(3, 2))


def test_empty_cohort_says_so(tiny):
    res = retention(tiny, "Open", start_where={"event_id": "nope"})
    assert res.empty and "no user did the start event" in res.message
    assert "no user did the start event" in res._repr_html_()
    assert res.to_pandas().empty


def test_the_period_the_data_ends_in_is_marked_partial_not_shown_as_a_plain_zero(tiny):
    # the last event is Jan 6 12:00: Jan 6 is counted (through the end of that day) but
    # half of it is missing, so cohort Jan 5's day 1 (0 % so far) is flagged as partial
    res = retention(tiny, "Open", periods=4)
    long = res.long().set_index(["cohort", "period"])
    jan5 = pd.Timestamp("2026-01-05", tz="UTC")
    assert bool(long.loc[(jan5, "Day 1"), "partial"]) and long.loc[(jan5, "Day 1"), "rate"] == 0.0
    assert not bool(long.loc[(jan5, "Day 0"), "partial"])
    assert not long.loc[long.index.get_level_values(0) == pd.Timestamp("2026-01-01", tz="UTC"),
                        "partial"].any()  # fmt: skip
    part = res.to_pandas("partial")
    assert bool(part.loc["2026-01-05", "Day 1"]) and not bool(part.loc["2026-01-01", "Day 3"])
    html = res._repr_html_()
    cell = html[html.index("el-partial") :].split("</td>")[0]
    assert "0.0% ◔" in cell and "incomplete" in cell
    assert "◔ = incomplete period" in html
    # data complete through the end of the last day: nothing partial
    whole = retention(tiny, "Open", periods=4, until="2026-01-06T12:01:00Z")
    assert not whole.long()["partial"].any() and "el-partial" not in whole._repr_html_()
