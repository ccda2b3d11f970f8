"""Shared fixtures."""

from __future__ import annotations

import pytest

from engagelab import Workspace


@pytest.fixture
def ws(tmp_path):
    """A fresh SQLite-backed workspace."""
    w = Workspace.create(tmp_path / "ws")
    yield w
    w.close()
