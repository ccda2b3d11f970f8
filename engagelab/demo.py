"""The main job behind ``make demo`` / ``engagelab demo``.

Today it creates (or reopens) a workspace, simulates a world into it and summarises
what is there; each capability added to engagelab extends this programme.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

__all__ = ["run_demo"]


def run_demo(
    path: str | os.PathLike[str] = "demo-workspace",
    *,
    users: int = 50_000,
    days: int = 60,
    seed: int = 7,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Create ``path`` (or reuse it), simulate a world and return a summary dict.

    Rerunning is safe: the simulated batches are fingerprinted, nothing is appended twice.
    """
    from engagelab.workspace import Workspace
    from engagelab.worlds import simulate_into

    say = progress or (lambda _m: None)
    t0 = time.perf_counter()
    ws = Workspace.create(path, exist_ok=True)
    say(f"workspace: {ws.path}")
    simulate_into(ws, n_users=users, days=days, seed=seed, progress=say)
    summary = ws.summary()
    top = summary.event_counts.head(8)
    out = {
        "workspace": str(ws.path),
        "users": summary.users,
        "events": summary.events,
        "first_event": str(summary.first_event),
        "last_event": str(summary.last_event),
        "events_by_name": {r.event: int(r.n) for r in top.itertuples()},
        "seconds": round(time.perf_counter() - t0, 1),
    }
    ws.close()
    return out
