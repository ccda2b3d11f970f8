"""Named cross-process locks tied to a workspace's state database.

A lock is held by one process at a time, for as long as a ``with`` block runs, and is
released by the operating system or the database server when its holder dies (even by
``kill -9``), so a crash never leaves a workspace locked:

* PostgreSQL: a session-level advisory lock (``pg_advisory_lock``) on a connection of its
  own, in autocommit (no transaction stays open while the lock is held). It works across
  machines, which is why a PostgreSQL state database is used by shared workspaces; the
  server drops the lock when the holder's connection closes.
* SQLite (and anything else): an exclusive ``flock`` on a file next to the database file
  (or in the workspace's ``.locks/`` folder for a database without a file). The kernel
  drops it when the holder's process ends. SQLite needs a local disk anyway (WAL mode).

Example:
    >>> import tempfile
    >>> from engagelab.storage.statedb import StateDB
    >>> db = StateDB(f"sqlite:///{tempfile.mkdtemp()}/state.db")
    >>> with exclusive(db, "ingest:events"):
    ...     held_here("ingest:events")
    True
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import zlib
from collections.abc import Iterator
from pathlib import Path

import sqlalchemy as sa

from engagelab.storage.statedb import StateDB

__all__ = ["LOCK_NAMESPACE", "exclusive", "held_here"]

#: First key of the two-key advisory locks (PostgreSQL); the second is a hash of the name.
LOCK_NAMESPACE = 0x656E6761  # "enga"

_held: set[str] = set()


def held_here(name: str) -> bool:
    """True while this process holds the lock ``name``."""
    return name in _held


def _key(name: str) -> int:
    return zlib.crc32(name.encode()) & 0x7FFFFFFF


def _lock_file(db: StateDB, name: str, fallback_dir: Path | None) -> Path:
    url = sa.make_url(db.url)
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name)
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        db_file = Path(url.database)
        return db_file.with_name(f"{db_file.name}.lock-{safe}")
    if fallback_dir is None:
        raise ValueError(f"no place for the lock file of {name!r}: pass fallback_dir")
    return Path(fallback_dir) / ".locks" / f"{safe}.lock"


@contextlib.contextmanager
def exclusive(db: StateDB, name: str, fallback_dir: Path | None = None) -> Iterator[None]:
    """Hold the cross-process lock ``name`` of database ``db`` for the ``with`` block,
    waiting for it if another process holds it. Not re-entrant."""
    if name in _held:
        raise RuntimeError(f"the lock {name!r} is already held by this process")
    if db.engine.dialect.name == "postgresql":
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            args = {"a": LOCK_NAMESPACE, "b": _key(name)}
            conn.execute(sa.text("SELECT pg_advisory_lock(:a, :b)"), args)
            _held.add(name)
            try:
                yield
            finally:
                _held.discard(name)
                try:
                    conn.execute(sa.text("SELECT pg_advisory_unlock(:a, :b)"), args)
                except sa.exc.DBAPIError:  # never pool a connection that may hold it
                    conn.invalidate()
        return
    path = _lock_file(db, name, fallback_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        _held.add(name)
        try:
            yield
        finally:
            _held.discard(name)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
