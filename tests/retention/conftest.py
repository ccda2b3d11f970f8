"""Fixtures: a small random workspace for the engine tests."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from engagelab import Workspace

EVENTS = ["App Launched", "Charged", "Page Viewed"]


def random_events(
    seed: int = 1, n_users: int = 150, days: int = 75
) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    users = [f"u{i:03d}" for i in range(n_users)]
    # each user: a sign-up day and a number of events after it
    rows = []
    t_start = pd.Timestamp("2026-01-01", tz="UTC")
    for u in users:
        signup = rng.uniform(0, days) * 86_400
        n = rng.poisson(rng.choice([2, 8, 25]))
        offs = signup + np.sort(rng.exponential(86_400 * rng.choice([2, 10, 30]), size=n + 1))
        offs = offs[offs < days * 86_400]
        for o in offs:
            rows.append(
                (
                    u,
                    EVENTS[rng.choice(3, p=[0.6, 0.15, 0.25])],
                    t_start + pd.Timedelta(microseconds=int(o * 1e6)),
                    rng.choice(["ios", "android", "web"]),
                )
            )
    ev = pd.DataFrame(rows, columns=["user_id", "event", "ts", "platform"])
    ev["ts"] = ev["ts"].astype("datetime64[us, UTC]")
    prof = pd.DataFrame({"user_id": users, "plan": rng.choice(["free", "pro", None], size=n_users)})
    return ev, prof


@pytest.fixture(scope="module")
def rand_ws(tmp_path_factory):
    ev, prof = random_events()
    ws = Workspace.create(tmp_path_factory.mktemp("ret") / "ws")
    ws.append("events", ev)
    ws.append("profiles", prof)
    yield ws, ev, prof
    ws.close()
