"""SegmentBuilder driven headless: set the child widgets' values, click buttons, and
check the count against ``ws.count`` and an independent pandas computation."""

from __future__ import annotations

import datetime as dt
import math
import re

import pandas as pd
import pytest
from engagelab.widgets import SegmentBuilder
from engagelab.widgets._rows import KINDS, OPERATOR_LABELS

from engagelab.errors import QueryError, SpecError, ValidationError
from engagelab.segments import Segment, did, in_segment, near, prop, was_sent, window


def users_who(events: pd.DataFrame, event: str, at: dt.datetime, days: int = 0) -> pd.Series:
    """Per-user count of ``event`` in [at - days, at) (all time when days == 0)."""
    sel = events[events["event"] == event]
    if days:
        sel = sel[(sel["ts"] >= at - dt.timedelta(days=days)) & (sel["ts"] < at)]
    return sel.groupby("user_id").size()


def shown_count(sb: SegmentBuilder) -> int:
    """The number displayed in the count line."""
    match = re.search(r"<b>([\d,]+)</b>", sb.count_html.value)
    assert match, sb.count_html.value
    return int(match.group(1).replace(",", ""))


def test_default_row_counts_the_most_common_event(sim_ws, frames):
    profiles, events = frames
    sb = SegmentBuilder(sim_ws, debounce=0)
    top = events["event"].value_counts().idxmax()
    assert sb.rows[0].event.value == top
    expected = len(set(events.loc[events["event"] == top, "user_id"]) & set(profiles["user_id"]))
    assert sb.count == shown_count(sb) == expected == sim_ws.count(sb.segment, at=sb.at)
    assert f"of {len(profiles):,} users" in sb.count_html.value
    assert sb.error == ""


def test_default_reference_time_is_just_after_the_last_event(sim_ws, frames):
    _, events = frames
    sb = SegmentBuilder(sim_ws, debounce=0)
    last = events["ts"].max().to_pydatetime()
    assert last < sb.at <= last + dt.timedelta(seconds=1)
    assert "just after the workspace's last event" in sb.at_html.value
    fixed = dt.datetime(2026, 1, 10, tzinfo=dt.UTC)
    assert SegmentBuilder(sim_ws, at=fixed, debounce=0).at == fixed
    with pytest.raises(SpecError, match="at =="):
        SegmentBuilder(sim_ws, at=dt.datetime(2026, 1, 10), debounce=0)


def test_did_event_at_least_in_last_days(sim_ws, frames):
    _, events = frames
    sb = SegmentBuilder(sim_ws, debounce=0)
    row = sb.rows[0]
    row.event.value = "Product Viewed"
    row.times.value = 2
    row.days.value = 7
    per_user = users_who(events, "Product Viewed", sb.at, days=7)
    assert sb.count == int((per_user >= 2).sum()) == sim_ws.count(sb.segment, at=sb.at)
    assert sb.segment.describe() == "did 'Product Viewed' ≥ 2 times in the last 7 days"
    assert "did &#x27;Product Viewed&#x27; ≥ 2 times in the last 7 days" in sb.description.value
    row.count_mode.value = "at_most"
    row.times.value = 1
    assert sb.count == len(frames[0]) - int((per_user >= 2).sum())  # includes "never"
    row.count_mode.value = "between"
    row.times.value, row.times_max.value = 2, 3
    assert row.times_max in row.children
    assert sb.count == int(per_user.between(2, 3).sum())


def test_did_not_do_includes_users_without_events(sim_ws, frames):
    profiles, events = frames
    sb = SegmentBuilder(sim_ws, debounce=0)
    row = sb.rows[0]
    row.kind.value = "did_not"
    row.event.value = "Charged"
    row.days.value = 14
    buyers = set(users_who(events, "Charged", sb.at, days=14).index)
    assert sb.count == len(set(profiles["user_id"]) - buyers)
    assert sb.count == sim_ws.count(sb.segment, at=sb.at)


