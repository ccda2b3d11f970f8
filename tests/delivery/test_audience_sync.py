"""Remarketing audiences as a sync: full file + add/remove deltas against the last committed
sync, consent and opt-outs left out, history in the state DB, crash-safe (a real SIGKILL).

Expected rows are built here from hand-normalised identifiers hashed with hashlib, not with
engagelab's normalisation.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

from engagelab import Workspace
from engagelab.campaigns import Campaign, Schedule, Variant, plan, send
from engagelab.delivery import AudienceSync, sync_audience, sync_history
from engagelab.delivery.registry import provider_for
from engagelab.delivery.remarketing import RemarketingProvider
from engagelab.errors import ValidationError
from engagelab.segments import Segment, prop
from engagelab.storage.tables import audience_syncs

ROOT = Path(__file__).resolve().parents[2]


def h(s):
    return hashlib.sha256(s.encode("utf-8")).hexdigest() if s else ""


#: raw identifiers, and their normalised forms written by hand: (e-mail, Meta phone, Google phone)
RAW = {
    "a": ("  Ada@Example.ORG ", "+44 20 7946 0018"),
    "b": ("bob@shop.example", None),
    "c": (None, "0049 151 0000 0001"),
    "c2": ("Cy@Mail.example", "0049 151 0000 0001"),  # c's e-mail added later
    "d": ("dee@x.example", "+1 (415) 555-2671"),
}
NORM = {
    "a": ("ada@example.org", "442079460018", "+442079460018"),
    "b": ("bob@shop.example", None, None),
    "c": (None, "4915100000001", "+4915100000001"),
    "c2": ("cy@mail.example", "4915100000001", "+4915100000001"),
    "d": ("dee@x.example", "14155552671", "+14155552671"),
}
HEADER = {"facebook_audience": ["EMAIL", "PHONE"], "google_ads": ["Email", "Phone"]}


def user(uid, ident=None, **flags):
    email, phone = RAW[ident or uid]
    return {"user_id": uid, "email": email, "phone": phone, "ad_consent": True, **flags}


def row(channel, ident):
    email, fb, g = NORM[ident]
    return (h(email), h(fb if channel == "facebook_audience" else g))


def read(path):
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    return rows[0], [tuple(r) for r in rows[1:]]


def check(s: AudienceSync, channel, now: set, before: set):
    """Full file == ``now``; add/remove == the set differences; sorted, no duplicates."""
    for path, want in ((s.full, now), (s.add, now - before), (s.remove, before - now)):
        header, rows = read(path)
        assert header == HEADER[channel]
        assert rows == sorted(want), path.name
    assert (s.members, s.added, s.removed) == (len(now), len(now - before), len(before - now))


RUNS = [
    # run 1: a, b, c are in; the others are left out, one reason each
    [
        user("a"),
        user("b"),
        user("c"),
        user("x", "d", optout_email=True),
        user("y", "d", ad_consent=False),
        user("z", "d", ad_consent=None),
        user("v", "d", unsubscribed=True),
        {"user_id": "w", "email": " ", "phone": None, "ad_consent": True},
    ],
    # run 2: a left, d joined; b twice; e shares d's identifiers (one row)
    [user("b"), user("b"), user("c"), user("d"), user("e", "d")],
    # run 3: c's e-mail is now known (old row out, new row in); a is back but opted out
    [user("c", "c2"), user("d"), user("a", optout_email=True)],
]
MEMBERS = [{"a", "b", "c"}, {"b", "c", "d"}, {"c2", "d"}]


@pytest.mark.parametrize("channel", ["facebook_audience", "google_ads"])
def test_three_runs_full_file_and_exact_deltas(any_ws, channel):
    ws = any_ws
    before: set = set()
    syncs = []
    for i, (members, idents) in enumerate(zip(RUNS, MEMBERS, strict=True)):
        s = sync_audience(ws, channel, "lapsed", pd.DataFrame(members), f"day-{i + 1}")
        now = {row(channel, x) for x in idents}
        check(s, channel, now, before)
        assert not s.reused and s.base_id == (syncs[-1].sync_id if syncs else None)
        syncs.append(s)
        before = now
    assert syncs[0].excluded == {
        "no_ad_consent": 2,
        "no_identifier": 1,
        "opted_out": 1,
        "unsubscribed": 1,
    }
    assert syncs[1].excluded == {} and syncs[2].excluded == {"opted_out": 1}
    assert syncs[1].decisions == {"b": "member", "c": "member", "d": "member", "e": "member"}
    hist = sync_history(ws, "lapsed", channel)
    assert hist["run_key"].tolist() == ["day-1", "day-2", "day-3"]
    assert hist[["members", "added", "removed"]].values.tolist() == [
        [3, 3, 0],
        [3, 1, 1],
        [2, 1, 2],
    ]
    assert hist["files"][2]["full"].startswith(f"outputs/remarketing/{channel}/lapsed/day-3-")
    assert "rows" not in hist.columns
    # the two platforms keep separate histories
    other = "google_ads" if channel == "facebook_audience" else "facebook_audience"
    assert sync_history(ws, "lapsed", other).empty


def test_consent_is_required_and_members_can_be_user_ids(ws):
    ws.ingest(
        pd.DataFrame(
            {
                "user_id": ["a", "b", "c", "d"],
                "email": ["a@x.example", "b@x.example", "c@x.example", "d@x.example"],
                "optout_email": [False, True, False, False],
                "ad_consent": [True, True, False, None],
            }
        ),
        table="profiles",
        quiet=True,
    )
    s = sync_audience(ws, "google_ads", "ids", ["a", "b", "c", "d"], "r1", identifiers=["email"])
    assert read(s.full) == (["Email"], [(h("a@x.example"),)])
    assert s.excluded == {"no_ad_consent": 2, "opted_out": 1}
    # a workspace without the ad_consent column: nobody has consented, nobody is exported
    bare = [{"user_id": "a", "email": "a@x.example"}, {"user_id": "b", "email": "b@x.example"}]
    s = sync_audience(ws, "facebook_audience", "bare", bare, "r1")
    assert s.members == 0 and s.excluded == {"no_ad_consent": 2}
    assert read(s.full) == (["EMAIL", "PHONE"], [])
    # only a real boolean true is consent
    odd = [user("a", ad_consent="yes"), user("b", ad_consent=1)]
    assert sync_audience(ws, "google_ads", "odd", odd, "r1").excluded == {"no_ad_consent": 2}


def test_names_are_hashed_per_platform(ws):
    people = [{"user_id": "a", "email": "a@x.example", "first_name": " Mary-Ann ",
               "last_name": "O'Neil", "ad_consent": True}]  # fmt: skip
    ids = ("email", "first_name", "last_name")
    fb = sync_audience(ws, "facebook_audience", "n", people, "r1", identifiers=ids)
    gg = sync_audience(ws, "google_ads", "n", people, "r1", identifiers=ids)
    assert read(fb.full) == (["EMAIL", "FN", "LN"], [(h("a@x.example"), h("maryann"), h("oneil"))])
    assert read(gg.full) == (
        ["Email", "First Name", "Last Name"],
        [(h("a@x.example"), h("mary-ann"), h("o'neil"))],
    )
    with pytest.raises(ValidationError, match=r"identifiers.*differ from the last sync"):
        sync_audience(ws, "google_ads", "n", people, "r2")
    with pytest.raises(ValidationError, match=r"identifiers.*'email' or 'phone'"):
        sync_audience(ws, "google_ads", "m", people, "r1", identifiers=["first_name"])
    with pytest.raises(ValidationError, match=r"identifiers\[0\] == 'madid'"):
        sync_audience(ws, "google_ads", "m", people, "r1", identifiers=["madid"])
    with pytest.raises(ValidationError, match=r"channel == 'email'"):
        sync_audience(ws, "email", "m", people, "r1")


def _files(s):
    return {p.name: p.read_bytes() for p in (s.full, s.add, s.remove)}


def test_rerun_of_a_run_key_writes_the_same_files_and_records_nothing(ws):
    s1 = sync_audience(ws, "google_ads", "a", RUNS[0], "day-1")
    s2 = sync_audience(ws, "google_ads", "a", RUNS[1], "day-2")
    first = _files(s2)
    s2.full.write_text("tampered\n")
    s2.add.unlink()
    # a rerun with other members (a changed profile) still gives the recorded files
    again = sync_audience(ws, "google_ads", "a", RUNS[2], "day-2")
    assert again.reused and again.sync_id == s2.sync_id and again.base_id == s1.sync_id
    assert _files(again) == first
    assert _files(sync_audience(ws, "google_ads", "a", RUNS[0], "day-1")) == _files(s1)
    assert len(sync_history(ws, "a")) == 2


def _spawn(ws, channel, run_key, members, at):
    return subprocess.Popen(
        [sys.executable, "-m", "tests.delivery.audience_sync_worker", str(ws.path), channel,
         "lapsed", run_key, json.dumps(members), at],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=os.environ | {"PYTHONPATH": str(ROOT)},
    )  # fmt: skip


def _kill_when_stopped(p):
    line = p.stdout.readline()
    assert line.strip() == "STOPPED", (line, p.stderr.read() if p.poll() is not None else "")
    os.kill(p.pid, signal.SIGKILL)
    assert p.wait(timeout=30) == -signal.SIGKILL


@pytest.mark.parametrize("at", ["mid-write", "before-commit"])
def test_sigkill_mid_sync_leaves_the_last_committed_sync_as_base(any_ws, at):
    ws = any_ws
    channel = "google_ads"
    sets = [{row(channel, x) for x in m} for m in MEMBERS]
    s1 = sync_audience(ws, channel, "lapsed", RUNS[0], "day-1")
    p = _spawn(ws, channel, "day-2", RUNS[1], at)
    _kill_when_stopped(p)
    # nothing of day 2 is recorded; what it left on disk is either complete or the old file
    assert sync_history(ws, "lapsed")["run_key"].tolist() == ["day-1"]
    folder = s1.full.parent.parent
    day2 = next(d for d in folder.iterdir() if d.name.startswith("day-2-"))
    temps = [x.name for x in day2.iterdir() if x.name.endswith(".tmp")]
    assert bool(temps) == (at == "mid-write")
    assert (day2 / "full.csv").exists() == (at == "before-commit")
    # another run key now: its deltas are against day 1, the last committed sync
    s3 = sync_audience(ws, channel, "lapsed", RUNS[2], "day-3")
    assert s3.base_id == s1.sync_id
    check(s3, channel, sets[2], sets[0])
    # the killed run key, run again: complete files against the latest sync, no temp left
    s2 = sync_audience(ws, channel, "lapsed", RUNS[1], "day-2")
    assert s2.base_id == s3.sync_id and not s2.reused
    check(s2, channel, sets[1], sets[2])
    assert not [x for x in day2.iterdir() if x.name.endswith(".tmp")]
    with ws.state.read() as conn:
        n = conn.execute(sa.select(sa.func.count()).select_from(audience_syncs)).scalar_one()
    assert n == 3


def test_table_is_created_in_a_database_that_lacks_it(tmp_path):
    w = Workspace.create(tmp_path / "old")
    with w.state.write() as conn:
        audience_syncs.drop(conn)
    w.close()
    from engagelab.delivery import audience_sync as A

    A._READY.clear()
    w = Workspace.open(tmp_path / "old")  # a current schema version: no upgrade runs
    try:
        s = sync_audience(w, "google_ads", "x", RUNS[0], "r1")
        assert s.members == 3 and len(sync_history(w, "x")) == 1
    finally:
        w.close()


# --------------------------------------------------------------------------- campaigns
def test_daily_campaign_audience_is_synced_not_appended(ws):
    ids = [f"u{i}" for i in range(8)]
    ws.ingest(
        pd.DataFrame(
            {
                "user_id": ids,
                "email": [f"{u}@x.example" for u in ids],
                "plan": ["pro"] * 7 + ["free"],
                "optout_email": [False] * 8,
                "ad_consent": [True] * 6 + [False, True],
            }
        ),
        table="profiles",
        quiet=True,
    )
    c = Campaign(
        id="ads",
        channel="facebook_audience",
        audience=Segment(prop("plan") == "pro"),
        schedule=Schedule("recurring", cron="0 9 * * *", timezone="UTC"),
        variants=(Variant("A", {"audience_name": "Pro users", "identifiers": ["email"]}),),
    )
    changes = {
        2: {"u0": {"plan": "free"}, "u7": {"plan": "pro"}, "u1": {"optout_email": True}},
        3: {"u6": {"ad_consent": True}, "u2": {"plan": "free"}},
    }
    want = {1: {0, 1, 2, 3, 4, 5}, 2: {2, 3, 4, 5, 7}, 3: {3, 4, 5, 6, 7}}
    reasons = {  # u6: no consent until day 3; u1 opted out from day 2
        1: {"no_ad_consent": 1},
        2: {"no_ad_consent": 1, "opted_out": 1},
        3: {"opted_out": 1},
    }
    before: set = set()
    for day in (1, 2, 3):
        for uid, change in changes.get(day, {}).items():
            ws.ingest(pd.DataFrame([{"user_id": uid, **change}]), table="profiles", quiet=True)
        r = send(ws, plan(ws, c, f"2026-03-0{day}T09:00:00Z"), f"ads-{day}")
        hist = sync_history(ws, "ads", "facebook_audience")
        assert len(hist) == day
        files = {k: ws.path / v for k, v in hist["files"].iloc[-1].items()}
        now = {(h(f"u{i}@x.example"),) for i in want[day]}
        assert read(files["full"]) == (["EMAIL"], sorted(now))
        assert read(files["add"])[1] == sorted(now - before)
        assert read(files["remove"])[1] == sorted(before - now)
        # the users of the segment left out are suppressed by the plan, with the reason
        assert r.failed == 0 and r.reasons == reasons[day], r
        before = now
    # the provider re-checks at delivery: a profile changed after planning fails the message
    p = plan(ws, c, "2026-03-04T09:00:00Z")
    ws.ingest(pd.DataFrame([{"user_id": "u3", "ad_consent": False}]), table="profiles", quiet=True)
    r = send(ws, p, "ads-4")
    assert r.failed == 1
    with ws.state.read() as conn:
        errors = conn.execute(
            sa.text("SELECT DISTINCT error FROM el_campaign_ledger WHERE status = 'failed'")
        ).scalars()
        assert list(errors) == ["not in the audience: no_ad_consent"]
    assert sync_history(ws, "ads")["members"].tolist()[-1] == 4
    # no append file any more
    assert not (ws.path / "outputs" / "remarketing" / "facebook_audience" / "ads.csv").exists()


def test_provider_with_a_run_key_needs_a_campaign_run(ws):
    p = provider_for("google_ads", ws, {"run_key": "nope"})
    assert isinstance(p, RemarketingProvider) and p.run_key == "nope"
    with pytest.raises(ValidationError, match=r"run_key == 'nope', has no run of campaign 'c1'"):
        p.sync("c1")
