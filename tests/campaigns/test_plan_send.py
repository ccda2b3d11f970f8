"""Plan and send on SQLite and PostgreSQL: decisions, control groups, effectively-once
reruns against the audience snapshot, system events consistent with the ledger."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from engagelab.campaigns import (
    Campaign,
    Delivery,
    Schedule,
    Variant,
    list_campaigns,
    load_campaign,
    plan,
    read_outbox,
    recommended_delay,
    save_campaign,
    send,
    set_global_control,
)
from engagelab.delivery import ledger as L
from engagelab.delivery.outbox import outbox_path
from engagelab.delivery.protocol import DeliveryResult
from engagelab.errors import ValidationError
from engagelab.experiments import bucket
from tests.campaigns.conftest import add_users, campaign, email, profiles

LD = "2026-02-02T09:00:00Z"


def _events(ws, run_key=None):
    return ws.sql(
        "SELECT event, user_id, variant, message_key, control_group, reason, labels, campaign_id FROM events "
        "WHERE event IN ('Notification Sent', 'Control Group', 'Notification Suppressed')"
    )


def fake_provider(answer):
    """A provider that answers each message with ``answer(message)`` (a DeliveryResult)."""

    class Fake:
        name = "fake"

        def open(self):
            pass

        def close(self):
            pass

        def deliver(self, batch):
            return [answer(m) for m in batch]

    return Fake()


def test_plan_decisions_controls_and_send_once(any_ws):
    ws = any_ws
    df = profiles(1000)
    df.loc[:99, "optout_email"] = True
    df.loc[100:149, "email"] = None
    add_users(ws, df)
    set_global_control(ws, 0.05, salt="g1")
    c = campaign(
        "promo",
        variants=(email("A"), email("B"), email("C")),
        control_percent=10,
        labels=("Promo",),
    )
    p = plan(ws, c, LD, run_key="promo-1")
    f = p.to_pandas()
    assert len(f) == 1000 and f["message_key"].is_unique
    # eligibility first: the opted-out and unreachable users are suppressed, never held out
    ineligible = set(df["user_id"].iloc[:150])
    assert set(f.loc[f["reason"].isin(["opted_out", "unreachable"]), "user_id"]) == ineligible
    # global control: exactly the eligible users whose bucket under the workspace salt is < 500
    glob = {u for u in f["user_id"] if bucket(u, "global-control:g1") < 500 and u not in ineligible}
    assert set(f.loc[f["reason"] == "global_control", "user_id"]) == glob
    camp = f[f["reason"] == "control"]
    assert set(camp["user_id"]).isdisjoint(glob | ineligible) and camp["variant"].isna().all()
    assert abs(len(camp) / (850 - len(glob)) - 0.10) < 0.03
    sup = f[f["decision"] == "suppressed"]
    assert set(sup["reason"]) == {"opted_out", "unreachable"}
    assert ((f["decision"] == "send") == f["reason"].isna()).all()
    assert set(f.loc[f["decision"] == "send", "variant"]) == {"A", "B", "C"}

    r = send(ws, p, "promo-1", batch_size=128)
    assert r.sent == p.reach and r.pending == 0 and r.done
    again = send(ws, p, "promo-1", batch_size=128)
    assert again.sent == 0 and again.already_sent == p.reach and again.attempt == 2
    lines = read_outbox(outbox_path(ws, "promo-1"))
    assert len(lines) == p.reach and len({x["key"] for x in lines}) == p.reach
    ev = _events(ws)
    sent = ev[ev["event"] == "Notification Sent"]
    assert sorted(sent["message_key"]) == sorted(f.loc[f["decision"] == "send", "message_key"])
    assert all(list(x) == ["Promo"] for x in sent["labels"])
    ctrl = ev[ev["event"] == "Control Group"]
    assert (ctrl["control_group"] == "global").sum() == len(glob)
    assert (ctrl["control_group"] == "campaign").sum() == len(camp)
    reasons = ev[ev["event"] == "Notification Suppressed"]["reason"].value_counts().to_dict()
    assert reasons == sup["reason"].value_counts().to_dict()
    with ws.state.read() as conn:
        st = dict(
            conn.execute(
                sa.select(L.ledger.c.status, sa.func.count()).group_by(L.ledger.c.status)
            ).fetchall()
        )
    assert st == {"sent": p.reach}


def test_rerun_uses_the_audience_snapshot(ws):
    add_users(ws, profiles(50))
    c = campaign("snap")
    p = plan(ws, c, LD)

    # the first attempt fails at the provider for every message (transient): all stay claimed
    down = fake_provider(lambda m: DeliveryResult(m.key, False, error="503"))
    r1 = send(ws, p, "snap-1", down, retries=0)
    assert r1.sent == 0 and r1.pending == 50
    add_users(ws, profiles(30, prefix="late"))  # the segment grows after the first attempt
    p2 = plan(ws, c, LD)
    assert p2.reach == 80
    r2 = send(ws, p2, "snap-1")
    assert r2.redelivered == 50 and r2.pending == 0
    users = {x["user_id"] for x in read_outbox(outbox_path(ws, "snap-1"))}
    assert len(users) == 50 and not any(u.startswith("late") for u in users)
    assert (
        int(ws.sql("SELECT count(*) n FROM events WHERE event = 'Notification Sent'")["n"][0]) == 50
    )


def test_permanent_failures_are_final(ws):
    add_users(ws, profiles(10))
    bounce = fake_provider(
        lambda m: DeliveryResult(
            m.key, m.user_id != "u00003", permanent=True, error="550 no such user"
        )
    )
    r = send(ws, plan(ws, campaign("b"), LD), "b-1", bounce)
    assert (r.sent, r.failed, r.pending) == (9, 1, 0)
    assert send(ws, plan(ws, campaign("b"), LD), "b-1", bounce).sent == 0


def test_run_key_of_another_campaign_is_refused(ws):
    add_users(ws, profiles(5))
    send(ws, plan(ws, campaign("x1"), LD), "shared")
    with pytest.raises(ValidationError, match="run_key"):
        send(ws, plan(ws, campaign("x2"), LD), "shared")


def test_save_load_list(any_ws):
    c = campaign("saved", labels=("A",), name="Saved one")
    save_campaign(any_ws, c)
    save_campaign(any_ws, c.replace(name="Renamed"), status="active")
    assert load_campaign(any_ws, "saved").name == "Renamed"
    lst = list_campaigns(any_ws)
    assert lst[["id", "status", "channel"]].values.tolist() == [["saved", "active", "email"]]
    with pytest.raises(ValidationError, match="id"):
        load_campaign(any_ws, "nope")


def _events_df(rows):
    return pd.DataFrame(rows, columns=["user_id", "event", "ts"]).assign(
        ts=lambda d: pd.to_datetime(d["ts"], utc=True)
    )


def test_triggered_inaction_on_date(ws):
    add_users(
        ws,
        profiles(6).assign(
            created_at=pd.to_datetime(
                ["2025-02-02", "2025-02-03", "2024-02-02", None, "2026-01-03", "2026-01-03"],
                utc=True,
            )
        ),
    )
    ws.append(
        "events",
        _events_df(
            [
                ("u00000", "Added to Cart", "2026-02-02 08:00"),
                ("u00000", "Charged", "2026-02-02 08:30"),  # bought within 2 h: not inactive
                ("u00001", "Added to Cart", "2026-02-02 06:00"),  # no purchase within 2 h: inactive
                ("u00001", "Charged", "2026-02-02 08:30"),
                ("u00002", "Added to Cart", "2026-02-01 06:00"),  # too early for this run
                ("u00003", "Added to Cart", "2026-02-02 07:59"),
            ]
        ),
    )
    trig = campaign("trig", schedule=Schedule("triggered", event="Added to Cart"))
    f = plan(ws, trig, "2026-02-02T09:00:00Z").to_pandas()
    assert sorted(f["user_id"]) == ["u00000", "u00001", "u00003"]
    assert str(f.set_index("user_id").loc["u00001", "send_at"]) == "2026-02-02 06:00:00+00:00"
    send(ws, plan(ws, trig, "2026-02-02T09:00:00Z"), "trig-1")
    ws.append("events", _events_df([("u00004", "Added to Cart", "2026-02-02 09:30")]))
    # the next run only sees events since the previous run's logical date
    assert plan(ws, trig, "2026-02-02T10:00:00Z").to_pandas()["user_id"].tolist() == ["u00004"]
    ina = campaign(
        "ina",
        schedule=Schedule("inaction", event="Added to Cart", not_event="Charged", within_hours=2),
    )
    g = plan(ws, ina, "2026-02-02T10:00:00Z").to_pandas().set_index("user_id")
    # u00001 carted 06:00, bought 08:30 (> 2 h); u00003 carted 07:59, nothing; u00000 bought in time
    assert sorted(g.index) == ["u00001", "u00003"]
    assert str(g.loc["u00001", "send_at"]) == "2026-02-02 08:00:00+00:00"
    anniv = campaign(
        "anniv",
        schedule=Schedule(
            "on_date",
            date_property="created_at",
            anniversary=True,
            time="10:00",
            timezone="Europe/Berlin",
        ),
    )
    h = plan(ws, anniv, "2026-02-02T05:00:00Z").to_pandas()
    assert sorted(h["user_id"]) == ["u00000", "u00002"]
    assert (h["send_at"] == pd.Timestamp("2026-02-02 09:00", tz="UTC")).all()
    month = campaign(
        "month", schedule=Schedule("on_date", date_property="created_at", offset_days=30)
    )
    assert sorted(plan(ws, month, "2026-02-02T05:00:00Z").to_pandas()["user_id"]) == [
        "u00004",
        "u00005",
    ]


def test_recurring_fires_on_the_logical_local_day(ws):
    add_users(ws, profiles(3))
    rec = campaign(
        "rec", schedule=Schedule("recurring", cron="30 9 * * *", timezone="Europe/Berlin")
    )
    f = plan(ws, rec, "2026-03-28T23:00:00Z").to_pandas()  # local 2026-03-29 00:00 (DST day)
    assert (f["send_at"] == pd.Timestamp("2026-03-29 07:30", tz="UTC")).all()


def test_recommended_delay_matches_pandas(ws):
    rows = []
    rng = np.random.default_rng(3)
    t0 = pd.Timestamp("2026-01-01", tz="UTC")
    for i in range(40):
        a = t0 + pd.Timedelta(hours=int(rng.integers(0, 100)))
        rows.append((f"u{i}", "Viewed", a))
        if i % 4:
            rows += [
                (f"u{i}", "Bought", a + pd.Timedelta(minutes=int(rng.integers(1, 600)))),
                (f"u{i}", "Bought", a + pd.Timedelta(days=3)),
            ]
    ev = pd.DataFrame(rows, columns=["user_id", "event", "ts"])
    ws.append("events", ev)
    got = recommended_delay(ws, "Viewed", "Bought")
    gaps = []
    for _u, g in ev.groupby("user_id"):
        a = g[g.event == "Viewed"]["ts"].iloc[0]
        b = g[(g.event == "Bought") & (g.ts > a)]["ts"]
        if len(b):
            gaps.append((b.min() - a).total_seconds())
    assert got["pairs"] == len(gaps) == 30
    assert got["median"].total_seconds() == pytest.approx(np.median(gaps))
    assert got["mean"].total_seconds() == pytest.approx(np.mean(gaps))


def test_inbox_honours_ttl(ws):
    add_users(ws, profiles(3))
    c = Campaign(
        id="inapp",
        channel="app_inbox",
        variants=(Variant("A", {"title": "New", "body": "hi"}),),
        delivery=Delivery(ttl_hours=24),
    )
    p = plan(ws, c, LD, run_key="inapp-1")
    send(ws, p)
    live = ws.inbox("u00001", "2026-02-02T12:00:00Z", record=False)
    assert [m.key for m in live] == (
        p.to_pandas().set_index("user_id").loc[["u00001"], "message_key"].tolist()
    )
    assert live[0].payload["title"] == "New"
    assert len(ws.inbox("u00001", "2026-02-03T10:00:00Z")) == 0  # expired
    assert len(ws.inbox("u00001", "2026-02-02T08:00:00Z")) == 0  # not yet due


def test_test_then_winner(ws):
    from engagelab.campaigns import WinnerTest

    add_users(ws, profiles(400))
    c = campaign(
        "ttw", variants=(email("A"), email("B")), winner_test=WinnerTest(0.5, 2, "clicked")
    )
    p1 = plan(ws, c, LD)
    assert p1.phase == "test"
    f1 = p1.to_pandas()
    test_users = set(f1.loc[f1.decision == "send", "user_id"])
    assert (
        150 < len(test_users) < 250
        and (f1.loc[f1.decision == "deferred", "reason"] == "awaiting_winner").all()
    )
    send(ws, p1, "ttw-test")
    sent = ws.sql(
        "SELECT user_id, variant, message_key, ts FROM events WHERE event = 'Notification Sent'"
    )
    clicks = sent[sent["variant"] == "B"].assign(event="Notification Clicked", campaign_id="ttw")
    ws.append("events", clicks.assign(ts=clicks["ts"] + pd.Timedelta(minutes=5)))
    with pytest.raises(ValidationError, match="logical_date"):
        plan(ws, c, "2026-02-02T10:00:00Z")  # before the wait is over
    p2 = plan(ws, c, "2026-02-02T12:00:00Z")
    assert p2.phase == "winner" and p2.winner == "B"
    f2 = p2.to_pandas()
    assert set(f2.loc[f2.decision == "send", "variant"]) == {"B"}
    assert set(f2.loc[f2.decision == "send", "user_id"]).isdisjoint(test_users)
    assert set(f2.loc[f2.decision == "excluded", "user_id"]) == test_users


def test_plan_result_rendering(ws):
    add_users(ws, profiles(20))
    p = plan(ws, campaign("r"), LD)
    assert "send 20" in repr(p) and "el-plan" in p._repr_html_()
    assert p.summary().to_dict("records") == [{"decision": "send", "reason": "", "users": 20}]
    json.dumps(send(ws, p, "r-1").to_dict())


def test_preview_renders_for_one_user(ws):
    add_users(ws, profiles(3).assign(name=["Ann", "Bo", None]))
    c = campaign("pv", variants=(email("A", subject="Hi {{ profile.name | default('there') }}"),))
    from engagelab.campaigns import preview

    assert preview(ws, c, "u00000")["subject"] == "Hi Ann"
    got = preview(ws, c, "u00002")
    assert (
        got["subject"] == "Hi there" and got["to"] == "u00002@example.com" and got["variant"] == "A"
    )
    with pytest.raises(ValidationError, match="user_id"):
        preview(ws, c, "nobody")


def test_partial_transient_failures_stay_claimed_and_go_on_rerun(any_ws):
    """A batch where some messages fail transiently: the key-range mark leaves exactly
    those claimed (in doubt); the rerun re-delivers them, and only them."""
    ws = any_ws
    add_users(ws, profiles(60))
    flaky = {f"u{i:05d}" for i in range(0, 60, 7)}
    prov = fake_provider(lambda m: DeliveryResult(m.key, m.user_id not in flaky, error="451"))
    p = plan(ws, campaign("flaky"), LD)
    r1 = send(ws, p, "flaky-1", prov, batch_size=25, retries=0)
    assert r1.sent == 60 - len(flaky) and r1.pending == len(flaky)
    with ws.state.read() as conn:
        st = dict(
            conn.execute(
                sa.select(L.ledger.c.user_id, L.ledger.c.status).where(
                    L.ledger.c.run_key == "flaky-1"
                )
            ).fetchall()
        )
    assert {u for u, s in st.items() if s == "claimed"} == flaky
    assert {u for u, s in st.items() if s == "sent"} == {f"u{i:05d}" for i in range(60)} - flaky
    r2 = send(ws, p, "flaky-1", batch_size=25)
    assert r2.redelivered == len(flaky) and r2.pending == 0 and r2.already_sent == 60 - len(flaky)
    sent_users = {x["user_id"] for x in read_outbox(outbox_path(ws, "flaky-1"))}
    assert sent_users == flaky  # the outbox only saw the second attempt
    ev = _events(ws)
    sent = ev[ev["event"] == "Notification Sent"]
    assert len(sent) == 60 and sent["message_key"].is_unique


def test_batches_are_key_ranges_and_marked_per_range(ws):
    """Messages go in message-key order: each ledger batch is a contiguous key range, so
    one UPDATE over the range marks exactly the batch's claimed rows."""
    add_users(ws, profiles(230))
    p = plan(ws, campaign("ranges"), LD)
    r = send(ws, p, "ranges-1", batch_size=50)
    assert r.sent == 230
    with ws.state.read() as conn:
        rows = conn.execute(
            sa.select(L.ledger.c.key, L.ledger.c.batch, L.ledger.c.event_batch).where(
                L.ledger.c.run_key == "ranges-1"
            )
        ).fetchall()
    df = pd.DataFrame(rows, columns=["key", "batch", "fp"]).sort_values("key")
    assert df["batch"].is_monotonic_increasing and df["batch"].nunique() == 5
    assert df.groupby("batch").size().tolist() == [50, 50, 50, 50, 30]
    assert (df.groupby("batch")["fp"].nunique() == 1).all()
    # the outbox holds the messages in key order
    keys = [x["key"] for x in read_outbox(outbox_path(ws, "ranges-1"))]
    assert keys == sorted(keys) == df["key"].tolist()


