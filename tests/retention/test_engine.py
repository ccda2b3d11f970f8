"""The retention engine against an independent pandas implementation, for every mode."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from engagelab.retention import RetentionSpec, retention
from engagelab.retention.engine import _default_until
from tests.retention.reference import reference

COMBOS = list(
    itertools.product(
        ["day", "week", "month"],
        ["on", "on-or-after"],
        ["first", "recurring"],
        ["calendar", "rolling"],
    )
)


def _compare(res, ref):
    got = res.cells.copy()
    got["j"] = got["period_index"]
    got["cohort"] = got["cohort"].astype("datetime64[us, UTC]")
    ref = ref.copy()
    ref["cohort"] = pd.to_datetime(ref["cohort"], utc=True).astype("datetime64[us, UTC]")
    m = ref.merge(
        got, on=["group", "cohort", "j"], how="outer", suffixes=("_ref", ""), indicator=True
    )
    assert (m["_merge"] == "both").all(), m[m["_merge"] != "both"]
    assert np.array_equal(
        m["size_ref"].to_numpy(float),
        m["size"].astype("Float64").to_numpy(float, na_value=np.nan),
        equal_nan=True,
    )
    r_ref = m["retained_ref"].to_numpy(float)
    r = m["retained"].astype("Float64").to_numpy(float, na_value=np.nan)
    assert np.array_equal(np.isnan(r_ref), np.isnan(r)), "censoring differs"
    assert np.allclose(r_ref[~np.isnan(r_ref)], r[~np.isnan(r)])
    return m


@pytest.mark.parametrize(("period", "mode", "cohort", "window"), COMBOS)
def test_matches_pandas_reference(rand_ws, period, mode, cohort, window):
    ws, ev, _ = rand_ws
    periods = {"day": 12, "week": 6, "month": 3}[period]
    res = retention(
        ws,
        "App Launched",
        "App Launched",
        period=period,
        periods=periods,
        mode=mode,
        cohort=cohort,
        window=window,
    )
    until = _default_until(ev["ts"].max())
    ref = reference(
        ev,
        start="App Launched",
        ret="App Launched",
        period=period,
        periods=periods,
        mode=mode,
        cohort=cohort,
        window=window,
        until=until,
    )
    m = _compare(res, ref)
    assert m["retained"].notna().sum() >= (2 if period == "month" else 10)
    assert m["retained"].isna().sum() > 0  # late cells are censored


@pytest.mark.parametrize("mode", ["on", "on-or-after"])
def test_brackets_filters_and_breakdown_match_reference(rand_ws, mode):
    ws, ev, prof = rand_ws
    kw = dict(period="day", mode=mode, cohort="first", window="rolling", brackets=(1, 4, 8, 15))
    res = retention(
        ws,
        "Page Viewed",
        "App Launched",
        start_where={"platform": ["ios", "web"]},
        return_where={"platform": "android"},
        breakdown="plan",
        **kw,
    )
    until = _default_until(ev["ts"].max())
    ref = reference(
        ev,
        start="Page Viewed",
        ret="App Launched",
        start_where={"platform": ["ios", "web"]},
        return_where={"platform": "android"},
        until=until,
        profiles=prof,
        breakdown="plan",
        **kw,
    )
    _compare(res, ref)
    assert set(res.cells["group"]) == {"free", "pro", "(missing)"}
    assert res.spec.columns() == ["Day 1–3", "Day 4–7", "Day 8–14"]


def test_since_and_until_restrict_cohorts_and_observation(rand_ws):
    ws, ev, _ = rand_ws
    res = retention(
        ws, "App Launched", periods=5, since="2026-01-20", until="2026-02-10", cohort="recurring"
    )
    ref = reference(
        ev[ev["ts"] >= pd.Timestamp("2026-01-20", tz="UTC")],
        start="App Launched",
        ret="App Launched",
        periods=5,
        cohort="recurring",
        until=pd.Timestamp("2026-02-10", tz="UTC"),
    )
    _compare(res, ref)
    coh = res.cells["cohort"].dropna()
    assert coh.min() >= pd.Timestamp("2026-01-20", tz="UTC")
    assert coh.max() < pd.Timestamp("2026-02-10", tz="UTC")


def test_spec_object_and_overrides(rand_ws):
    ws, _, _ = rand_ws
    spec = RetentionSpec("App Launched", periods=4)
    a = retention(ws, spec=spec)
    b = retention(ws, spec=spec, periods=3)
    assert a.to_pandas().shape[1] == 5 and b.to_pandas().shape[1] == 4
    assert (
        a.to_pandas()["Day 0"] == 1.0
    ).all()  # first-time, same event: everyone is there at day 0
