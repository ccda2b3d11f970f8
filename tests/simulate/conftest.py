"""Fixtures for the simulator tests: small worlds, generated once per session."""

from __future__ import annotations

import datetime as dt
import zoneinfo

import numpy as np
import pandas as pd
import pytest

from engagelab.simulate import World, simulate


def local_parts(events: pd.DataFrame, truth: pd.DataFrame, start: str) -> pd.DataFrame:
    """Add each event's local hour and local day index (from ``start``), converted one
    by one with :mod:`zoneinfo` (the reference the vectorised simulator is checked against)."""
    tz_of = dict(zip(truth["user_id"], truth["timezone"], strict=True))
    start_date = dt.date.fromisoformat(start)
    zones: dict[str, zoneinfo.ZoneInfo] = {}
    hours, days = [], []
    for user, ts in zip(events["user_id"], events["ts"], strict=True):
        tz = zones.setdefault(tz_of[user], zoneinfo.ZoneInfo(tz_of[user]))
        local = ts.to_pydatetime().astimezone(tz)
        hours.append(local.hour)
        days.append((local.date() - start_date).days)
    return events.assign(
        local_hour=np.array(hours, dtype=np.int64), local_day=np.array(days, dtype=np.int64)
    )


@pytest.fixture(scope="session")
def world() -> World:
    """3,000 users over 60 days, with a planted label effect."""
    return simulate(n_users=3_000, days=60, seed=5, label_effects={"Onboarding": 0.10})


@pytest.fixture(scope="session")
def events(world: World) -> pd.DataFrame:
    return world.events().to_pandas()
