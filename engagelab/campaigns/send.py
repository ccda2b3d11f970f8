"""``send``: effectively-once delivery of a plan, with system events.

Per claim unit of messages: **claim** (ledger rows inserted as ``claimed`` with
``INSERT ... ON CONFLICT DO NOTHING`` inside a write transaction that holds the caps lock
and re-checks frequency caps and the minimum gap against the ledger; each row records its
owner, this ``send`` call, and a lease) → **provider call** carrying each message key,
only for the rows this call owns → **mark** ``sent`` → append the unit's 'Notification
Sent' events under a fingerprint recorded on the ledger rows.

Message keys identify the occurrence (see :mod:`engagelab.campaigns.plan`), so two
processes sending the same occurrence at once (any run keys) deliver each message once:
the one whose insert won delivers it, the other skips it and reports it as ``skipped``.

Providers without idempotency (SMTP) take at most :data:`HANDOFF_UNIT` messages per
claim and report each message through their ``progress`` hook: ``handed`` just before
the message is committed to the server (the final ``DATA`` dot), ``sent`` right after the
server accepted it; each is recorded at once. After a ``kill -9`` the only message in
doubt is the one ``handed`` but not yet ``sent`` (at most one per connection): it is
re-delivered with the same ``Message-ID``; messages still ``claimed`` were never handed
over and go once.

Claims of a sender that died are taken over when their lease expires (``lease_seconds``)
or, on the same host, as soon as the owning process no longer exists; claims of a live
sender are never taken before their lease expires. A rerun of the same run key uses the
audience snapshot stored with the run on its first attempt, skips sent messages,
re-delivers in-doubt ones with the same key, and appends any event batch a crash left out.
"""

from __future__ import annotations

import contextlib
import io
import json
import time
from collections.abc import Iterable
from itertools import repeat
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import sqlalchemy as sa

from engagelab.campaigns import timing
from engagelab.campaigns.options import campaign_caps, gap_cap
from engagelab.campaigns.result import Plan, SendResult
from engagelab.campaigns.spec import Campaign
from engagelab.clock import Clock, as_clock, now_us
from engagelab.delivery import handover as H
from engagelab.delivery import ledger as L
from engagelab.delivery.outbox import data, json_strings
from engagelab.delivery.protocol import MessageBatch
from engagelab.errors import ValidationError
from engagelab.schema import CONTROL_GROUP, NOTIFICATION_SENT, NOTIFICATION_SUPPRESSED, TS_TYPE
from engagelab.storage.upsert import insert_ignore
from engagelab.validate import check_int, check_number

if TYPE_CHECKING:
    from engagelab.storage.core import Core

__all__ = ["HANDOFF_UNIT", "LEASE_SECONDS", "send"]

_US = 1_000_000
_IN = L.IN_CHUNK  # keys per IN (...) list
#: Messages per claim for providers that report per-message progress (no idempotency).
HANDOFF_UNIT = 50
#: Default lease of a claim: another sender takes over a claim older than this.
LEASE_SECONDS = 300.0


def _arrays(frame: pd.DataFrame, ttl_us: int | None = None) -> dict[str, np.ndarray]:
    """The columns ``send`` needs as numpy arrays (plain Python strings, None for missing),
    with the queue's instants: ``origin_us`` (the trigger event of triggered / inaction
    plans, else the due time) and ``expires_us`` (origin + TTL, None without a TTL)."""

    def obj(col: str) -> np.ndarray:
        v = cast(Any, frame[col]).to_numpy(dtype=object, na_value=None)
        return np.asarray(v, dtype=object)

    cols: tuple[str, ...] = ("user_id", "variant", "to", "message_key", "timezone")
    # the trigger event's properties (triggered / inaction plans; older snapshots lack it)
    cols += ("event_properties",) if "event_properties" in frame.columns else ()
    out = {c: obj(c) for c in cols}
    out["send_us"] = _us(frame["send_at"])
    origin = out["send_us"]
    if "origin_at" in frame.columns:
        got = pd.to_datetime(frame["origin_at"], utc=True).dt.as_unit("us")
        origin = np.where(got.notna().to_numpy(), got.astype("int64").to_numpy(), origin)
    out["origin_us"] = np.asarray(origin, dtype=np.int64)
    out["expires_us"] = (
        np.full(len(origin), None, dtype=object)
        if ttl_us is None
        else (out["origin_us"] + ttl_us).astype(object)
    )
    return out


def _us(col: Any) -> np.ndarray:
    return pd.to_datetime(col, utc=True).dt.as_unit("us").astype("int64").to_numpy()


