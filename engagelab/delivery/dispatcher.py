"""The dispatcher: releases queued messages of the ledger when they fall due.

Each round (:meth:`Dispatcher.run_once`):

0. **feed**: each :class:`Feeder` enqueues what became due to plan since its last round
   (for campaigns: :class:`engagelab.campaigns.live.LiveTriggers` plans the triggered and
   inaction campaigns on the events that landed), so it can be released in this round;
1. **expire**: ``queued`` messages whose ``expires_us`` (origin + TTL) has passed by the
   clock become ``suppressed`` with reason ``expired``, and their source appends a
   'Notification Suppressed' event for each;
2. **claim** up to ``batch`` messages in one write transaction: ``queued`` ones due by the
   clock, and claims of other holders whose lease ended (or whose process on this host is
   gone). On PostgreSQL the candidate rows are read ``FOR UPDATE SKIP LOCKED``, so several
   dispatchers share the queue without waiting on each other; on SQLite the transaction
   is ``BEGIN IMMEDIATE`` (one writer at a time). Each claimed row gets this dispatcher
   as ``owner`` and a lease on the system clock. Throttles
   (:mod:`engagelab.delivery.throttle`: the campaign's rate, the workspace's per channel
   and per provider endpoint) are token buckets in the state database taken in the same
   transaction: a queued message is claimed only if each of its buckets has a token at
   the clock's time; the others stay queued for a later round (counted as ``throttled``);
3. **hand over** the claims, grouped by run, through the source (for campaigns:
   :class:`engagelab.campaigns.Dispatcher`), which renders them and calls the provider on
   the same per-message path as ``send`` (``handed`` / ``sent`` recorded per message for
   SMTP), with 'Notification Sent' events stamped with the hand-over time.

Due times and expiry follow the dispatcher's clock (a :class:`~engagelab.clock.SimulatedClock`
drives them in tests and demos); leases always run on the system clock, since they are
about processes being alive. A message the provider failed transiently stays claimed
with its lease released, so the next round retries it (counted as ``requeued``).
"""

from __future__ import annotations

import html
import json
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import pandas as pd
import sqlalchemy as sa

from engagelab.clock import Clock, SystemClock, as_clock, now_us
from engagelab.delivery import handover as H
from engagelab.delivery import ledger as L
from engagelab.delivery.throttle import Throttle, ThrottleConfig
from engagelab.errors import ValidationError
from engagelab.validate import check_int, check_number

if TYPE_CHECKING:
    from engagelab.storage.core import Core

__all__ = ["DispatchResult", "Dispatcher", "Feeder", "Source", "queue_counts"]

_US = 1_000_000


class Source(Protocol):
    """What the dispatcher needs of the layer that planned the messages."""

    def deliver(
        self, ws: Core, run_key: str, keys: list[str], owner: str, *, lease_seconds: float,
        handed_us: int, fp: str,
    ) -> tuple[int, int, int, dict[str, int]]:  # fmt: skip
        """Hand the claimed ``keys`` of ``run_key`` (owned by ``owner``) to their provider
        and record the outcome on the ledger; return (sent, failed, put back in the queue
        for later, suppressed at release per reason)."""
        ...

    def suppressed(self, ws: Core, run_key: str, fp: str, at_us: int) -> None:
        """Append the 'Notification Suppressed' events (stamped ``at_us``) of the ledger
        rows marked with event batch ``fp``."""
        ...


class Feeder(Protocol):
    """What the dispatcher calls at the start of every round to enqueue new messages."""

    def feed(self, ws: Core, now_us: int) -> int:
        """Enqueue what there is to plan by ``now_us`` (the dispatcher's clock); return
        how many messages were enqueued. Must be safe to call from several dispatchers at
        once and after a restart (enqueue each message once)."""
        ...


