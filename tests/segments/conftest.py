"""Small random ``events`` / ``profiles`` data, a DuckDB connection over it, and a checker
that compares a segment's DuckDB result with the pandas reference."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pytest

from engagelab.schema import TS_TYPE
from engagelab.segments import Segment

from .reference import evaluate

AT = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)
EVENTS = ["Charged", "App Launched", "Added to Cart", "Uninstalled", "Notification Sent"]
#: Strings that try to break quoting, escaping, LIKE wildcards and encodings.
NASTY = [
    "Berlin", "Bern", "O'Brien", "'; DROP TABLE events; --", "back\\slash", "100%", "a_b",
    "Zürich", "東京", 'say "hi"', "Ber%lin", "Ber_lin", "", "\\'", "%", "_",
]  # fmt: skip
PRODUCTS = ["X", "Y", "Z", "O'Neil", "50%_off", "\\n"]
LABELS = ["Onboarding", "Promo", "it's", "50%"]


def make_data(seed: int, n_users: int = 40, n_events: int = 500) -> tuple[pa.Table, pa.Table]:
    """Random profiles (ids u0..u{n-1}, some users only in events) and events."""
    rng = np.random.default_rng(seed)

    def maybe(values: list[Any], p_null: float = 0.15) -> list[Any]:
        return [None if rng.random() < p_null else v for v in values]

    ids = [f"u{i}" for i in range(n_users)]
    profiles = pa.table(
        {
            "user_id": ids,
            "city": maybe([NASTY[i] for i in rng.integers(0, len(NASTY), n_users)]),
            "age": pa.array(maybe([int(a) for a in rng.integers(10, 70, n_users)]), pa.int64()),
            "score": pa.array(
                maybe([float(round(s, 2)) for s in rng.normal(0, 10, n_users)]), pa.float64()
            ),
            "vip": pa.array(maybe([bool(b) for b in rng.random(n_users) < 0.4]), pa.bool_()),
            "signup": pa.array(
                maybe([AT - dt.timedelta(days=float(d)) for d in rng.uniform(0, 400, n_users)]),
                TS_TYPE,
            ),
            "latitude": pa.array(
                maybe([float(x) for x in rng.uniform(50, 55, n_users)]), pa.float64()
            ),
            "longitude": pa.array(
                maybe([float(x) for x in rng.uniform(10, 16, n_users)]), pa.float64()
            ),
        }
    )
    # events: users u0..u{n/10} have none; about 10% of rows belong to users without a profile
    users = [f"u{i}" for i in rng.integers(n_users // 10, int(n_users * 1.1) + 1, n_events)]
    names = [EVENTS[i] for i in rng.integers(0, len(EVENTS), n_events)]
    labels = [
        [LABELS[j] for j in rng.choice(len(LABELS), rng.integers(0, 3), replace=False)]
        if n == "Notification Sent"
        else None
        for n in names
    ]
    events = pa.table(
        {
            "user_id": users,
            "event": names,
            "ts": pa.array(
                [AT - dt.timedelta(days=float(d)) for d in rng.uniform(-2, 90, n_events)], TS_TYPE
            ),
            "amount": pa.array(
                maybe([float(round(a, 1)) for a in rng.exponential(20, n_events)]), pa.float64()
            ),
            "qty": pa.array(maybe([int(q) for q in rng.integers(1, 5, n_events)]), pa.int64()),
            "product": maybe([PRODUCTS[i] for i in rng.integers(0, len(PRODUCTS), n_events)]),
            "labels": pa.array(labels, pa.list_(pa.string())),
            "latitude": pa.array(
                maybe([float(x) for x in rng.uniform(50, 55, n_events)]), pa.float64()
            ),
            "longitude": pa.array(
                maybe([float(x) for x in rng.uniform(10, 16, n_events)]), pa.float64()
            ),
        }
    )
    return events, profiles


class World:
    """Data in a DuckDB connection plus pandas copies for the reference."""

    def __init__(self, seed: int, **kw: Any):
        self.events_arrow, self.profiles_arrow = make_data(seed, **kw)
        self.events = self.events_arrow.to_pandas()
        self.profiles = self.profiles_arrow.to_pandas()
        self.con = duckdb.connect()
        self.con.execute("SET TimeZone='UTC'")
        self.con.register("events", self.events_arrow)
        self.con.register("profiles", self.profiles_arrow)

    def duck(self, seg: Any, resolve: Callable | None = None, **kw: Any) -> set[str]:
        seg = seg if isinstance(seg, Segment) else Segment(seg)
        rows = self.con.execute(seg.to_sql(at=AT, resolve=resolve, **kw)).fetchall()
        ids = [r[0] for r in rows]
        assert len(ids) == len(set(ids)), "segment SQL returned duplicate user ids"
        return set(ids)

    def ref(self, seg: Any, resolve: Callable | None = None) -> set[str]:
        return evaluate(seg, self.events, self.profiles, AT, resolve)

    def check(self, seg: Any, resolve: Callable | None = None) -> set[str]:
        got, want = self.duck(seg, resolve), self.ref(seg, resolve)
        assert got == want, (
            f"{seg}: only SQL {sorted(got - want)}, only reference {sorted(want - got)}"
        )
        return got


@pytest.fixture(scope="session")
def world() -> World:
    return World(seed=7)


@pytest.fixture(scope="session")
def world2() -> World:
    return World(seed=11, n_users=30, n_events=300)
