"""Race-free "insert if absent" and "insert or update" on SQLite and PostgreSQL.

Two processes that register the same row at the same moment must both succeed and agree
on the result. Reading first and then inserting is not enough (both read "absent", both
insert, one fails with a unique violation), so these helpers let the database decide:
``INSERT ... ON CONFLICT DO NOTHING`` / ``DO UPDATE`` on SQLite and PostgreSQL (a savepoint
and a retry on other databases). Callers that need to know which value won read it back
in the same transaction.

Example:
    >>> import tempfile
    >>> from engagelab.storage.statedb import StateDB
    >>> from engagelab.storage.tables import columns
    >>> db = StateDB(f"sqlite:///{tempfile.mkdtemp()}/state.db")
    >>> row = {"table_name": "events", "column_name": "plan", "type": "string"}
    >>> with db.write() as conn:
    ...     insert_ignore(conn, columns, [row]), insert_ignore(conn, columns, [row])
    (1, 0)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa

__all__ = ["insert_ignore", "insert_new", "upsert"]


def _dialect_insert(conn: sa.Connection, table: sa.Table) -> Any:
    name = conn.dialect.name
    if name == "sqlite":
        from sqlalchemy.dialects.sqlite import insert

        return insert(table)
    if name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(table)
    return None


def insert_ignore(conn: sa.Connection, table: sa.Table, rows: Sequence[Mapping[str, Any]]) -> int:
    """Insert ``rows``, skipping any whose key already exists; return how many were new."""
    if not rows:
        return 0
    stmt = _dialect_insert(conn, table)
    if stmt is not None:
        key = list(table.primary_key.columns)
        done = 0
        for row in rows:  # one statement per row; RETURNING tells inserted from skipped
            # (rowcount is not reliable here: psycopg reports -1)
            ins = stmt.values(**row).on_conflict_do_nothing().returning(*key)
            done += len(conn.execute(ins).all())
        return done
    done = 0
    for row in rows:
        try:
            with conn.begin_nested():
                conn.execute(table.insert().values(**row))
            done += 1
        except sa.exc.IntegrityError:
            pass
    return done


def insert_new(
    conn: sa.Connection, table: sa.Table, row: Mapping[str, Any], returning: str
) -> Any | None:
    """Insert ``row`` unless a row with a conflicting key exists; return the new row's
    ``returning`` column (e.g. its generated id), or None when the row was not inserted.

    Unlike catching ``IntegrityError``, this leaves a PostgreSQL transaction usable.
    """
    stmt = _dialect_insert(conn, table)
    if stmt is not None:
        return conn.execute(
            stmt.values(**row).on_conflict_do_nothing().returning(table.c[returning])
        ).scalar_one_or_none()
    try:
        with conn.begin_nested():
            result = conn.execute(table.insert().values(**row).returning(table.c[returning]))
            return result.scalar_one()
    except sa.exc.IntegrityError:
        return None


def upsert(
    conn: sa.Connection,
    table: sa.Table,
    key: Mapping[str, Any],
    values: Mapping[str, Any],
    insert_only: Mapping[str, Any] | None = None,
) -> None:
    """Insert the row ``key | values | insert_only`` or, if ``key`` exists, set ``values``.

    ``insert_only`` columns (e.g. ``created_at``) are written only by the insert.
    """
    row = {**key, **values, **(insert_only or {})}
    stmt = _dialect_insert(conn, table)
    if stmt is not None:
        conn.execute(
            stmt.values(**row).on_conflict_do_update(index_elements=list(key), set_=dict(values))
        )
        return
    where = sa.and_(*(table.c[k] == v for k, v in key.items()))
    for _ in range(2):
        if conn.execute(table.update().where(where).values(**values)).rowcount:
            return
        try:
            with conn.begin_nested():
                conn.execute(table.insert().values(**row))
            return
        except sa.exc.IntegrityError:
            continue  # inserted by someone else meanwhile: update it
