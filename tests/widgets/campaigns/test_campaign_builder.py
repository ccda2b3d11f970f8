"""CampaignBuilder driven headless: set the inputs' values, click buttons, and check what
the widget shows against the core (``channels.preview``, ``plan``, ``ws.count``) and
against independent pandas computations on the same workspace."""

from __future__ import annotations

import dataclasses
import datetime as dt
import html
import json

import pandas as pd
import pytest
from engagelab.widgets.campaign_builder import CampaignBuilder

from engagelab.besttime import BestTimeOptions
from engagelab.campaigns import (
    DND,
    Campaign,
    Delivery,
    FrequencyCap,
    Goal,
    Schedule,
    Variant,
    WinnerTest,
    load_campaign,
    plan,
)
from engagelab.channels import CHANNELS, TemplateError, content_from_dict, preview, sms_info
from engagelab.errors import SpecError
from engagelab.segments import Segment, prop


@pytest.fixture(scope="module")
def profiles(sim_ws) -> pd.DataFrame:
    return sim_ws.sql("SELECT * FROM profiles ORDER BY user_id")


def _profile(profiles: pd.DataFrame, uid: str) -> dict:
    """The user's profile with missing values as None (independent of the widget)."""
    row = profiles[profiles["user_id"] == uid].iloc[0]
    return {k: (None if pd.isna(v) else v) for k, v in row.items()}


def _email(cb: CampaignBuilder, i: int = 0, **values: str) -> None:
    for key, value in values.items():
        cb.variants[i].fields[key].value = value


def test_content_fields_follow_the_channel_model(sim_ws):
    cb = CampaignBuilder(sim_ws, debounce=0)
    assert cb.channel.options == tuple(CHANNELS)
    assert {"title", "body", "deep_link", "image_url", "data"} <= set(cb.variants[0].fields)
    cb.channel.value = "email"
    assert list(cb.variants[0].fields)[:4] == ["from", "subject", "html", "text"]
    assert "el-cb-field-subject" in cb.variants[0].fields["subject"]._dom_classes
    cb.channel.value = "webhook"
    assert {"url", "method", "headers", "body"} == set(cb.variants[0].fields)
    assert cb.variants[0].fields["method"].value == "POST"


def test_preview_equals_channels_preview_for_the_picked_user(sim_ws, profiles):
    cb = CampaignBuilder(sim_ws, debounce=0)
    cb.channel.value = "email"
    _email(cb, **{"from": "shop@example.com",
                  "subject": "Hi {{ profile.name | default('friend') }} in {{ profile.city }}",
                  "html": "<p>{{ profile.plan }}</p>", "text": "Age {{ profile.age }}"})  # fmt: skip
    assert cb.error == ""
    users = list(cb.preview_user.options)
    assert users == sorted(profiles["user_id"])[:200]
    content = content_from_dict("email", {"from": "shop@example.com",
        "subject": "Hi {{ profile.name | default('friend') }} in {{ profile.city }}",
        "html": "<p>{{ profile.plan }}</p>", "text": "Age {{ profile.age }}"})  # fmt: skip
    for uid in (users[0], users[7]):
        cb.preview_user.value = uid
        expected = preview(content, _profile(profiles, uid))
        assert cb.preview_result == expected
        row = profiles[profiles["user_id"] == uid].iloc[0]
        assert expected["subject"] == f"Hi {row['name']} in {row['city']}"
        assert f"Age {row['age']}" == expected["text"]
        assert expected["subject"] in cb.preview_html.value


def test_sms_segment_count_is_live(sim_ws):
    cb = CampaignBuilder(sim_ws, debounce=0)
    cb.channel.value = "sms"
    panel = cb.variants[0]
    panel.fields["text"].value = "x" * 161
    assert panel.segments.value == "GSM-7 · 161 units · 2 segments"
    emoji = "Grüße 😀 " * 10
    panel.fields["text"].value = emoji
    info = sms_info(emoji)
    assert info.encoding == "UCS-2"
    assert panel.segments.value.startswith(f"UCS-2 · {info.units} units · {info.segments} segment")
    assert cb.preview_result["segments"] == info.segments  # the rendered message is counted too


