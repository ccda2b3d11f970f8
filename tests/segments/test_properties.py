"""Hypothesis: random trees of conditions give the same users in DuckDB as in the
pandas reference, and survive JSON/YAML round trips unchanged."""

from __future__ import annotations

import datetime as dt

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engagelab.segments import (
    Aggregate,
    And,
    ConstantProperty,
    DidEvent,
    FirstOrLast,
    Geofence,
    InSegment,
    Not,
    Or,
    PropertyFilter,
    Segment,
    SentLabel,
    Window,
)

from .conftest import AT, EVENTS, LABELS, NASTY, PRODUCTS

SAFE_REGEX = [
    "^Ber",
    "n$",
    "^B.r",
    "[%_]",
    "\\\\",
    "'",
    "ü|東",
    "^(O|Z)",
    "^$",
    "a{1,2}",
    "[^a-z]",
    "^[A-Z][a-z]+$",
]

windows = st.one_of(
    st.none(),
    st.integers(1, 90).map(lambda n: Window(last_days=n)),
    st.tuples(st.integers(0, 80), st.integers(0, 30)).map(
        lambda t: Window(
            start=(AT - dt.timedelta(days=t[0] + t[1])).date(),
            end=(AT - dt.timedelta(days=t[0])).date(),
        )
    ),
    st.tuples(st.integers(0, 2000), st.integers(1, 2000)).map(
        lambda t: Window(
            start=AT - dt.timedelta(hours=t[0] + t[1]), end=AT - dt.timedelta(hours=t[0])
        )
    ),
)
strings = st.sampled_from(NASTY)
ages = st.integers(10, 70)
string_filter = st.one_of(
    st.tuples(
        st.sampled_from(["=", "!=", "<", "<=", ">", ">=", "contains", "starts_with"]), strings
    ),
    st.tuples(st.sampled_from(["matches", "not_matches"]), st.sampled_from(SAFE_REGEX)),
    st.tuples(st.just("in"), st.lists(strings, min_size=1, max_size=3)),
    st.tuples(st.just("between"), st.lists(strings, min_size=2, max_size=2).map(sorted)),
    st.tuples(st.sampled_from(["exists", "not_exists"]), st.none()),
).map(lambda t: PropertyFilter("city", *t))
number_filter = st.one_of(
    st.tuples(
        st.sampled_from(["age", "score"]), st.sampled_from(["=", "!=", "<", "<=", ">", ">="]), ages
    ),
    st.tuples(
        st.sampled_from(["age", "score"]),
        st.just("between"),
        st.lists(ages, min_size=2, max_size=2).map(sorted),
    ),
    st.tuples(st.just("age"), st.just("in"), st.lists(ages, min_size=1, max_size=4)),
).map(lambda t: PropertyFilter(*t))
other_filter = st.one_of(
    st.tuples(st.just("vip"), st.sampled_from(["=", "!="]), st.booleans()),
    st.tuples(
        st.just("signup"),
        st.sampled_from([">=", "<"]),
        st.integers(0, 400).map(lambda d: AT - dt.timedelta(days=d)),
    ),
    st.tuples(
        st.sampled_from(["vip", "signup", "latitude"]),
        st.sampled_from(["exists", "not_exists"]),
        st.none(),
    ),
).map(lambda t: PropertyFilter(*t))
event_filter = st.one_of(
    st.tuples(st.just("amount"), st.sampled_from([">", "<=", "!="]), st.integers(0, 60)),
    st.tuples(
        st.just("product"),
        st.sampled_from(["=", "!=", "contains", "starts_with"]),
        st.sampled_from(PRODUCTS),
    ),
    st.tuples(
        st.just("product"),
        st.sampled_from(["matches", "not_matches"]),
        st.sampled_from(["^[XY]", "%", "'"]),
    ),
    st.tuples(st.just("labels"), st.just("contains"), st.sampled_from(LABELS)),
    st.tuples(
        st.sampled_from(["qty", "product"]), st.sampled_from(["exists", "not_exists"]), st.none()
    ),
).map(lambda t: PropertyFilter(*t))


