"""The per-user plan (one GROUP BY user, period bit masks) against the join plan and the
independent pandas reference, on data that spans at most 64 periods, for every mode."""

from __future__ import annotations

import datetime as dt
import itertools

import pandas as pd
import pytest

from engagelab import Workspace
from engagelab.retention import RetentionSpec
from engagelab.retention._sql import per_user_origin
from engagelab.retention.engine import _default_until, run_query
from tests.retention.conftest import random_events
from tests.retention.reference import reference
from tests.retention.test_engine import _compare


@pytest.fixture(scope="module")
def short_ws(tmp_path_factory):
    """60 days of random events (the per-user plan needs at most 64 daily periods)."""
    ev, prof = random_events(seed=4, n_users=200, days=60)
    ws = Workspace.create(tmp_path_factory.mktemp("plans") / "ws")
    ws.append("events", ev)
    ws.append("profiles", prof)
    yield ws, ev, prof
    ws.close()


def _both(ws, spec):
    fast = run_query(ws, spec)
    slow = run_query(ws, spec, plan="join")
    assert "bit_or" in fast.sql and "bit_or" not in slow.sql  # the plans really differ
    pd.testing.assert_frame_equal(fast.cells, slow.cells)
    return fast


CASES = [
    *[
        dict(period=p, periods=n, mode=m)
        for (p, n), m in itertools.product(
            [("day", 31), ("week", 6), ("month", 2)], ["on", "on-or-after"]
        )
    ],  # fmt: skip
    dict(period="day", brackets=(1, 4, 8, 15), mode="on"),
    dict(period="day", brackets=(0, 2, 7, 30), mode="on-or-after"),
    dict(period="day", brackets=(3, 20, 70), mode="on"),  # a bracket beyond 64 periods
    dict(period="day", periods=80, mode="on-or-after"),  # columns beyond 64 periods
    dict(period="day", periods=10, since="2026-01-20", until="2026-02-15"),
    dict(period="week", periods=4, mode="on-or-after", since="2026-01-14"),
    dict(
        period="day",
        periods=7,
        breakdown="plan",
        start_where={"platform": ["ios", "web"]},
        return_where={"platform": ["web", "ios"]},
    ),  # fmt: skip
]


@pytest.mark.parametrize("opts", CASES, ids=lambda o: "-".join(f"{v}" for v in o.values()))
def test_per_user_plan_equals_join_plan_and_reference(short_ws, opts):
    ws, ev, prof = short_ws
    spec = RetentionSpec("App Launched", **opts)
    res = _both(ws, spec)
    until = spec.until or _default_until(ev["ts"].max())
    data = ev if spec.since is None else ev[ev["ts"] >= spec.since]
    if spec.since is not None:  # first-time: users who started before `since` are out
        first = ev[ev["event"] == "App Launched"].groupby("user_id")["ts"].min()
        data = data[data["user_id"].isin(first[first >= spec.since].index)]
    ref = reference(
        data, start="App Launched", ret="App Launched", period=spec.period,
        periods=spec.periods, mode=spec.mode, brackets=spec.brackets, until=until,
        start_where=opts.get("start_where"), return_where=opts.get("start_where"),
        profiles=prof, breakdown=spec.breakdown,
    )  # fmt: skip
    _compare(res, ref)
    assert res.cells["retained"].notna().any()


def test_per_user_plan_applies_only_where_it_is_exact(short_ws):
    ws, ev, _ = short_ws
    first = ev["ts"].min().to_pydatetime()
    until = _default_until(ev["ts"].max())
    ok = RetentionSpec("App Launched", periods=31)
    assert per_user_origin(ok, until, first, starts=None, portable=False) == 20454
    for spec in (
        ok.replace(return_event="Charged"),  # a return before the start, same day
        ok.replace(return_where={"platform": "ios"}),
        ok.replace(start_label="Onboarding"),
        ok.replace(cohort="recurring"),
        ok.replace(window="rolling"),
        ok.replace(brackets=(64, 70)),
    ):
        assert per_user_origin(spec, until, first, starts=None, portable=False) is None
    assert per_user_origin(ok, until, first, starts="SELECT 1", portable=False) is None
    assert per_user_origin(ok, until, first, starts=None, portable=True) is None
    # 64 daily periods fit in the mask, 65 do not
    assert per_user_origin(ok, first + dt.timedelta(days=63), first, starts=None, portable=False)
    late = _default_until(first + dt.timedelta(days=64))
    assert per_user_origin(ok, late, first, starts=None, portable=False) is None


def test_calendar_numbers_before_1970_floor(tmp_path):
    """DuckDB's integer division truncates; period numbers must floor (day/week cohorts)."""
    t = lambda s: pd.Timestamp(s, tz="UTC")  # noqa: E731
    ev = pd.DataFrame({
        "user_id": ["a", "a", "a", "b", "b"], "event": "Open",
        "ts": [t("1969-12-30 22:00"), t("1969-12-31 23:00"), t("1970-01-01 01:00"),
               t("1969-12-29 05:00"), t("1970-01-05 05:00")],
    })  # fmt: skip
    ev["ts"] = ev["ts"].astype("datetime64[us, UTC]")
    ws = Workspace.create(tmp_path / "ws")
    ws.append("events", ev)
    for plan in ("auto", "join"):
        day = run_query(ws, RetentionSpec("Open", periods=3), plan=plan).to_pandas("retained")
        assert day.loc["1969-12-30", ["Day 0", "Day 1", "Day 2"]].tolist() == [1, 1, 1]
        week = run_query(
            ws, RetentionSpec("Open", period="week", periods=2, until="1970-01-20"), plan=plan
        )
        wk = week.to_pandas("retained")
        assert list(wk.index[:1]) == ["1969-12-29"]  # a Monday
        assert wk.loc["1969-12-29", ["Week 0", "Week 1"]].tolist() == [2, 1]
    ws.close()
