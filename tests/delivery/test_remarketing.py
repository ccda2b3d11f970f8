"""Remarketing exports: hashes checked against hashlib on hand-normalised values."""

from __future__ import annotations

import csv
import hashlib

import pandas as pd
import pytest

from engagelab.channels import content_from_dict
from engagelab.delivery.registry import provider_for
from engagelab.delivery.remarketing import RemarketingProvider, export_audience

from .conftest import message

PROFILES = [
    {"user_id": "a", "email": "  Ada.Lovelace@Example.ORG ", "phone": "+44 20 7946 0018"},
    {"user_id": "b", "email": "bob@shop.example", "phone": None},
    {"user_id": "c", "email": None, "phone": "(415) 555-2671"},  # no country code given: as is
    {"user_id": "d", "email": None, "phone": None},
]


def h(s):
    return hashlib.sha256(s.encode()).hexdigest()


def read(path):
    with open(path, newline="") as f:
        return list(csv.reader(f))


def test_facebook_and_google_layouts(ws):
    fb = export_audience(ws, "facebook_audience", pd.DataFrame(PROFILES), "spring")
    gg = export_audience(ws, "google_ads", PROFILES, "spring")
    assert fb == ws.path / "outputs" / "remarketing" / "facebook_audience" / "spring.csv"
    assert read(fb) == [
        ["email", "phone"],
        [h("ada.lovelace@example.org"), h("442079460018")],  # Meta: digits, no '+'
        [h("bob@shop.example"), ""],
        ["", h("4155552671")],
    ]
    assert read(gg) == [
        ["Email", "Phone"],
        [h("ada.lovelace@example.org"), h("+442079460018")],  # Google: E.164 with '+'
        [h("bob@shop.example"), ""],
        ["", h("+4155552671")],
    ]


def test_provider_appends_idempotently_and_repairs_after_a_crash(ws):
    content = content_from_dict("google_ads", {"audience_name": "Lapsed", "identifiers": ["email"]})
    msgs = [
        message(f"k{p['user_id']}", p["email"], content.render(p), channel="google_ads")
        for p in PROFILES
    ]
    assert msgs[0].payload == {
        "audience_name": "Lapsed",
        "email_sha256": h("ada.lovelace@example.org"),
    }
    p = provider_for("google_ads", ws, {"identifiers": ["email"]})
    assert isinstance(p, RemarketingProvider)
    res = p.deliver(msgs)
    assert [r.ok for r in res] == [True, True, False, False]
    assert res[2].permanent and "no email" in res[2].error
    p2 = RemarketingProvider("google_ads", ws, ("email",))
    p2.deliver(msgs[:2])  # a rerun re-delivers in-doubt keys: nothing written twice
    path = p.path("c1")
    assert read(path) == [["Email"], [h("ada.lovelace@example.org")], [h("bob@shop.example")]]
    # a crash after the journal write but before the CSV row: the next run repairs the CSV
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[:-1]) + lines[-1][:10])  # torn last line
    RemarketingProvider("google_ads", ws, ("email",)).deliver(msgs[:2])
    assert read(path) == [["Email"], [h("ada.lovelace@example.org")], [h("bob@shop.example")]]


def test_audience_content_validation():
    with pytest.raises(ValueError, match=r"facebook_audience.identifiers\[0\] == 'madid'"):
        content_from_dict("facebook_audience", {"audience_name": "x", "identifiers": ["madid"]})
    c = content_from_dict("facebook_audience", {"audience_name": "x"})
    assert c.template_variables() == {"profile.email", "profile.phone"}
    assert content_from_dict("facebook_audience", c.to_dict()) == c
