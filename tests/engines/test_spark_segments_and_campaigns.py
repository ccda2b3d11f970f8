"""Parity: every segment operator gives exactly the same users on DuckDB and on Spark."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from engagelab import Workspace
from engagelab.segments import (
    Segment,
    did,
    did_not,
    first_time,
    in_segment,
    last_time,
    near,
    not_in_segment,
    prop,
    same_property,
    was_sent,
)
from engagelab.simulate.worlds import simulate_into

pytestmark = pytest.mark.spark

AT = dt.datetime(2026, 1, 29, 12, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def spark():
    from engagelab.engines.spark_engine import local_spark_session

    session = local_spark_session("engagelab-parity")
    yield session
    session.stop()


@pytest.fixture(scope="module")
def world_ws(tmp_path_factory, spark):
    ws = Workspace.create(tmp_path_factory.mktemp("parity") / "ws")
    simulate_into(ws, n_users=600, days=28, seed=11)
    users = ws.sql("SELECT user_id, latitude, longitude FROM profiles ORDER BY user_id LIMIT 200")
    sent = pd.DataFrame(
        {
            "user_id": users["user_id"],
            "event": "Notification Sent",
            "ts": [
                pd.Timestamp("2026-01-10", tz="UTC") + pd.Timedelta(hours=i)
                for i in range(len(users))
            ],
            "labels": [
                ["Onboarding"] if i % 2 else ["Promo", "Onboarding"] if i % 3 else ["Promo"]
                for i in range(len(users))
            ],
            "latitude": users["latitude"],
            "longitude": users["longitude"],
        }
    )
    ws.ingest(sent, quiet=True)
    ws.save_segment("buyers", did("Charged"))
    ws.spark(spark)
    yield ws
    ws.close()


SEGMENTS = {
    "did at least": did("App Launched", at_least=5, within_days=14),
    "did at most": did("App Launched", at_most=2),
    "did exactly": did("Charged", exactly=1),
    "did with where": did("Page Viewed", where={"url": "/search"}),
    "did sum": did("Charged", sum_of=("revenue", ">=", 50)),
    "did avg": did("Charged", avg_of=("revenue", "<", 30), within_days=21),
    "did between dates": did("Charged", between=(dt.date(2026, 1, 5), dt.date(2026, 1, 15))),
    "did not": did_not("Added to Cart", within_days=7),
    "first time": first_time("Charged", within_days=10),
    "last time": last_time("App Launched", within_days=3),
    "eq": prop("plan").eq("pro"),
    "ne": prop("country").ne("DE"),
    "lt": prop("age") < 30,
    "le": prop("age") <= 30,
    "gt": prop("age") > 50,
    "ge": prop("age") >= 50,
    "between": prop("age").between(25, 35),
    "in": prop("city").isin(["Berlin", "Tokyo", "São Paulo"]),
    "contains": prop("email").contains("son"),
    "starts with": prop("name").starts_with("A"),
    "regex": prop("city").matches("^(Ber|Par)"),
    "not regex": prop("city").not_matches("o$"),
    "exists": prop("phone").exists(),
    "not exists": prop("push_token").not_exists(),
    "same property": same_property("Added to Cart", "Charged", "product", within_days=21),
    "near profile": near(52.52, 13.405, 50),
    "near event": near(48.8566, 2.3522, 100, source="events", event="Notification Sent"),
    "was sent": was_sent("Promo"),
    "was sent window": was_sent("Onboarding", within_days=30),
    "saved include": in_segment("buyers") & prop("plan").eq("free"),
    "saved exclude": not_in_segment("buyers"),
    "and or not": (did("Charged") | prop("plan").eq("pro")) & ~prop("city").isin(["Berlin"]),
    "quotes": prop("name").eq("O'Brien'; DROP TABLE profiles; --") | prop("city").contains("%_\\"),
}


@pytest.mark.parametrize("name", sorted(SEGMENTS))
def test_same_users_on_both_engines(world_ws, name):
    seg = Segment(SEGMENTS[name])
    on_duckdb = world_ws.user_ids(seg, at=AT)
    on_spark = world_ws.user_ids(seg, at=AT, engine="spark")
    assert on_duckdb == on_spark
    if name != "quotes":
        # a vacuous parity (both empty, or both everyone) would prove little
        assert 0 < len(on_duckdb) < 600, (name, len(on_duckdb))


def test_ad_hoc_sql_transpiles_and_matches(world_ws):
    sql = (
        "SELECT event, count(*) AS n, count(DISTINCT user_id) AS users "
        "FROM events WHERE regexp_matches(event, '^(App|Page)') GROUP BY event ORDER BY event"
    )
    a = world_ws.sql(sql)
    b = world_ws.spark().query(sql)
    pd.testing.assert_frame_equal(
        a.astype({"n": "int64", "users": "int64"}), b.astype({"n": "int64", "users": "int64"})
    )
