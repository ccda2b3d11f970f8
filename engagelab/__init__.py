"""engagelab: design, run and analyse messaging campaigns from Jupyter.

The core library never imports Jupyter packages; widgets live in ``engagelab.widgets``.

Example:
    >>> import engagelab
    >>> engagelab.__version__
    '0.1.0'
"""

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
from engagelab.ingest import IngestReport
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
    "current_workspace",
    "use_workspace",
]