def _snapshot(frame: pd.DataFrame) -> bytes:
    buf = io.BytesIO()
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), buf, compression="zstd")
    return buf.getvalue()


def _unsnapshot(blob: bytes) -> pd.DataFrame:
    return pq.read_table(io.BytesIO(blob)).to_pandas()


def _start(ws: Core, plan: Plan, run_key: str) -> tuple[pd.DataFrame, Campaign, int]:
    """Snapshot the plan on the first attempt; return (frame, campaign, attempt number).
    Message keys are the plan's (they identify the occurrence, whatever the run key)."""
    with ws.state.write() as conn:
        row = conn.execute(sa.select(L.runs).where(L.runs.c.run_key == run_key)).first()
        if row is None:
            frame = plan.frame
            new = insert_ignore(conn, L.runs, [{
                "run_key": run_key, "campaign_id": plan.campaign.id, "phase": plan.phase,
                "logical_date": plan.logical_date, "spec": plan.campaign.to_json(),
                "snapshot": _snapshot(frame), "rows": len(frame), "attempts": 1,
                "status": "running", "created_at": L.now(),
            }])  # fmt: skip
            if new:
                return frame, plan.campaign, 1
            # a concurrent first attempt of this run key won: this is its second attempt
            row = conn.execute(sa.select(L.runs).where(L.runs.c.run_key == run_key)).first()
            assert row is not None
        if row.campaign_id != plan.campaign.id:
            raise ValidationError(
                "run_key",
                run_key,
                f"belongs to campaign {row.campaign_id!r}, not {plan.campaign.id!r}",
            )
        attempt = row.attempts + 1
        conn.execute(L.runs.update().where(L.runs.c.run_key == run_key).values(attempts=attempt))
        return _unsnapshot(row.snapshot), Campaign.from_json(row.spec), attempt


