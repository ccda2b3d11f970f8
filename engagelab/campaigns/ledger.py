"""State-DB tables of campaigns: saved specs, runs (with their audience snapshot), the
message ledger and workspace campaign settings (global control group).

The ledger has one row per message key (unique): ``claimed`` before the provider call,
``sent`` after it succeeded, ``failed`` after a permanent failure, ``suppressed`` when a
frequency cap or minimum gap turned it down at claim time. Frequency caps are checked
against the ledger inside the claim transaction, which holds the ``caps`` lock row, so
two processes never both claim the last slot of a user's cap.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa

from engagelab.errors import ValidationError
from engagelab.state import metadata, utcnow

__all__ = [
    "campaigns_table",
    "get_global_control",
    "history",
    "ledger",
    "locks",
    "runs",
    "set_global_control",
    "settings",
]

campaigns_table = sa.Table(
    "el_campaign_specs",
    metadata,
    sa.Column("id", sa.String(100), primary_key=True),
    sa.Column("spec", sa.Text, nullable=False),
    sa.Column("channel", sa.String(40), nullable=False),
    sa.Column("type", sa.String(20), nullable=False),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)

runs = sa.Table(
    "el_campaign_runs",
    metadata,
    sa.Column("run_key", sa.String(200), primary_key=True),
    sa.Column("campaign_id", sa.String(100), nullable=False, index=True),
    sa.Column("phase", sa.String(20), nullable=False),
    sa.Column("logical_date", sa.DateTime(timezone=True), nullable=False),
    sa.Column("spec", sa.Text, nullable=False),
    sa.Column("snapshot", sa.LargeBinary, nullable=False),  # the plan as Parquet
    sa.Column("rows", sa.Integer, nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("status", sa.String(20), nullable=False),  # running | done
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("finished_at", sa.DateTime(timezone=True)),
)

ledger = sa.Table(
    "el_campaign_ledger",
    metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("run_key", sa.String(200), nullable=False, index=True),
    sa.Column("campaign_id", sa.String(100), nullable=False),
    sa.Column("user_id", sa.String(200), nullable=False),
    sa.Column("channel", sa.String(40), nullable=False),
    sa.Column("variant", sa.String(100)),
    sa.Column("timezone", sa.String(64), nullable=False),
    sa.Column("send_at", sa.BigInteger, nullable=False),  # µs since epoch, UTC
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("reason", sa.String(40)),
    sa.Column("batch", sa.Integer, nullable=False),
    sa.Column("event_batch", sa.String(260)),
    sa.Column("provider_id", sa.String(200)),
    sa.Column("error", sa.Text),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.Index("ix_el_campaign_ledger_user", "user_id", "send_at"),
)

locks = sa.Table(
    "el_campaign_locks",
    metadata,
    sa.Column("name", sa.String(50), primary_key=True),
    sa.Column("n", sa.BigInteger, nullable=False),
)

settings = sa.Table(
    "el_campaign_settings",
    metadata,
    sa.Column("key", sa.String(100), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)

ALL = (campaigns_table, runs, ledger, locks, settings)
#: SQLite can take a whole batch as one JSON parameter (``json_each``, ``->>``) instead of
#: one bound parameter per value: one statement per batch, no per-row binding.
SQLITE_JSON = sqlite3.sqlite_version_info >= (3, 38, 0)
#: Values per ``IN (...)`` list on other databases.
IN_CHUNK = 5000

#: Ledger statuses that occupy a frequency-cap slot.
COUNTED = ("claimed", "sent")


def ensure(ws: Any) -> None:
    """Create the campaign tables if missing."""
    ws.state.ensure(*ALL)


def lock_caps(conn: sa.Connection) -> None:
    """Take the caps lock for the rest of this write transaction (a row lock on PostgreSQL;
    SQLite write transactions are already exclusive)."""
    res = conn.execute(locks.update().where(locks.c.name == "caps").values(n=locks.c.n + 1))
    if res.rowcount == 0:
        try:
            with conn.begin_nested():
                conn.execute(locks.insert().values(name="caps", n=1))
        except sa.exc.IntegrityError:
            pass
        conn.execute(locks.update().where(locks.c.name == "caps").values(n=locks.c.n + 1))


def history(
    conn: sa.Connection,
    lo_us: int,
    hi_us: int,
    *,
    users: list[str] | None = None,
    exclude_run: str | None = None,
) -> pd.DataFrame:
    """Ledger messages occupying cap slots with ``send_at`` in ``[lo_us, hi_us)`` (of
    ``users`` only, when given: one statement with a JSON list on SQLite, ``IN`` lists of
    :data:`IN_CHUNK` elsewhere)."""
    sql = (
        "SELECT user_id, send_at, channel, campaign_id FROM el_campaign_ledger "
        "WHERE send_at >= ? AND send_at < ? AND status IN ('claimed', 'sent')"
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
    df = pd.DataFrame(rows, columns=["user_id", "t", "channel", "campaign_id"])
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


def set_global_control(ws: Any, fraction: float, salt: str = "global") -> None:
    """Set the workspace-wide global control group: ``fraction`` of all users, held out of
    every campaign that respects it (membership is a pure function of ``salt`` and user)."""
    from engagelab._validate import check_number, check_str

    check_number("fraction", fraction, low=0, high=1, high_open=True)
    check_str("salt", salt)
    ensure(ws)
    with ws.state.write() as conn:
        for key, value in (
            ("global_control_fraction", repr(float(fraction))),
            ("global_control_salt", salt),
        ):
            done = conn.execute(settings.update().where(settings.c.key == key).values(value=value))
            if done.rowcount == 0:
                conn.execute(settings.insert().values(key=key, value=value))


def get_global_control(ws: Any) -> tuple[float, str]:
    """(fraction, salt) of the workspace's global control group (0 when unset)."""
    ensure(ws)
    with ws.state.read() as conn:
        got = dict(conn.execute(sa.select(settings.c.key, settings.c.value)).fetchall())
    return float(got.get("global_control_fraction", "0")), got.get("global_control_salt", "global")


def previous_run(ws: Any, campaign_id: str, before: dt.datetime) -> dict[str, Any] | None:
    """The latest run of ``campaign_id`` with a logical date before ``before``."""
    ensure(ws)
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
