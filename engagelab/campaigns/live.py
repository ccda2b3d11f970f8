"""Triggered and inaction campaigns in near real time: the dispatcher's trigger feed.

:class:`LiveTriggers` is a :class:`~engagelab.delivery.dispatcher.Feeder`: the campaign
dispatcher (:class:`engagelab.campaigns.Dispatcher`, ``engagelab dispatch``) calls it at
the start of every round. For every saved campaign whose status is ``active`` and whose
schedule is ``triggered`` or ``inaction`` it

1. reads the event batches committed since the campaign's **watermark** (the highest
   event batch id it has planned, kept in the state DB), never those committed before
   the campaign was last saved (a campaign seen for the first time, or active again after
   a pause, starts with the events that land after that). Batches written by delivery
   itself (system events) and by compaction are skipped;
2. plans, through :func:`~engagelab.campaigns.plan` (eligibility, control groups, caps,
   DND, ...), one message per qualifying event: the occurrence is the event's time, so
   the message key of a qualifier is the same whichever dispatcher, round or daily run
   plans it (a user's first event of a day gets the key the daily run would give it).
   A triggered message is due at the event, an inaction one at event + ``within_hours``
   when no ``not_event`` followed within the window at planning time;
3. enqueues them (``queued``, due / origin / expiry as ``send`` does: the origin is the
   trigger, so the TTL counts from the event — the end of the inaction window for an
   inaction campaign) and moves the watermark, **in one write transaction** that checks
   the watermark did not move meanwhile (compare and set): two dispatchers sharing the
   state DB plan a batch once, and a dispatcher killed before the commit leaves the batch
   to the next round. Ledger keys are unique besides, so a qualifier is enqueued once.

Before an inaction message is released, the feed checks that the inaction still holds:
a ``not_event`` within the window suppresses it (reason ``inaction_broken``), a later
qualifying event of the same user within the window supersedes it (``superseded``: that
one's reminder goes instead), each with its 'Notification Suppressed' event. A message
whose trigger is older than its TTL by the time it is enqueued expires in the same round
(``expired``) and is never sent.

Event batch ids are assigned in commit order on SQLite (one writer at a time). On
PostgreSQL a batch may commit after one with a higher id; such a late batch is planned
only if it commits before the next round reads past it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import uuid
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import sqlalchemy as sa

from engagelab.campaigns.options import campaign_caps
from engagelab.campaigns.plan import event_variables, plan
from engagelab.campaigns.result import Plan
from engagelab.campaigns.send import (
    _append,
    _arrays,
    _caps,
    _events,
    _flush_suppressed,
    _insert,
    _plan_events,
    _snapshot,
    _states,
    _take,
)
from engagelab.campaigns.spec import TRIGGER_TYPES, Campaign
from engagelab.delivery import handover as H
from engagelab.delivery import ledger as L
from engagelab.errors import ValidationError
from engagelab.schema import CONTROL_GROUP, NOTIFICATION_SENT, NOTIFICATION_SUPPRESSED
from engagelab.storage.tables import batches
from engagelab.storage.upsert import insert_ignore

if TYPE_CHECKING:
    from engagelab.storage.core import Core

__all__ = ["LiveTriggers", "watermark"]

_US = 1_000_000
_log = logging.getLogger(__name__)
#: the store source of delivery's own event batches
_SYSTEM_SOURCE = "campaigns"
_SYSTEM_EVENTS = (NOTIFICATION_SENT, NOTIFICATION_SUPPRESSED, CONTROL_GROUP)


def _key(campaign_id: str) -> str:
    key = f"live_watermark:{campaign_id}"
    if len(key) <= 100:
        return key
    return "live_watermark:#" + hashlib.sha256(campaign_id.encode()).hexdigest()[:40]


def watermark(ws: Core, campaign_id: str) -> int | None:
    """The highest event batch id the live feed has planned for ``campaign_id`` (None:
    not fed yet)."""
    with ws.state.read() as conn:
        got = conn.execute(
            sa.select(L.settings.c.value).where(L.settings.c.key == _key(campaign_id))
        ).scalar()
    return None if got is None else int(got)


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class LiveTriggers:
    """Plans and enqueues the active triggered and inaction campaigns on the events that
    landed since their watermark (see the module docs); one instance per dispatcher."""

    def __init__(self) -> None:
        #: campaign id -> the error of its last feed (its watermark stays: retried next round)
        self.errors: dict[str, str] = {}
        self._specs: dict[str, tuple[str, Campaign]] = {}
        self._since: dict[tuple[str, Any], int] = {}

    def __repr__(self) -> str:
        return "LiveTriggers()"

    # ------------------------------------------------------------------ the round
    def feed(self, ws: Core, now_us: int) -> int:
        """Plan and enqueue what landed; re-check inaction messages falling due. Returns
        the number of messages enqueued."""
        n = 0
        self.errors = {}
        for c, activated in self._active(ws):
            try:
                n += self._feed_one(ws, c, activated, now_us)
                if c.schedule.type == "inaction":
                    self._recheck(ws, c, now_us)
            except Exception as exc:  # one campaign's error must not stop the dispatcher
                self.errors[c.id] = f"{type(exc).__name__}: {exc}"
                _log.warning("live trigger feed of campaign %r failed: %s", c.id, exc)
        return n

    def _active(self, ws: Core) -> list[tuple[Campaign, dt.datetime]]:
        t = L.campaigns_table
        with ws.state.read() as conn:
            rows = conn.execute(
                sa.select(t.c.id, t.c.spec, t.c.updated_at)
                .where(t.c.status == "active", t.c.type.in_(TRIGGER_TYPES))
                .order_by(t.c.id)
            ).all()
        out = []
        for cid, spec, updated in rows:
            got = self._specs.get(cid)
            if got is None or got[0] != spec:
                got = (spec, Campaign.from_json(spec))
                self._specs[cid] = got
            out.append((got[1], updated))
        return out

    def _feed_one(self, ws: Core, c: Campaign, activated: dt.datetime, now_us: int) -> int:
        key = _key(c.id)
        with ws.state.read() as conn:
            got = conn.execute(
                sa.select(L.settings.c.value).where(L.settings.c.key == key)
            ).scalar()
            old = None if got is None else int(got)
            # never the events that landed before it was last saved (a first sight, or
            # again active after a pause: what landed meanwhile is not sent late)
            since = self._since.get((c.id, activated))
            if since is None:
                since = int(conn.execute(
                    sa.select(sa.func.coalesce(sa.func.max(batches.c.id), 0)).where(
                        batches.c.table_name == "events", batches.c.created_at <= activated
                    )
                ).scalar_one())  # fmt: skip
                self._since[(c.id, activated)] = since
            start = since if old is None else max(old, since)
            rows = conn.execute(
                sa.select(batches.c.id, batches.c.files, batches.c.source, batches.c.fingerprint)
                .where(batches.c.table_name == "events", batches.c.id > start)
                .order_by(batches.c.id)
            ).all()
        if not rows:
            return 0
        top = int(rows[-1].id)
        system = c.schedule.event in _SYSTEM_EVENTS
        files = [
            ws.store.root / f
            for r in rows
            if not r.fingerprint.startswith("compact:") and (system or r.source != _SYSTEM_SOURCE)
            for f in r.files
        ]
        files = [f for f in files if f.exists()]  # a replaced batch past its grace: compacted
        plans = self._plans(ws, c, files, now_us, f"{c.id}@live:{start + 1}-{top}") if files else []
        return self._commit(ws, c, key, old, top, plans)

    # ------------------------------------------------------------------ planning
    def _sql(self, ws: Core, c: Campaign, files: list[Any]) -> tuple[str, dict[str, Any]]:
        """SQL of the qualifying events in ``files``: one row per (user, event time) with
        ``base`` (the due time), ``event_properties`` and ``n`` (the row's rank among the
        user's rows)."""
        from engagelab.engines.base import Catalog
        from engagelab.engines.duckdb_engine import view_sql

        cat = ws.engine.refresh()
        new = view_sql(
            "events", Catalog(cat.version, {"events": files, "profiles": []}, cat.columns,
                              {"events": len(files), "profiles": 0}),
        )  # fmt: skip
        ev_cols = set(cat.columns.get("events", {}))
        s = c.schedule
        params: dict[str, Any] = {"e": s.event}
        filt = ""
        for i, (k, v) in enumerate(sorted(s.filters.items())):
            if k not in ev_cols:
                raise ValidationError(f"schedule.filters.{k}", v, "is not an events column")
            filt += f" AND a.{_q(k)} = $f{i}"
            params[f"f{i}"] = v
        props = event_variables(c)
        if props:
            packed = ", ".join(f"{_q(p)} := a.{_q(p)}" for p in props)
            evp = f"to_json(arg_max(struct_pack({packed}), a.event_id))"
        else:
            evp = "CAST(NULL AS VARCHAR)"
        shift = cond = ""
        if s.type == "inaction":
            params |= {"b": s.not_event, "w_us": int(float(s.within_hours or 0) * 3600 * _US)}
            shift = " + to_microseconds($w_us)"
            cond = (
                " AND NOT EXISTS (SELECT 1 FROM events AS b WHERE b.user_id = a.user_id "
                "AND b.event = $b AND b.ts > a.ts AND b.ts <= a.ts + to_microseconds($w_us))"
            )
        inner = (
            f"SELECT a.user_id, a.ts AS t, {evp} AS event_properties FROM ({new}) AS a "
            f"WHERE a.event = $e{filt}{cond} GROUP BY a.user_id, a.ts"
        )
        return (
            f"SELECT user_id, t{shift} AS base, event_properties, "
            f"row_number() OVER (PARTITION BY user_id ORDER BY t) AS n FROM ({inner}) AS q",
            params,
        )

    def _plans(
        self, ws: Core, c: Campaign, files: list[Any], now_us: int, run_key: str
    ) -> list[Plan]:
        """The plans of the qualifying events, each under its own run key: one plan of all
        of them, or, when caps, a minimum gap or a send-time hook apply (they see one row
        per user), one plan per rank of a user's events."""
        sql, params = self._sql(ws, c, files)
        ld = dt.datetime.fromtimestamp(now_us / _US, dt.UTC)
        opt = c.delivery
        per_user = bool(
            campaign_caps(c, ws) or opt.min_gap_hours
            or opt.best_time is not None or opt.send_time_policy
        )  # fmt: skip
        if not per_user:
            trig = f"SELECT user_id, base, event_properties FROM ({sql}) AS r"
            p = plan(ws, c, ld, now=ld, run_key=f"{run_key}#1", trigger=(trig, params))
            return [p] if len(p.frame) else []
        layers = ws.sql(f"SELECT coalesce(max(n), 0) AS m FROM ({sql}) AS r", params)
        out = []
        for k in range(1, int(layers["m"].iloc[0]) + 1):
            trig = f"SELECT user_id, base, event_properties FROM ({sql}) AS r WHERE n = {k}"
            p = plan(ws, c, ld, now=ld, run_key=f"{run_key}#{k}", trigger=(trig, params))
            if len(p.frame):
                out.append(p)
        return out

    # ------------------------------------------------------------------ enqueue
    def _commit(
        self, ws: Core, c: Campaign, key: str, old: int | None, top: int, plans: list[Plan]
    ) -> int:
        """Enqueue ``plans`` and move the watermark from ``old`` to ``top`` in one write
        transaction, or nothing when another dispatcher moved it first."""
        opt = c.delivery
        ttl = int(opt.ttl_hours * 3600 * _US) if opt.ttl_hours else None
        caps = campaign_caps(c, ws)  # its own and the workspace's (unless it opts out)
        gap = opt.min_gap_hours
        queued = 0
        flagged: list[str] = []
        with ws.state.write() as conn:
            if old is None:
                if not insert_ignore(conn, L.settings, [{"key": key, "value": str(top)}]):
                    return 0
            else:
                res = conn.execute(
                    L.settings.update()
                    .where(L.settings.c.key == key, L.settings.c.value == str(old))
                    .values(value=str(top))
                )
                if res.rowcount != 1:
                    return 0
            now = H.stamp(conn)
            for p in plans:
                rk = p.run_key
                insert_ignore(conn, L.runs, [{
                    "run_key": rk, "campaign_id": c.id, "phase": p.phase,
                    "logical_date": p.logical_date, "spec": c.to_json(),
                    "snapshot": _snapshot(p.frame), "rows": len(p.frame), "attempts": 1,
                    "status": "done", "created_at": L.now(), "finished_at": L.now(),
                }])  # fmt: skip
                todo = p.frame[p.frame["decision"] == "send"]
                if not len(todo):
                    continue
                rows = _arrays(todo.reset_index(drop=True), ttl)
                have = _states(conn, rows["message_key"].tolist())
                if have:
                    rows = _take(rows, ~np.isin(rows["message_key"], list(have)))
                if not len(rows["message_key"]):
                    continue
                reason = np.full(len(rows["message_key"]), None, dtype=object)
                if caps or gap:
                    L.lock_caps(conn)
                    # the queue counts: earlier ranks of this round are queued, not sent
                    reason = _caps(conn, c, rk, rows, caps, gap, queued=True)
                sup = reason != None  # noqa: E711
                go = _take(rows, ~sup)
                _insert(conn, go, None, (rk, c.id, c.channel, "queued", 0, None, now, None, None))
                queued += len(go["message_key"])
                if sup.any():
                    _insert(conn, _take(rows, sup), reason[sup],
                            (rk, c.id, c.channel, "suppressed", 0, f"{rk}#0#1#s", now, None,
                             None))  # fmt: skip
                    flagged.append(rk)
        for p in plans:
            _plan_events(ws, p.frame, c, p.run_key)
        for rk in flagged:
            _flush_suppressed(ws, rk, 0, 1, c)
        return queued

    # ------------------------------------------------------------------ inaction re-check
    def _recheck(self, ws: Core, c: Campaign, now_us: int) -> int:
        """Suppress the queued inaction messages due by ``now_us`` whose inaction no longer
        holds; return how many."""
        s = c.schedule
        w = int(float(s.within_hours or 0) * 3600 * _US)
        with ws.state.read() as conn:
            due = L.fetch(
                conn,
                'SELECT "key", user_id, origin_us FROM el_campaign_ledger WHERE campaign_id = ? '
                "AND status = 'queued' AND due_us <= ? AND run_key LIKE ?",
                [c.id, now_us, f"{c.id}@live:%"],
            )
        if not due:
            return 0
        params: dict[str, Any] = {
            "k": [r[0] for r in due], "u": [r[1] for r in due], "o": [int(r[2]) for r in due],
            "b": s.not_event, "e": s.event, "w": w,
        }  # fmt: skip
        filt = ""
        for i, (k, v) in enumerate(sorted(s.filters.items())):
            filt += f" AND a.{_q(k)} = $f{i}"
            params[f"f{i}"] = v
        got = ws.sql(
            "SELECT q.k, CASE WHEN EXISTS (SELECT 1 FROM events AS b WHERE b.user_id = q.u "
            "AND b.event = $b AND epoch_us(b.ts) > q.o - $w AND epoch_us(b.ts) <= q.o) "
            "THEN 'inaction_broken' WHEN EXISTS (SELECT 1 FROM events AS a WHERE "
            f"a.user_id = q.u AND a.event = $e{filt} AND epoch_us(a.ts) > q.o - $w "
            "AND epoch_us(a.ts) <= q.o) THEN 'superseded' END AS reason "
            "FROM (SELECT unnest($k) AS k, unnest($u) AS u, unnest($o) AS o) AS q",
            params,
        )
        got = got[got["reason"].notna()]
        if got.empty:
            return 0
        fp = f"{c.id}@live#recheck#{now_us}#{uuid.uuid4().hex[:12]}#s"
        with ws.state.write() as conn:
            stamp = H.stamp(conn)
            H.executemany(
                conn,
                "UPDATE el_campaign_ledger SET status = 'suppressed', reason = ?, "
                "event_batch = ?, updated_at = ? WHERE \"key\" = ? AND status = 'queued'",
                [(r, fp, stamp, k) for k, r in zip(got["k"], got["reason"], strict=True)],
            )
        with ws.state.read() as conn:
            rows = conn.execute(
                sa.select(L.ledger.c.user_id, L.ledger.c.variant, L.ledger.c.key, L.ledger.c.reason)
                .where(L.ledger.c.event_batch == fp)
                .order_by(L.ledger.c.key)
            ).fetchall()
        if rows:
            df = pd.DataFrame(rows, columns=["user_id", "variant", "message_key", "reason"])
            df["send_at"] = pd.to_datetime(now_us, unit="us", utc=True)
            _append(ws, fp, _events(NOTIFICATION_SUPPRESSED, df, c, reason=df["reason"].to_numpy()))
        return len(rows)
