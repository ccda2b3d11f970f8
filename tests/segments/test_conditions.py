"""Every condition kind against the pandas reference, plus the documented semantics."""

from __future__ import annotations

import datetime as dt

import pytest

from engagelab.errors import SpecError
from engagelab.segments import (
    Segment,
    Window,
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

from .conftest import AT

D = dt.date


@pytest.mark.parametrize(
    "cond",
    [
        did("Charged"),
        did("Charged", at_least=3),
        did("Charged", at_most=2),
        did("Charged", exactly=2),
        did("Charged", at_least=2, at_most=3, within_days=45),
        did("Charged", at_least=0, at_most=1, within_days=30),
        did("Charged", exactly=0, within_days=20),
        did("Charged", sum_of=("amount", ">=", 60)),
        did("Charged", sum_of=("amount", "between", (10, 40)), within_days=60),
        did("Charged", avg_of=("amount", "<", 15)),
        did("Charged", avg_of=("qty", "=", 2), at_least=2),
        did("Charged", within_days=7),
        did("Charged", between=(D(2026, 1, 1), D(2026, 1, 31))),
        did("Charged", between=(AT - dt.timedelta(days=10, hours=5), AT - dt.timedelta(hours=3))),
        did("App Launched", where=prop("amount") > 10, at_least=2, within_days=30),
        did_not("Uninstalled"),
        did_not("Charged", within_days=10),
        first_time("App Launched", within_days=20),
        first_time("Charged", where={"product": "X"}, between=(D(2026, 1, 1), D(2026, 2, 15))),
        last_time("Charged", within_days=30),
        last_time("App Launched", between=(D(2025, 12, 1), D(2026, 1, 15))),
        same_property("Added to Cart", "Charged", "product"),
        same_property("Added to Cart", "Charged", "product", within_days=30),
        near(52.5, 13.4, 150),
        near(52.5, 13.4, 80, source="events"),
        near(52.5, 13.4, 200, source="events", event="Charged", within_days=30),
        was_sent("Onboarding"),
        was_sent("it's", within_days=30),
        ~was_sent("50%"),
    ],
    ids=str,
)
def test_condition_kinds_match_reference(world, world2, cond):
    world.check(cond)
    world.check(~cond)
    world2.check(cond)


def test_conditions_are_not_vacuous(world):
    """Each planted behaviour selects some but not all users."""
    n = len(world.profiles)
    for cond in [did("Charged", at_least=3), first_time("App Launched", within_days=60), last_time("Charged", within_days=10),
                 same_property("Added to Cart", "Charged", "product"), near(52.5, 13.4, 150),
                 was_sent("Onboarding"), did("Charged", sum_of=("amount", ">=", 60))]:  # fmt: skip
        got = world.check(cond)
        assert 0 < len(got) < n, cond


def test_universe_is_profiles(world):
    """Event users without a profile are never in a segment, even under NOT."""
    profile_ids = set(world.profiles["user_id"])
    orphans = set(world.events["user_id"]) - profile_ids
    assert orphans
    for cond in [did("Charged"), ~did("Charged"), did_not("Uninstalled"), prop("age").not_exists()]:
        assert not world.duck(cond) & orphans


def test_did_not_includes_users_without_events(world):
    silent = set(world.profiles["user_id"]) - set(world.events["user_id"])
    assert silent
    assert silent <= world.check(did_not("Charged"))
    assert silent <= world.check(did("Charged", at_least=0, at_most=2))
    assert not silent & world.check(did("Charged", at_most=2))


def test_not_of_missing_property_is_true(world):
    missing_city = set(world.profiles.loc[world.profiles["city"].isna(), "user_id"])
    assert missing_city
    assert not missing_city & world.check(prop("city") != "Berlin")
    assert missing_city <= world.check(~prop("city").eq("Berlin"))


def test_and_or_not_combinations(world):
    a, b, c = did("Charged", at_least=2), prop("age") >= 30, was_sent("Promo")
    ra, rb, rc = world.check(a), world.check(b), world.check(c)
    assert world.check(a & b & c) == ra & rb & rc
    assert world.check(a | b | c) == ra | rb | rc
    assert world.check((a | b) & ~c) == (ra | rb) - rc
    assert world.check(~(a & ~b)) == set(world.profiles["user_id"]) - (ra - rb)


def test_saved_segments_include_exclude_and_nesting(world):
    saved = {
        "buyers": Segment(did("Charged", at_least=2), name="buyers"),
        "older": Segment(prop("age") >= 40, name="older"),
        "older buyers": Segment(in_segment("buyers") & in_segment("older")),
    }
    got = world.check(in_segment("older buyers") | (prop("vip") == True), resolve=saved.__getitem__)  # noqa: E712
    assert got
    world.check(did("App Launched") & not_in_segment("buyers"), resolve=saved.__getitem__)


def test_saved_segment_cycle_and_missing_resolver_are_clear_errors():
    saved = {
        "a": Segment(in_segment("b")),
        "b": Segment((prop("age") > 3) & in_segment("c")),
        "c": Segment(in_segment("a")),
    }
    with pytest.raises(SpecError, match=r"cycle: a -> b -> c -> a"):
        Segment(in_segment("a")).to_sql(at=AT, resolve=saved.__getitem__)
    with pytest.raises(SpecError, match="cycle: self -> self"):
        Segment(in_segment("self") | did("x"), name="self").to_sql(
            at=AT, resolve=lambda n: Segment(in_segment("self"))
        )
    with pytest.raises(
        SpecError, match="resolve == None, must be given to compile saved segment 'a'"
    ):
        Segment(in_segment("a")).to_sql(at=AT)


def test_last_days_window_is_relative_to_at(world):
    at2 = AT - dt.timedelta(days=40)
    seg = Segment(did("Charged", within_days=10))
    sql_now, sql_then = seg.to_sql(at=AT), seg.to_sql(at=at2)
    assert "2026-02-19 12:00:00" in sql_now and "2026-01-20 12:00:00" in sql_then
    got = {r[0] for r in world.con.execute(sql_then).fetchall()}
    ev = world.events
    lo, hi = at2 - dt.timedelta(days=10), at2
    want = set(ev.loc[(ev.event == "Charged") & (ev.ts >= lo) & (ev.ts < hi), "user_id"]) & set(
        world.profiles.user_id
    )
    assert got == want and got


def test_at_defaults_to_now_and_must_be_aware():
    sql = Segment(did("Charged", within_days=1)).to_sql()
    assert (
        str(dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)) in sql
        or str(dt.datetime.now(dt.UTC).date()) in sql
    )
    with pytest.raises(SpecError, match="at == "):
        Segment(did("Charged")).to_sql(at=dt.datetime(2026, 1, 1))


