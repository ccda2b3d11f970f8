"""Storage: the workspace's state database and its Parquet event store.

* :mod:`~engagelab.storage.tables`: every state table, one schema version;
  :mod:`~engagelab.storage.migrations` brings older databases forward;
* :mod:`~engagelab.storage.statedb`: the state database (SQLite in WAL mode, or any
  SQLAlchemy URL) and the workspace configuration;
* :mod:`~engagelab.storage.upsert`: race-free "insert if absent" / "insert or update";
  :mod:`~engagelab.storage.locks`: named cross-process locks (one ingest of events at a time);
* :mod:`~engagelab.storage.store`: append-only Parquet tables with a manifest;
  :mod:`~engagelab.storage.compact` rewrites them; :mod:`~engagelab.storage.ingest`
  validates foreign data (:mod:`~engagelab.storage.coerce`, :mod:`~engagelab.storage.conform`);
* :mod:`~engagelab.storage.core`: :class:`Core`, the typed workspace core domain code uses;
  :mod:`~engagelab.storage.catalog`: what the workspace holds (summary, event names).

Names are imported on first use: a job runner that needs only the state database never
imports pandas or pyarrow.
"""

from typing import TYPE_CHECKING

from engagelab.exports import lazy_exports

if TYPE_CHECKING:
    from engagelab.storage.catalog import WorkspaceSummary
    from engagelab.storage.core import Core, default_path, use_workspace
    from engagelab.storage.ingest import IngestReport
    from engagelab.storage.statedb import StateDB, WorkspaceState
    from engagelab.storage.store import BatchInfo, Store
    from engagelab.storage.tables import SCHEMA_VERSION

_EXPORTS = {
    "SCHEMA_VERSION": "engagelab.storage.tables",
    "StateDB": "engagelab.storage.statedb",
    "WorkspaceState": "engagelab.storage.statedb",
    "BatchInfo": "engagelab.storage.store",
    "Store": "engagelab.storage.store",
    "IngestReport": "engagelab.storage.ingest",
    "Core": "engagelab.storage.core",
    "default_path": "engagelab.storage.core",
    "use_workspace": "engagelab.storage.core",
    "WorkspaceSummary": "engagelab.storage.catalog",
}

__all__ = [
    "BatchInfo",
    "Core",
    "IngestReport",
    "SCHEMA_VERSION",
    "StateDB",
    "Store",
    "WorkspaceState",
    "WorkspaceSummary",
    "default_path",
    "use_workspace",
]

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
