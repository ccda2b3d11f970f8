"""The operational state database: a transactional SQL store reached through SQLAlchemy Core.

SQLite in WAL mode is the default (one file in the workspace, safe for several processes on
one machine; connections are pooled, and a forked child opens its own); any SQLAlchemy URL works, e.g. ``postgresql+psycopg://user@host/db`` when
several machines share a workspace.

Write transactions on SQLite start with ``BEGIN IMMEDIATE`` so two processes never both
read and then fail to upgrade to a write lock (the classic ``database is locked`` error);
``busy_timeout`` makes waiting writers queue instead of failing.

Example:
    >>> import tempfile, pathlib
    >>> from engagelab.storage.tables import meta
    >>> db = StateDB(f"sqlite:///{tempfile.mkdtemp()}/state.db")
    >>> with db.write() as conn:
    ...     _ = conn.execute(meta.insert().values(key="hello", value="world"))
    >>> with db.read() as conn:
    ...     conn.execute(sa.select(meta.c.value).where(meta.c.key == "hello")).scalar_one()
    'world'
"""

from __future__ import annotations

import contextlib
import os
import weakref
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa

from engagelab.errors import EngagelabError, ValidationError, WorkspaceError

__all__ = [
    "CONFIG_NAME",
    "FORMAT_VERSION",
    "StateDB",
    "WorkspaceState",
    "state_url",
    "utcnow",
    "workspace_config",
]

#: The configuration file that makes a folder a workspace, and the layout version it declares.
CONFIG_NAME = "engagelab.yaml"
FORMAT_VERSION = 1

S = TypeVar("S", bound="WorkspaceState")


def utcnow() -> datetime:
    """The current time, timezone-aware in UTC."""
    return datetime.now(UTC)


class StateDB:
    """A SQLAlchemy engine over engagelab's state database, with read/write transactions.

    Opening it brings the schema to the current version (see
    :mod:`engagelab.storage.migrations`): every table of :mod:`engagelab.storage.tables`
    exists afterwards.

    Args:
        url: a SQLAlchemy URL; ``sqlite:///path`` files are put in WAL mode.
        create: create or upgrade the schema (default); ``False`` opens it as it is.
    """

    def __init__(self, url: str, *, create: bool = True):
        self.url = url
        self.is_sqlite = isinstance(url, str) and url.startswith("sqlite")
        try:
            self._open(url, create)
        except (sa.exc.ArgumentError, sa.exc.NoSuchModuleError, ValueError, TypeError) as exc:
            if isinstance(exc, EngagelabError):
                raise
            raise ValidationError(
                "state_url",
                _redact(url),
                "must be a SQLAlchemy URL such as 'sqlite:///state.db' or "
                "'postgresql+psycopg://user@host/dbname'",
            ) from None
        except sa.exc.DBAPIError as exc:
            first = str(exc.orig).strip().splitlines()[0] if exc.orig else type(exc).__name__
            raise WorkspaceError(
                f"the state database {_redact(url)} cannot be opened: {first}"
            ) from None

    def _open(self, url: str, create: bool) -> None:
        if self.is_sqlite:
            # Pooled: with a connection per transaction, every close was the last one
            # and checkpointed the WAL (a commit and a close cost ~35 ms instead of ~1 ms).
            self.engine = sa.create_engine(
                url,
                connect_args={"timeout": 60, "check_same_thread": False},
                poolclass=sa.pool.QueuePool,
                pool_size=2,
                max_overflow=8,
            )
            _configure_sqlite(self.engine)
            _ENGINES.add(self.engine)
        else:
            self.engine = sa.create_engine(url, pool_pre_ping=True, pool_size=2, max_overflow=4)
        if create:
            from engagelab.storage.migrations import upgrade

            upgrade(self)

    @contextlib.contextmanager
    def write(self) -> Iterator[sa.Connection]:
        """A write transaction (``BEGIN IMMEDIATE`` on SQLite); commits on success."""
        with self.engine.connect() as conn:
            conn = conn.execution_options(el_immediate=True)
            with conn.begin():
                yield conn

    @contextlib.contextmanager
    def read(self) -> Iterator[sa.Connection]:
        """A read transaction (a consistent snapshot)."""
        with self.engine.connect() as conn, conn.begin():
            yield conn

    def dispose(self) -> None:
        """Close pooled connections (call before forking, or at exit)."""
        self.engine.dispose()

    def __repr__(self) -> str:
        return f"StateDB({self.engine.url.render_as_string(hide_password=True)!r})"


