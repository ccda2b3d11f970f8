"""State-DB tables of campaigns: saved specs, runs (with their audience snapshot), the
message ledger and workspace campaign settings (global control group).

The ledger has one row per message key (unique): ``claimed`` before the provider call
(inserted with ``ON CONFLICT DO NOTHING``: the process whose insert won owns it, recorded
in ``owner`` with a lease in ``lease_us``), ``handed`` while a provider without
idempotency (SMTP) commits it, ``sent`` after it succeeded, ``failed`` after a permanent
failure, ``suppressed`` when a frequency cap or minimum gap turned it down at claim time
(or a check of the dispatcher at release: see :mod:`engagelab.campaigns.release`). Frequency caps are checked
against the ledger inside the claim transaction, which holds the ``caps`` lock row, so
two processes never both claim the last slot of a user's cap.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import sqlalchemy as sa

from engagelab.errors import ValidationError
from engagelab.storage.statedb import utcnow
from engagelab.storage.tables import campaign_locks as locks
from engagelab.storage.tables import campaign_runs as runs
from engagelab.storage.tables import campaign_settings as settings
from engagelab.storage.tables import campaign_specs as campaigns_table
from engagelab.storage.tables import ledger
from engagelab.storage.upsert import insert_ignore

if TYPE_CHECKING:
    from engagelab.storage.core import Core

__all__ = [
    "campaigns_table",
    "history",
    "ledger",
    "locks",
    "runs",
    "settings",
]

#: SQLite can take a whole batch as one JSON parameter (``json_each``, ``->>``) instead of
#: one bound parameter per value: one statement per batch, no per-row binding.
SQLITE_JSON = sqlite3.sqlite_version_info >= (3, 38, 0)
#: Values per ``IN (...)`` list on other databases.
IN_CHUNK = 5000


def lock_caps(conn: sa.Connection) -> None:
    """Take the caps lock for the rest of this write transaction (a row lock on PostgreSQL;
    SQLite write transactions are already exclusive)."""
    res = conn.execute(locks.update().where(locks.c.name == "caps").values(n=locks.c.n + 1))
    if res.rowcount == 0:
        insert_ignore(conn, locks, [{"name": "caps", "n": 1}])
        conn.execute(locks.update().where(locks.c.name == "caps").values(n=locks.c.n + 1))


def history(
    conn: sa.Connection,
    lo_us: int,
    hi_us: int,
    *,
    users: list[str] | None = None,
    exclude_run: str | None = None,
    statuses: tuple[str, ...] = ("claimed", "handed", "sent"),
    queued: bool = False,
) -> pd.DataFrame:
    """Ledger messages (``user_id``, ``t``, ``channel``, ``campaign_id``, ``key``)
    occupying cap slots with ``send_at`` in ``[lo_us, hi_us)`` (of
    ``users`` only, when given: one statement with a JSON list on SQLite, ``IN`` lists of
    :data:`IN_CHUNK` elsewhere). ``statuses``: the ledger states that occupy a slot (at
    release the dispatcher counts only what went: ``handed`` and ``sent``); ``queued``
    adds the messages waiting in the queue."""
    if queued and "queued" not in statuses:
        statuses = ("queued", *statuses)
    bad = sorted(set(statuses) - {"claimed", "handed", "sent", "queued"})
    if bad or not statuses:
        raise ValidationError(
            "statuses",
            bad or list(statuses),
            "must be ledger states: claimed, handed, sent, queued",
        )
    sql = (
        'SELECT user_id, send_at, channel, campaign_id, "key" FROM el_campaign_ledger '
        "WHERE send_at >= ? AND send_at < ? AND status IN ("
        + ", ".join(f"'{s}'" for s in statuses)
        + ")"
    )
    params: list[Any] = [int(lo_us), int(hi_us)]
    if exclude_run is not None:
        sql += " AND run_key <> ?"
        params.append(exclude_run)
    if users is None:
        rows = fetch(conn, sql, params)
    elif conn.dialect.name == "sqlite" and SQLITE_JSON:
        sql += " AND user_id IN (SELECT value FROM json_each(?))"
        rows = fetch(conn, sql, [*params, json.dumps(list(users))]) if users else []
    else:
        rows = []
        for i in range(0, len(users), IN_CHUNK):
            part = list(users[i : i + IN_CHUNK])
            in_sql = sql + " AND user_id IN (" + ", ".join("?" * len(part)) + ")"
            rows += fetch(conn, in_sql, params + part)
    df = pd.DataFrame(rows, columns=["user_id", "t", "channel", "campaign_id", "key"])
    df["t"] = df["t"].astype(np.int64)
    return df


def fetch(conn: sa.Connection, sql: str, params: list[Any]) -> list[tuple[Any, ...]]:
    """Rows of a query on the DBAPI cursor of this transaction (``?`` placeholders)."""
    if conn.dialect.paramstyle in ("format", "pyformat"):
        sql = sql.replace("?", "%s")
    cur = conn.connection.cursor()
    try:
        cur.execute(sql, params)
        return [tuple(r) for r in cur.fetchall()]
    finally:
        cur.close()


def previous_run(ws: Core, campaign_id: str, before: dt.datetime) -> dict[str, Any] | None:
    """The latest run of ``campaign_id`` with a logical date before ``before``."""
    with ws.state.read() as conn:
        row = conn.execute(
            sa.select(runs.c.run_key, runs.c.logical_date, runs.c.phase)
            .where(runs.c.campaign_id == campaign_id, runs.c.logical_date < before)
            .order_by(runs.c.logical_date.desc())
            .limit(1)
        ).first()
    if row is None:
        return None
    ld = row.logical_date
    if ld.tzinfo is None:
        ld = ld.replace(tzinfo=dt.UTC)
    return {"run_key": row.run_key, "logical_date": ld, "phase": row.phase}


def check_run_key(run_key: Any) -> str:
    if not isinstance(run_key, str) or not run_key.strip() or len(run_key) > 200:
        raise ValidationError(
            "run_key", run_key, "must be a non-empty string of at most 200 characters"
        )
    return run_key


def now() -> dt.datetime:
    return utcnow()
