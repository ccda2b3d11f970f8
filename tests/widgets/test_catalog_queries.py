"""The catalog queries the widgets use (engagelab.storage.catalog), checked against
pandas on a small hand-made workspace: edge cases (a user without events, missing
profile values, events without labels, an empty store) included."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from engagelab import Workspace
from engagelab.errors import ValidationError
from engagelab.storage import catalog


@pytest.fixture(scope="module")
def small_ws(tmp_path_factory: pytest.TempPathFactory):
    ws = Workspace.create(tmp_path_factory.mktemp("catalog") / "ws")
    ws.ingest(pd.DataFrame({"user_id": ["u2", "u1", "u3"], "timezone": ["Asia/Tokyo", None, "UTC"],
                            "city": ["Berlin", "Paris", None]}), table="profiles", quiet=True)  # fmt: skip
    ws.ingest(pd.DataFrame({
        "user_id": ["u1", "u1", "u2", "u1"],
        "event": ["App Launched", "Charged", "App Launched", "App Launched"],
        "ts": ["2026-03-01T10:00:00.250Z", "2026-03-02T11:00:00Z", "2026-03-04T09:30:00.5Z",
               "2026-03-03T08:00:00Z"],
    }), quiet=True)  # fmt: skip
    yield ws
    ws.close()


def test_counts_ids_and_time_zones(small_ws):
    assert catalog.user_count(small_ws) == 3
    assert catalog.user_ids(small_ws) == ["u1", "u2", "u3"]
    tz = catalog.user_timezones(small_ws)
    assert list(tz.columns) == ["user_id", "timezone"] and tz["user_id"].tolist() == [
        "u1",
        "u2",
        "u3",
    ]
    assert pd.isna(tz["timezone"].iloc[0]) and tz["timezone"].iloc[1] == "Asia/Tokyo"


def test_event_counts_names_and_labels(small_ws):
    ec = catalog.event_counts(small_ws)
    assert ec.to_dict("records") == [
        {"event": "App Launched", "n": 3},
        {"event": "Charged", "n": 1},
    ]
    assert catalog.event_names(small_ws) == ["App Launched", "Charged"]
    assert catalog.event_labels(small_ws) == []  # no labels column yet


def test_profile_has_none_for_missing_values_and_none_for_unknown_users(small_ws):
    rec = catalog.profile(small_ws, "u3")
    assert rec is not None and rec["user_id"] == "u3" and rec["city"] is None
    assert rec["timezone"] == "UTC"
    assert catalog.profile(small_ws, "nobody") is None
    assert catalog.profile(small_ws, "x' OR '1'='1") is None  # a parameter, not SQL text
    with pytest.raises(ValidationError, match="user_id"):
        catalog.profile(small_ws, "")


def test_summary_counts_events_per_name(small_ws):
    s = catalog.summary(small_ws)
    d = s.to_dict()
    assert (d["users"], d["events"]) == (3, 4)
    assert d["event_counts"] == {"App Launched": 3, "Charged": 1}
    assert all(type(n) is int for n in d["event_counts"].values())  # JSON-ready
    lines = repr(s).splitlines()
    assert lines[1] == "  users:  3" and lines[2].startswith("  events: 4  (")
    assert [line.split() for line in lines[3:]] == [["App", "Launched", "3"], ["Charged", "1"]]


def test_reference_time_is_just_after_the_last_event(small_ws):
    assert catalog.data_end(small_ws) == dt.datetime(2026, 3, 4, 9, 30, 0, 500000, tzinfo=dt.UTC)
    assert catalog.reference_time(small_ws) == dt.datetime(2026, 3, 4, 9, 30, 1, tzinfo=dt.UTC)


def test_run_query_runs_the_users_sql(small_ws):
    got = catalog.run_query(small_ws, "SELECT user_id FROM events WHERE event = 'Charged'")
    assert got["user_id"].tolist() == ["u1"]
    with pytest.raises(ValidationError, match="query"):
        catalog.run_query(small_ws, "  ")


def test_labels_come_from_the_events(tmp_path):
    ws = Workspace.create(tmp_path / "ws")
    ws.ingest(pd.DataFrame({"user_id": ["a"]}), table="profiles", quiet=True)
    assert catalog.data_end(ws) is None
    before = dt.datetime.now(dt.UTC).replace(microsecond=0)
    assert before <= catalog.reference_time(ws) <= dt.datetime.now(dt.UTC)
    assert catalog.event_counts(ws).empty and catalog.event_labels(ws) == []
    ws.ingest(pd.DataFrame({"user_id": ["a", "a"], "event": ["Viewed", "Viewed"],
                            "ts": ["2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z"],
                            "labels": [["Promo", "Onboarding"], None]}), quiet=True)  # fmt: skip
    assert catalog.event_labels(ws) == ["Onboarding", "Promo"]
    ws.close()
