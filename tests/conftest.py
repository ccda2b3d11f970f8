"""Shared fixtures."""

from __future__ import annotations

import pytest

from engagelab import Workspace
from tests import servers

# the real-server fixtures (session PostgreSQL, fresh database per test)
postgres_url = servers.postgres_url
postgres_db_url = servers.postgres_db_url


@pytest.fixture
def ws(tmp_path):
    """A fresh SQLite-backed workspace."""
    w = Workspace.create(tmp_path / "ws")
    yield w
    w.close()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def state_url(request, tmp_path):
    """A state-database URL: a SQLite file, or a fresh database on a real PostgreSQL server."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/state-{request.node.name[-8:]}.db"
    return request.getfixturevalue("postgres_db_url")


@pytest.fixture
def any_ws(tmp_path, state_url):
    """A workspace whose state DB is SQLite or PostgreSQL (the test runs on both)."""
    w = Workspace.create(tmp_path / "ws-any", state_url=state_url)
    yield w
    w.close()