@st.composite
def did_events(draw):
    lo = draw(st.integers(0, 4))
    hi = draw(st.one_of(st.none(), st.integers(max(lo, 1), 6)))
    if lo == 0 and hi is None:
        lo = 1
    agg = None
    if lo >= 1 and draw(st.booleans()):
        op = draw(st.sampled_from([">=", "<", "between", "!="]))
        value = (
            tuple(sorted(draw(st.lists(st.integers(0, 80), min_size=2, max_size=2))))
            if op == "between"
            else draw(st.integers(0, 80))
        )
        agg = Aggregate(
            draw(st.sampled_from(["sum", "avg"])),
            draw(st.sampled_from(["amount", "qty"])),
            op,
            value,
        )
    where = tuple(draw(st.lists(event_filter, max_size=2)))
    return DidEvent(draw(st.sampled_from(EVENTS)), where, lo, hi, agg, draw(windows))


leaves = st.one_of(
    string_filter,
    number_filter,
    other_filter,
    did_events(),
    st.builds(FirstOrLast, st.sampled_from(EVENTS), st.sampled_from(["first", "last"]),
              windows.filter(lambda w: w is not None), st.lists(event_filter, max_size=1).map(tuple)),
    st.builds(ConstantProperty, st.sampled_from(EVENTS), st.sampled_from(EVENTS), st.sampled_from(["product", "qty"]), windows),
    st.builds(Geofence, st.floats(50, 55), st.floats(10, 16), st.floats(1, 300), st.just("profile")),
    st.builds(Geofence, st.floats(50, 55), st.floats(10, 16), st.floats(1, 300), st.just("events"),
              st.one_of(st.none(), st.sampled_from(EVENTS)), windows),
    st.builds(SentLabel, st.sampled_from(LABELS), windows),
    st.sampled_from(["buyers", "berlin or silent"]).map(InSegment),
)  # fmt: skip

trees = st.recursive(
    leaves,
    lambda kids: st.one_of(
        st.lists(kids, min_size=2, max_size=3).map(lambda xs: And(tuple(xs))),
        st.lists(kids, min_size=2, max_size=3).map(lambda xs: Or(tuple(xs))),
        kids.map(Not),
    ),
    max_leaves=6,
)


SAVED = {
    "buyers": Segment(DidEvent("Charged", at_least=2), name="buyers"),
    "berlin or silent": Segment(
        Or((PropertyFilter("city", "matches", "^Ber"), Not(InSegment("buyers")))),
        name="berlin or silent",
    ),
}


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cond=trees)
def test_random_segments_match_reference(world2, cond):
    seg = Segment(cond, name="random")
    world2.check(seg, resolve=SAVED.__getitem__)
    assert Segment.from_json(seg.to_json()) == seg
    assert Segment.from_yaml(seg.to_yaml()) == seg


TEXT = st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\x00"), max_size=6)


@settings(max_examples=100, deadline=None)
@given(
    data=st.lists(st.one_of(st.none(), TEXT), min_size=1, max_size=8),
    op=st.sampled_from(
        ["=", "!=", "<", "<=", ">", ">=", "contains", "starts_with", "in", "matches", "not_matches"]
    ),
    value=TEXT,
    pick=st.integers(0, 7),
)
def test_arbitrary_text_values_are_literals(data, op, value, pick):
    """Any text (quotes, backslashes, %, _, control characters, any script) is matched
    literally by every string operator, exactly like Python does."""
    import re

    import duckdb
    import pandas as pd
    import pyarrow as pa

    from .reference import evaluate

    if data[pick % len(data)] is not None and pick % 2:
        value = data[pick % len(data)]  # often compare with a value that is present
    if op in ("matches", "not_matches"):
        value = "^" + re.escape(value)
    elif op == "in":
        value = [value, *(d for d in data[:2] if d is not None)]
    profiles = pa.table(
        {"user_id": [f"u{i}" for i in range(len(data))], "name": pa.array(data, pa.string())}
    )
    con = duckdb.connect()
    con.register("profiles", profiles)
    con.register(
        "events",
        pa.table({"user_id": pa.array([], pa.string()), "event": pa.array([], pa.string())}),
    )
    seg = Segment(PropertyFilter("name", op, value))
    got = {r[0] for r in con.execute(seg.to_sql(at=AT)).fetchall()}
    want = evaluate(seg, pd.DataFrame({"user_id": [], "event": []}), profiles.to_pandas(), AT)
    assert got == want
    assert Segment.from_json(seg.to_json()) == seg
