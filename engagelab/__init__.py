"""engagelab: design, run and analyse messaging campaigns from Jupyter.

The core library never imports Jupyter packages; widgets live in ``engagelab.widgets``.
``import engagelab`` is cheap: the exported names below that need pandas, pyarrow or DuckDB
(``Workspace``, ...) are imported on first use, so a command line that never touches them
(``engagelab run``) never pays for them.

Example:
    >>> import engagelab
    >>> engagelab.__version__
    '0.1.0'
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from engagelab.errors import (
    ConcurrencyError,
    EngagelabError,
    EngagelabWarning,
    MissingExtraError,
    QueryError,
    SpecError,
    ValidationError,
    WorkspaceError,
)

if TYPE_CHECKING:
    from engagelab.storage.catalog import WorkspaceSummary
    from engagelab.storage.ingest import IngestReport
    from engagelab.workspace import Workspace, current_workspace, use_workspace

__version__ = "0.1.0"

__all__ = [
    "ConcurrencyError",
    "EngagelabError",
    "EngagelabWarning",
    "IngestReport",
    "MissingExtraError",
    "QueryError",
    "SpecError",
    "ValidationError",
    "Workspace",
    "WorkspaceError",
    "WorkspaceSummary",
    "current_workspace",
    "use_workspace",
]

#: Exported names imported on first access, and the module that defines each.
_LAZY = {
    "IngestReport": "engagelab.storage.ingest",
    "Workspace": "engagelab.workspace",
    "current_workspace": "engagelab.workspace",
    "use_workspace": "engagelab.workspace",
    "WorkspaceSummary": "engagelab.storage.catalog",
}


def __getattr__(name: str) -> Any:
    if name.startswith("__"):
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    try:  # ``engagelab.segments`` and friends after a bare ``import engagelab``
        return importlib.import_module(f"{__name__}.{name}")
    except ModuleNotFoundError as exc:
        if exc.name != f"{__name__}.{name}":
            raise
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
