"""Throttles in real time: ``engagelab dispatch`` processes on the system clock against a
real SMTP server (aiosmtpd on loopback), with ``throttle: channels: email: {rate: 120,
per: minute, burst: 2}`` in ``engagelab.yaml``.

The bucket holds at most 2 tokens (its capacity) and gains one every 0.5 s, so over any
stretch of ``w`` seconds at most ``2 + 2 w`` messages may be released: the arrival times
at the server must keep to that (a message arrives a few milliseconds after its release,
well under the 0.5 s it would take to break the bound), and the whole queue of ``n`` must
take at least ``(n - 3) / 2`` seconds from the first message after the initial burst. One dispatcher, then two sharing the state
database (SQLite, and PostgreSQL): together they keep to the same rate and deliver every
message exactly once.

Before the measured queue, warm-up messages (same channel, same bucket) go until every
dispatcher has handed one over: a fresh process's first hand-over loads the run and
connects, and would arrive late, bunched with the next ones; the measured queue then
starts on a full bucket.
"""

from __future__ import annotations

import datetime as dt
import time
from collections import Counter

import pytest
import sqlalchemy as sa
import yaml

from engagelab import Workspace
from engagelab.campaigns import plan, send
from engagelab.clock import SimulatedClock
from engagelab.delivery import ledger as L
from engagelab.delivery.smtp import SmtpProvider
from tests.campaigns.conftest import add_users, campaign, profiles

from .servers import SmtpServer
from .test_dispatch_processes import _arrivals, _dispatch, _statuses, _stop, _wait

RATE, BURST = 120, 2  # per minute: 2 a second


def _throttle(ws) -> None:
    cfg = ws.path / "engagelab.yaml"
    data = yaml.safe_load(cfg.read_text())
    data["throttle"] = {"channels": {"email": {"rate": RATE, "per": "minute", "burst": BURST}}}
    cfg.write_text(yaml.safe_dump(data, sort_keys=False))


def _most_within(times: list[float], w: float) -> int:
    """The most arrivals inside any window ``[t, t + w)``."""
    ts = sorted(times)
    return max(sum(1 for u in ts[i:] if u < t + w) for i, t in enumerate(ts))


def _check_rate(times: list[float], n: int) -> None:
    assert len(times) == n
    per_s = RATE / 60
    for w in (0.5, 1.0, 2.0, 3.0):
        most = _most_within(times, w)
        assert most <= BURST + per_s * w, (w, most, sorted(t - min(times) for t in times))
    # after the initial burst (whose arrival a fresh process's first hand-over may delay),
    # each of the other n - BURST messages needs a new token, one per 0.5 s
    ts = sorted(times)
    span = ts[-1] - ts[BURST]
    assert span >= (n - BURST - 1) / per_s - 0.3, (span, [t - ts[0] for t in ts])
    assert span < (n - BURST) / per_s + 20, span  # and it did not stall


def _queue(ws, cid: str, rows: slice, port: int) -> set[str]:
    """The messages of campaign ``cid`` to users ``rows``, due now, queued."""
    due = dt.datetime.now(dt.UTC)
    p = plan(ws, campaign(cid), due)
    p = type(p)(p.campaign, p.logical_date, p.run_key, p.phase, p.winner,
                p.frame.iloc[rows].reset_index(drop=True), p.note)  # fmt: skip
    before = SimulatedClock(due - dt.timedelta(hours=1))
    assert send(ws, p, provider=SmtpProvider("127.0.0.1", port), clock=before).queued == len(
        p.frame
    )
    return set(p.frame["message_key"])


def _owners(ws, keys: set[str]) -> set[str]:
    with ws.state.read() as conn:
        rows = conn.execute(
            sa.select(L.ledger.c.key, L.ledger.c.owner).where(L.ledger.c.status == "sent")
        ).all()
    return {o for k, o in rows if k in keys}


def _warm_up(ws, port: int, procs: int) -> set[str]:
    """Warm-up messages until every dispatcher has handed one over: a fresh process's
    first hand-over loads the run and connects, which would delay those arrivals."""
    warm: set[str] = set()
    for i in range(20):
        warm |= _queue(ws, f"warm{i}", slice(2 * i, 2 * i + 2), port)
        _wait(lambda w=frozenset(warm): w <= _sent(ws), timeout=60)
        if len(_owners(ws, warm)) == procs:
            return warm
    raise AssertionError("a dispatcher took no warm-up message")


def _sent(ws) -> set[str]:
    with ws.state.read() as conn:
        return set(
            conn.execute(sa.select(L.ledger.c.key).where(L.ledger.c.status == "sent")).scalars()
        )


def _run(ws, n: int, procs: int) -> list[dict]:
    _throttle(ws)
    add_users(ws, profiles(max(n, 40)))
    with SmtpServer() as srv:
        seen = _arrivals(srv)
        ps = [_dispatch(ws, srv.port, "--poll-seconds", "0.2", "--batch", "10")
              for _ in range(procs)]  # fmt: skip
        try:
            warm = _warm_up(ws, srv.port, procs)
            time.sleep(1.2)  # the bucket fills up again (2 tokens)
            keys = _queue(ws, "q1", slice(0, n), srv.port)
            _wait(lambda: keys <= _sent(ws), timeout=120)
        finally:
            results = [_stop(p) for p in ps]
        got = Counter(m["key"] for m in srv.messages)
    assert set(got) == keys | warm and set(got.values()) == {1}  # every message, once
    assert _statuses(ws) == {"sent": n + len(warm)}
    assert sum(r["sent"] for r in results) == n + len(warm)
    _check_rate([seen[k] for k in keys], n)
    return results


@pytest.mark.slow
def test_a_dispatcher_keeps_to_the_channel_rate_in_real_time(ws):
    (res,) = _run(ws, 14, 1)
    assert res["throttled"] == 0 and res["released"] == res["sent"]


@pytest.mark.slow
def test_two_dispatchers_sharing_the_state_db_keep_to_the_rate_together(tmp_path, state_url):
    ws = Workspace.create(tmp_path / "wst", state_url=state_url)
    try:
        _run(ws, 16, 2)
    finally:
        ws.close()


def test_the_window_count_is_sharp():
    """The checker catches a burst above the bucket's capacity, and a queue sent too fast."""
    with pytest.raises(AssertionError):
        _check_rate([0.0, 0.01, 0.02, 0.03, 1.1, 1.6, 2.1], 7)  # 4 at once: burst 2 + 1
    with pytest.raises(AssertionError):
        _check_rate([0.0, 0.0, *(0.4 * i for i in range(1, 9))], 10)  # 2.5 a second
    _check_rate([0.0, 0.0, *(0.5 * i for i in range(1, 9))], 10)
    _check_rate([0.3, 0.31, 0.5, 1.0, 1.5, 2.0], 6)  # the burst arrived late: allowed
