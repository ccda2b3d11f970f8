"""Fixtures for the best-time tests: hand-built workspaces with known local times, and a
small simulated world shared per session."""

from __future__ import annotations

from collections.abc import Iterator

import pandas as pd
import pytest

from engagelab import Workspace
from engagelab.simulate.worlds import simulate_into


def local_events(rows: list[tuple[str, str, str, str]]) -> pd.DataFrame:
    """Events from (user_id, event, local 'YYYY-MM-DD HH:MM', tz) rows, stored in UTC."""
    out = []
    for i, (user, event, local, tz) in enumerate(rows):
        ts = pd.Timestamp(local).tz_localize(tz, ambiguous=True).tz_convert("UTC")
        out.append({"user_id": user, "event": event, "ts": ts, "event_id": f"e{i}"})
    df = pd.DataFrame(out)
    df["ts"] = pd.to_datetime(df["ts"], utc=True).dt.as_unit("us")
    return df


def make_ws(path, profiles: dict[str, str | None], rows) -> Workspace:
    """A workspace with users ``{user_id: timezone}`` and the given local-time events."""
    ws = Workspace.create(path)
    ws.append(
        "profiles", pd.DataFrame({"user_id": list(profiles), "timezone": list(profiles.values())})
    )
    if rows:
        ws.append("events", local_events(rows))
    return ws


@pytest.fixture(scope="session")
def sim_ws(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workspace]:
    """A simulated workspace (3,000 users x 42 days); tests must not append to it."""
    ws = Workspace.create(tmp_path_factory.mktemp("besttime") / "ws")
    simulate_into(ws, n_users=3000, days=42, seed=11)
    yield ws
    ws.close()