def test_template_errors_show_in_the_widget(sim_ws):
    cb = CampaignBuilder(sim_ws, debounce=0)
    cb.variants[0].fields["title"].value = "Hi {{ profile.nickname }}"
    assert isinstance(cb.preview_error, TemplateError)
    assert "unknown variable 'profile.nickname'" in html.unescape(cb.preview_html.value)
    assert cb.preview_result is None
    cb.variants[0].fields["title"].value = "Hi {{ profile.name "  # syntax error: the spec fails
    assert cb.error.startswith("SpecError: variants[0].content.push.title")
    with pytest.raises(SpecError, match="push.title"):
        _ = cb.campaign
    assert cb.spec_json == ""
    cb.variants[0].fields["title"].value = "Hi {{ profile.name }}"
    assert cb.error == "" and cb.preview_error is None and cb.spec_json
    sandbox = "{{ ''.__class__.__mro__[1].__subclasses__() }}"
    cb.variants[0].fields["body"].value = sandbox
    assert cb.error.startswith(
        "SpecError: variants[0].content.push.body: not allowed in a template"
    )
    assert isinstance(cb.preview_error, TemplateError)  # the sandbox refuses it, visibly


def test_variants_add_remove_and_weights_must_sum_to_one(sim_ws):
    cb = CampaignBuilder(sim_ws, debounce=0)
    cb.variants[0].fields["title"].value = "Copy me"
    cb.add_variant_button.click()
    assert [v.name.value for v in cb.variants] == ["A", "B"]
    assert cb.variants[1].fields["title"].value == "Copy me"
    assert cb.variants_tab.selected_index == 1
    cb.variants[0].weight.value = "0.5"
    cb.variants[1].weight.value = "0.4"
    assert cb.error == "SpecError: variants.weight == [0.5, 0.4], must sum to 1"
    cb.variants[1].weight.value = "0.5"
    assert cb.error == ""
    assert cb.campaign.weights == [0.5, 0.5]
    cb.variants[1].remove_button.click()
    assert (
        len(cb.variants) == 1 and cb.error == "SpecError: variants.weight == [0.5], must sum to 1"
    )
    cb.variants[0].weight.value = ""
    assert cb.error == ""
    cb.variants[0].remove_button.click()  # the last one stays, with an error
    assert len(cb.variants) == 1 and "must keep at least one variant" in cb.error


def test_cron_and_time_zone_typos_show(sim_ws):
    cb = CampaignBuilder(sim_ws, debounce=0)
    cb.schedule_type.value = "recurring"
    assert cb.schedule["cron"].layout.display is None and cb.schedule["at"].layout.display == "none"
    cb.schedule["cron"].value = "61 9 * * 1"
    assert cb.error.startswith("SpecError: schedule.cron == '61 9 * * 1'")
    cb.schedule["cron"].value = "0 9 * * 1"
    cb.schedule["timezone"].value = "Europe/Berln"
    assert cb.error.startswith("SpecError: schedule.timezone == 'Europe/Berln'")
    cb.schedule["timezone"].value = "Europe/Berlin"
    assert cb.error == ""
    assert cb.campaign.schedule == Schedule("recurring", cron="0 9 * * 1", timezone="Europe/Berlin")
    cb.add_cap_button.click()
    cb.add_cap_button.click()
    assert len(cb.cap_rows) == 2 and cb.error == ""
    cb.cap_rows[1].boxes["window"].value = 0
    assert cb.error == "SpecError: delivery.caps.window == 0, must be an integer >= 1"
    cb.cap_rows[1].remove_button.click()
    assert cb.error == "" and cb.campaign.delivery.caps == (FrequencyCap(),)
    cb.add_dnd_button.click()
    cb.dnd_rows[0].boxes["days"].value = "mon, funday"
    assert cb.error.startswith("SpecError: delivery.dnd.days == ['mon', 'funday']")
    cb.dnd_rows[0].boxes["days"].value = "sat, sun"
    assert cb.campaign.delivery.dnd == (DND("22:00", "08:00", ("sat", "sun"), "hold"),)


def test_audience_count_saved_segment_and_built_segment(sim_ws, profiles):
    cb = CampaignBuilder(sim_ws, debounce=0)
    assert cb.count == len(profiles)
    cb.audience_mode.value = "saved"
    assert cb.segment.value == "over30"
    over30 = int((profiles["age"] >= 30).sum())
    assert cb.count == over30 == sim_ws.count("over30", at=cb.at)
    assert f"<b>{over30:,}</b>" in cb.count_html.value
    assert set(cb.preview_user.options) <= set(profiles.loc[profiles["age"] >= 30, "user_id"])
    assert cb.campaign.audience == "over30"
    cb.audience_mode.value = "build"
    cb.segment_builder.load(prop("age") < 25)
    under25 = int((profiles["age"] < 25).sum())
    assert cb.count == under25
    assert cb.campaign.audience == Segment(prop("age") < 25)


