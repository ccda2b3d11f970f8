"""Random segment specs on a simulated workspace, through the real Workspace path
(Parquet files, manifest views, saved segments), agree with the plain pandas reference."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engagelab import Workspace
from engagelab.segments import (
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
    Window,
)
from engagelab.simulate.worlds import simulate_into
from tests.segments.reference import evaluate

AT = dt.datetime(2026, 1, 22, 6, tzinfo=dt.UTC)
EVENTS = ["App Launched", "Page Viewed", "Product Viewed", "Added to Cart", "Charged"]
SAVED = {"buyers": Segment(DidEvent("Charged", at_least=1), name="buyers")}


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    ws = Workspace.create(tmp_path_factory.mktemp("simseg") / "ws")
    simulate_into(ws, n_users=400, days=21, seed=5)
    ws.save_segment("buyers", SAVED["buyers"])
    events = ws.sql("SELECT * FROM events")
    profiles = ws.sql("SELECT * FROM profiles")
    yield ws, events, profiles
    ws.close()


windows = st.one_of(st.none(), st.integers(1, 21).map(lambda d: Window(last_days=d)))
profile_filters = st.one_of(
    st.tuples(
        st.just("city"),
        st.sampled_from(["=", "!=", "starts_with", "contains", "matches"]),
        st.sampled_from(["Berlin", "Tokyo", "Ber", "o", "^(S|L)", "a$"]),
    ),
    st.tuples(st.just("plan"), st.sampled_from(["=", "!="]), st.sampled_from(["free", "pro"])),
    st.tuples(st.just("age"), st.sampled_from(["<", "<=", ">", ">=", "="]), st.integers(18, 70)),
    st.tuples(
        st.just("age"), st.just("between"), st.tuples(st.integers(18, 40), st.integers(41, 70))
    ),
    st.tuples(
        st.just("country"),
        st.just("in"),
        st.lists(
            st.sampled_from(["DE", "JP", "US", "BR", "IN"]), min_size=1, max_size=3, unique=True
        ).map(tuple),
    ),
    st.tuples(
        st.sampled_from(["phone", "push_token", "email"]),
        st.sampled_from(["exists", "not_exists"]),
        st.none(),
    ),
).map(lambda t: PropertyFilter(*t))
event_filters = st.one_of(
    st.tuples(st.just("revenue"), st.sampled_from([">", "<="]), st.integers(5, 80)),
    st.tuples(
        st.just("url"),
        st.sampled_from(["starts_with", "="]),
        st.sampled_from(["/category", "/search"]),
    ),
    st.tuples(st.just("category"), st.just("!="), st.sampled_from(["books", "fashion"])),
).map(lambda t: PropertyFilter(*t))


@st.composite
def did_event(draw):
    lo = draw(st.integers(1, 4))
    hi = draw(st.one_of(st.none(), st.integers(lo, 8)))
    where = tuple(draw(st.lists(event_filters, max_size=1)))
    return DidEvent(draw(st.sampled_from(EVENTS)), where, lo, hi, None, draw(windows))


leaves = st.one_of(
    profile_filters,
    did_event(),
    st.builds(FirstOrLast, st.sampled_from(EVENTS), st.sampled_from(["first", "last"]),
              st.integers(1, 21).map(lambda d: Window(last_days=d)), st.just(())),
    st.builds(ConstantProperty, st.just("Added to Cart"), st.just("Charged"), st.just("product"), windows),
    st.builds(Geofence, st.sampled_from([52.52, 35.68, -23.55]), st.sampled_from([13.40, 139.69, -46.63]),
              st.floats(5, 500), st.just("profile")),
    st.just(InSegment("buyers")),
)  # fmt: skip
trees = st.recursive(
    leaves,
    lambda kids: st.one_of(
        st.lists(kids, min_size=2, max_size=3).map(lambda xs: And(tuple(xs))),
        st.lists(kids, min_size=2, max_size=3).map(lambda xs: Or(tuple(xs))),
        kids.map(Not),
    ),
    max_leaves=5,
)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(cond=trees)
def test_workspace_segments_match_reference_on_simulated_data(sim, cond):
    ws, events, profiles = sim
    seg = Segment(cond)
    got = set(ws.user_ids(seg, at=AT))
    want = evaluate(seg, events, profiles, AT, resolve=SAVED.__getitem__)
    assert got == want
    assert ws.count(seg, at=AT) == len(want)