def test_window_date_range_includes_end_day(world):
    w = Window(start=D(2026, 2, 1), end=D(2026, 2, 1))
    assert w.bounds(AT) == (
        dt.datetime(2026, 2, 1, tzinfo=dt.UTC),
        dt.datetime(2026, 2, 2, tzinfo=dt.UTC),
    )
    world.check(did("Charged", window=w) | did("App Launched", window=w))


def test_identifiers_with_spaces_and_unicode_are_quoted():
    import duckdb
    import pyarrow as pa

    con = duckdb.connect()
    con.register(
        "profiles",
        pa.table(
            {
                "user_id": ["a", "b", "c"],
                "Customer Type": ["gold", "silver", None],
                "größe": [1.5, 2.5, 3.5],
            }
        ),
    )
    con.register("events", pa.table({"user_id": ["a"], "event": ["x"], "Order-Total": [10.0]}))
    seg = Segment(
        ((prop("Customer Type") == "gold") | (prop("größe") > 3))
        & ~did("x", where=prop("Order-Total") > 50)
    )
    assert {r[0] for r in con.execute(seg.to_sql(at=AT)).fetchall()} == {"a", "c"}


def test_count_and_user_ids_run_on_a_duckdb_connection(world):
    seg = Segment(did("Charged", at_least=2) & ~was_sent("Promo"))
    want = world.ref(seg)
    assert seg.count(world.con, at=AT) == len(want) > 0
    assert set(seg.user_ids(world.con, at=AT)["user_id"]) == want