def test_debounced_count_arrives(sim_ws, profiles):
    cb = CampaignBuilder(sim_ws, debounce=0.05)
    assert cb.wait(30) == len(profiles)
    cb.audience_mode.value = "saved"
    assert cb.wait(30) == int((profiles["age"] >= 30).sum())


def test_dry_run_shows_the_plans_reach_and_reasons(sim_ws, profiles):
    cb = CampaignBuilder(sim_ws, debounce=0)
    cb.control.value = 10
    cb.global_control.value = False
    cb.dry_run_button.click()
    assert cb.error == ""
    direct = plan(sim_ws, cb.campaign, cb.at)
    assert cb.last_plan.reach == direct.reach
    assert cb.last_plan.reasons() == direct.reasons()
    # independent: reachable by push = has a token and did not opt out; 10% of them held out
    reachable = profiles["push_token"].notna() & ~profiles["optout_push"].fillna(False).astype(bool)
    f = direct.to_pandas()
    held = f["decision"] == "control"
    assert f.loc[held, "user_id"].isin(profiles.loc[reachable, "user_id"]).all()
    assert direct.reach == int(reachable.sum()) - int(held.sum())
    assert abs(held.sum() / reachable.sum() - 0.10) < 0.04
    assert f"reach <b>{direct.reach:,}</b> of {len(profiles):,}" in cb.reach_html.value
    assert "unreachable" in cb.reach_html.value


def _defaults(cls: type) -> dict[str, object]:
    out = {}
    for f in dataclasses.fields(cls):
        if f.default is not dataclasses.MISSING:
            out[f.name] = f.default
        elif f.default_factory is not dataclasses.MISSING:
            out[f.name] = f.default_factory()
    return out


def _non_default(obj: object) -> set[str]:
    """The fields of a spec dataclass set to something other than their default (fields
    without a default always count)."""
    d = _defaults(type(obj))
    return {f.name for f in dataclasses.fields(obj)
            if f.name not in d or getattr(obj, f.name) != d[f.name]}  # fmt: skip


def _all_fields(cls: type) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)}


def _every_field_campaigns() -> list[Campaign]:
    """Campaigns that together set every field of every part of a campaign to a
    non-default value (one schedule type each; best_time and send_time_policy exclude
    each other, so they are in different campaigns)."""
    delivery = Delivery(user_timezone=True, if_passed="next_day", default_timezone="Europe/Paris",
                        dnd=(DND("21:30", "07:00", ("mon", "fri"), "drop"), DND("12:00", "13:00")),
                        caps=(FrequencyCap(3, 7, "hours", "rolling", "email"),
                              FrequencyCap(2, 1, "weeks", "calendar", "*")),
                        min_gap_hours=48, ignore_caps=True, ignore_workspace_caps=True,
                        throttle_per_minute=100, ttl_hours=6,
                        cut_off=dt.datetime(2026, 2, 1, tzinfo=dt.UTC),
                        send_time_policy="noon-test")  # fmt: skip
    main = Campaign(
        id="rt", name="Round trip", channel="email",
        variants=(
            Variant("A", {"from": "News <news@example.com>", "subject": "Hi {{ profile.name }}",
                          "text": "t"}, 0.3),
            Variant("B", {"from": "news@example.com", "subject": "Hello", "html": "<b>x</b>",
                          "reply_to": "r@example.com"}, 0.7),
        ),
        schedule=Schedule("recurring", cron="30 8 * * 1-5", timezone="Europe/Berlin"),
        audience="over30", control_percent=12.5, respect_global_control=False,
        labels=("Onboarding", "Promo"), goal=Goal("App Launched", 12, None),
        delivery=delivery,
        winner_test=WinnerTest(test_share=0.3, wait_hours=12, metric="viewed", rule="statistical"),
    )  # fmt: skip
    at = dt.datetime(2026, 1, 9, 7, 30, tzinfo=dt.UTC)
    event_delivery = dataclasses.replace(delivery, user_timezone=False)  # follows each event
    return [
        main,
        main.replace(id="rt-once", schedule=Schedule("one_time", at=at, timezone="Asia/Tokyo"),
                     delivery=dataclasses.replace(delivery, send_time_policy=None,
                                               best_time=BestTimeOptions(mode="clevertap"))),
        main.replace(id="rt-trig", delivery=event_delivery, schedule=Schedule("triggered", event="Added to Cart",
                                                     filters={"category": "shoes"}, time="10:30")),
        main.replace(id="rt-inaction", audience=Segment(prop("age") >= 50), delivery=event_delivery,
                     schedule=Schedule("inaction", event="App Launched", not_event="Charged",
                                       within_hours=36, time="10:30")),
        main.replace(id="rt-date", delivery=dataclasses.replace(
                         delivery, throttle_per_minute=None, throttle_per_5_minutes=40),
                     schedule=Schedule("on_date", date_property="created_at",
                                                     offset_days=-2, anniversary=True,
                                                     time="08:15", timezone="Europe/Berlin")),
    ]  # fmt: skip