@pytest.mark.parametrize(
    ("column", "op_label", "text", "reference"),
    [
        ("city", "=", "Berlin", lambda p: p["city"] == "Berlin"),
        ("city", "≠", "Berlin", lambda p: p["city"].notna() & (p["city"] != "Berlin")),
        ("age", "between", "25, 40", lambda p: p["age"].between(25, 40)),
        ("age", "<", "30", lambda p: p["age"] < 30),
        ("age", "≥", "50", lambda p: p["age"] >= 50),
        (
            "city",
            "in",
            "Berlin, Paris, Mumbai",
            lambda p: p["city"].isin(["Berlin", "Paris", "Mumbai"]),
        ),
        ("city", "matches regex", "^B", lambda p: p["city"].fillna("").str.match("B")),
        (
            "city",
            "does not match",
            "a",
            lambda p: p["city"].notna() & ~p["city"].fillna("").str.contains("a"),
        ),
        ("name", "starts with", "A", lambda p: p["name"].fillna("").str.startswith("A")),
        ("email", "contains", "khan", lambda p: p["email"].fillna("").str.contains("khan")),
        ("push_token", "exists", "", lambda p: p["push_token"].notna()),
        ("push_token", "not exists", "", lambda p: p["push_token"].isna()),
    ],
)
def test_property_operators_match_pandas(sim_ws, frames, column, op_label, text, reference):
    profiles, _ = frames
    sb = SegmentBuilder(sim_ws, debounce=0)
    row = sb.rows[0]
    row.kind.value = "property"
    row.column.value = column
    row.op.label = op_label
    row.value.value = text
    assert sb.error == ""
    expected = int(reference(profiles).sum())
    assert 0 < expected < len(profiles) or column == "push_token"
    assert sb.count == expected == sim_ws.count(sb.segment, at=sb.at)
    assert row.value.disabled == (op_label in ("exists", "not exists"))


def test_every_kind_and_operator_is_offered(sim_ws):
    sb = SegmentBuilder(sim_ws, debounce=0)
    row = sb.rows[0]
    assert [k for _, k in row.kind.options] == [k for _, k in KINDS]
    assert [label for label, _ in row.op.options] == [label for label, _ in OPERATOR_LABELS]
    assert {"≠", "≤", "≥", "matches regex", "does not match", "not exists"} <= {
        label for label, _ in row.op.options
    }
    custom = {"age", "city", "country", "plan", "name", "signup_source"}
    assert custom <= set(row.column.options)
    assert set(row.event.options) == set(sim_ws.sql("SELECT DISTINCT event FROM events")["event"])


def test_and_or_and_adding_and_removing_rows(sim_ws, frames):
    profiles, events = frames
    sb = SegmentBuilder(sim_ws, debounce=0)
    first = sb.rows[0]
    first.event.value = "Charged"
    sb.add_button.click()
    assert len(sb.rows) == 2 and len(sb.rows_box.children) == 2
    second = sb.rows[1]
    second.kind.value = "property"
    second.column.value = "plan"
    second.value.value = "pro"
    buyers = set(events.loc[events["event"] == "Charged", "user_id"])
    pro = set(profiles.loc[profiles["plan"] == "pro", "user_id"])
    assert sb.count == len(buyers & pro)
    sb.combine.value = "or"
    assert sb.count == len((buyers & set(profiles["user_id"])) | pro)
    assert " OR " in sb.segment.describe()
    first.remove.click()
    assert sb.rows == [second] and sb.rows_box.children == (second,)
    assert sb.count == len(pro)
    second.remove.click()
    assert sb.rows == [] and sb.count is None
    assert "at least one" in sb.error
    with pytest.raises(SpecError, match="conditions == 0"):
        _ = sb.segment


def test_invalid_spec_shows_the_error_line_and_recovers(sim_ws, frames):
    profiles, _ = frames
    sb = SegmentBuilder(sim_ws, debounce=0)
    sb.add_button.click()
    row = sb.rows[1]
    row.kind.value = "property"
    row.column.value = "city"
    row.op.value = "matches"
    row.value.value = r"(a)\1"
    assert sb.error == (
        r"SpecError: row 2: value == '(a)\\1', must be an RE2 regular expression (no backreferences)"
    )
    assert sb.error_line.layout.display is None and "RE2" in sb.error_line.value
    assert sb.count is None and sb.spec_json == "" and sb.sql.value == ""
    with pytest.raises(SpecError, match=r"row 2: value == .*RE2"):
        _ = sb.segment
    row.column.value = "age"
    row.op.value = ">="
    row.value.value = "forty"
    assert sb.error == "SpecError: row 2: value == 'forty', must be a number for column 'age'"
    row.value.value = "40"
    assert sb.error == "" and sb.error_line.layout.display == "none"
    assert sb.count == sim_ws.count(sb.segment, at=sb.at)
    assert '"p"."age" >= 40' in sb.sql.value


def test_engine_errors_in_the_background_count_show_in_the_widget(sim_ws, monkeypatch):
    sb = SegmentBuilder(sim_ws, debounce=0.05)
    assert sb.wait() is not None

    def broken(*_args, **_kwargs):
        raise QueryError("DuckDB: simulated failure")

    monkeypatch.setattr(sim_ws, "count", broken)
    sb.rows[0].times.value = 2
    assert sb.wait() is None
    assert sb.error == "QueryError: DuckDB: simulated failure"
    assert "—" in sb.count_html.value


