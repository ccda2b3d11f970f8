"""Channel registry, content models (validation, round trip), personalisation and preview."""

from __future__ import annotations

import json

import pytest

from engagelab.channels import (
    CHANNELS,
    EmailContent,
    PushContent,
    SmsContent,
    TemplateError,
    content_from_dict,
    known_variables,
    preview,
)
from engagelab.errors import ValidationError
from engagelab.schema import CHANNEL_OPTOUT

VALID = {
    "push": {"title": "Hi {{ profile.name }}", "body": "b", "deep_link": "shop://cart",
             "image_url": "https://cdn.example/i.png", "data": {"sku": "{{ event.sku }}"}},
    "in_app": {"title": "t", "body": "b", "button_text": "Go", "button_url": "shop://x",
               "display": {"max_impressions": 2, "trigger_event": "App Launched"}},
    "app_inbox": {"title": "t", "body": "b", "tags": ["promo"]},
    "native_display": {"title": "t", "body": "b", "kind": "custom_kv", "kv": {"k": "{{ profile.plan }}"}},
    "web_push": {"title": "t", "body": "b", "url": "https://shop.example/?u={{ profile.user_id }}"},
    "web_popup": {"title": "t", "body": "b", "display": {"pages": ["https://shop.example/*"]}},
    "web_exit_intent": {"title": "Wait!", "body": "10% off", "ttl_seconds": 3600},
    "email": {"from": "Shop <a@shop.example>", "subject": "s {{ profile.name }}", "text": "t"},
    "sms": {"text": "Code {{ event.code }}", "sender_id": "SHOP"},
    "webhook": {"url": "https://hooks.example/x", "method": "PUT", "headers": {"X-A": "1"},
                "body": {"user": "{{ profile.user_id }}", "n": [1, "{{ event.sku }}"], "ok": True}},
    "facebook_audience": {"audience_name": "a"},
    "google_ads": {"audience_name": "a", "identifiers": ["phone"]},
}  # fmt: skip


def test_registry_matches_the_schema():
    assert list(CHANNELS)[:10] == list(CHANNEL_OPTOUT)
    for name, (reach, optout) in CHANNEL_OPTOUT.items():
        info = CHANNELS[name]
        assert (info.reach_field, info.optout_field) == (reach, optout)
        assert info.content_cls.channel == name
    pulled = {n for n, i in CHANNELS.items() if i.delivery == "pulled"}
    assert pulled == {"in_app", "app_inbox", "native_display", "web_popup", "web_exit_intent"}
    assert {n for n, i in CHANNELS.items() if i.delivery == "export"} == {
        "facebook_audience",
        "google_ads",
    }
    assert CHANNELS["email"].delivery == "sent"


@pytest.mark.parametrize("channel", list(VALID))
def test_round_trip_through_dict_and_json(channel):
    c = content_from_dict(channel, VALID[channel])
    d = c.to_dict()
    assert content_from_dict(channel, json.loads(json.dumps(d))) == c
    assert content_from_dict(channel, c) is c
    with pytest.raises(Exception, match=r"is frozen.*use \w+\.replace\("):
        c.title = "x"  # type: ignore[misc]


