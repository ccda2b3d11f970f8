"""Slots in the job's time zone (DST), due slots from run history, catch-up policies."""

from __future__ import annotations

import datetime as dt
import time
import zoneinfo

import pytest

from engagelab.jobs import (
    JobSpec,
    Schedule,
    add_job,
    due_slots,
    next_slot,
    set_paused,
    slots_between,
)
from engagelab.jobs import lease as L

UTC = dt.UTC
BERLIN = zoneinfo.ZoneInfo("Europe/Berlin")
DAILY = Schedule("30 2 * * *", "Europe/Berlin")


def _record(ws, job, date, status="succeeded"):
    """Record an attempt exactly as the runner does (claim the lease, finish, release)."""
    c = L.claim(
        ws,
        job,
        date,
        "test",
        stale_after=60,
        params={},
        hashes=dict.fromkeys(("params", "notebook", "spec"), ""),
        trigger="test",
    )
    assert c.state == "acquired"
    L.finish_attempt(ws, c.run_id, status=status)
    L.release(ws, job, date, "test")


def _croniter_fires(cron, tzname, start, end):
    """What croniter does with tz-aware times (the naive reference the scheduler must beat)."""
    from croniter import croniter

    it = croniter(cron, start.astimezone(zoneinfo.ZoneInfo(tzname)))
    out = []
    while (t := it.get_next(dt.datetime)) <= end:
        out.append(t)
    return out


def test_autumn_fall_back_gives_one_run_for_the_date():
    start, end = (
        dt.datetime(2026, 10, 23, 12, tzinfo=UTC),
        dt.datetime(2026, 10, 27, 12, tzinfo=UTC),
    )
    slots = slots_between(DAILY, start, end)
    assert [s.logical_date for s in slots] == [
        "2026-10-24",
        "2026-10-25",
        "2026-10-26",
        "2026-10-27",
    ]
    # 2026-10-25 02:30 happens twice in Berlin; the slot is the first (CEST, UTC+2)
    assert slots[1].at == dt.datetime(2026, 10, 25, 0, 30, tzinfo=UTC)
    assert slots[2].at == dt.datetime(2026, 10, 26, 1, 30, tzinfo=UTC)  # CET from now on
    for s in slots:
        local = s.at.astimezone(BERLIN)
        assert (local.date().isoformat(), local.hour, local.minute) == (s.logical_date, 2, 30)
    fires = _croniter_fires("30 2 * * *", "Europe/Berlin", start, end)
    assert len(fires) >= len(slots)  # croniter itself fires on the instants we key by date


def test_spring_forward_missing_time_still_gives_one_run():
    start, end = dt.datetime(2026, 3, 27, 12, tzinfo=UTC), dt.datetime(2026, 3, 31, 12, tzinfo=UTC)
    slots = slots_between(DAILY, start, end)
    assert [s.logical_date for s in slots] == [
        "2026-03-28",
        "2026-03-29",
        "2026-03-30",
        "2026-03-31",
    ]
    # 02:30 does not exist on 2026-03-29: the slot lands just after the gap, 03:30 CEST
    assert slots[1].at.astimezone(BERLIN).replace(tzinfo=None) == dt.datetime(2026, 3, 29, 3, 30)
    assert slots[2].at == dt.datetime(2026, 3, 30, 0, 30, tzinfo=UTC)


def test_sub_daily_cron_collapses_to_one_slot_per_date_and_next_slot():
    hourly = Schedule("0 * * * *", "America/New_York")
    slots = slots_between(
        hourly, dt.datetime(2026, 11, 1, 0, tzinfo=UTC), dt.datetime(2026, 11, 3, 0, tzinfo=UTC)
    )
    assert [s.logical_date for s in slots] == ["2026-10-31", "2026-11-01", "2026-11-02"]
    nxt = next_slot(DAILY, dt.datetime(2026, 10, 25, 0, 30, tzinfo=UTC))
    assert nxt.logical_date == "2026-10-26"


@pytest.fixture
def berlin_job(any_ws):
    spec = JobSpec(name="daily", notebook="nb.ipynb", schedule=DAILY, start="2026-10-20",
                   catch_up={"policy": "all"})  # fmt: skip
    add_job(any_ws, spec)
    return any_ws, spec


