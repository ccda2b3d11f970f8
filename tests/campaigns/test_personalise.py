"""Personalisation with the trigger event's properties (``event.<prop>``) in triggered and
inaction campaigns: the latest qualifying occurrence per user, defaults, strict errors,
previews, and the plan column that carries them to send."""

from __future__ import annotations

import pandas as pd
import pytest

from engagelab.campaigns import Campaign, Schedule, Variant, plan, preview, trigger_event
from engagelab.campaigns.plan import event_context
from engagelab.errors import SpecError, ValidationError
from engagelab.workspace import Workspace, use_workspace
from tests.campaigns.conftest import add_users, profiles

CART = "Added To Cart"
PUSH = {
    "title": "Hi {{ profile.name | default('there') }}",
    "body": "Your {{ event.product | default('item') }} ({{ event.price }} EUR) is waiting",
}


def _events(rows):
    df = pd.DataFrame(rows, columns=["user_id", "event", "ts", "event_id", "product", "price"])
    df["ts"] = pd.to_datetime(df["ts"], utc=True)
    return df


@pytest.fixture
def cart_ws(ws):
    add_users(ws, profiles(5).assign(name=["Ann", None, "Cy", "Di", "Ed"]))
    ws.append(
        "events",
        _events(
            [
                # u0: two carts in the run's window -> the latest (Hat) personalises
                ("u00000", CART, "2026-02-02 07:00", "e1", "Shoes", 59.0),
                ("u00000", CART, "2026-02-02 08:00", "e2", "Hat", 19.0),
                # u1: no product on the event -> the template's default
                ("u00001", CART, "2026-02-02 08:10", "e3", None, 5.0),
                # u2: two carts at the same instant -> the larger event_id wins
                ("u00002", CART, "2026-02-02 08:20", "e4", "Socks", 3.0),
                ("u00002", CART, "2026-02-02 08:20", "e5", "Scarf", 25.0),
                # u3: carted before the run's window (the day before yesterday)
                ("u00003", CART, "2026-01-31 08:00", "e6", "Coat", 120.0),
                # u4: carted, then bought within 2 h (inaction campaign skips u4)
                ("u00004", CART, "2026-02-02 06:00", "e7", "Belt", 30.0),
                ("u00004", "Charged", "2026-02-02 06:30", "e8", None, 30.0),
            ]
        ),
    )
    return ws


def cart_campaign(**kw) -> Campaign:
    """A push campaign triggered by each cart (``PUSH`` content unless given)."""
    kw.setdefault("schedule", Schedule("triggered", event=CART))
    kw.setdefault("variants", (Variant("A", PUSH),))
    return Campaign(id=kw.pop("id", "cart"), channel="push", **kw)


def _render(c: Campaign, ws, f: pd.DataFrame) -> dict[str, str]:
    """What send renders for each planned user: the profile plus the plan row's event."""
    prof = ws.sql("SELECT * FROM profiles").set_index("user_id")
    out = {}
    for r in f.itertuples():
        row = {k: (None if pd.isna(v) else v) for k, v in prof.loc[r.user_id].items()}
        ctx = {"profile": row, "event": event_context(r.event_properties)}
        out[r.user_id] = c.variant(r.variant).content.render(ctx)["body"]
    return out


def test_triggered_campaign_renders_the_latest_occurrence(cart_ws):
    c = cart_campaign()
    p = plan(cart_ws, c, "2026-02-02T09:00:00Z")
    f = p.to_pandas()
    assert sorted(f["user_id"]) == ["u00000", "u00001", "u00002", "u00004"]
    props = {u: event_context(j) for u, j in zip(f["user_id"], f["event_properties"], strict=True)}
    assert props["u00000"] == {"price": 19.0, "product": "Hat"}
    assert props["u00001"] == {"price": 5.0, "product": None}
    assert props["u00002"] == {"price": 25.0, "product": "Scarf"}
    assert _render(c, cart_ws, f) == {
        "u00000": "Your Hat (19.0 EUR) is waiting",
        "u00001": "Your item (5.0 EUR) is waiting",
        "u00002": "Your Scarf (25.0 EUR) is waiting",
        "u00004": "Your Belt (30.0 EUR) is waiting",
    }
    # filters narrow the qualifying occurrences: product == 'Shoes' picks u0's earlier cart
    shoes = c.replace(schedule=Schedule("triggered", event=CART, filters={"product": "Shoes"}))
    g = plan(cart_ws, shoes, "2026-02-02T09:00:00Z").to_pandas()
    assert g["user_id"].tolist() == ["u00000"]
    assert event_context(g["event_properties"].iloc[0])["product"] == "Shoes"