BAD = [
    ("fax", {}, r"^channel == 'fax', must be one of 'push'"),
    ("push", {"title": "", "body": "b"}, r"^push.title == '', must be a non-empty string"),
    ("push", {"title": "x" * 101, "body": "b"}, r"^push.title == .*at most 100 characters"),
    ("push", {"body": "b"}, r"^push.title == None, is required"),
    ("push", {"title": "t", "body": "b", "deep_link": "no scheme"}, r"^push.deep_link"),
    ("push", {"title": "t", "body": "b", "image_url": "ftp://x/i.png"}, r"^push.image_url == .*http"),
    ("push", {"title": "t", "body": "b", "priority": "urgent"}, r"^push.priority"),
    ("push", {"title": "t", "body": "b", "ttl_seconds": 0}, r"^push.ttl_seconds == 0"),
    ("push", {"title": "t", "body": "b", "colour": "red"}, r"^push.colour == 'red', is not a push field"),
    ("email", {"from": "nobody", "subject": "s", "text": "t"}, r"^email.from == 'nobody'"),
    ("email", {"from": "a@b.org", "subject": "s"}, r"^email.html == None, or email.text is required"),
    ("email", {"from": "a@b.org", "subject": "a\nb", "text": "t"}, r"^email.subject .*one line"),
    ("email", {"from": "a@b.org", "subject": "s", "text": "t", "reply_to": "x"}, r"^email.reply_to"),
    ("email", {"from": "a@b.org", "subject": "{{ profile.x ", "text": "t"}, r"^email.subject: template syntax error"),
    ("email", {"from": "a@b.org", "subject": "{{ first_name }}", "text": "t"}, r"^email.subject: unknown variable 'first_name'"),
    ("sms", {"text": "x" * 1600, "max_segments": 10}, r"^sms.text == .*11 GSM-7 segments, more than max_segments 10"),
    ("sms", {"text": "hi", "sender_id": "A very long sender"}, r"^sms.sender_id"),
    ("webhook", {"url": "hooks.example/x"}, r"^webhook.url == .*http"),
    ("webhook", {"url": "https://h.example", "method": "TRACE"}, r"^webhook.method"),
    ("webhook", {"url": "https://h.example", "method": "GET", "body": {"a": 1}}, r"^webhook.body .*empty for GET"),
    ("webhook", {"url": "https://h.example", "body": {"a": object()}}, r"^webhook.body.a"),
    ("webhook", {"url": "https://h.example", "headers": {"Bad Header": "1"}}, r"^webhook.headers.Bad Header"),
    ("in_app", {"title": "t", "body": "b", "layout": "popup"}, r"^in_app.layout"),
    ("in_app", {"title": "t", "body": "b", "display": {"max_impressions": 0}}, r"^display.max_impressions == 0"),
    ("in_app", {"title": "t", "body": "b", "display": {"when": "now"}}, r"^in_app.display.when"),
    ("web_popup", {"title": "t", "body": "b", "display": {"pages": "x"}}, r"^display.pages"),
    ("native_display", {"title": "t", "body": "b", "kind": "tile"}, r"^native_display.kind"),
    ("web_push", {"title": "t", "body": "b"}, r"^web_push.url == None, is required"),
]  # fmt: skip


@pytest.mark.parametrize(("channel", "data", "match"), BAD)
def test_bad_content_is_one_clear_error_naming_the_field(channel, data, match):
    with pytest.raises(ValidationError, match=match) as info:
        content_from_dict(channel, data)
    assert "\n" not in str(info.value)


def test_credentials_in_content_are_refused():
    with pytest.raises(
        ValidationError, match=r"^email.smtp_password == '\*\*\*', credentials are not allowed"
    ):
        content_from_dict(
            "email", {"from": "a@b.org", "subject": "s", "text": "t", "smtp_password": "hunter2"}
        )
    with pytest.raises(ValidationError, match=r"^webhook.headers.Authorization == '\*\*\*'"):
        content_from_dict(
            "webhook", {"url": "https://h.example", "headers": {"Authorization": "Bearer x"}}
        )
    with pytest.raises(ValidationError, match=r"^webhook.body.auth.api_key"):
        content_from_dict(
            "webhook", {"url": "https://h.example", "body": {"auth": {"api_key": "k"}}}
        )


def test_personalisation_defaults_strictness_and_events():
    c = PushContent(
        title="Hi {{ profile.name | default('there') }}", body="{{ event.product }} is back"
    )
    assert c.template_variables() == {"profile.name", "event.product"}
    out = c.render({"profile": {"name": None}, "event": {"product": "Tea"}})  # null -> default
    assert (out["title"], out["body"]) == ("Hi there", "Tea is back")
    with pytest.raises(TemplateError, match=r"^push.body: event.product is missing for this user"):
        c.render({"profile": {"name": "Ada"}})
    nan = float("nan")
    assert c.render({"profile": {"name": nan}, "event": {"product": "x"}})["title"] == "Hi there"
    # a flat profile record works as the context too
    flat = PushContent(title="Hi {{ profile.name }}", body="b")
    assert flat.render({"user_id": "u", "name": "Bo"})["title"] == "Hi Bo"