def test_the_round_trip_campaigns_set_every_field_to_a_non_default_value():
    cs = _every_field_campaigns()
    main = cs[0]
    assert _non_default(main) == _all_fields(Campaign)
    assert _non_default(main.goal) == _all_fields(Goal)
    assert _non_default(main.winner_test) == _all_fields(WinnerTest)
    assert set().union(*(_non_default(c.delivery) for c in cs)) == _all_fields(Delivery)
    assert set().union(*(_non_default(c.schedule) for c in cs)) == _all_fields(Schedule)
    assert set().union(*(_non_default(x) for x in main.delivery.dnd)) == _all_fields(DND)
    assert set().union(*(_non_default(x) for x in main.delivery.caps)) == _all_fields(FrequencyCap)
    assert all(v.weight is not None for v in main.variants)
    assert {type(c.audience) for c in cs} == {str, Segment}


@pytest.mark.parametrize("index", range(5), ids=["recurring", "one_time", "triggered",
                                                 "inaction", "on_date"])  # fmt: skip
def test_every_field_round_trips_through_the_builder(sim_ws, index):
    c = _every_field_campaigns()[index]
    cb = CampaignBuilder(sim_ws, c, debounce=0)
    assert cb.error == ""
    assert cb.campaign == c
    assert cb.campaign.delivery.ignore_caps is True
    assert json.loads(cb.spec_json) == json.loads(c.to_json())
    again = CampaignBuilder(sim_ws, debounce=0)
    again.load(Campaign.from_json(cb.spec_json))
    assert again.campaign == c


def test_spec_round_trips_and_save_loads(sim_ws):
    c = _every_field_campaigns()[0]
    cb = CampaignBuilder(sim_ws, c, debounce=0)
    cb.save_button.click()
    assert cb.error == "" and "saved <b>rt</b>" in cb.save_status.value
    assert load_campaign(sim_ws, "rt") == c
    assert CampaignBuilder(sim_ws, "rt", debounce=0).campaign == c


def test_ignore_caps_is_read_from_the_checkbox(sim_ws):
    cb = CampaignBuilder(sim_ws, debounce=0)
    assert cb.campaign.delivery.ignore_caps is False
    cb.ignore_caps.value = True
    assert cb.campaign.delivery.ignore_caps is True
    assert Campaign.from_json(cb.spec_json).delivery.ignore_caps is True
    assert cb.campaign.delivery.ignore_workspace_caps is False
    cb.ignore_workspace_caps.value = True
    assert Campaign.from_json(cb.spec_json).delivery.ignore_workspace_caps is True


def test_channel_switch_keeps_shared_fields_and_names_missing_ones(sim_ws):
    cb = CampaignBuilder(sim_ws, debounce=0)
    cb.variants[0].fields["title"].value = "Kept"
    cb.channel.value = "web_push"
    assert cb.variants[0].fields["title"].value == "Kept"
    assert cb.error.startswith("SpecError: variants[0].content.web_push.url")
    cb.variants[0].fields["url"].value = "https://shop.example.com/{{ profile.city | urlencode }}"
    assert cb.error == ""
    assert cb.campaign.variants[0].content.title == "Kept"