def _strings(v: Iterable[Any] | None, n: int, *, strict: bool = False) -> pa.Array:
    """A string column: str values as they are, anything else null (or ``str()`` of it
    when ``strict``)."""
    if v is None:
        return pa.nulls(n, pa.string())
    arr = np.asarray(v, dtype=object)
    try:
        return pa.array(arr, pa.string(), from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        if strict:
            return pa.array([str(x) for x in arr], pa.string())
        return pa.array([x if isinstance(x, str) else None for x in arr], pa.string())


def _events(
    event: str,
    rows: pd.DataFrame | dict[str, np.ndarray],
    c: Campaign,
    *,
    control_group: Iterable[Any] | None = None,
    reason: Iterable[Any] | None = None,
) -> pa.Table:
    n = len(rows["user_id"])
    if "send_us" in rows:
        ts = pa.array(np.asarray(rows["send_us"], dtype=np.int64), TS_TYPE)
    else:
        when = cast(pd.Series, pd.to_datetime(rows["send_at"], utc=True))
        ts = pa.array(when.dt.as_unit("us"), TS_TYPE)
    labels = pa.ListArray.from_arrays(
        pa.array(np.arange(n + 1, dtype=np.int32) * len(c.labels)),
        pa.array(list(c.labels) * n, pa.string()),
    )
    return pa.table(
        {
            "user_id": _strings(rows["user_id"], n, strict=True),
            "event": pa.repeat(pa.scalar(event, pa.string()), n),
            "ts": ts,
            "campaign_id": pa.repeat(pa.scalar(c.id, pa.string()), n),
            "variant": _strings(rows["variant"], n),
            "channel": pa.repeat(pa.scalar(c.channel, pa.string()), n),
            "labels": labels,
            "message_key": _strings(rows["message_key"], n),
            "control_group": _strings(control_group, n),
            "reason": _strings(reason, n),
        }
    )


def _append(ws: Core, fp: str, table: pa.Table) -> None:
    if table.num_rows:
        ws.append("events", table, fingerprint=fp, source="campaigns")


def _plan_events(ws: Core, frame: pd.DataFrame, c: Campaign, run_key: str) -> None:
    ctrl = frame[frame["decision"] == "control"]
    grp = np.where(ctrl["reason"] == "global_control", "global", "campaign")
    _append(ws, f"campaigns:{run_key}:control", _events(CONTROL_GROUP, ctrl, c, control_group=grp))
    sup = frame[frame["decision"] == "suppressed"]
    _append(
        ws,
        f"campaigns:{run_key}:suppressed",
        _events(NOTIFICATION_SUPPRESSED, sup, c, reason=sup["reason"]),
    )


def _ledger_events(ws: Core, run_key: str, c: Campaign) -> None:
    """Append every event batch recorded on the ledger that the store does not hold yet
    (except those of a unit a live sender is still delivering: it appends them itself)."""
    now_us = H.now_us()
    with ws.state.read() as conn:
        fps = [
            r[0]
            for r in conn.execute(
                sa.select(L.ledger.c.event_batch)
                .where(L.ledger.c.run_key == run_key, L.ledger.c.event_batch.is_not(None))
                .distinct()
            )
        ]
        busy = {
            fp
            for fp, ow, le in conn.execute(
                sa.select(
                    L.ledger.c.event_batch, L.ledger.c.owner, sa.func.max(L.ledger.c.lease_us)
                )
                .where(
                    L.ledger.c.run_key == run_key,
                    L.ledger.c.event_batch.is_not(None),
                    L.ledger.c.lease_us.is_not(None),
                )
                .group_by(L.ledger.c.event_batch, L.ledger.c.owner)
            )  # fmt: skip
            if not H.stale(ow, le, now_us)
        }
    for fp in fps:
        if fp in busy:
            continue
        if ws.store.find("events", fp) is not None:
            continue
        with ws.state.read() as conn:
            rows = conn.execute(
                sa.select(
                    L.ledger.c.user_id,
                    L.ledger.c.variant,
                    L.ledger.c.send_at,
                    L.ledger.c.key,
                    L.ledger.c.status,
                    L.ledger.c.reason,
                )
                .where(L.ledger.c.event_batch == fp)
                .order_by(L.ledger.c.key)
            ).fetchall()
        df = pd.DataFrame(
            rows, columns=["user_id", "variant", "send_at", "message_key", "status", "reason"]
        )
        df["send_at"] = pd.to_datetime(df["send_at"].astype(np.int64), unit="us", utc=True)
        if fp.endswith("#s"):
            _append(ws, fp, _events(NOTIFICATION_SUPPRESSED, df, c, reason=df["reason"]))
        else:
            _append(ws, fp, _events(NOTIFICATION_SENT, df[df["status"] == "sent"], c))


_INSERT = (
    'INSERT INTO el_campaign_ledger ("key", run_key, campaign_id, user_id, channel, variant, '
    "timezone, send_at, status, reason, batch, event_batch, updated_at, owner, lease_us, "
    "due_us, origin_us, expires_us) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
    'ON CONFLICT ("key") DO NOTHING'
)


_INSERT_JSON = (
    'INSERT INTO el_campaign_ledger ("key", run_key, campaign_id, user_id, channel, variant, '
    "timezone, send_at, status, reason, batch, event_batch, updated_at, owner, lease_us, "
    "due_us, origin_us, expires_us) "
    "SELECT value ->> 0, ?, ?, value ->> 1, ?, value ->> 2, value ->> 3, value ->> 4, ?, "
    "value ->> 5, ?, ?, ?, ?, ?, value ->> 4, value ->> 6, value ->> 7 "
    'FROM json_each(?) WHERE true ON CONFLICT ("key") DO NOTHING'
)


def _insert(
    conn: sa.Connection, rows: dict[str, np.ndarray], reason: np.ndarray | None,
    const: tuple[Any, ...],
) -> None:  # fmt: skip
    """Insert ledger rows: on SQLite one statement over the batch as a JSON array (built by
    Arrow kernels: no per-row Python), elsewhere ``executemany`` of plain tuples. A key
    that exists already is left as it is (``ON CONFLICT DO NOTHING``). ``const`` is (run
    key, campaign, channel, status, batch, event batch, updated at[, owner, lease µs])."""
    n = len(rows["message_key"])
    if not n:
        return
    run_key, cid, channel, status, b, ev, now, *held = const
    owner, lease = (*held, None, None)[:2]
    reasons = np.full(n, None, dtype=object) if reason is None else reason
    origin = rows.get("origin_us", rows["send_us"])
    expires = rows.get("expires_us")
    if expires is None:
        expires = np.full(n, None, dtype=object)
    if conn.dialect.name == "sqlite" and L.SQLITE_JSON:
        js = [json_strings(rows[k]) for k in ("message_key", "user_id", "variant", "timezone")]
        t = pa.array(np.asarray(rows["send_us"], dtype=np.int64)).cast(pa.string())
        o = pa.array(np.asarray(origin, dtype=np.int64)).cast(pa.string())
        x = pc.fill_null(pa.array(expires, pa.int64()).cast(pa.string()), "null")
        doc = pc.binary_join_element_wise(
            "[", js[0], ",", js[1], ",", js[2], ",", js[3], ",", t, ",", json_strings(reasons),
            ",", o, ",", x, "],", "",
        )  # fmt: skip
        text = "[" + bytes(data(doc)[:-1]).decode("utf-8") + "]"
        cur = conn.connection.cursor()
        try:
            cur.execute(
                _INSERT_JSON, (run_key, cid, channel, status, b, ev, now, owner, lease, text)
            )
        finally:
            cur.close()
        return
    # plain tuples straight from the columns: no per-row dicts or objects
    H.executemany(conn, _INSERT, zip(
        rows["message_key"], repeat(run_key), repeat(cid), rows["user_id"], repeat(channel),
        rows["variant"], rows["timezone"], rows["send_us"].tolist(), repeat(status), reasons,
        repeat(b), repeat(ev), repeat(now), repeat(owner), repeat(lease),
        rows["send_us"].tolist(), np.asarray(origin).tolist(), expires.tolist(),
    ))  # fmt: skip


def _take(rows: dict[str, np.ndarray], mask: Any) -> dict[str, np.ndarray]:
    return {k: v[mask] for k, v in rows.items()}


def _states(conn: sa.Connection, keys: list[str]) -> dict[str, tuple[Any, ...]]:
    """(status, owner, lease µs, due µs, expires µs) of the ledger rows of ``keys`` that
    exist."""
    out: dict[str, tuple[Any, ...]] = {}
    sql = (
        'SELECT "key", status, owner, lease_us, due_us, expires_us FROM el_campaign_ledger '
        'WHERE "key" IN '
    )
    if conn.dialect.name == "sqlite" and L.SQLITE_JSON:
        for i in range(0, len(keys), 50_000):
            part = keys[i : i + 50_000]
            for k, *rest in L.fetch(
                conn, sql + "(SELECT value FROM json_each(?))", [json.dumps(part)]
            ):
                out[k] = tuple(rest)
        return out
    for i in range(0, len(keys), _IN):
        part = keys[i : i + _IN]
        for k, *rest in L.fetch(conn, sql + "(" + ", ".join("?" * len(part)) + ")", part):
            out[k] = tuple(rest)
    return out


class _Claim:
    """What one claim transaction decided for a unit."""

    def __init__(
        self, go: np.ndarray, redelivered: int, suppressed: int, skipped: int, queued: int = 0
    ):
        self.go = go  #: rows this ``send`` call owns now and delivers
        self.queued = queued  #: new rows put in the queue (not due yet)
        self.redelivered = redelivered  #: of them, taken over in doubt
        self.suppressed = suppressed  #: turned down by caps / minimum gap now
        self.skipped = skipped  #: held by another live sender


def _claim(
    conn: sa.Connection,
    c: Campaign,
    run_key: str,
    b: int,
    attempt: int,
    rows: dict[str, np.ndarray],
    owner: str,
    lease_s: float,
    due_us: int | None = None,
    caps: tuple[Any, ...] | None = None,
) -> _Claim:
    """Claim a unit in one transaction: insert the absent keys (``ON CONFLICT DO
    NOTHING``) — claimed when due by ``due_us`` (the send clock's now; None: all due),
    queued otherwise — take over stale claims and queued rows that fell due (not expired),
    and read back which rows this call owns. ``caps``: the caps to check (default: the
    campaign's own; ``send`` passes them with the workspace's)."""
    keys = rows["message_key"].tolist()
    caps = campaign_caps(c) if caps is None else caps
    gap = c.delivery.min_gap_hours
    with conn.begin():
        now = H.stamp(conn)
        now_us = H.now_us()
        lease = now_us + int(lease_s * _US)
        if caps or gap:
            L.lock_caps(conn)
        have = _states(conn, keys)
        is_new = np.fromiter((k not in have for k in keys), bool, len(keys)) if have else (
            np.ones(len(keys), dtype=bool)
        )  # fmt: skip
        new = _take(rows, is_new)
        n_new = int(is_new.sum())
        reason = np.full(n_new, None, dtype=object)
        if n_new and (caps or gap):
            reason = _caps(conn, c, run_key, new, caps, gap)
        sup = reason != None  # noqa: E711
        n_sup = int(sup.sum())
        later = (
            np.zeros(n_new, dtype=bool) if due_us is None else new["send_us"] > due_us
        )  # fmt: skip
        ok = _take(new, ~sup & ~later) if n_sup or later.any() else new
        _insert(conn, ok, None, (run_key, c.id, c.channel, "claimed", b, None, now, owner, lease))
        n_queued = int((later & ~sup).sum())
        if n_queued:
            _insert(conn, _take(new, later & ~sup), None,
                    (run_key, c.id, c.channel, "queued", b, None, now, None, None))  # fmt: skip
        if n_sup:
            _insert(conn, _take(new, sup), reason[sup],
                    (run_key, c.id, c.channel, "suppressed", b, f"{run_key}#{b}#{attempt}#s",
                     now, None, None))  # fmt: skip
        stale = [
            (k, st) for k, (st, ow, le, *_) in have.items()
            if st in ("claimed", "handed") and H.stale(ow, le, now_us)
        ]  # fmt: skip
        taken: set[str] = set()
        for k, _st in stale:
            st, ow, le, *_ = have[k]
            res = conn.execute(
                L.ledger.update()
                .where(
                    L.ledger.c.key == k,
                    L.ledger.c.status == st,
                    L.ledger.c.owner.is_(None) if ow is None else L.ledger.c.owner == ow,
                    L.ledger.c.lease_us.is_(None) if le is None else L.ledger.c.lease_us == le,
                )
                .values(owner=owner, lease_us=lease, run_key=run_key, batch=b,
                        updated_at=L.now())
            )  # fmt: skip
            if res.rowcount:
                taken.add(k)
        # queued rows that fell due (and have not expired) go now, like new ones
        fell = [
            k for k, (st, _ow, _le, due, exp) in have.items()
            if st == "queued" and (due_us is None or (due is not None and due <= due_us))
            and (exp is None or due_us is None or exp > due_us)
        ]  # fmt: skip
        released: set[str] = set()
        for k in fell:
            res = conn.execute(
                L.ledger.update()
                .where(L.ledger.c.key == k, L.ledger.c.status == "queued")
                .values(status="claimed", owner=owner, lease_us=lease, updated_at=L.now())
            )
            if res.rowcount:
                released.add(k)
        # SQLite write transactions are exclusive: what was absent is ours. Elsewhere a
        # concurrent claim may have inserted a key first: read back who owns it.
        if conn.dialect.name == "sqlite":
            mine_new = is_new.copy()
            mine_new[is_new] = ~sup & ~later
            final = have
        else:
            final = _states(conn, keys)
            mine_new = np.fromiter(
                (k not in have and final.get(k, ("", None))[:2] == ("claimed", owner)
                 for k in keys), bool, len(keys),
            )  # fmt: skip
    go = mine_new
    redelivered = 0
    if released:
        go = go | np.fromiter((k in released for k in keys), bool, len(keys))
    if taken:
        took = np.fromiter((k in taken for k in keys), bool, len(keys))
        go = go | took
        redelivered = int(took.sum())
    skipped = sum(
        1
        for k, g in zip(keys, go.tolist(), strict=True)
        if not g and final.get(k, ("",))[0] in ("claimed", "handed")
    )
    return _Claim(go, redelivered, n_sup, skipped, n_queued)


def _caps(
    conn: sa.Connection,
    c: Campaign,
    run_key: str,
    new: dict[str, np.ndarray],
    caps: Any,
    gap: float | None,
    queued: bool = False,
) -> np.ndarray:
    """Suppression reason per new row from the caps and minimum gap, checked against the
    ledger's history of these users (None where the message may go; ``queued``: messages
    waiting in the queue count too)."""
    reason = np.full(len(new["message_key"]), None, dtype=object)
    t = new["send_us"]
    spans = [k.seconds if k.kind == "rolling" else 32 * 86400 for k in caps]
    span = max(spans + [int((gap or 0) * 3600)]) * _US
    hist = L.history(
        conn, int(t.min()) - span, int(t.max()) + span, users=new["user_id"].tolist(),
        exclude_run=run_key, queued=queued,
    )  # fmt: skip
    if hist.empty:
        return reason
    u, tz = new["user_id"], pd.Series(new["timezone"])
    if gap:
        h = hist[hist["campaign_id"] == c.id]
        hit = timing.cap_conflicts(
            u, t, tz, c.channel, h["user_id"].to_numpy(), h["t"].to_numpy(),
            h["channel"].to_numpy(), [gap_cap(gap)],
        )  # fmt: skip
        reason[hit] = "min_gap"
    over = timing.cap_conflicts(
        u, t, tz, c.channel, hist["user_id"].to_numpy(), hist["t"].to_numpy(),
        hist["channel"].to_numpy(), caps,
    )  # fmt: skip
    reason[over & (reason == None)] = "frequency_cap"  # noqa: E711
    return reason


def _payloads(
    ws: Core, c: Campaign, rows: dict[str, np.ndarray]
) -> tuple[np.ndarray, list[Any], dict[int, str]]:
    """(index into the payload list per row, the payload list, the rows that cannot be
    rendered with why): a variant's static content is rendered once and shared; templated
    content is rendered per user, and one user's bad value fails only that message."""
    contents = {v.name: v.content for v in c.variants}
    static: dict[str, dict[str, Any]] = {}
    needs: dict[str, Any] = {}
    for name, content in contents.items():
        vars_ = content.template_variables() if hasattr(content, "template_variables") else set()
        if vars_ and hasattr(content, "render"):
            needs[name] = content
        else:
            # render even without variables: rendering applies the channel's post-render
            # checks and computed fields (e.g. SMS segments); it is done once per variant
            static[name] = content.render({}) if hasattr(content, "render") else dict(content)
    table: list[Any] = list(static.values())
    variants = rows["variant"]
    idx = pd.Index(list(static), dtype=object).get_indexer(pd.Index(variants, dtype=object))
    todo = np.flatnonzero(idx < 0)
    if not len(todo):
        return idx.astype(np.intp), table, {}
    unknown = {v for v in variants[todo] if v not in needs}
    if unknown:
        raise ValidationError("variant", sorted(map(str, unknown))[0], "is not a campaign variant")
    ids = rows["user_id"][todo].tolist()
    prof = ws.sql("SELECT * FROM profiles WHERE user_id IN (SELECT unnest($ids))", {"ids": ids})
    ctx = {
        r["user_id"]: {k: (None if isinstance(v, float) and v != v else v) for k, v in r.items()}
        for r in prof.to_dict("records")
    }
    idx[todo] = np.arange(len(table), len(table) + len(todo))
    from engagelab.campaigns.plan import event_context

    ev_col = rows.get("event_properties")
    evs = ev_col[todo] if ev_col is not None else [None] * len(todo)
    bad: dict[int, str] = {}
    for pos, u, v, e in zip(todo.tolist(), ids, variants[todo], evs, strict=True):
        try:
            table.append(
                needs[v].render({"profile": ctx.get(u, {"user_id": u}), "event": event_context(e)})
            )
        except ValidationError as exc:  # TemplateError included: this message only
            table.append(None)
            bad[pos] = f"cannot render: {exc}"[:2000]
    return idx.astype(np.intp), table, bad


def _sorted_by_key(frame: pd.DataFrame) -> pd.DataFrame:
    """The rows in binary order of their message keys, so every batch is a key range
    (sorted before the columns become Python objects: Arrow takes them without refcounts)."""
    col = frame["message_key"]
    try:
        keys = pa.array(col)  # zero-copy for Arrow-backed strings
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        keys = pa.array(col.tolist(), pa.string())
    return frame.take(pc.sort_indices(keys).to_numpy())


def _final(
    ws: Core, keys: list[str], owner: str
) -> tuple[dict[str, int], int, int, dict[str, int]]:
    """(rows per status, in doubt held by this call, held by other live senders,
    suppressed per reason) over the ledger rows of ``keys``."""
    counts: dict[str, int] = {}
    reasons: dict[str, int] = {}
    mine = other = 0
    sql = 'SELECT status, owner, reason, lease_us FROM el_campaign_ledger WHERE "key" IN '
    now_us = H.now_us()
    with ws.state.read() as conn:
        sqlite = conn.dialect.name == "sqlite" and L.SQLITE_JSON
        step = 50_000 if sqlite else _IN
        for i in range(0, len(keys), step):
            part = keys[i : i + step]
            if sqlite:
                got = L.fetch(conn, sql + "(SELECT value FROM json_each(?))", [json.dumps(part)])
            else:
                got = L.fetch(conn, sql + "(" + ", ".join("?" * len(part)) + ")", part)
            for st, ow, reason, lease in got:
                counts[st] = counts.get(st, 0) + 1
                if st == "suppressed" and reason:
                    reasons[reason] = reasons.get(reason, 0) + 1
                if st in ("claimed", "handed"):
                    if ow == owner or H.stale(ow, lease, now_us):
                        mine += 1
                    else:
                        other += 1
    return counts, mine, other, reasons


def send(  # noqa: C901
    ws: Core,
    plan: Plan,
    run_key: str | None = None,
    provider: Any = None,
    *,
    batch_size: int = 50_000,
    retries: int = 2,
    lease_seconds: float = LEASE_SECONDS,
    clock: Clock | None = None,
) -> SendResult:
    """Enqueue ``plan`` under ``run_key`` (default: the plan's) and deliver, effectively
    once, what is due now.

    Every planned message gets a ledger row keyed by its message key (``ON CONFLICT DO
    NOTHING``: enqueueing an occurrence again adds nothing). A message due by ``clock``
    goes at once on the path below; one due later stays ``queued`` (with its due time,
    origin and expiry) for the dispatcher (:class:`engagelab.campaigns.Dispatcher`,
    ``engagelab dispatch``), counted in ``SendResult.queued``.

    Messages go in claim units ordered by message key. Per unit: one claim transaction
    (insert the absent ledger rows with ``ON CONFLICT DO NOTHING``, take over stale
    claims, caps re-checked against the ledger under the caps lock), one provider call
    carrying the message keys this call owns, one mark transaction, one append of the
    unit's 'Notification Sent' events. Messages another live sender holds are skipped
    (``SendResult.skipped``); a provider with a ``progress`` hook (SMTP) gets units of at
    most :data:`HANDOFF_UNIT` and each message is recorded as it is handed over and
    accepted.

    Args:
        ws: the workspace.
        plan: from :func:`~engagelab.campaigns.plan` (ignored on a rerun: the run's
            snapshot is used).
        run_key: the run's key (groups the attempts, the outbox file and the events).
        provider: a provider (default: the outbox file of the run).
        batch_size: messages per claim / provider call.
        retries: extra provider calls for transient failures within this attempt.
        lease_seconds: how long a claim holds; a claim of a sender that stopped is taken
            over after it (at once when its process on this host no longer exists).
        clock: what "now" is for due times (default: the system clock); leases always
            run on the system clock.
    """
    if not isinstance(plan, Plan):
        raise ValidationError("plan", type(plan).__name__, "must be a Plan from plan(...)")
    check_int("batch_size", batch_size, low=1)
    check_int("retries", retries, low=0)
    check_number("lease_seconds", lease_seconds, low=0, low_open=True)
    clk = as_clock(clock)
    run_key = L.check_run_key(run_key or plan.run_key)
    t0 = time.perf_counter()
    frame, c, attempt = _start(ws, plan, run_key)
    _plan_events(ws, frame, c, run_key)
    if attempt > 1:
        _ledger_events(ws, run_key, c)
    if provider is None:
        # the workspace's configured provider for the channel: the outbox file of the run
        # by default, the inbox for pulled channels, SMTP/HTTP where engagelab.yaml says so
        from engagelab.delivery.registry import provider_for

        prov = provider_for(c.channel, ws, {"run_key": run_key})
    else:
        prov = provider
    hooked = H.has_progress(prov)
    unit = min(batch_size, HANDOFF_UNIT) if hooked else batch_size
    cols = ["user_id", "variant", "to", "message_key", "timezone", "send_at"]
    cols += [k for k in ("event_properties", "origin_at") if k in frame.columns]
    # Arrow-backed until a unit needs its values as Python objects (memory: one unit)
    todo = _sorted_by_key(frame.loc[frame["decision"] == "send", cols])
    n_todo = len(todo)
    ttl = int(c.delivery.ttl_hours * 3600 * _US) if c.delivery.ttl_hours else None
    owner = H.owner_token()
    caps = campaign_caps(c, ws)
    sent = redelivered = failed = 0
    prov.open()
    try:
        with H.connection(ws) as conn:
            for b, lo in enumerate(range(0, n_todo, unit)):
                rows = _arrays(todo.iloc[lo : lo + unit], ttl)
                cl = _claim(
                    conn, c, run_key, b, attempt, rows, owner, lease_seconds, now_us(clk), caps
                )
                redelivered += cl.redelivered
                if cl.suppressed:
                    _flush_suppressed(ws, run_key, b, attempt, c)
                if not cl.go.any():
                    continue
                span = (rows["message_key"][0], rows["message_key"][-1])
                n_ok, n_fail = hand_over(
                    ws, conn, prov, c, _take(rows, cl.go), f"{run_key}#{b}#{attempt}", owner,
                    lease_seconds=lease_seconds, retries=retries, span=span,
                )  # fmt: skip
                sent += n_ok
                failed += n_fail
    except BaseException:
        with contextlib.suppress(Exception):
            H.release(ws, owner)
        raise
    finally:
        prov.close()
    counts, pending, skipped, late = _final(ws, todo["message_key"].tolist(), owner)
    pending += max(0, n_todo - sum(counts.values()))
    if pending:  # what this call still holds goes to the next send at once
        H.release(ws, owner)
    finished = pending == 0 and skipped == 0
    with ws.state.write() as conn:
        conn.execute(
            L.runs.update()
            .where(L.runs.c.run_key == run_key)
            .values(status="done" if finished else "running",
                    finished_at=L.now() if finished else None)
        )  # fmt: skip
    reasons = {str(k): int(v) for k, v in frame["reason"].value_counts().items()}
    for r, n in late.items():
        reasons[r] = reasons.get(r, 0) + n
    return SendResult(
        run_key,
        c.id,
        attempt,
        n_todo,
        sent - redelivered,
        counts.get("sent", 0) - sent,
        redelivered,
        counts.get("suppressed", 0),
        counts.get("failed", 0),
        pending,
        time.perf_counter() - t0,
        reasons,
        skipped,
        plan.note if attempt == 1 else "",
        counts.get("queued", 0),
    )


def hand_over(
    ws: Core,
    conn: sa.Connection,
    prov: Any,
    c: Campaign,
    go: dict[str, np.ndarray],
    fp: str,
    owner: str,
    *,
    lease_seconds: float,
    retries: int,
    span: tuple[str, str] | None = None,
    handed_us: int | None = None,
) -> tuple[int, int]:
    """Hand the claimed messages ``go`` (columns of :func:`_arrays`, sorted by key) to
    ``prov`` and record the outcome; return (sent, failed).

    Renders the payloads (a message that cannot be rendered fails alone), gives a provider
    with a ``progress`` hook a :class:`~engagelab.delivery.handover.Progress`, retries
    transient failures, marks the unit in one transaction and appends its 'Notification
    Sent' events under ``fp`` (stamped ``handed_us`` when given, the hand-over time;
    else each message's planned time). ``span`` (the unit's key range) lets the mark
    update by key range; without it rows are marked one by one.
    """
    failed = 0
    index, payloads, bad = _payloads(ws, c, go)
    if bad:
        failed += H.fail_unrenderable(conn, owner, go["message_key"], bad)
        keep = np.ones(len(go["message_key"]), bool)
        keep[list(bad)] = False
        go, index = _take(go, keep), index[keep]
        if not keep.any():
            return 0, failed
    ttl = int(c.delivery.ttl_hours * 3600) if c.delivery.ttl_hours else None
    batch = MessageBatch(
        go["message_key"], go["user_id"], go["variant"], go["to"], go["send_us"],
        index, payloads, c.id, c.channel, tuple(c.labels), ttl,
    )  # fmt: skip
    hooked = H.has_progress(prov)
    hook = H.Progress(ws, owner, fp, lease_seconds) if hooked else None
    if hook is not None:
        cast(Any, prov).progress = hook
    try:
        res = H.deliver(prov, batch, retries)
    finally:
        if hook is not None:
            cast(Any, prov).progress = None
            hook.close()
    by_range = span is not None and not hooked
    n_ok, n_fail = H.mark(
        conn, owner, fp, go["message_key"], span or ("", ""), res, by_range=by_range
    )
    ok = _take(go, res.ok)
    if handed_us is not None:
        ok["send_us"] = np.full(len(ok["message_key"]), handed_us, dtype=np.int64)
    _append(ws, fp, _events(NOTIFICATION_SENT, ok, c))
    return n_ok, failed + n_fail


def _flush_suppressed(ws: Core, run_key: str, b: int, attempt: int, c: Campaign) -> None:
    fp = f"{run_key}#{b}#{attempt}#s"
    with ws.state.read() as conn:
        rows = conn.execute(
            sa.select(
                L.ledger.c.user_id,
                L.ledger.c.variant,
                L.ledger.c.send_at,
                L.ledger.c.key,
                L.ledger.c.reason,
            )
            .where(L.ledger.c.event_batch == fp)
            .order_by(L.ledger.c.key)
        ).fetchall()
    if rows:
        df = pd.DataFrame(rows, columns=["user_id", "variant", "send_at", "message_key", "reason"])
        df["send_at"] = pd.to_datetime(df["send_at"].astype(np.int64), unit="us", utc=True)
        _append(ws, fp, _events(NOTIFICATION_SUPPRESSED, df, c, reason=df["reason"]))


# the shared hand-over pieces under the names this module has always used
_connection, _mark = H.connection, H.mark
