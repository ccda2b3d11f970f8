"""CampaignBuilder driven headless: set the inputs' values, click buttons, and check what
the widget shows against the core (``channels.preview``, ``plan``, ``ws.count``) and
against independent pandas computations on the same workspace."""

from __future__ import annotations

import datetime as dt
import html

import pandas as pd
import pytest
from engagelab.widgets.campaign_builder import CampaignBuilder

from engagelab.campaigns import (
    DND,
    Campaign,
    Delivery,
    FrequencyCap,
    Goal,
    Schedule,
    Variant,
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
    # independent: reachable by push = has a token and did not opt out; 10% held out
    reachable = profiles["push_token"].notna() & ~profiles["optout_push"].fillna(False).astype(bool)
    f = direct.to_pandas()
    assert direct.reach == int(reachable.sum()) - int(
        ((f["decision"] == "control") & f["user_id"].isin(profiles.loc[reachable, "user_id"])).sum()
    )
    assert abs((f["decision"] == "control").mean() - 0.10) < 0.04
    assert f"reach <b>{direct.reach:,}</b> of {len(profiles):,}" in cb.reach_html.value
    assert "unreachable" in cb.reach_html.value


def test_spec_round_trips_and_save_loads(sim_ws):
    c = Campaign(
        id="rt", name="Round trip", channel="email",
        variants=(
            Variant("A", {"from": "News <news@example.com>", "subject": "Hi {{ profile.name }}",
                          "text": "t"}, 0.3),
            Variant("B", {"from": "news@example.com", "subject": "Hello", "html": "<b>x</b>",
                          "reply_to": "r@example.com"}, 0.7),
        ),
        schedule=Schedule("recurring", cron="30 8 * * 1-5", timezone="Europe/Berlin"),
        audience="over30", control_percent=12.5, respect_global_control=False,
        labels=("Onboarding", "Promo"), goal=Goal("Charged", 12, "revenue"),
        delivery=Delivery(user_timezone=True, if_passed="next_day", default_timezone="Europe/Paris",
                          dnd=(DND("21:30", "07:00", ("mon", "fri"), "drop"), DND("12:00", "13:00")),
                          caps=(FrequencyCap(3, 7, "days", "rolling", "email"),
                                FrequencyCap(1, 1, "days", "calendar", "*")),
                          min_gap_hours=48, throttle_per_minute=100, ttl_hours=6,
                          cut_off=dt.datetime(2026, 2, 1, tzinfo=dt.UTC)),
    )  # fmt: skip
    cb = CampaignBuilder(sim_ws, c, debounce=0)
    assert cb.error == ""
    assert cb.campaign == c
    assert Campaign.from_json(cb.spec_json) == c
    cb.save_button.click()
    assert cb.error == "" and "saved <b>rt</b>" in cb.save_status.value
    assert load_campaign(sim_ws, "rt") == c
    assert CampaignBuilder(sim_ws, "rt", debounce=0).campaign == c
    built = Campaign(id="seg", channel="sms", variants=(Variant("A", {"text": "Hi"}),),
                     audience=Segment(prop("age") >= 50),
                     schedule=Schedule("inaction", event="App Launched", not_event="Charged",
                                       within_hours=36, time="10:30"))  # fmt: skip
    assert CampaignBuilder(sim_ws, built, debounce=0).campaign == built


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
