"""The workspace core: the folder, its state database, its Parquet store and a query engine.

Domain code (segments, campaigns, delivery, best time, retention, jobs) is typed against
:class:`Core`: it reads and writes through ``core.state`` (the state database),
``core.store`` (the Parquet tables), ``core.sql`` / ``core.engine`` (DuckDB over them) and
``core.append`` (trusted data, one atomic batch). :class:`engagelab.Workspace` is a
``Core`` with the user-facing verbs on top.

Example:
    >>> import tempfile, pandas as pd
    >>> core = Core.create(tempfile.mkdtemp() + "/ws")
    >>> core.append("profiles", pd.DataFrame({"user_id": ["a", "b"]})).rows
    2
    >>> int(core.sql("SELECT count(*) AS n FROM profiles")["n"][0])
    2
    >>> core.close()
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import pandas as pd
import pyarrow as pa
import yaml

from engagelab.engines.duckdb_engine import DuckDBEngine
from engagelab.errors import ValidationError, WorkspaceError
from engagelab.storage.conform import conform, property_types
from engagelab.storage.statedb import (
    CONFIG_NAME,
    FORMAT_VERSION,
    WorkspaceState,
    utcnow,
    workspace_config,
)
from engagelab.storage.store import TABLES, BatchInfo, Store

if TYPE_CHECKING:
    from engagelab.engines.spark_engine import SparkEngine
    from engagelab.storage.ingest import IngestReport

__all__ = ["ENV_VAR", "Core", "default_path", "use_workspace"]

#: The environment variable naming the default workspace folder.
ENV_VAR = "ENGAGELAB_WORKSPACE"

_default_path: list[Path] = []

C = TypeVar("C", bound="Core")


def default_path() -> Path:
    """The folder :meth:`Core.open` opens when given none: the innermost
    :func:`use_workspace` block, else ``$ENGAGELAB_WORKSPACE``."""
    if _default_path:
        return _default_path[-1]
    if os.environ.get(ENV_VAR):
        return Path(os.environ[ENV_VAR])
    raise WorkspaceError(
        f"no workspace given: pass a path, or set {ENV_VAR}, or create one with "
        "Workspace.create(path) / `engagelab init PATH`"
    )


@contextlib.contextmanager
def use_workspace(path: str | os.PathLike[str]) -> Iterator[None]:
    """Within the block, opening a workspace without a path opens ``path``."""
    _default_path.append(Path(path))
    try:
        yield
    finally:
        _default_path.pop()


class Core(WorkspaceState):
    """A workspace folder's data and state (see the module docstring).

    Use :meth:`create` or :meth:`open` rather than the constructor.
    """

    def __init__(self, path: str | os.PathLike[str], config: dict[str, Any] | None = None):
        super().__init__(path, config)
        self.store = Store(self.path / "data", self.state)
        self._engine: DuckDBEngine | None = None
        self._extra_engines: dict[str, Any] = {}

    # ------------------------------------------------------------ lifecycle
    @classmethod
    def create(
        cls: type[C],
        path: str | os.PathLike[str],
        *,
        state_url: str | None = None,
        exist_ok: bool = False,
    ) -> C:
        """Create a workspace folder (and its state database) at ``path``.

        Args:
            path: the folder; it may exist but must not hold another workspace
                unless ``exist_ok``.
            state_url: a SQLAlchemy URL for the state database; default is a SQLite
                file ``state.db`` inside the workspace.
            exist_ok: open an existing workspace instead of failing.
        """
        path = Path(path)
        cfg_path = path / CONFIG_NAME
        if cfg_path.exists():
            if exist_ok:
                return cls.open(path)
            raise WorkspaceError(
                f"{path} already holds a workspace; use Workspace.open({str(path)!r})"
            )
        if path.exists() and not path.is_dir():
            raise ValidationError("path", str(path), "must be a folder, not a file")
        existed = path.exists()
        for sub in ("data/profiles", "data/events", "quarantine", "outputs"):
            (path / sub).mkdir(parents=True, exist_ok=True)
        config = {
            "format_version": FORMAT_VERSION,
            "created_at": utcnow().isoformat(timespec="seconds"),
            "state_url": state_url or "sqlite:///state.db",
            "engine": "duckdb",
        }
        tmp = cfg_path.with_suffix(".tmp")
        tmp.write_text(yaml.safe_dump(config, sort_keys=False))
        os.replace(tmp, cfg_path)
        try:
            return cls(path, config)
        except BaseException:
            # a state database that cannot be opened leaves no half-made workspace behind
            if existed:
                cfg_path.unlink(missing_ok=True)
            else:
                shutil.rmtree(path, ignore_errors=True)
            raise

    @classmethod
    def open(cls: type[C], path: str | os.PathLike[str] | None = None) -> C:
        """Open an existing workspace; ``path`` defaults to :func:`default_path`."""
        folder = Path(path) if path is not None else default_path()
        return cls(folder, workspace_config(folder))

    def close(self) -> None:
        """Close the engines and the state database connections."""
        if self._engine is not None:
            self._engine.close()
            self._engine = None
        for eng in self._extra_engines.values():
            with contextlib.suppress(Exception):
                eng.close()
        self._extra_engines.clear()
        super().close()

    # -------------------------------------------------------------- engines
    @property
    def engine(self) -> DuckDBEngine:
        """The DuckDB engine over this workspace (created on first use)."""
        if self._engine is None:
            self._engine = DuckDBEngine(self.store)
        return self._engine

    def spark(self, spark_session: Any = None) -> SparkEngine:
        """A Spark engine over the same Parquet files (needs the ``spark`` extra)."""
        from engagelab.engines.spark_engine import SparkEngine

        key = "spark"
        if key not in self._extra_engines or spark_session is not None:
            self._extra_engines[key] = SparkEngine(self.store, spark=spark_session)
        engine: SparkEngine = self._extra_engines[key]
        return engine

    def sql(self, query: str, params: dict[str, Any] | list[Any] | None = None) -> pd.DataFrame:
        """Run SQL (DuckDB dialect) over ``events`` and ``profiles``; return a DataFrame.

        Pass user values as ``params`` (``$name`` placeholders), never by formatting them
        into the SQL text.
        """
        return self.engine.query(query, params)

    def columns(self, table: str) -> dict[str, str]:
        """The recorded columns of ``table`` (name -> property type), as the engine sees them."""
        return dict(self.engine.refresh().columns.get(table, {}))

    # -------------------------------------------------------------- writing
    def append(
        self,
        table: str,
        data: pa.Table | pd.DataFrame | Iterable[pa.Table],
        *,
        fingerprint: str | None = None,
        source: str = "api",
    ) -> BatchInfo:
        """Append trusted, well-formed data to ``table`` as one atomic batch.

        Unlike :meth:`ingest` this does not quarantine rows: data that does not fit the
        schema raises. Used by the simulator and by delivery's system events.
        """
        if table not in TABLES:
            raise ValidationError("table", table, "must be one of 'profiles', 'events'")
        if fingerprint is not None:
            existing = self.store.find(table, fingerprint)
            if existing is not None:
                return existing
        parts: Iterable[pa.Table]
        if isinstance(data, pd.DataFrame):
            parts = [pa.Table.from_pandas(data, preserve_index=False)]
        elif isinstance(data, pa.Table):
            parts = [data]
        else:
            parts = data
        return self.store.append(
            table, self._conformed(table, parts), fingerprint=fingerprint, source=source
        )

    def _conformed(self, table: str, parts: Iterable[pa.Table]) -> Iterator[pa.Table]:
        recorded = self.store.columns(table)
        for part in parts:
            if isinstance(part, pd.DataFrame):
                part = pa.Table.from_pandas(part, preserve_index=False)
            new = {c: t for c, t in property_types(table, part).items() if c not in recorded}
            if new:
                recorded = self.store.register_columns(table, new)
            yield conform(table, part, recorded)

    def ingest(self, source: Any, table: str = "events", **options: Any) -> IngestReport:
        """Validate and append a CSV / Parquet / JSON Lines file or a pandas / polars frame.

        Good rows are appended atomically as one batch; bad rows go to the quarantine
        with a reason code per row. See :func:`engagelab.storage.ingest.ingest` for options.
        """
        from engagelab.storage.ingest import ingest

        return ingest(self, source, table=table, **options)

    def compact(self, table: str | None = None) -> dict[str, BatchInfo | None]:
        """Rewrite each table's live files into few large files (concurrent readers are safe)."""
        from engagelab.storage.compact import compact

        return {t: compact(self.store, t) for t in ([table] if table else TABLES)}

    def gc(self) -> list[str]:
        """Delete orphaned and expired Parquet files; return what was removed."""
        return self.store.gc()