def test_debounced_count_shows_only_the_newest_spec(sim_ws, frames, monkeypatch):
    _, events = frames
    sb = SegmentBuilder(sim_ws, debounce=0.2)
    sb.wait()
    calls = []
    real_count = sim_ws.count

    def counting(segment, at=None):
        calls.append(segment.describe())
        return real_count(segment, at=at)

    monkeypatch.setattr(sim_ws, "count", counting)
    row = sb.rows[0]
    row.event.value = "Page Viewed"
    for n in (2, 3, 4):
        row.times.value = n
    assert sb.count is None and "counting" in sb.count_html.value
    assert sb.wait() == int((users_who(events, "Page Viewed", sb.at) >= 4).sum())
    assert calls == ["did 'Page Viewed' ≥ 4 times"]  # the three quick edits counted once


def test_segment_round_trips_through_the_builder(sim_ws):
    sim_ws.save_segment("buyers", did("Charged"))
    cond = (
        did("App Launched", at_least=2, within_days=7)
        & prop("age").between(20, 35)
        & prop("city").isin(["Berlin", "Paris"])
        & ~did("Charged", within_days=14)
        & did("Page Viewed", at_least=0, at_most=3)
        & did("Product Viewed", exactly=2)
        & did("Added to Cart", at_least=1, at_most=4, within_days=21)
        & was_sent("Onboarding", within_days=30)
        & near(19.07, 72.88, 25)
        & in_segment("buyers")
        & ~in_segment("buyers")
        & prop("push_token").not_exists()
        & (prop("created_at") > dt.datetime(2025, 6, 1, tzinfo=dt.UTC))
        & prop("optout_email").eq(False)
        & did("Charged", where=prop("revenue") >= 20, at_least=2, within_days=14)
        & ~did("Product Viewed", where=prop("category").isin(["books", "toys"]))
    )
    seg = Segment(cond)
    sb = SegmentBuilder(sim_ws, segment=seg, debounce=0)
    assert [r.kind.value for r in sb.rows] == [
        "did", "property", "property", "did_not", "did", "did", "did", "sent", "near",
        "in_segment", "not_in_segment", "property", "property", "property", "did", "did_not",
    ]  # fmt: skip
    assert sb.segment == seg
    assert Segment.from_json(sb.spec_json) == seg
    ored = Segment(prop("plan").eq("pro") | did("Charged", at_least=3))
    assert SegmentBuilder(sim_ws, segment=ored.to_dict(), debounce=0).segment == ored


def test_conditions_the_ui_cannot_edit_are_kept_as_given(sim_ws, frames):
    profiles, events = frames
    special = did("Charged", where={"category": "electronics", "product": "x"}) | did(
        "Charged", window=window(between=(dt.date(2026, 1, 1), dt.date(2026, 1, 7)))
    )
    seg = Segment(special & prop("plan").eq("pro"))
    sb = SegmentBuilder(sim_ws, segment=seg, debounce=0)
    assert [r.kind.value for r in sb.rows] == ["given", "property"]
    assert "category = &#x27;electronics&#x27;" in sb.rows[0].given.value
    assert sb.segment == seg and sb.count == sim_ws.count(seg, at=sb.at)
    sb.rows[1].value.value = "free"
    assert sb.segment == Segment(special & prop("plan").eq("free"))


def test_save_as_and_reuse_in_another_builder(sim_ws, frames):
    profiles, _ = frames
    sb = SegmentBuilder(sim_ws, debounce=0)
    row = sb.rows[0]
    row.kind.value = "property"
    row.column.value = "country"
    row.value.value = "DE"
    sb.save_button.click()
    assert "name == ''" in sb.error
    sb.save_name.value = "germans"
    sb.save_button.click()
    assert sb.error == "" and "germans" in sb.save_status.value
    assert sim_ws.load_segment("germans") == Segment(prop("country").eq("DE"), name="germans")
    assert "germans" in sb.rows[0].saved.options

    other = SegmentBuilder(sim_ws, segment="germans", debounce=0)
    assert other.save_name.value == "germans"
    assert other.count == int((profiles["country"] == "DE").sum())
    third = SegmentBuilder(sim_ws, debounce=0)
    third.rows[0].kind.value = "not_in_segment"
    third.rows[0].saved.value = "germans"
    assert third.count == len(profiles) - other.count


