"""Hand-built data with answers worked out by hand: checks both the SQL and the pandas
reference against the spec's intended meaning (not just against each other)."""

from __future__ import annotations

import datetime as dt

import duckdb
import pyarrow as pa
import pytest

from engagelab.schema import TS_TYPE
from engagelab.segments import (
    Segment,
    did,
    first_time,
    last_time,
    near,
    prop,
    same_property,
    was_sent,
)

from .reference import evaluate

AT = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)


def day(n: float) -> dt.datetime:
    return AT - dt.timedelta(days=n)


EVENTS = [
    # user, event, days ago, amount, product, labels, lat, lon
    ("ann", "Charged", 1, 30.0, "X", None, None, None),
    ("ann", "Charged", 5, 80.0, "Y", None, None, None),
    ("ann", "Added to Cart", 6, None, "Z", None, None, None),
    ("bob", "Charged", 40, 500.0, "X", None, None, None),
    ("bob", "Added to Cart", 2, None, "X", None, 48.137, 11.575),  # Munich
    ("bob", "Notification Sent", 3, None, None, ["Onboarding", "it's"], None, None),
    ("cat", "Added to Cart", 3, None, "X", None, None, None),
    ("cat", "Charged", 2, 10.0, "Y", None, None, None),
    ("cat", "Notification Sent", 20, None, None, ["Promo"], None, None),
    ("ghost", "Charged", 1, 999.0, "X", None, None, None),  # no profile
]
PROFILES = [
    # user, city, latitude, longitude
    ("ann", "Berlin", 52.52, 13.405),
    ("bob", "O'Brien Town", 48.137, 11.575),
    ("cat", None, None, None),
    ("dan", "Bern", 46.948, 7.447),  # no events at all
]


@pytest.fixture(scope="module")
def data():
    ev = pa.table(
        {
            "user_id": [e[0] for e in EVENTS],
            "event": [e[1] for e in EVENTS],
            "ts": pa.array([day(e[2]) for e in EVENTS], TS_TYPE),
            "amount": pa.array([e[3] for e in EVENTS], pa.float64()),
            "product": [e[4] for e in EVENTS],
            "labels": pa.array([e[5] for e in EVENTS], pa.list_(pa.string())),
            "latitude": pa.array([e[6] for e in EVENTS], pa.float64()),
            "longitude": pa.array([e[7] for e in EVENTS], pa.float64()),
        }
    )
    pr = pa.table(
        {
            "user_id": [p[0] for p in PROFILES],
            "city": [p[1] for p in PROFILES],
            "latitude": pa.array([p[2] for p in PROFILES], pa.float64()),
            "longitude": pa.array([p[3] for p in PROFILES], pa.float64()),
        }
    )
    con = duckdb.connect()
    con.register("events", ev)
    con.register("profiles", pr)
    return con, ev.to_pandas(), pr.to_pandas()


CASES = [
    (did("Charged"), {"ann", "bob", "cat"}),
    (did("Charged", within_days=30), {"ann", "cat"}),
    (did("Charged", at_least=2, within_days=30), {"ann"}),
    (did("Charged", exactly=1), {"bob", "cat"}),
    (~did("Charged", within_days=30), {"bob", "dan"}),
    (did("Charged", at_least=0, at_most=1, within_days=30), {"bob", "cat", "dan"}),
    (did("Charged", sum_of=("amount", ">=", 100)), {"ann", "bob"}),
    (did("Charged", avg_of=("amount", "<", 50)), {"cat"}),  # ann: (30 + 80) / 2 = 55
    (did("Charged", where={"product": "X"}), {"ann", "bob"}),
    (first_time("Charged", within_days=30), {"ann", "cat"}),
    (last_time("Charged", within_days=3), {"ann", "cat"}),
    (last_time("Charged", within_days=1), {"ann"}),  # window [at - 1 day, at) includes its start
    (same_property("Added to Cart", "Charged", "product"), {"ann", "cat"}),
    (same_property("Added to Cart", "Charged", "product", within_days=30), {"ann", "bob", "cat"}),
    (was_sent("Onboarding"), {"bob"}),
    (was_sent("Promo", within_days=7), set()),
    (~was_sent("Promo"), {"ann", "bob", "dan"}),
    # Berlin–Munich is about 504 km; Berlin–Bern about 756 km
    (near(52.52, 13.405, 510), {"ann", "bob"}),
    (near(52.52, 13.405, 500), {"ann"}),
    (near(52.52, 13.405, 760), {"ann", "bob", "dan"}),
    (near(52.52, 13.405, 510, source="events", within_days=7), {"bob"}),
    (near(52.52, 13.405, 500, source="events"), set()),
    (prop("city").matches("^Ber"), {"ann", "dan"}),
    (prop("city") != "Berlin", {"bob", "dan"}),
    (~(prop("city") == "Berlin"), {"bob", "cat", "dan"}),
    (prop("city").contains("'"), {"bob"}),
    (prop("city").not_exists(), {"cat"}),
    (prop("city").matches("^Ber") & ~did("Charged"), {"dan"}),
]


@pytest.mark.parametrize(("cond", "want"), CASES, ids=[str(c) for c, _ in CASES])
def test_hand_worked_answers(data, cond, want):
    con, events, profiles = data
    seg = Segment(cond)
    assert {r[0] for r in con.execute(seg.to_sql(at=AT)).fetchall()} == want
    assert evaluate(seg, events, profiles, AT) == want
