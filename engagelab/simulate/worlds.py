"""Put a simulated world into a workspace, and get it back in another process.

The world's config and planted effects are saved as ``world.json`` in the workspace, so a
papermill kernel or the CLI can load the same world and let it answer the messages a
campaign sends.

Example:
    >>> import tempfile
    >>> from engagelab import Workspace
    >>> ws = Workspace.create(tempfile.mkdtemp() + "/ws")
    >>> info = simulate_into(ws, n_users=300, days=7, seed=3)
    >>> info["users"], info["events"] > 300
    (300, True)
    >>> load_world(ws).config.n_users
    300
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pyarrow as pa

from engagelab.errors import WorkspaceError
from engagelab.simulate._world import World, simulate
from engagelab.storage.core import Core

__all__ = ["WORLD_FILE", "load_world", "simulate_into"]

WORLD_FILE = "world.json"


def simulate_into(
    ws: Core,
    *,
    n_users: int = 10_000,
    days: int = 60,
    seed: int = 0,
    start: str | None = None,
    progress: Callable[[str], None] | None = None,
    **config: Any,
) -> dict[str, Any]:
    """Simulate a world and append its profiles and events to ``ws`` (one batch each).

    Idempotent: the batches are fingerprinted by the world's config, so running it
    twice with the same arguments appends nothing the second time.

    Returns:
        ``{"users", "events", "days", "seed", "first_day", "world_file"}``.
    """
    kwargs: dict[str, Any] = dict(n_users=n_users, days=days, seed=seed, **config)
    if start is not None:
        kwargs["start"] = start
    world = simulate(**kwargs)
    key = "simulate:" + world.config.to_json()
    say = progress or (lambda _msg: None)
    say(f"simulating {n_users:,} users over {days} days (seed {seed})")
    prof = ws.append("profiles", world.profiles, fingerprint=key, source="simulate")

    def counted() -> Iterator[pa.Table]:
        done = 0
        for part in world.iter_events(batch_days=7):
            done += part.num_rows
            say(f"  events: {done:,}")
            yield part

    ev = ws.append("events", counted(), fingerprint=key, source="simulate")
    if prof.already_present and ev.already_present:
        say("  (this world was already in the workspace: nothing appended)")
    path = world.save(ws.path / WORLD_FILE)
    return {
        "users": prof.rows,
        "events": ev.rows,
        "days": days,
        "seed": seed,
        "first_day": str(world.config.start_date),
        "world_file": str(path),
    }


def load_world(ws: Core) -> World:
    """The simulated world saved in ``ws`` by :func:`simulate_into`."""
    path = ws.path / WORLD_FILE
    if not path.exists():
        raise WorkspaceError(
            f"{ws.path} has no simulated world ({WORLD_FILE}); run simulate_into(ws, ...) first"
        )
    return World.load(path)