@dataclass
class DispatchResult:
    """What one or more dispatcher rounds did."""

    released: int = 0  #: messages claimed for hand-over
    sent: int = 0
    failed: int = 0
    suppressed: dict[str, int] = field(default_factory=dict)  #: per reason code
    requeued: int = 0  #: claimed but not handed over (transient failure, stop, hold)
    rounds: int = 0
    seconds: float = 0.0
    #: due messages a throttle kept queued (no token) in the last round
    throttled: int = 0
    fed: int = 0  #: messages the feeders enqueued

    @property
    def idle(self) -> bool:
        """True when the rounds found nothing to do."""
        return self.released == 0 and not self.suppressed

    def add(self, other: DispatchResult) -> DispatchResult:
        """Both results summed."""
        sup = dict(self.suppressed)
        for k, v in other.suppressed.items():
            sup[k] = sup.get(k, 0) + v
        return DispatchResult(
            self.released + other.released, self.sent + other.sent,
            self.failed + other.failed, sup, self.requeued + other.requeued,
            self.rounds + other.rounds, self.seconds + other.seconds,
            other.throttled if other.rounds else self.throttled, self.fed + other.fed,
        )  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        return {
            "released": self.released,
            "sent": self.sent,
            "failed": self.failed,
            "suppressed": dict(sorted(self.suppressed.items())),
            "requeued": self.requeued,
            "throttled": self.throttled,
            "rounds": self.rounds,
            "seconds": round(self.seconds, 3),
            "fed": self.fed,
        }

    def to_pandas(self) -> pd.DataFrame:
        d = self.to_dict()
        d["suppressed"] = sum(self.suppressed.values())
        return pd.DataFrame([d])

    def __repr__(self) -> str:
        sup = ", ".join(f"{k} {v:,}" for k, v in sorted(self.suppressed.items()))
        return (
            f"DispatchResult(released {self.released:,}: sent {self.sent:,}, failed "
            f"{self.failed:,}, requeued {self.requeued:,}; suppressed "
            f"{sum(self.suppressed.values()):,}" + (f" ({sup})" if sup else "")
            + (f"; throttled {self.throttled:,}" if self.throttled else "")
            + f"; {self.rounds} round{'s' if self.rounds != 1 else ''}, {self.seconds:.2f} s)"
        )  # fmt: skip

    def _repr_html_(self) -> str:
        rows = "".join(
            f"<tr><th>{html.escape(k)}</th><td>{v:,}</td></tr>"
            for k, v in (
                ("released", self.released), ("sent", self.sent), ("failed", self.failed),
                ("requeued", self.requeued), ("throttled", self.throttled),
                *((f"suppressed: {r}", n) for r, n in sorted(self.suppressed.items())),
            )
        )  # fmt: skip
        return (
            f"<div class='el-dispatch'><table>{rows}</table>"
            f"<small>{self.rounds} rounds, {self.seconds:.2f} s</small></div>"
        )