def test_dst_autumn_scheduler_passes_run_each_date_once(berlin_job):
    ws, _ = berlin_job
    ran = []
    # a pass every 20 minutes through the fall-back night, recording what ran
    t = dt.datetime(2026, 10, 24, 22, 0, tzinfo=UTC)
    ran_dates = {"2026-10-20", "2026-10-21", "2026-10-22", "2026-10-23", "2026-10-24"}
    for d in sorted(ran_dates):
        _record(ws, "daily", d)
    while t < dt.datetime(2026, 10, 25, 4, tzinfo=UTC):
        for s in due_slots(ws, "daily", t):
            ran.append(s.logical_date)
            _record(ws, "daily", s.logical_date)
        t += dt.timedelta(minutes=20)
    assert ran == ["2026-10-25"]


def test_dst_spring_scheduler_passes_run_each_date_once(berlin_job):
    ws, _ = berlin_job
    for d in ("2026-10-20",):
        _record(ws, "daily", d)
    ws_spec = JobSpec(name="spring", notebook="nb.ipynb", schedule=DAILY, start="2026-03-29")
    add_job(ws, ws_spec)
    ran = []
    t = dt.datetime(2026, 3, 28, 23, 0, tzinfo=UTC)
    while t < dt.datetime(2026, 3, 29, 6, tzinfo=UTC):
        for s in due_slots(ws, "spring", t):
            ran.append((s.logical_date, t))
            _record(ws, "spring", s.logical_date)
        t += dt.timedelta(minutes=15)
    assert [d for d, _ in ran] == ["2026-03-29"]
    assert ran[0][1] >= dt.datetime(2026, 3, 29, 1, 30, tzinfo=UTC)  # not before 03:30 CEST


@pytest.mark.parametrize(
    ("policy", "staleness", "expected"),
    [
        ("all", None, ["2026-10-21", "2026-10-22", "2026-10-23"]),
        ("all", "36h", ["2026-10-22", "2026-10-23"]),
        ("latest", None, ["2026-10-23"]),
        ("none", None, []),
        ("none", "2d", ["2026-10-22", "2026-10-23"]),
    ],
)
def test_scheduler_down_three_days_catches_up_per_policy(any_ws, policy, staleness, expected):
    spec = JobSpec(name="d", notebook="nb.ipynb", schedule=DAILY, start="2026-10-18",
                   catch_up={"policy": policy, "max_staleness": staleness})  # fmt: skip
    add_job(any_ws, spec)
    for d in ("2026-10-18", "2026-10-19", "2026-10-20"):
        _record(any_ws, "d", d)
    now = dt.datetime(2026, 10, 23, 9, 0, tzinfo=UTC)  # down since the 20th's run
    due = [s.logical_date for s in due_slots(any_ws, "d", now)]
    assert due == expected
    for d in due:
        _record(any_ws, "d", d)
    assert due_slots(any_ws, "d", now) == []  # a second pass never re-runs a slot


def test_failed_dates_are_not_rescheduled_but_dead_runners_are(any_ws):
    spec = JobSpec(name="d", notebook="nb.ipynb", schedule=DAILY, start="2026-10-20",
                   catch_up={"policy": "all"}, stale_after=0.5)  # fmt: skip
    add_job(any_ws, spec)
    _record(any_ws, "d", "2026-10-20", status="cell_error")
    c = L.claim(any_ws, "d", "2026-10-21", "dead", stale_after=0.5, params={},
                hashes=dict.fromkeys(("params", "notebook", "spec"), ""), trigger="test")  # fmt: skip
    assert c.state == "acquired"  # ... and that runner dies without finishing
    now = dt.datetime(2026, 10, 21, 12, tzinfo=UTC)
    assert due_slots(any_ws, "d", now) == []  # its lease is still fresh
    time.sleep(0.6)
    assert [s.logical_date for s in due_slots(any_ws, "d", now)] == ["2026-10-21"]
    set_paused(any_ws, "d", True)
    assert due_slots(any_ws, "d", now) == []
