"""A small simulated workspace shared by the widget tests (2,000 users x 21 days)."""

from __future__ import annotations

from collections.abc import Iterator

import pandas as pd
import pytest

from engagelab import Workspace
from engagelab.simulate.worlds import simulate_into
from tests.jobs.conftest import jws  # noqa: F401  (the jobs panel tests)


@pytest.fixture(scope="module")
def sim_ws(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workspace]:
    """A simulated workspace; tests must not append to it (saving segments is fine)."""
    ws = Workspace.create(tmp_path_factory.mktemp("widgets") / "ws")
    simulate_into(ws, n_users=2000, days=21, seed=7)
    yield ws
    ws.close()


@pytest.fixture(scope="module")
def frames(sim_ws: Workspace) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(profiles, events) as pandas frames, for independent reference counts."""
    return sim_ws.sql("SELECT * FROM profiles"), sim_ws.sql("SELECT user_id, event, ts FROM events")