def test_inaction_campaign_renders_the_latest_qualifying_occurrence(cart_ws):
    c = cart_campaign(
        id="abandon", schedule=Schedule("inaction", event=CART, not_event="Charged", within_hours=1)
    )
    f = plan(cart_ws, c, "2026-02-02T10:00:00Z").to_pandas().set_index("user_id")
    # window: carts in (2026-02-01 09:00, 2026-02-02 09:00] with no purchase within 1 h
    assert sorted(f.index) == ["u00000", "u00001", "u00002"]
    assert event_context(f.loc["u00000", "event_properties"])["product"] == "Hat"
    assert str(f.loc["u00000", "send_at"]) == "2026-02-02 09:00:00+00:00"  # latest cart + 1 h


def test_without_event_variables_the_column_is_empty(cart_ws):
    c = cart_campaign(
        variants=(Variant("A", {"title": "Hi", "body": "{{ profile.name | default('x') }}"}),)
    )
    f = plan(cart_ws, c, "2026-02-02T09:00:00Z").to_pandas()
    assert len(f) == 4 and f["event_properties"].isna().all()


@pytest.mark.parametrize(
    "schedule",
    [
        Schedule("one_time"),
        Schedule("recurring", cron="0 9 * * *"),
        Schedule("on_date", date_property="created_at"),
    ],
)
def test_event_variables_need_a_triggering_event(schedule):
    with pytest.raises(SpecError) as info:
        Campaign(id="x", channel="push", schedule=schedule, variants=(Variant("A", PUSH),))
    assert info.value.field == "variants[0].content.push.body"
    assert "event.price" in str(info.value) and schedule.type in str(info.value)
    # the same content is fine once the campaign has a trigger, and round-trips
    c = cart_campaign()
    assert Campaign.from_json(c.to_json()) == c


def test_unknown_event_property_fails_at_plan(cart_ws):
    c = cart_campaign(variants=(Variant("A", {"title": "t", "body": "{{ event.prodcut }}"}),))
    with pytest.raises(ValidationError, match="event.prodcut") as info:
        plan(cart_ws, c, "2026-02-02T09:00:00Z")
    assert info.value.field == "variants[0].content.push.body"
    with pytest.raises(ValidationError, match="event.prodcut"):
        preview(cart_ws, c, "u00000")


def test_preview_renders_the_trigger_event_for_one_user(cart_ws):
    c = cart_campaign()
    assert preview(cart_ws, c, "u00000")["body"] == "Your Hat (19.0 EUR) is waiting"
    # only occurrences up to `at` count
    early = preview(cart_ws, c, "u00000", at="2026-02-02T07:30:00Z")
    assert early["body"] == "Your Shoes (59.0 EUR) is waiting"
    assert trigger_event(cart_ws, c, "u00003") == {"price": 120.0, "product": "Coat"}
    # an explicit event (e.g. the builder's sample) wins
    assert (
        preview(cart_ws, c, "u00001", event={"price": 1})["body"] == "Your item (1 EUR) is waiting"
    )
    assert cart_ws.preview(c, "u00002")["body"] == "Your Scarf (25.0 EUR) is waiting"
    assert cart_ws.preview(c, "u00000", at="2026-02-02T07:30:00Z") == early
    assert (
        cart_ws.preview(c, "u00001", event={"price": 2})["body"] == "Your item (2 EUR) is waiting"
    )
    with use_workspace(cart_ws.path):
        got = Workspace.open().preview(c, "u00001")
    assert got["title"] == "Hi there" and got["body"] == "Your item (5.0 EUR) is waiting"
    # a user who never triggered: the template's defaults, or a clear error without one
    add_users(cart_ws, profiles(1, prefix="new"))
    with pytest.raises(ValidationError, match="event.price is missing"):
        preview(cart_ws, c, "new00000")
    with pytest.raises(ValidationError, match="event"):
        preview(cart_ws, c, "u00000", event="Hat")


def test_event_values_are_data_not_templates(ws):
    add_users(ws, profiles(1).assign(name=["Zed"]))
    ws.append(
        "events",
        _events(
            [("u00000", CART, "2026-02-02 08:00", "e1", "{{ 7 * 7 }} {{ ''.__class__ }}", 1.0)]
        ),
    )
    c = cart_campaign()
    body = preview(ws, c, "u00000")["body"]
    assert body == "Your {{ 7 * 7 }} {{ ''.__class__ }} (1.0 EUR) is waiting"


def test_users_whose_event_lacks_a_required_property_are_suppressed(cart_ws):
    c = cart_campaign(variants=(Variant("A", {"title": "t", "body": "{{ event.product }}"}),))
    f = plan(cart_ws, c, "2026-02-02T09:00:00Z").to_pandas().set_index("user_id")
    # u1's cart has no product and the template gives no default
    assert f.loc["u00001", "decision"] == "suppressed"
    assert f.loc["u00001", "reason"] == "missing_variable"
    assert (f.drop(index="u00001")["decision"] == "send").all()