@pytest.mark.parametrize("keys", [("k1", "k2", "k3"), ("K-1", "K-2", "K-3")])
def test_range_mark_falls_back_per_key_when_the_range_holds_other_rows(any_ws, keys):
    """The range UPDATE checks its row count: a claimed row of this owner inside the range
    that is not one of the batch's delivered messages makes it roll back and mark per key instead
    (keys outside digits and lowercase letters are marked per key on collating databases)."""
    from engagelab.campaigns.send import _connection, _mark
    from engagelab.delivery.protocol import BatchResult

    ws = any_ws
    with ws.state.write() as conn:
        for k in keys:
            conn.execute(
                L.ledger.insert().values(
                    key=k, run_key="r", campaign_id="c", user_id=k, channel="email",
                    variant="A", timezone="UTC", send_at=0, status="claimed", batch=0,
                    updated_at=L.now(), owner="r",
                )
            )  # fmt: skip
    done = np.array([keys[0], keys[2]], dtype=object)
    with _connection(ws) as conn:
        n_ok, n_fail = _mark(conn, "r", "r#0#1", done, (keys[0], keys[2]), BatchResult.all_ok(2))
    assert (n_ok, n_fail) == (2, 0)
    with ws.state.read() as conn:
        st = dict(conn.execute(sa.select(L.ledger.c.key, L.ledger.c.status)).fetchall())
    assert st == {keys[0]: "sent", keys[1]: "claimed", keys[2]: "sent"}