def test_bad_logical_date_and_save_error_show(sim_ws):
    cb = CampaignBuilder(sim_ws, debounce=0)
    cb.logical_date.value = "yesterday"
    assert "logical_date == 'yesterday'" in cb.error and cb.count is None
    cb.dry_run_button.click()
    assert "logical_date == 'yesterday'" in cb.error
    cb.logical_date.value = "2026-01-10T09:00:00+00:00"
    cb.id.value = " "
    cb.save_button.click()
    assert cb.error.startswith("SpecError: id ==") and cb.save_status.value == ""


def test_preview_shows_empty_values_in_words_never_a_raw_null(sim_ws):
    cb = CampaignBuilder(sim_ws, debounce=0)  # the default push leaves optional fields empty
    assert cb.error == "" and cb.preview_result is not None
    empty = [k for k, v in cb.preview_result.items() if v is None or v in ({}, [], "")]
    assert empty, "the default push preview has empty optional fields"
    text = cb.preview_html.value
    assert "null" not in text and "None" not in text
    for k in empty:
        assert f"<td class='el-cb-preview-{k}'>(empty)</td>" in text


@pytest.mark.parametrize(
    "setup, field, message",
    [
        (lambda cb: (setattr(cb.schedule_type, "value", "recurring"),
                     setattr(cb.schedule["cron"], "value", "0 9 * *")), "schedule.cron", "cron"),
        (lambda cb: setattr(cb.goal_window, "value", "a day"), "goal.window_hours", "a day"),
        (lambda cb: setattr(cb.ttl, "value", "soon"), "delivery.ttl_hours", "soon"),
        (lambda cb: setattr(cb.id, "value", " "), "id", "id =="),
        (lambda cb: setattr(cb.logical_date, "value", "yesterday"), "logical_date", "yesterday"),
        (lambda cb: setattr(cb.channel, "value", "web_push"), "variants[0].url", "url"),
        (lambda cb: setattr(cb.variants[0].weight, "value", "half"), "variants[0].weight", "half"),
    ],
    ids=["cron", "goal-window", "ttl", "id", "logical-date", "content-url", "weight"],
)  # fmt: skip
def test_errors_show_next_to_their_field(sim_ws, setup, field, message):
    cb = CampaignBuilder(sim_ws, debounce=0)
    setup(cb)
    assert cb.error != "" and message in cb.error
    assert cb.field_error(field) == cb.error  # the whole message, at the field
    assert cb.error_line.layout.display == "none"  # not repeated at the bottom
    others = [k for k in cb.notes if k != field]
    assert all(cb.field_error(k) == "" for k in others)


def test_a_fixed_field_clears_its_note(sim_ws):
    cb = CampaignBuilder(sim_ws, debounce=0)
    cb.goal_window.value = "a day"
    assert "a day" in cb.field_error("goal.window_hours")
    cb.goal_window.value = "48"
    assert cb.error == "" and cb.field_error("goal.window_hours") == ""
    with pytest.raises(Exception, match="field == 'nope'"):
        cb.field_error("nope")


def test_a_dry_run_is_marked_out_of_date_after_edits(sim_ws):
    cb = CampaignBuilder(sim_ws, debounce=0)
    cb.dry_run_button.click()
    assert cb.error == "" and cb.last_plan is not None and not cb.dry_run_stale
    assert "reach <b>" in cb.reach_html.value
    cb.control.value = 25.0
    assert cb.dry_run_stale and "out of date" in cb.dry_run_note.value
    assert "el-stale" in cb.reach_html._dom_classes
    cb.control.value = 0.0  # back to what was dry-run: current again
    assert not cb.dry_run_stale and "el-stale" not in cb.reach_html._dom_classes
    cb.logical_date.value = "2026-01-05T09:00:00+00:00"  # another date is another plan
    assert cb.dry_run_stale
    cb.id.value = " "  # an invalid campaign: the old reach is certainly not its reach
    assert cb.dry_run_stale and cb.error.startswith("SpecError: id")
    cb.id.value = "campaign"
    cb.dry_run_button.click()
    assert not cb.dry_run_stale and cb.last_plan.reach == plan(sim_ws, cb.campaign, cb.at).reach
    cb.logical_date.value = "never"
    cb.dry_run_button.click()  # a failing dry run leaves no old reach behind
    assert "never" in cb.field_error("logical_date")
    assert cb.reach_html.value == "" and cb.last_plan is None and not cb.dry_run_stale