def test_validate_variables_against_known_columns():
    c = EmailContent(sender="a@b.org", subject="{{ profile.frist_name }}", text="{{ event.sku }}")
    with pytest.raises(
        TemplateError,
        match=r"^email.subject: unknown variable 'profile.frist_name': not a profile column",
    ):
        c.validate_variables({"first_name", "event.sku"})
    with pytest.raises(
        TemplateError,
        match=r"^email.text: unknown variable 'event.sku': not a property of the trigger event",
    ):
        c.validate_variables({"profile.frist_name"})
    c.validate_variables({"profile.frist_name", "event.sku"})


def test_known_variables_of_a_workspace(ws):
    import pandas as pd

    ws.ingest(
        pd.DataFrame({"user_id": ["u1"], "first_name": ["Ada"]}), table="profiles", quiet=True
    )
    known = known_variables(ws)
    assert {"profile.first_name", "profile.email", "event.event", "event.ts"} <= known
    assert not any(v.split(".", 1)[1].startswith("_") for v in known)
    c = SmsContent(text="Hi {{ profile.first_name }} {{ profile.shoe_size | default(0) }}")
    with pytest.raises(TemplateError, match="profile.shoe_size"):
        c.validate_variables(known)
    assert "event.event" not in known_variables(ws, event=False)


def test_email_autoescapes_html_only():
    c = EmailContent(sender="a@b.org", subject="{{ profile.name }}", html="<b>{{ profile.name }}</b>",
                     text="{{ profile.name }}")  # fmt: skip
    out = c.render({"profile": {"name": "<script>x</script>"}})
    assert out["html"] == "<b>&lt;script&gt;x&lt;/script&gt;</b>"
    assert out["text"] == out["subject"] == "<script>x</script>"
    assert out["from"] == "a@b.org"
    with pytest.raises(TemplateError, match=r"^email.subject == .*must render to one line"):
        c.render({"profile": {"name": "a\nBcc: victim@x.org"}})


def test_sms_segments_of_the_rendered_text():
    c = SmsContent(text="Hallo {{ profile.name }}, dein Code ist 42", max_segments=1)
    assert preview(c, {"phone": "+49151", "name": "Jörg"}) == {
        "channel": "sms", "to": "+49151", "text": "Hallo Jörg, dein Code ist 42", "sender_id": None,
        "max_segments": 1, "encoding": "GSM-7", "units": 28, "segments": 1,
    }  # fmt: skip
    assert preview(c, {"name": "Zoë 😀"})["encoding"] == "UCS-2"
    with pytest.raises(
        TemplateError, match=r"^sms.text == .*2 GSM-7 segments, more than max_segments 1"
    ):
        c.render({"profile": {"name": "x" * 200}})


def test_push_payload_limit_and_preview_of_every_channel():
    c = PushContent(title="t", body="{{ profile.bio }}")
    with pytest.raises(TemplateError, match="over 4096 bytes"):
        c.render({"profile": {"bio": "é" * 990 * 3}})
    profile = {"user_id": "u1", "name": "Ada", "plan": "pro", "email": "ada@x.org", "phone": "+4479",
               "push_token": "tok", "webpush_subscription": "https://push/sub"}  # fmt: skip
    event = {"sku": "S1", "code": "1234"}
    for channel, data in VALID.items():
        c = content_from_dict(channel, data)
        out = preview(c, profile, event)
        assert out["channel"] == channel
        assert out["to"] == profile.get(CHANNELS[channel].reach_field)
    assert preview(content_from_dict("webhook", VALID["webhook"]), profile, event)["body"] == {
        "user": "u1", "n": [1, "S1"], "ok": True
    }  # fmt: skip
    assert preview(content_from_dict("in_app", VALID["in_app"]), profile)["display"] == {
        "max_impressions": 2, "trigger_event": "App Launched", "pages": [], "delay_seconds": 0
    }  # fmt: skip