class Dispatcher:
    """Releases the ledger's queued messages when due (see the module docs).

    Args:
        ws: the workspace.
        source: renders and hands over claimed messages (campaigns:
            :class:`engagelab.campaigns.Dispatcher` supplies it).
        clock: what "now" is for due times and expiry (default: the system clock).
        owner: this dispatcher's owner token (default: host, process id, random part).
        lease_seconds: how long a claim holds before another dispatcher may take it over.
        batch: messages claimed per round.
        poll_seconds: the pause of :meth:`run_forever` when nothing is due.
        throttle: the workspace-wide rates: None reads the ``throttle:`` section of the
            workspace configuration, a mapping is such a section, a
            :class:`~engagelab.delivery.throttle.ThrottleConfig` is used as it is; False
            turns throttles off (campaign rates included). Campaign rates come from the
            source's ``throttle_rate(ws, run_key)``, when it has one.
        feeders: called at the start of every round to enqueue new messages (see
            :class:`Feeder`).
    """

    def __init__(
        self,
        ws: Core,
        source: Source,
        clock: Clock | None = None,
        owner: str | None = None,
        *,
        lease_seconds: float = 60.0,
        batch: int = 50,
        poll_seconds: float = 1.0,
        throttle: Any = None,
        feeders: Sequence[Feeder] = (),
    ):
        check_number("lease_seconds", lease_seconds, low=0, low_open=True)
        check_number("poll_seconds", poll_seconds, low=0, low_open=True)
        check_int("batch", batch, low=1)
        if owner is not None and (not isinstance(owner, str) or not 0 < len(owner) <= 120):
            raise ValidationError("owner", owner, "must be text of 1 to 120 characters")
        self.ws, self.source = ws, source
        self.clock = as_clock(clock)
        self.owner = owner or H.owner_token()
        self.lease_seconds, self.batch, self.poll_seconds = lease_seconds, batch, poll_seconds
        self.feeders = tuple(feeders)
        self._round = 0
        self.throttle = self._throttle(throttle)
        self._throttled = 0
        #: set to stop between run groups (a signal handler may set it)
        self.stopping = threading.Event()

    def _throttle(self, throttle: Any) -> Throttle | None:
        if throttle is False:
            return None
        if throttle is None or isinstance(throttle, Mapping):
            cfg = (
                ThrottleConfig.from_config({"throttle": throttle}) if throttle is not None else None
            )
        elif isinstance(throttle, ThrottleConfig):
            cfg = throttle
        else:
            raise ValidationError(
                "throttle", throttle, "must be None, False, a mapping or a ThrottleConfig"
            )
        rate_of = getattr(self.source, "throttle_rate", None)
        return Throttle(
            self.ws,
            (lambda run_key: rate_of(self.ws, run_key)) if rate_of is not None else None,
            getattr(self.source, "provider", None),
            cfg,
        )

    def __repr__(self) -> str:
        return f"Dispatcher(owner {self.owner!r}, batch {self.batch}, clock {self.clock!r})"

    # ------------------------------------------------------------------ one round
    def run_once(self) -> DispatchResult:
        """Expire what lapsed, claim what is due (at most ``batch``), hand it over."""
        t0 = time.perf_counter()
        self._round += 1
        out = DispatchResult(rounds=1)
        now = now_us(self.clock)
        for f in self.feeders:
            out.fed += f.feed(self.ws, now)
        for run_key, n in self._expire(now).items():
            fp = self._fp(run_key, "x")
            self.source.suppressed(self.ws, run_key, fp, now)
            out.suppressed["expired"] = out.suppressed.get("expired", 0) + n
        claimed = self._claim(now)
        out.released = sum(len(v) for v in claimed.values())
        out.throttled = self._throttled
        try:
            for run_key, keys in claimed.items():
                if self.stopping.is_set():
                    break
                handed = now_us(self.clock)
                ok, bad, back, sup = self.source.deliver(
                    self.ws, run_key, sorted(keys), self.owner, lease_seconds=self.lease_seconds,
                    handed_us=max(handed, now), fp=self._fp(run_key, "d"),
                )  # fmt: skip
                out.sent += ok
                out.failed += bad
                out.requeued += back
                for k, v in sup.items():
                    out.suppressed[k] = out.suppressed.get(k, 0) + v
                if self.throttle is not None and back + sum(sup.values()):
                    # not given to the provider (back in the queue, suppressed): tokens back
                    self.throttle.refund(run_key, back + sum(sup.values()))
        finally:
            # what this round still holds (stopped, or transient failures) goes back at once
            out.requeued += H.release_count(self.ws, self.owner)
        out.seconds = time.perf_counter() - t0
        return out

    def _fp(self, run_key: str, kind: str) -> str:
        return f"{run_key}#dispatch#{kind}#{self.owner}#{self._round}"

    def _expire(self, now: int) -> dict[str, int]:
        """Mark lapsed queued messages ``suppressed`` / ``expired``; (run key → count)."""
        sql = (
            "SELECT \"key\", run_key FROM el_campaign_ledger WHERE status = 'queued' "
            "AND expires_us IS NOT NULL AND expires_us <= ?"
        )
        with self.ws.state.write() as conn:
            if conn.dialect.name == "postgresql":
                sql += " FOR UPDATE SKIP LOCKED"
            rows = L.fetch(conn, sql, [now])
            if not rows:
                return {}
            stamp = H.stamp(conn)
            H.executemany(
                conn,
                "UPDATE el_campaign_ledger SET status = 'suppressed', reason = 'expired', "
                "event_batch = ?, updated_at = ?, owner = NULL, lease_us = NULL "
                "WHERE \"key\" = ? AND status = 'queued'",
                [(self._fp(r, "x"), stamp, k) for k, r in rows],
            )
        counts: dict[str, int] = {}
        for _k, r in rows:
            counts[r] = counts.get(r, 0) + 1
        return counts

    def _claim(self, now: int) -> dict[str, list[str]]:
        """Claim up to ``batch`` due messages in one write transaction; (run key → keys)."""
        real = H.now_us()
        lease = real + int(self.lease_seconds * _US)
        due = (
            'SELECT "key", run_key, status, owner, lease_us FROM el_campaign_ledger '
            "WHERE status = 'queued' AND due_us <= ? "
            "AND (expires_us IS NULL OR expires_us > ?) ORDER BY due_us LIMIT ?"
        )
        lapsed = (
            'SELECT "key", run_key, status, owner, lease_us FROM el_campaign_ledger '
            "WHERE status IN ('claimed', 'handed') AND (lease_us IS NULL OR lease_us <= ?) "
            "LIMIT ?"
        )
        held = (
            "SELECT DISTINCT owner FROM el_campaign_ledger "
            "WHERE status IN ('claimed', 'handed') AND lease_us > ? AND owner <> ?"
        )
        # buckets of the due messages exist before the transaction that locks them
        throttled = self.throttle is not None and self.throttle.prepare(now)
        self._throttled = 0
        with self.ws.state.write() as conn:
            pg = conn.dialect.name == "postgresql"
            lock = " FOR UPDATE SKIP LOCKED" if pg else ""
            # claims of others first (in doubt since their holder stopped), then the queue
            rows = L.fetch(conn, lapsed + lock, [real, self.batch])
            dead = [o for (o,) in L.fetch(conn, held, [real, self.owner]) if H.stale(o, 1, 0)]
            for o in dead[: self.batch]:
                left = self.batch - len(rows)
                if left <= 0:
                    break
                rows += L.fetch(
                    conn,
                    'SELECT "key", run_key, status, owner, lease_us FROM el_campaign_ledger '
                    "WHERE status IN ('claimed', 'handed') AND owner = ? LIMIT ?" + lock,
                    [o, left],
                )
            if len(rows) < self.batch and throttled:
                assert self.throttle is not None
                more, self._throttled = self.throttle.claim(conn, now, self.batch - len(rows), lock)
                rows += more
            elif len(rows) < self.batch:
                rows += L.fetch(conn, due + lock, [now, now, self.batch - len(rows)])
            if not rows:
                return {}
            # the rows read are ours to take: SQLite's write transaction is exclusive and
            # PostgreSQL holds them locked (FOR UPDATE) until commit
            stamp = H.stamp(conn)
            sql = (
                "UPDATE el_campaign_ledger SET status = CASE WHEN status = 'queued' "
                "THEN 'claimed' ELSE status END, owner = ?, lease_us = ?, updated_at = ? "
                'WHERE "key" '
            )
            if conn.dialect.name == "sqlite" and L.SQLITE_JSON:
                # one statement over the keys as a JSON array (not one per row)
                keys = json.dumps([k for k, *_ in rows])
                sql += "IN (SELECT value FROM json_each(?))"
                H.executemany(conn, sql, [(self.owner, lease, stamp, keys)])
            else:
                H.executemany(conn, sql + "= ?", [(self.owner, lease, stamp, k) for k, *_ in rows])
            got: dict[str, list[str]] = {}
            for k, run_key, *_ in rows:
                got.setdefault(run_key, []).append(k)
        return got

    # ------------------------------------------------------------------ loops
    def run_until_idle(self, max_rounds: int | None = None) -> DispatchResult:
        """Rounds until one finds nothing due (what is due later stays queued)."""
        total = DispatchResult()
        while not self.stopping.is_set():
            r = self.run_once()
            total = total.add(r)
            if r.idle or (max_rounds is not None and total.rounds >= max_rounds):
                break
        return total

    def run_forever(self, stop_event: threading.Event | None = None) -> DispatchResult:
        """Rounds until ``stop_event`` (or :attr:`stopping`) is set, pausing
        ``poll_seconds`` (or until the next due time, if sooner) when idle; the round in
        flight finishes and what it still holds is released."""
        stop = stop_event or self.stopping
        total = DispatchResult()
        while not stop.is_set() and not self.stopping.is_set():
            r = self.run_once()
            total = total.add(r)
            if r.idle:
                wait = self._pause()
                if isinstance(self.clock, SystemClock):
                    stop.wait(wait)
                else:
                    self.clock.sleep(wait)
        return total

    def _pause(self) -> float:
        """Seconds to the next due message, capped at ``poll_seconds``."""
        with self.ws.state.read() as conn:
            nxt = conn.execute(
                sa.select(sa.func.min(L.ledger.c.due_us)).where(L.ledger.c.status == "queued")
            ).scalar()
        token = self.throttle.next_token_us if self.throttle is not None else None
        if self._throttled and token and nxt is not None and int(nxt) <= now_us(self.clock):
            # due messages held for want of tokens: wake at the next token, or sooner when
            # another message falls due
            with self.ws.state.read() as conn:
                later = conn.execute(
                    sa.select(sa.func.min(L.ledger.c.due_us)).where(
                        L.ledger.c.status == "queued", L.ledger.c.due_us > now_us(self.clock)
                    )
                ).scalar()
            nxt = token if later is None else min(token, int(later))
        if nxt is None:
            return self.poll_seconds
        # never 0: a due message another live dispatcher holds must not make this one spin
        floor = min(self.poll_seconds, 0.05)
        return max(floor, min(self.poll_seconds, (int(nxt) - now_us(self.clock)) / _US))


def queue_counts(ws: Core) -> Mapping[str, int]:
    """Ledger rows per status (``queued``, ``claimed``, ``sent``, ...)."""
    with ws.state.read() as conn:
        return dict(
            conn.execute(
                sa.select(L.ledger.c.status, sa.func.count()).group_by(L.ledger.c.status)
            ).all()
        )