#: Pooled SQLite engines: a forked child must not use its parent's connections.
_ENGINES: weakref.WeakSet[sa.Engine] = weakref.WeakSet()


def _forget_parent_connections() -> None:
    for engine in list(_ENGINES):
        engine.dispose(close=False)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_parent_connections)


def _redact(url: Any) -> str:
    try:
        return sa.engine.make_url(url).render_as_string(hide_password=True)
    except Exception:  # not a URL at all: show it as given
        return str(url)


def _configure_sqlite(engine: sa.Engine) -> None:
    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record):  # type: ignore[no-untyped-def]
        dbapi_conn.isolation_level = None  # let us emit BEGIN ourselves
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA busy_timeout=60000")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    @sa.event.listens_for(engine, "begin")
    def _on_begin(conn):  # type: ignore[no-untyped-def]
        if conn.get_execution_options().get("el_immediate"):
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            conn.exec_driver_sql("BEGIN")


def workspace_config(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The configuration of the workspace folder ``path`` (its ``engagelab.yaml``), checked."""
    path = Path(path)
    cfg_path = path / CONFIG_NAME
    if not cfg_path.exists():
        raise WorkspaceError(
            f"{path} is not an engagelab workspace (no {CONFIG_NAME}); "
            f"create one with Workspace.create({str(path)!r})"
        )
    from engagelab.validate import load_yaml

    try:
        config = load_yaml(cfg_path.read_bytes(), str(cfg_path)) or {}
    except (ValidationError, OSError) as exc:
        raise WorkspaceError(f"{exc}; the workspace configuration is corrupt") from None
    if not isinstance(config, dict):
        raise WorkspaceError(
            f"{cfg_path} must hold a YAML mapping (format_version, state_url, ...), "
            f"not {type(config).__name__}; the workspace configuration is corrupt"
        )
    if config.get("format_version") != FORMAT_VERSION:
        raise WorkspaceError(
            f"{cfg_path}: format_version {config.get('format_version')!r} is not supported "
            f"(this engagelab reads {FORMAT_VERSION})"
        )
    return config


def state_url(path: Path, config: dict[str, Any]) -> str:
    """The state database URL of the workspace at (resolved) ``path``.

    ``$ENGAGELAB_STATE_URL`` wins over the configuration; a relative SQLite file is relative
    to the workspace.

    >>> state_url(Path("/srv/ws"), {"state_url": "sqlite:///state.db"})
    'sqlite:////srv/ws/state.db'
    """
    url = os.environ.get("ENGAGELAB_STATE_URL") or config.get("state_url") or "sqlite:///state.db"
    if url.startswith("sqlite:///") and not url.startswith("sqlite:////"):
        url = f"sqlite:///{(path / url[len('sqlite:///') :]).resolve()}"
    return url


class WorkspaceState:
    """A workspace's state database without its event store: what a job run needs.

    ``engagelab run`` opens this instead of :class:`engagelab.Workspace`, whose event store
    and query engine import pandas, pyarrow and DuckDB (seconds of CPU a run never uses).
    It reads the same ``engagelab.yaml`` and reaches the same database.

    Args:
        path: the workspace folder.

    Example:
        >>> import tempfile
        >>> from engagelab import Workspace
        >>> folder = Workspace.create(tempfile.mkdtemp() + "/ws").path
        >>> with WorkspaceState(folder) as ws:
        ...     ws.path == folder, ws.state.url == f"sqlite:///{folder}/state.db"
        (True, True)
    """

    def __init__(self, path: str | os.PathLike[str], config: dict[str, Any] | None = None):
        self.config = workspace_config(path) if config is None else config
        self.path = Path(path).resolve()
        self.state = StateDB(state_url(self.path, self.config))

    def close(self) -> None:
        """Close the state database connections."""
        self.state.dispose()

    def __enter__(self: S) -> S:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.path)!r})"