def test_provider_ids_and_permanent_failures_in_one_batch(ws):
    """Per-message provider ids are recorded; permanent failures are final and excluded
    from the batch's range mark."""
    add_users(ws, profiles(12))
    mixed = fake_provider(
        lambda m: (
            DeliveryResult(m.key, True, provider_id="pid-" + m.user_id)
            if m.user_id != "u00005"
            else DeliveryResult(m.key, False, permanent=True, error="550 unknown")
        )
    )
    r = send(ws, plan(ws, campaign("mixed"), LD), "mixed-1", mixed)
    assert r.sent == 11 and r.failed == 1 and r.pending == 0
    with ws.state.read() as conn:
        got = {
            u: (s, pid, err)
            for u, s, pid, err in conn.execute(
                sa.select(
                    L.ledger.c.user_id, L.ledger.c.status, L.ledger.c.provider_id, L.ledger.c.error
                )
            )
        }
    assert got["u00005"] == ("failed", None, "550 unknown")
    assert all(got[u] == ("sent", "pid-" + u, None) for u in got if u != "u00005")


def test_ledger_insert_as_json_keeps_every_value(ws, monkeypatch):
    """SQLite inserts a claim batch as one JSON array: values with quotes, backslashes,
    control characters, non-BMP characters and NULLs arrive exactly as executemany
    would store them."""
    from engagelab.campaigns.send import _connection, _insert

    weird = ['pl"ain', "back\\slash", "tab\tnl\n\x01", "é😀𝄞", "\u2028", "x" * 300]
    n = len(weird)
    rows = {
        "message_key": np.array([f"k{i}" for i in range(n)], dtype=object),
        "user_id": np.array(weird, dtype=object),
        "variant": np.array([None, "A", 'B"', None, "😀", "Z"], dtype=object),
        "timezone": np.array(["UTC", "Europe/Berlin", "Asia/Tokyo", "UTC", "UTC", "UTC"], object),
        "send_us": np.array([0, -1, 2**53, 1_700_000_000_123_456, 5, 6], dtype=np.int64),
        "origin_us": np.array([7, -8, 2**53 - 1, 1_700_000_000_000_000, 5, 0], dtype=np.int64),
        "expires_us": np.array([None, 3, 2**62, None, 6, None], dtype=object),
    }
    reason = np.array([None, "frequency_cap", None, "min_gap", None, "x"], dtype=object)
    got = {}
    for json_path in (True, False):
        monkeypatch.setattr(L, "SQLITE_JSON", json_path)
        run = f"r{int(json_path)}"
        keyed = dict(rows, message_key=np.array([run + k for k in rows["message_key"]], object))
        with _connection(ws) as conn, conn.begin():
            _insert(conn, keyed, reason, (run, "c", "email", "suppressed", 3, "fp", "2026-01-01"))
        with ws.state.read() as conn:
            got[json_path] = [
                tuple(r)[1:]
                for r in conn.execute(
                    sa.select(
                        L.ledger.c.key, L.ledger.c.user_id, L.ledger.c.variant,
                        L.ledger.c.timezone, L.ledger.c.send_at, L.ledger.c.reason,
                        L.ledger.c.status, L.ledger.c.batch, L.ledger.c.event_batch,
                        L.ledger.c.due_us, L.ledger.c.origin_us, L.ledger.c.expires_us,
                    )
                    .where(L.ledger.c.run_key == run)
                    .order_by(L.ledger.c.key)
                )
            ]  # fmt: skip
    assert got[True] == got[False]
    assert [r[0] for r in got[True]] == weird
    assert [r[3] for r in got[True]] == rows["send_us"].tolist()
    # the queue's instants: due = planned time, origin and expiry as given (NULL kept)
    assert [r[8:] for r in got[True]] == [
        (d, o, x)
        for d, o, x in zip(rows["send_us"].tolist(), rows["origin_us"].tolist(),
                           rows["expires_us"].tolist(), strict=True)
    ]  # fmt: skip
