"""The hand-over of messages to a provider and its bookkeeping on the ledger, shared by
``send`` (messages due at once) and the dispatcher (messages released from the queue).

A holder of claims is an *owner* (host, process id and a random part); its claims hold
until their lease (``lease_us``) ends, or, on the same host, until its process is gone
(:func:`stale`). A provider with a ``progress`` hook (SMTP: no idempotency) gets a
:class:`Progress` that records ``handed`` / ``sent`` per message at once; :func:`mark`
records a delivered unit in one transaction; :func:`release` lets go of what an owner
still holds so the next sender may take it at once.
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from itertools import repeat
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa

from engagelab.clock import Clock
from engagelab.clock import now_us as clock_us
from engagelab.delivery import ledger as L
from engagelab.delivery.protocol import BatchResult, MessageBatch, deliver_batch
from engagelab.errors import ValidationError, WorkspaceError

if TYPE_CHECKING:
    from engagelab.storage.core import Core

__all__ = [
    "HOST",
    "MINE",
    "Progress",
    "alive",
    "connection",
    "deliver",
    "executemany",
    "fail_unrenderable",
    "has_progress",
    "mark",
    "now_us",
    "owner_token",
    "release",
    "release_count",
    "stale",
    "stamp",
]

_US = 1_000_000

HOST = socket.gethostname()[:60]


def owner_token() -> str:
    """The owner token of one ``send`` call: host, process id and a random part."""
    return f"{HOST}:{os.getpid()}:{uuid.uuid4().hex[:16]}"


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError as exc:
        return exc.errno == errno.EPERM
    return True


def stale(owner: str | None, lease_us: int | None, now_us: int) -> bool:
    """True when a claim may be taken over: its lease expired (or was released), or its
    owner was a process of this host that no longer exists."""
    if lease_us is None or int(lease_us) <= now_us or not owner:
        return True
    host, _, rest = owner.partition(":")
    pid = rest.partition(":")[0]
    if host != HOST or not pid.isdigit() or int(pid) == os.getpid():
        return False
    return not alive(int(pid))


def now_us(clock: Clock | None = None) -> int:
    """Microseconds since the epoch, UTC, by ``clock`` (default: the system clock)."""
    if clock is None:
        return int(L.now().timestamp() * _US)
    return clock_us(clock)


def stamp(conn: sa.Connection) -> Any:
    """The current time as the driver should bind it for a DateTime column (SQLite keeps
    SQLAlchemy's text format, bound once instead of adapted per row)."""
    now = L.now()
    if conn.dialect.name == "sqlite":
        return now.strftime("%Y-%m-%d %H:%M:%S.%f")
    return now


def executemany(conn: sa.Connection, sql: str, rows: Iterable[tuple[Any, ...]]) -> None:
    """``executemany`` on the DBAPI cursor of this transaction (``?`` placeholders are
    rewritten for drivers with the ``format``/``pyformat`` style)."""
    if isinstance(rows, list) and not rows:
        return
    if conn.dialect.paramstyle in ("format", "pyformat"):
        sql = sql.replace("?", "%s")
    cur = conn.connection.cursor()
    try:
        cur.executemany(sql, cast(Any, rows))  # any iterable of tuples
    finally:
        cur.close()


@contextlib.contextmanager
def connection(ws: Core) -> Iterator[sa.Connection]:
    """One state-DB connection for all the claim / mark transactions of a send (its page
    cache stays warm across batches); each transaction is still ``BEGIN IMMEDIATE`` on
    SQLite, committed before the provider call."""
    with ws.state.engine.connect() as conn:
        conn = conn.execution_options(el_immediate=True)
        if conn.dialect.name == "sqlite":
            driver = conn.connection.driver_connection
            if driver is None:
                raise WorkspaceError("the state database connection is closed")
            driver.execute("PRAGMA cache_size=-131072")  # 128 MB
        yield conn


_HEX = r"^[0-9a-z]+$"


class _RangeMismatch(Exception):
    """The key-range update touched other rows than expected (rolled back)."""


def mark(
    conn: sa.Connection,
    owner: str,
    fp: str,
    keys: np.ndarray,
    span: tuple[str, str],
    res: BatchResult,
    by_range: bool = True,
) -> tuple[int, int]:
    """Mark a delivered unit in one transaction; return (sent, permanently failed).

    ``keys`` (sorted) are the messages delivered; every ledger row owned by this call whose
    key lies in ``span`` and is still ``claimed`` is one of them. The sent rows are marked
    with one ``UPDATE`` over the key range (per key when the range cannot be trusted to be
    exact: failures to leave claimed, a non-binary key collation, or rows already marked
    one by one). Transient failures stay in doubt and their claims are released, so the
    next send retries them at once.
    """
    ok = res.ok
    perm = ~ok & res.permanent
    stay = ~ok & ~perm
    n_ok = int(ok.sum())
    # SQLite compares keys bytewise (the order they were sorted in); other databases use a
    # collation, which agrees with it for keys of digits and lowercase letters (all of ours)
    by_range = by_range and int(stay.sum()) <= 500
    if by_range and conn.dialect.name != "sqlite":
        every = pa.array(np.concatenate([keys, np.array(span, dtype=object)]), pa.string())
        by_range = bool(pc.all(pc.match_substring_regex(every, _HEX)).as_py())
    try:
        with conn.begin():
            _mark_tx(conn, owner, fp, keys, span, res, ok, perm, stay, n_ok, by_range)
    except _RangeMismatch:
        with conn.begin():
            _mark_tx(conn, owner, fp, keys, span, res, ok, perm, stay, n_ok, False)
    return n_ok, int(perm.sum())


MINE = "AND owner = ? AND status IN ('claimed', 'handed')"


def _mark_tx(
    conn: sa.Connection, owner: str, fp: str, keys: np.ndarray, span: tuple[str, str],
    res: BatchResult, ok: np.ndarray, perm: np.ndarray, stay: np.ndarray, n_ok: int,
    by_range: bool,
) -> None:  # fmt: skip
    now = stamp(conn)
    if perm.any():
        err = res.error if res.error is not None else np.full(len(ok), None, dtype=object)
        executemany(
            conn,
            "UPDATE el_campaign_ledger SET status = 'failed', error = ?, updated_at = ?, "
            f'lease_us = NULL WHERE "key" = ? {MINE}',
            [((e or "")[:2000], now, k, owner) for e, k in zip(err[perm], keys[perm], strict=True)],
        )
    if stay.any():
        executemany(
            conn,
            f'UPDATE el_campaign_ledger SET lease_us = NULL, updated_at = ? WHERE "key" = ? {MINE}',
            zip(repeat(now), keys[stay].tolist(), repeat(owner)),
        )
    if by_range and n_ok:
        sql = (
            "UPDATE el_campaign_ledger SET status = 'sent', event_batch = ?, updated_at = ?, "
            'lease_us = NULL WHERE "key" >= ? AND "key" <= ? AND owner = ? '
            "AND status = 'claimed'"
        )
        held = keys[stay].tolist()
        if held:
            sql += ' AND "key" NOT IN (' + ", ".join("?" * len(held)) + ")"
        if conn.dialect.paramstyle in ("format", "pyformat"):
            sql = sql.replace("?", "%s")
        cur = conn.connection.cursor()
        try:
            cur.execute(sql, [fp, now, span[0], span[1], owner, *held])
            done = cur.rowcount
        finally:
            cur.close()
        if done != n_ok:
            raise _RangeMismatch(done)
    elif n_ok:
        executemany(
            conn,
            "UPDATE el_campaign_ledger SET status = 'sent', event_batch = ?, updated_at = ?, "
            'lease_us = NULL WHERE "key" = ? AND owner = ? '
            "AND status IN ('claimed', 'handed', 'sent')",
            zip(repeat(fp), repeat(now), keys[ok].tolist(), repeat(owner)),
        )
    pid = res.provider_id
    if pid is not None:
        named = ok & (pid != None) & (pid != keys)  # noqa: E711
        if named.any():
            executemany(
                conn,
                'UPDATE el_campaign_ledger SET provider_id = ? WHERE "key" = ?',
                zip(pid[named].tolist(), keys[named].tolist(), strict=True),
            )


def deliver(prov: Any, batch: MessageBatch, retries: int) -> BatchResult:
    """The provider's answers for ``batch``, transient failures retried with backoff."""
    res = deliver_batch(prov, batch)
    for attempt_no in range(retries):
        again = np.flatnonzero(~res.ok & ~res.permanent)
        if not len(again):
            break
        time.sleep(min(2.0, 0.1 * 2**attempt_no))
        res = res.merge(again, deliver_batch(prov, batch.take(again)))
    return res


def has_progress(prov: Any) -> bool:
    """True for a provider that reports per-message progress (``progress`` attribute)."""
    return hasattr(prov, "progress")


class Progress:
    """The ``progress`` hook of one unit: records ``handed`` / ``sent`` per message at once
    (thread-safe: a provider may deliver over several connections)."""

    def __init__(self, ws: Core, owner: str, fp: str, lease_s: float, clock: Clock | None = None):
        self.ws, self.owner, self.fp, self.lease_s = ws, owner, fp, lease_s
        self.clock = clock
        self.lock = threading.Lock()
        self.conn: sa.Connection | None = None

    def __call__(self, key: str, stage: str) -> None:
        with self.lock:
            if self.conn is None:
                self.conn = self.ws.state.engine.connect().execution_options(el_immediate=True)
            conn = self.conn
            with conn.begin():
                now = stamp(conn)
                if stage == "handed":
                    sql = (
                        "UPDATE el_campaign_ledger SET status = 'handed', lease_us = ?, "
                        "updated_at = ? WHERE \"key\" = ? AND owner = ? AND status = 'claimed'"
                    )
                    args: list[Any] = [
                        now_us(self.clock) + int(self.lease_s * _US),
                        now,
                        key,
                        self.owner,
                    ]
                elif stage == "sent":
                    # the lease stays until the unit's mark: its events are not appended yet
                    sql = (
                        "UPDATE el_campaign_ledger SET status = 'sent', event_batch = ?, "
                        f'updated_at = ? WHERE "key" = ? {MINE}'
                    )
                    args = [self.fp, now, key, self.owner]
                else:
                    raise ValidationError("progress stage", stage, "must be 'handed' or 'sent'")
                executemany(conn, sql, [tuple(args)])

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def release(ws: Core, owner: str) -> None:
    """Release the claims this call still holds (after an error): the next send may
    retry them at once instead of waiting for the lease."""
    with ws.state.write() as conn:
        conn.execute(
            L.ledger.update()
            .where(L.ledger.c.owner == owner, L.ledger.c.status.in_(("claimed", "handed")))
            .values(lease_us=None)
        )


def release_count(ws: Core, owner: str) -> int:
    """Give back what ``owner`` still holds, as a dispatcher does: claims never handed over
    return to the queue (``queued``, due at once); ``handed`` ones (in doubt) keep their
    status with the lease released. Returns how many rows were given back."""
    with ws.state.write() as conn:
        back = conn.execute(
            L.ledger.update()
            .where(L.ledger.c.owner == owner, L.ledger.c.status == "claimed")
            .values(
                status="queued", owner=None, lease_us=None,
                due_us=sa.func.coalesce(L.ledger.c.due_us, L.ledger.c.send_at),
            )
        ).rowcount  # fmt: skip
        doubt = conn.execute(
            L.ledger.update()
            .where(L.ledger.c.owner == owner, L.ledger.c.status == "handed")
            .values(lease_us=None)
        ).rowcount
    return int(back or 0) + int(doubt or 0)


def fail_unrenderable(
    conn: sa.Connection, owner: str, keys: np.ndarray, bad: dict[int, str]
) -> int:
    """Mark the messages whose content cannot be rendered as permanently failed."""
    with conn.begin():
        now = stamp(conn)
        executemany(
            conn,
            "UPDATE el_campaign_ledger SET status = 'failed', error = ?, updated_at = ?, "
            f'lease_us = NULL WHERE "key" = ? {MINE}',
            [(why, now, keys[i], owner) for i, why in bad.items()],
        )
    return len(bad)