def test_near_a_point_matches_haversine(sim_ws, frames):
    profiles, _ = frames
    sb = SegmentBuilder(sim_ws, debounce=0)
    row = sb.rows[0]
    row.kind.value = "near"
    row.lat.value, row.lon.value, row.radius.value = 19.07, 72.88, 30.0
    lat1, lon1 = math.radians(19.07), math.radians(72.88)
    lat2, lon2 = profiles["latitude"].map(math.radians), profiles["longitude"].map(math.radians)
    a = ((lat2 - lat1) / 2).map(math.sin) ** 2 + math.cos(lat1) * lat2.map(math.cos) * (
        ((lon2 - lon1) / 2).map(math.sin) ** 2
    )
    km = 2 * 6371.0088 * a.map(math.sqrt).map(math.asin)
    assert sb.count == int((km <= 30).sum()) > 0
    row.radius.value = 0.0
    assert sb.error.startswith("SpecError: row 1: radius_km == 0.0")


def test_was_sent_label_counts_notification_events(ws):
    at = dt.datetime(2026, 2, 1, tzinfo=dt.UTC)
    ws.append("profiles", pd.DataFrame({"user_id": ["a", "b", "c"]}))
    sent = pd.DataFrame(
        {
            "user_id": ["a", "b", "b"],
            "event": "Notification Sent",
            "ts": pd.to_datetime(["2026-01-30", "2026-01-02", "2026-01-31"], utc=True),
            "labels": [["Onboarding"], ["Onboarding", "Promo"], ["Promo"]],
        }
    )
    ws.append("events", sent)
    sb = SegmentBuilder(ws, at=at, debounce=0)
    row = sb.rows[0]
    assert set(row.label.options) == {"Onboarding", "Promo"}
    row.kind.value = "sent"
    row.label.value = "Onboarding"
    assert sb.count == 2
    row.days.value = 7
    assert sb.count == 1 and sb.segment == Segment(was_sent("Onboarding", within_days=7))


def test_event_property_filter_matches_pandas(sim_ws):
    events = sim_ws.sql("SELECT user_id, event, ts, revenue FROM events WHERE event = 'Charged'")
    assert events["revenue"].notna().all() and events["revenue"].nunique() > 10
    sb = SegmentBuilder(sim_ws, debounce=0)
    row = sb.rows[0]
    row.event.value = "Charged"
    assert row.where_op not in row.children  # no filter: only the column picker shows
    row.where_column.value = "revenue"
    assert row.where_op in row.children and row.where_value in row.children
    row.where_op.value = ">"
    row.where_value.value = "lots"
    assert sb.error == "SpecError: row 1: value == 'lots', must be a number for column 'revenue'"
    threshold = float(events["revenue"].median())
    row.where_value.value = repr(threshold)
    row.days.value = 10
    recent = events[events["ts"] >= sb.at - dt.timedelta(days=10)]
    expected = recent.loc[recent["revenue"] > threshold, "user_id"].nunique()
    assert sb.error == "" and 0 < sb.count == expected == sim_ws.count(sb.segment, at=sb.at)
    assert sb.segment == Segment(did("Charged", where=prop("revenue") > threshold, within_days=10))
    row.kind.value = "did_not"
    users = int(sim_ws.sql("SELECT count(*) AS n FROM profiles")["n"][0])
    assert sb.count == users - expected
    assert row.where_column.options[0] == ("(any)", "")
    assert ("revenue", "revenue") in row.where_column.options
    assert ("labels", "labels") not in row.where_column.options


def test_bad_start_segment_raises_and_load_keeps_rows(sim_ws, frames):
    profiles, _ = frames
    with pytest.raises(
        ValidationError, match="segment == 'no such segment', is not a saved segment"
    ):
        SegmentBuilder(sim_ws, segment="no such segment", debounce=0)
    sb = SegmentBuilder(sim_ws, segment=prop("plan").eq("pro"), debounce=0)
    with pytest.raises(SpecError):
        sb.load({"condition": {"kind": "nope"}})
    assert sb.segment == Segment(prop("plan").eq("pro"))
    sb.load(prop("plan").eq("free") | (prop("age") < 20))
    assert sb.combine.value == "or" and len(sb.rows) == 2
    sb.load(prop("plan").eq("pro"))
    assert sb.combine.value == "and" and len(sb.rows) == 1
    sb.load(prop("plan").eq("free") | (prop("age") < 20))
    expected = int(((profiles["plan"] == "free") | (profiles["age"] < 20)).sum())
    assert sb.count == expected
    audience = sb.audience(columns=["user_id", "plan", "age"])
    assert len(audience) == expected and list(audience.columns) == ["user_id", "plan", "age"]
    assert ((audience["plan"] == "free") | (audience["age"] < 20)).all()


def test_removing_a_row_closes_its_widgets(sim_ws):
    sb = SegmentBuilder(sim_ws, debounce=0)
    sb.add_button.click()
    row = sb.rows[1]
    assert row.comm is not None and row.value.comm is not None
    row.remove.click()
    assert row.comm is None and row.value.comm is None and row.remove.comm is None
    assert len(sb.rows) == 1 and sb.error == ""
