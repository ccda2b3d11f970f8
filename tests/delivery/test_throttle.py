"""Throttles as rates at release: token buckets in the state database, taken by the
dispatcher's claim step, on a :class:`~engagelab.clock.SimulatedClock` (exact counts per
simulated minute), per campaign (per minute and per 5 minutes), per channel and per
provider endpoint (workspace-wide, across campaigns); and the ``throttle:`` section's
validation.

The messages are enqueued by a clock an hour before they are due, so the dispatcher
releases all of them; it delivers to the outbox file (no server) unless a test says so.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter

import pytest
import sqlalchemy as sa

from engagelab.campaigns import Delivery, Dispatcher, plan, send
from engagelab.cli.app import main
from engagelab.clock import SimulatedClock
from engagelab.delivery import ledger as L
from engagelab.delivery.dispatcher import queue_counts
from engagelab.delivery.smtp import SmtpProvider
from engagelab.delivery.throttle import Rate, ThrottleConfig, bucket_state, endpoint_for
from engagelab.errors import SpecError, ValidationError
from tests.campaigns.conftest import add_users, campaign, profiles

from .servers import SmtpServer

T0 = dt.datetime(2026, 2, 2, 9, tzinfo=dt.UTC)
M = dt.timedelta(minutes=1)


def _enqueue(ws, c, at=T0):
    """Every message of ``c`` planned at ``at``, queued (sent by a clock an hour before)."""
    p = plan(ws, c, at)
    r = send(ws, p, clock=SimulatedClock(at - dt.timedelta(hours=1)))
    assert r.sent == 0 and r.queued == len(p.frame[p.frame["decision"] == "send"])
    return set(p.frame.loc[p.frame["decision"] == "send", "message_key"])


def _per_minute(d, clock, minutes, step=M):
    """Messages released by ``run_until_idle`` now and after each of ``minutes`` steps."""
    out = [d.run_until_idle().released]
    for _ in range(minutes):
        clock.advance(step.total_seconds())
        out.append(d.run_until_idle().released)
    return out


def _sent_by_campaign(ws) -> Counter:
    with ws.state.read() as conn:
        return Counter(
            dict(
                conn.execute(
                    sa.select(L.ledger.c.campaign_id, sa.func.count())
                    .where(L.ledger.c.status == "sent")
                    .group_by(L.ledger.c.campaign_id)
                ).all()
            )
        )


# ------------------------------------------------------------------ per campaign
def test_one_a_minute_releases_exactly_one_each_simulated_minute(ws):
    add_users(ws, profiles(5))
    _enqueue(ws, campaign("one", delivery=Delivery(throttle_per_minute=1)))
    clock = SimulatedClock(T0 + 10 * M)  # the dispatcher comes late: all 5 are due
    d = Dispatcher(ws, clock)
    first = d.run_until_idle()
    assert (first.released, first.throttled) == (1, 4)
    clock.advance(30)  # half a token
    assert d.run_until_idle().released == 0
    clock.advance(30)
    assert _per_minute(d, clock, 4) == [1, 1, 1, 1, 0]
    assert queue_counts(ws) == {"sent": 5}
    (b,) = bucket_state(ws)
    assert b["key"] == "campaign:one" and b["rate"] == "1/minute" and b["burst"] == 1


def test_sixty_a_minute_releases_sixty_each_simulated_minute(ws):
    add_users(ws, profiles(150))
    _enqueue(ws, campaign("sixty", delivery=Delivery(throttle_per_minute=60)))
    clock = SimulatedClock(T0 + 10 * M)
    d = Dispatcher(ws, clock)  # batch 50: a minute's 60 go in two rounds
    assert _per_minute(d, clock, 3) == [60, 60, 30, 0]
    # refilled continuously: one a second
    clock.advance(60)
    assert d.run_until_idle().released == 0  # nothing left
    ws2_sent = _sent_by_campaign(ws)
    assert ws2_sent == {"sixty": 150}


def test_sixty_a_minute_is_one_a_second(ws):
    add_users(ws, profiles(80))
    _enqueue(ws, campaign("sec", delivery=Delivery(throttle_per_minute=60)))
    clock = SimulatedClock(T0 + 10 * M)
    d = Dispatcher(ws, clock)
    assert d.run_until_idle().released == 60  # the burst: a full bucket
    assert _per_minute(d, clock, 5, step=dt.timedelta(seconds=1))[1:] == [1, 1, 1, 1, 1]
    clock.advance(0.5)
    assert d.run_until_idle().released == 0


def test_per_five_minutes_releases_the_burst_then_its_rate(ws):
    add_users(ws, profiles(30))
    c = campaign("five", delivery=Delivery(throttle_per_5_minutes=10))
    _enqueue(ws, c)
    # the plan spreads them too: 10 per 5 minutes
    with ws.state.read() as conn:
        due = Counter(r[0] for r in conn.execute(sa.select(L.ledger.c.due_us)))
    t0 = int(T0.timestamp() * 1e6)
    assert sorted((k - t0) // 60_000_000 for k in due) == [0, 5, 10] and set(due.values()) == {10}
    clock = SimulatedClock(T0 + 30 * M)
    d = Dispatcher(ws, clock)
    # 10 at once (a full bucket), then 10 per 5 minutes: 2 a minute
    assert _per_minute(d, clock, 10) == [10] + [2] * 10
    assert queue_counts(ws) == {"sent": 30}
    assert bucket_state(ws)[0]["rate"] == "10/5 minutes"


def test_tokens_refill_on_the_dispatcher_clock_only(ws):
    """The same simulated instant twice gives nothing more; wall time does not count."""
    add_users(ws, profiles(4))
    _enqueue(ws, campaign("still", delivery=Delivery(throttle_per_minute=2)))
    clock = SimulatedClock(T0 + 5 * M)
    d = Dispatcher(ws, clock)
    assert d.run_until_idle().released == 2
    assert [Dispatcher(ws, clock).run_once().released for _ in range(3)] == [0, 0, 0]
    assert d.run_once().throttled == 2


def test_throttle_false_turns_rates_off(ws):
    add_users(ws, profiles(6))
    _enqueue(ws, campaign("off", delivery=Delivery(throttle_per_minute=1)))
    out = Dispatcher(ws, SimulatedClock(T0 + 10 * M), throttle=False).run_until_idle()
    assert (out.released, out.throttled) == (6, 0)


# ------------------------------------------------------------------ workspace-wide
def test_a_channel_rate_is_shared_by_every_campaign_on_it(ws):
    add_users(ws, profiles(30))
    _enqueue(ws, campaign("a"))
    _enqueue(ws, campaign("b"))
    ws.config["throttle"] = {"channels": {"email": "20/minute"}}
    clock = SimulatedClock(T0)
    d = Dispatcher(ws, clock)
    first = d.run_until_idle()
    assert (first.released, first.throttled) == (20, 40)
    split = _sent_by_campaign(ws)
    assert sum(split.values()) == 20 and set(split) == {"a", "b"}  # both share the 20
    assert _per_minute(d, clock, 3)[1:] == [20, 20, 0]
    assert _sent_by_campaign(ws) == {"a": 30, "b": 30}
    assert [b["key"] for b in bucket_state(ws)] == ["channel:email"]


def test_every_bucket_of_a_message_must_have_a_token(ws):
    """Campaign a (2 a minute) and b (no rate of its own) on a channel of 5 a minute:
    a gets its 2 a minute, b the channel's other 3: a's held messages, all due before b's,
    do not hold b up."""
    add_users(ws, profiles(12))
    _enqueue(ws, campaign("a", delivery=Delivery(throttle_per_minute=2)), T0 - 10 * M)
    _enqueue(ws, campaign("b"), T0)
    clock = SimulatedClock(T0 + 10 * M)
    d = Dispatcher(ws, clock, throttle={"channels": {"email": "5/minute"}})
    got = []
    for _ in range(4):
        before = _sent_by_campaign(ws)
        d.run_until_idle()
        after = _sent_by_campaign(ws)
        got.append((after["a"] - before["a"], after["b"] - before["b"]))
        clock.advance(60)
    # each minute: a's bucket (2) and the channel's (5) are full; a's first 2 take both,
    # a's next wait, and b takes the channel's other 3
    assert got == [(2, 3), (2, 3), (2, 3), (2, 3)]
    assert [b["key"] for b in bucket_state(ws)] == ["campaign:a", "channel:email"]


def test_an_endpoint_rate_holds_at_the_server(ws):
    """Messages to a real SMTP server throttled by its endpoint (host:port): what reaches
    the server per simulated minute."""
    add_users(ws, profiles(10))
    keys = _enqueue(ws, campaign("ep"))
    with SmtpServer() as srv:
        prov = SmtpProvider("127.0.0.1", srv.port)
        assert endpoint_for(ws, "email", prov) == f"127.0.0.1:{srv.port}"
        clock = SimulatedClock(T0)
        d = Dispatcher(
            ws, clock, provider=prov,
            throttle={"endpoints": {f"127.0.0.1:{srv.port}": {"rate": 4, "per": "minute"}}},
        )  # fmt: skip
        counts = []
        for _ in range(4):
            d.run_until_idle()
            counts.append(len(srv.messages))
            clock.advance(60)
        assert counts == [4, 8, 10, 10]
        assert {m["key"] for m in srv.messages} == keys and len(srv.messages) == 10


def test_the_endpoint_of_a_channel_comes_from_its_provider_configuration(ws, monkeypatch):
    for var in ("ENGAGELAB_EMAIL_PROVIDER", "ENGAGELAB_SMTP_HOST", "ENGAGELAB_SMTP_PORT",
                "ENGAGELAB_PUSH_PROVIDER", "ENGAGELAB_HTTP_URL", "ENGAGELAB_PUSH_URL"):  # fmt: skip
        monkeypatch.delenv(var, raising=False)
    assert endpoint_for(ws, "email") is None  # the outbox file: no endpoint
    ws.config["providers"] = {
        "email": {"type": "smtp", "host": "SMTP.example.org", "security": "starttls"},
        "push": {"type": "http", "url": "https://push.example.org/send"},
    }
    assert endpoint_for(ws, "email") == "smtp.example.org:587"
    assert endpoint_for(ws, "push") == "push.example.org:443"
    cfg = ThrottleConfig.from_config({"throttle": {"endpoints": {"Push.Example.org:443": 5}}})
    assert dict(cfg.endpoints) == {"push.example.org:443": Rate(5)}


# ------------------------------------------------------------------ configuration
@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"channels": {"email": 0}}, "throttle.channels.email.rate == 0, must be an integer"),
        ({"channels": {"email": "-5/minute"}}, "throttle.channels.email.rate == -5, must be"),
        ({"channels": {"sms": "1.5/minute"}}, "throttle.channels.sms.rate == '1.5', must be an"),
        ({"channels": {"sms": {"rate": 2.5}}}, "throttle.channels.sms.rate == 2.5, must be an"),
        ({"channels": {"email": "10/hour"}},
         "throttle.channels.email.per == 'hour', must be one of 'minute', '5 minutes'"),
        ({"channels": {"email": {"rate": 10, "per": "second"}}},
         "throttle.channels.email.per == 'second', must be one of 'minute', '5 minutes'"),
        ({"channels": {"email": {"rate": 10, "burst": 11}}},
         r"throttle.channels.email.burst == 11, must be an integer in \[1, 10\]"),
        ({"channels": {"email": {"rate": 10, "every": 1}}}, "throttle.channels.email.every"),
        ({"channels": {"email": {"per": "minute"}}}, "throttle.channels.email.rate == None"),
        ({"channels": {"mail": 5}}, "throttle.channels == 'mail', must name a channel"),
        ({"endpoints": {"smtp.example.org": 5}}, "throttle.endpoints == 'smtp.example.org', must"),
        ({"providers": {}}, "throttle.providers == {}, is not a throttle section"),
        ("fast", "throttle == 'fast', must be a mapping"),
        ({"channels": {"email": "lots"}}, "throttle.channels.email == 'lots', must be '<n>/min"),
    ],
)  # fmt: skip
def test_a_bad_throttle_section_names_the_field_and_what_is_allowed(ws, section, message):
    with pytest.raises(ValidationError, match=message):
        ThrottleConfig.from_config({"throttle": section})
    ws.config["throttle"] = section  # read when a dispatcher is made
    with pytest.raises(ValidationError, match=message):
        Dispatcher(ws)


def test_good_throttle_sections_parse():
    cfg = ThrottleConfig.from_config(
        {"throttle": {"channels": {"email": "600/minute", "push": "100 / 5 minutes",
                                   "sms": {"rate": 30, "per": "minute", "burst": 3}}}}
    )  # fmt: skip
    assert dict(cfg.channels) == {
        "email": Rate(600), "push": Rate(100, "5 minutes"), "sms": Rate(30, "minute", 3)
    }  # fmt: skip
    assert Rate(30, burst=3).capacity == 3 and Rate(30).capacity == 30
    assert not ThrottleConfig.from_config({}) and not ThrottleConfig.from_config({"throttle": None})
    with pytest.raises(ValidationError, match="rate == 0"):
        Rate(0)


def test_the_cli_refuses_a_bad_throttle_section(ws, capsys):
    import yaml

    cfg = ws.path / "engagelab.yaml"
    data = yaml.safe_load(cfg.read_text())
    data["throttle"] = {"channels": {"email": "0/minute"}}
    cfg.write_text(yaml.safe_dump(data))
    assert main(["dispatch", "-w", str(ws.path), "--once"]) != 0
    assert "throttle.channels.email.rate == 0" in capsys.readouterr().err


def test_a_campaign_rate_per_5_minutes_is_validated():
    with pytest.raises(SpecError, match="delivery.throttle_per_5_minutes == 0, must be an integ"):
        Delivery(throttle_per_5_minutes=0)
    with pytest.raises(SpecError, match="cannot be combined with delivery.throttle_per_minute"):
        Delivery(throttle_per_minute=5, throttle_per_5_minutes=10)
    d = Delivery.from_dict(Delivery(throttle_per_5_minutes=10).to_dict())
    assert d.throttle == (10, 300) and Delivery(throttle_per_minute=3).throttle == (3, 60)


def test_the_bucket_table_is_created_in_a_database_that_lacks_it(tmp_path):
    from engagelab import Workspace
    from engagelab.delivery import throttle as T
    from engagelab.storage.tables import throttle_buckets

    w = Workspace.create(tmp_path / "old")
    with w.state.write() as conn:
        throttle_buckets.drop(conn)
    w.close()
    T._READY.clear()
    w = Workspace.open(tmp_path / "old")  # a current schema version: no upgrade runs
    try:
        add_users(w, profiles(3))
        _enqueue(w, campaign("new", delivery=Delivery(throttle_per_minute=2)))
        out = Dispatcher(w, SimulatedClock(T0 + 10 * M)).run_until_idle()
        assert (out.released, out.throttled) == (2, 1)
        assert [b["key"] for b in bucket_state(w)] == ["campaign:new"]
    finally:
        w.close()
