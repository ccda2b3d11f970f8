"""Calendar periods in a time zone other than UTC (across DST changes), both plans,
against the pandas reference; bad zone names."""

from __future__ import annotations

import itertools

import pandas as pd
import pytest

from engagelab import Workspace
from engagelab.errors import ValidationError
from engagelab.retention import RetentionSpec, retention
from engagelab.retention.engine import _default_until, run_query
from tests.retention.conftest import random_events
from tests.retention.reference import reference
from tests.retention.test_engine import _compare


@pytest.fixture(scope="module")
def dst_ws(tmp_path_factory):
    """Feb 1 – Apr 2 2026: New York moves its clocks on Mar 8, Berlin on Mar 29."""
    ev, prof = random_events(seed=6, n_users=160, days=60)
    ev["ts"] = ev["ts"] + pd.Timedelta(days=31)
    ws = Workspace.create(tmp_path_factory.mktemp("tz") / "ws")
    ws.append("events", ev)
    ws.append("profiles", prof)
    yield ws, ev, prof
    ws.close()


ZONES = ["America/New_York", "Asia/Kolkata"]
COMBOS = list(itertools.product(
    ZONES, [("day", 10), ("week", 4), ("month", 2)], ["on", "on-or-after"],
    ["first", "recurring"],
))  # fmt: skip


@pytest.mark.parametrize(("zone", "period", "mode", "cohort"), COMBOS)
def test_calendar_periods_in_a_time_zone_match_reference(dst_ws, zone, period, mode, cohort):
    ws, ev, _ = dst_ws
    spec = RetentionSpec("App Launched", period=period[0], periods=period[1], mode=mode,
                         cohort=cohort, timezone=zone)  # fmt: skip
    res = run_query(ws, spec)
    if cohort == "first":  # the per-user plan; the join plan must agree with it
        assert "bit_or" in res.sql
        pd.testing.assert_frame_equal(res.cells, run_query(ws, spec, plan="join").cells)
    until = _default_until(ev["ts"].max(), zone)
    ref = reference(ev, start="App Launched", ret="App Launched", period=period[0],
                    periods=period[1], mode=mode, cohort=cohort, until=until, tz=zone)  # fmt: skip
    _compare(res, ref)
    coh = res.cells["cohort"].dropna()
    assert str(coh.dt.tz) == zone and (coh.dt.hour == 0).all() and (coh.dt.minute == 0).all()
    assert res.cells["retained"].notna().sum() >= 3


def test_zone_changes_the_answer_and_labels_local_dates(dst_ws):
    ws, _, _ = dst_ws
    utc = retention(ws, "App Launched", periods=5)
    ny = retention(ws, "App Launched", periods=5, timezone="America/New_York")
    assert not utc.cells[["size", "retained"]].equals(ny.cells[["size", "retained"]])
    # a New York day cohort starts at local midnight: 05:00 UTC in winter, 04:00 in summer
    starts = ny.cells["cohort"].dropna().drop_duplicates().dt.tz_convert("UTC").dt.hour
    assert set(starts) == {4, 5}
    matrix = ny.to_pandas()
    assert "2026-03-08" in matrix.index  # the 23-hour day is one cohort
    # rolling windows do not depend on the zone (only cohort dates do)
    a = retention(ws, "App Launched", periods=4, window="rolling").cells
    b = retention(ws, "App Launched", periods=4, window="rolling", timezone="Asia/Kolkata").cells
    assert a["retained"].sum() > 0 and set(b["cohort"].dropna().dt.hour) == {0}


def test_bad_time_zone():
    with pytest.raises(ValidationError, match="timezone == 'Mars/Base', must be an IANA time zone"):
        RetentionSpec("App Launched", timezone="Mars/Base")
    with pytest.raises(ValidationError, match="timezone == ''"):
        RetentionSpec("App Launched", timezone="")
    spec = RetentionSpec("App Launched", timezone="Europe/Berlin")
    assert RetentionSpec.from_dict(spec.to_dict()) == spec and not spec.utc
