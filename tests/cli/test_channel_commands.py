"""``engagelab channel ...`` through the real CLI entry point (``cli.main``)."""

from __future__ import annotations

import datetime as dt
import json

import pandas as pd
import pytest

import engagelab.cli.app as cli
from engagelab.channels import InAppContent, preview
from engagelab.delivery.inbox import InboxProvider
from engagelab.delivery.protocol import OutgoingMessage


@pytest.fixture
def run(capsys):
    assert "engagelab.cli.channels" in cli.PLUGINS

    def _run(*argv):
        code = cli.main(list(argv))
        out, err = capsys.readouterr()
        return code, out, err

    return _run


def test_list_preview_and_inbox(ws, run):
    ws.ingest(pd.DataFrame({"user_id": ["u1"], "phone": ["+4915112345678"], "name": ["Jörg"]}),
              table="profiles", quiet=True)  # fmt: skip
    code, out, _ = run("channel", "list", "--format", "json")
    rows = json.loads(out)
    assert code == 0 and len(rows) == 12
    assert {"channel": "sms", "reach_field": "phone", "reach_fields": "phone",
            "optout_field": "optout_sms", "reaches": "users with a phone number",
            "delivery": "sent", "content": "SmsContent"} in rows  # fmt: skip
    in_app = next(r for r in rows if r["channel"] == "in_app")
    assert in_app["reach_fields"] == "app_install_id, push_token" and in_app["optout_field"] is None
    content = json.dumps({"text": "Hi {{ profile.name }}, code {{ event.code }}"})
    code, out, err = run("channel", "preview", "sms", "--content", content, "--user", "u1",
                       "--event", '{"code": "42"}', "-w", str(ws.path))  # fmt: skip
    assert code == 0, err
    got = json.loads(out)
    assert code == 0 and got["text"] == "Hi Jörg, code 42" and got["to"] == "+4915112345678"
    assert got["segments"] == 1
    bad = json.dumps({"text": "Hi {{ profile.nmae }}"})
    code, _, err = run(
        "channel", "preview", "sms", "--content", bad, "--user", "u1", "-w", str(ws.path)
    )
    assert code != 0 and "sms.text: unknown variable 'profile.nmae'" in err
    code, _, err = run("channel", "preview", "sms", "--content", content, "--user", "nobody",
                       "--event", '{"code": "1"}', "-w", str(ws.path))  # fmt: skip
    assert code != 0 and "--user == 'nobody', is not a user" in err

    t0 = dt.datetime(2026, 3, 1, 9, tzinfo=dt.UTC)
    c = InAppContent(title="Hi {{ profile.name }}", body="b")
    m = OutgoingMessage(
        "k1", "u1", "c1", "A", "in_app", "u1", preview(c, {"name": "Jörg"}), t0, (), None
    )
    InboxProvider(ws, "in_app").deliver([m])
    args = (
        "channel",
        "inbox",
        "u1",
        "--at",
        "2026-03-01T10:00:00Z",
        "-w",
        str(ws.path),
        "--format",
        "json",
    )
    code, out, _ = run(*args, "--peek")
    assert code == 0 and [x["payload"]["title"] for x in json.loads(out)["messages"]] == ["Hi Jörg"]
    run(*args)  # records the one allowed impression
    code, out, _ = run(*args)
    assert json.loads(out)["messages"] == []


def test_inbox_shows_exit_intent_pop_ups_on_the_flag_only(ws, run):
    from engagelab.channels import WebExitIntentContent

    t0 = dt.datetime(2026, 3, 1, 9, tzinfo=dt.UTC)
    c = WebExitIntentContent(title="Wait!", body="b", display={"delay_seconds": 60})
    m = OutgoingMessage(
        "k1", "u1", "c1", "A", "web_exit_intent", "u1", preview(c, {}), t0, (), None
    )
    InboxProvider(ws, "web_exit_intent").deliver([m])

    def keys(at, *flags):
        code, out, err = run("channel", "inbox", "u1", "--at", at, "--peek", *flags,
                             "-w", str(ws.path), "--format", "json")  # fmt: skip
        assert code == 0, err
        return [x["key"] for x in json.loads(out)["messages"]]

    assert keys("2026-03-01T09:05:00Z") == []
    assert keys("2026-03-01T09:05:00Z", "--exit-intent") == ["k1"]
    assert keys("2026-03-01T09:00:30Z", "--exit-intent") == []  # display delay of 60 s
