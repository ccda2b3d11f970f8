"""Durable file writes shared by the store and the providers that write files.

``fsync_dir`` makes a rename or a new file in a folder survive a power cut (the folder's
entry is flushed, not only the file's bytes); where the platform cannot open a folder
(Windows) it does nothing.

Example:
    >>> import tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> (folder / "a.txt").write_text("x")
    1
    >>> fsync_dir(folder)
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

__all__ = ["fsync_dir"]


def fsync_dir(path: Path) -> None:
    """Flush the folder ``path``'s entries to disk (best effort: errors are ignored)."""
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
