"""Campaign spec: round trips and the issue's bad-input list (one clear error naming the field)."""

from __future__ import annotations

import dataclasses

import pytest

from engagelab.campaigns import (
    DND,
    Campaign,
    Delivery,
    FrequencyCap,
    Goal,
    Schedule,
    Variant,
    WinnerTest,
    plan,
    register_send_time_policy,
)
from engagelab.errors import ValidationError
from tests.campaigns.conftest import PUSH, campaign, email


def full() -> Campaign:
    return Campaign(
        id="spring",
        name="Spring sale",
        channel="push",
        variants=tuple(Variant(n, PUSH | {"body": f"variant {n}"}, 1 / 8) for n in "ABCDEFGH"),
        schedule=Schedule("recurring", cron="30 9 * * 1-5", timezone="Europe/Berlin"),
        audience="buyers",
        control_percent=10,
        respect_global_control=False,
        labels=("Sale", "Spring"),
        goal=Goal("Charged", 48, "revenue"),
        delivery=Delivery(
            user_timezone=True,
            if_passed="next_day",
            dnd=(DND("22:00", "08:00", ("sat", "sun"), "drop"), DND("23:00", "07:00")),
            caps=(FrequencyCap(3, 7, "days"), FrequencyCap(1, 1, "days", "calendar", "push")),
            min_gap_hours=12,
            throttle_per_minute=1000,
            ttl_hours=6,
            cut_off="2026-06-01T00:00:00Z",
        ),
        winner_test=WinnerTest(0.2, 4, "clicked", "statistical"),
    )


def test_round_trips_json_and_yaml():
    c = full()
    assert Campaign.from_json(c.to_json()) == c
    assert Campaign.from_yaml(c.to_yaml()) == c
    assert len(c.variants) == 8 and c.weights == [0.125] * 8
    with pytest.raises(
        dataclasses.FrozenInstanceError, match=r"use campaign\.replace\(channel=\.\.\.\)"
    ):
        c.channel = "sms"  # frozen
    assert c.replace(name="x").name == "x" and c.name == "Spring sale"


def test_all_campaign_types_build():
    for s in (
        Schedule("one_time"),
        Schedule("one_time", at="2026-01-01T10:00:00+01:00"),
        Schedule("recurring", cron="0 9 * * *", timezone="America/New_York"),
        Schedule("triggered", event="Added to Cart", filters={"category": "shoes"}),
        Schedule("inaction", event="Added to Cart", not_event="Charged", within_hours=2),
        Schedule("on_date", date_property="created_at", offset_days=30, time="10:00"),
    ):
        c = campaign(schedule=s)
        assert Campaign.from_dict(c.to_dict()) == c
    assert Schedule("one_time", at="2026-01-01T10:00:00+01:00").at.hour == 9


@pytest.mark.parametrize(
    "build, field",
    [
        (lambda: campaign(channel="fax"), "channel"),
        (
            lambda: campaign(
                channel="push", variants=(Variant("A", {"title": "x" * 500, "body": "b"}),)
            ),
            "variants[0].content.push.title",
        ),
        (
            lambda: campaign(
                variants=(Variant("A", {"from": "not-an-address", "subject": "s", "text": "t"}),)
            ),
            "variants[0].content.email.from",
        ),
        (
            lambda: campaign(variants=(email(subject="Hi {{ profile.name "),)),
            "variants[0].content.email.subject",
        ),
        (lambda: campaign(schedule=Schedule("recurring", cron="0 25 * * *")), "schedule.cron"),
        (
            lambda: campaign(
                schedule=Schedule("recurring", cron="0 9 * * *", timezone="Europe/Berlinn")
            ),
            "schedule.timezone",
        ),
        (lambda: Delivery(default_timezone="Mars/Olympus"), "delivery.default_timezone"),
        (lambda: FrequencyCap(max=1, window=0), "delivery.caps.window"),
        (lambda: FrequencyCap(max=0, window=1), "delivery.caps.max"),
        (lambda: FrequencyCap(channel="emial"), "delivery.caps.channel"),
        (
            lambda: campaign(
                schedule=Schedule("triggered", event="Added to Cart"),
                delivery=Delivery(user_timezone=True),
            ),
            "delivery.user_timezone",
        ),
        (
            lambda: campaign(
                schedule=Schedule("inaction", event="A", not_event="B", within_hours=1),
                delivery=Delivery(best_time={"mode": "clevertap"}),
            ),
            "delivery.best_time",
        ),
        (lambda: WinnerTest(metric="opens"), "winner_test.metric"),
        (lambda: Delivery.from_dict({"caps": [{"max": 2, "window": 0}]}), "delivery.caps.window"),
        (
            lambda: campaign(
                variants=(Variant("A", email().content, 0.5), Variant("B", email().content, 0.4))
            ),
            "variants.weight",
        ),
        (lambda: campaign(variants=(email("A"), email("A"))), "variants"),
        (lambda: campaign(control_percent=100), "control_percent"),
        (lambda: DND("25:00", "08:00"), "delivery.dnd.start"),
        (lambda: DND("22:00", "08:00", ("funday",)), "delivery.dnd.days"),
        (
            lambda: Schedule("inaction", event="A", not_event="B", within_hours=0),
            "schedule.within_hours",
        ),
        (lambda: Schedule("triggered"), "schedule.event"),
        (lambda: WinnerTest(test_share=1.5), "winner_test.test_share"),
        (
            lambda: Campaign.from_dict(
                {"id": "x", "channel": "email", "variants": [], "colour": 1}
            ),
            "colour",
        ),
        (lambda: Delivery(send_time_policy=""), "delivery.send_time_policy"),
        (lambda: Delivery(send_time_policy=3), "delivery.send_time_policy"),
    ],
)
def test_bad_input_names_the_field(build, field):
    with pytest.raises(ValidationError) as info:
        build()
    assert info.value.field == field, str(info.value)
    assert field in str(info.value) and "\n" not in str(info.value)


def test_unknown_template_variable_fails_at_plan_before_sending(small_ws):
    c = campaign(variants=(email(subject="Hi {{ profile.favourite_colour }}"),))
    with pytest.raises(ValidationError, match="favourite_colour") as info:
        plan(small_ws, c, "2026-01-01")
    assert info.value.field.startswith("variants[0].content")
    assert not (small_ws.path / "outputs" / "outbox").exists()


def test_sandbox_escape_is_refused():
    with pytest.raises(ValidationError):
        campaign(variants=(email(subject="{{ ''.__class__.__mro__[1].__subclasses__() }}"),))


def test_send_time_policy_registry(small_ws):
    import pandas as pd

    def at_noon(users, logical_date):
        return [pd.Timestamp("2026-01-01 12:00", tz="UTC")] * len(users)

    register_send_time_policy("noon-test", at_noon)
    p = plan(
        small_ws, campaign(delivery=Delivery(send_time_policy="noon-test")), "2026-01-01T08:00Z"
    )
    f = p.to_pandas()
    assert (f["send_at"] == pd.Timestamp("2026-01-01 12:00", tz="UTC")).all()
    assert (f["note"] == "best_time").all()


def test_a_spec_naming_an_unregistered_policy_is_valid_until_planned(small_ws):
    # validity never depends on what this process registered: the spec builds and
    # round-trips; planning it is what needs the policy, and says so
    c = campaign(delivery=Delivery(send_time_policy="not-registered-here"))
    assert Campaign.from_json(c.to_json()) == c
    with pytest.raises(ValidationError, match="registered in this process") as info:
        plan(small_ws, c, "2026-01-01T08:00Z")
    assert info.value.field == "delivery.send_time_policy"
