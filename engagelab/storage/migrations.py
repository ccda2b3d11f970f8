"""Forward migrations of the state database: any older schema is brought to
:data:`~engagelab.storage.tables.SCHEMA_VERSION` in place when a workspace is opened.

How it works:

* A new database gets every table of :mod:`engagelab.storage.tables` and the current
  version in ``el_meta``.
* An older one runs each step from its version to the current one, in order, inside one
  write transaction, then creates the tables added since (``CREATE TABLE IF NOT EXISTS``)
  and records the new version. Opening a workspace whose version is current costs one
  ``SELECT``.
* Two processes opening the same old database at once are serialised (SQLite: the write
  transaction is ``BEGIN IMMEDIATE``; PostgreSQL: a transaction-level advisory lock), and
  the second finds the work done.
* A database newer than this engagelab is refused (upgrade engagelab instead).

Each step is a function of (connection, dialect name) that changes the tables of one
version into the next; steps never delete data.

Example:
    >>> import tempfile
    >>> from engagelab.storage.statedb import StateDB
    >>> db = StateDB(f"sqlite:///{tempfile.mkdtemp()}/state.db")
    >>> current_version(db) == SCHEMA_VERSION
    True
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Protocol

import sqlalchemy as sa

from engagelab.errors import WorkspaceError
from engagelab.storage.tables import SCHEMA_VERSION, meta, metadata
from engagelab.storage.upsert import insert_ignore


class _Transactions(Protocol):
    """What an upgrade needs of :class:`~engagelab.storage.statedb.StateDB`."""

    def read(self) -> contextlib.AbstractContextManager[sa.Connection]: ...

    def write(self) -> contextlib.AbstractContextManager[sa.Connection]: ...


__all__ = ["MIGRATIONS", "SCHEMA_VERSION", "current_version", "upgrade"]

#: Advisory-lock key (PostgreSQL) that serialises schema upgrades of one database.
_LOCK_KEY = 0x656E6761  # "enga"


def _v1_to_v2(conn: sa.Connection, dialect: str) -> None:
    """Batch fingerprints become unbounded text (schema 1 had ``VARCHAR(200)``, which
    PostgreSQL enforces: a simulated world's fingerprint is longer)."""
    if dialect == "postgresql":
        for table in ("el_batches", "el_ingests"):
            conn.exec_driver_sql(f"ALTER TABLE {table} ALTER COLUMN fingerprint TYPE TEXT")


def _v2_to_v3(conn: sa.Connection, dialect: str) -> None:
    """Ledger rows record who holds a claim and until when (``owner``, ``lease_us``)."""
    cols = {c["name"] for c in sa.inspect(conn).get_columns("el_campaign_ledger")}
    if "owner" not in cols:
        conn.exec_driver_sql("ALTER TABLE el_campaign_ledger ADD COLUMN owner VARCHAR(120)")
    if "lease_us" not in cols:
        conn.exec_driver_sql("ALTER TABLE el_campaign_ledger ADD COLUMN lease_us BIGINT")


def _v3_to_v4(conn: sa.Connection, dialect: str) -> None:
    """The ledger is a send queue: rows may be ``queued`` until ``due_us``; ``origin_us``
    is where a message's TTL counts from and ``expires_us`` when it lapses (NULL: never).
    Rows of older schemas keep NULLs there: they were delivered at once."""
    cols = {c["name"] for c in sa.inspect(conn).get_columns("el_campaign_ledger")}
    for name in ("due_us", "origin_us", "expires_us"):
        if name not in cols:
            conn.exec_driver_sql(f"ALTER TABLE el_campaign_ledger ADD COLUMN {name} BIGINT")
    conn.exec_driver_sql(
        "CREATE INDEX IF NOT EXISTS ix_el_campaign_ledger_due "
        "ON el_campaign_ledger (status, due_us)"
    )


#: ``MIGRATIONS[v]`` turns a schema of version ``v`` into version ``v + 1``.
MIGRATIONS: dict[int, Callable[[sa.Connection, str], None]] = {
    1: _v1_to_v2,
    2: _v2_to_v3,
    3: _v3_to_v4,
}


def _read_version(conn: sa.Connection) -> int | None:
    if not sa.inspect(conn).has_table(meta.name):
        return None
    got = conn.execute(
        sa.select(meta.c.value).where(meta.c.key == "schema_version")
    ).scalar_one_or_none()
    if got is None:
        return None
    try:
        return int(got)
    except ValueError:
        raise WorkspaceError(
            f"the state database records schema_version {got!r}, which is not a number"
        ) from None


def current_version(db: _Transactions) -> int | None:
    """The schema version the database records (None for an empty database)."""
    with db.read() as conn:
        return _read_version(conn)


def _refuse_newer(version: int, db: _Transactions) -> None:
    if version > SCHEMA_VERSION:
        raise WorkspaceError(
            f"the state database {db!r} is at schema version {version}, newer than this "
            f"engagelab knows ({SCHEMA_VERSION}): upgrade engagelab to open it"
        )


def upgrade(db: _Transactions) -> int:
    """Bring the database to :data:`SCHEMA_VERSION`; return the version it had (0 for a
    new database). Safe to call from several processes at once."""
    try:
        with db.read() as conn:
            seen = _read_version(conn)
    except sa.exc.OperationalError:
        seen = None
    if seen is not None:
        _refuse_newer(seen, db)
        if seen == SCHEMA_VERSION:
            return seen
    with db.write() as conn:
        dialect = conn.dialect.name
        if dialect == "postgresql":
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _LOCK_KEY})
        version = _read_version(conn)
        if version is not None:
            _refuse_newer(version, db)
            for v in range(version, SCHEMA_VERSION):
                MIGRATIONS[v](conn, dialect)
        metadata.create_all(conn, checkfirst=True)
        if version is None:
            insert_ignore(conn, meta, [{"key": "schema_version", "value": str(SCHEMA_VERSION)}])
        elif version != SCHEMA_VERSION:
            conn.execute(
                meta.update()
                .where(meta.c.key == "schema_version")
                .values(value=str(SCHEMA_VERSION))
            )
    return version or 0
