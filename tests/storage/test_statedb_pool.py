"""SQLite state-DB connections are pooled; a forked child never reuses its parent's."""

from __future__ import annotations

import os

import sqlalchemy as sa

from engagelab.storage.statedb import StateDB
from engagelab.storage.tables import meta


def _write(db: StateDB, key: str) -> None:
    with db.write() as conn:
        conn.execute(meta.insert().values(key=key, value=str(os.getpid())))


def test_a_forked_child_opens_its_own_connections(tmp_path):
    db = StateDB(f"sqlite:///{tmp_path}/state.db")
    _write(db, "parent-before")
    assert db.engine.pool.checkedin() >= 1  # the connection went back to the pool
    parent_conn = db.engine.pool._pool.queue[0].dbapi_connection  # type: ignore[attr-defined]
    pid = os.fork()
    if pid == 0:  # the child: write through the inherited StateDB, on a new connection
        code = 1
        try:
            with db.write() as conn:
                fresh = conn.connection.dbapi_connection is not parent_conn
                conn.execute(meta.insert().values(key="child", value=str(fresh)))
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    _write(db, "parent-after")  # the parent's pooled connection still works
    with db.read() as conn:
        rows = dict(conn.execute(sa.select(meta.c.key, meta.c.value)).all())
    assert rows["child"] == "True"
    assert {"parent-before", "parent-after"} <= set(rows)
    db.dispose()
    assert (
        not (tmp_path / "state.db-wal").exists() or (tmp_path / "state.db-wal").stat().st_size == 0
    )
