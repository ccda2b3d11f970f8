"""The simulated world answers the messages a campaign run sent.

After :func:`engagelab.campaigns.send`, a simulated workspace (one filled by
:func:`~engagelab.simulate.worlds.simulate_into`) lets its users react: its world's
Delivered / Viewed / Clicked / Charged events for the run's sent messages are appended
once (idempotent by the set of message keys).

Example:
    >>> import tempfile
    >>> from engagelab import Workspace
    >>> from engagelab.campaigns import Campaign, Variant
    >>> from engagelab.simulate.worlds import simulate_into
    >>> ws = Workspace.create(tempfile.mkdtemp() + "/ws")
    >>> _ = simulate_into(ws, n_users=300, days=7, seed=3)
    >>> c = Campaign(id="hi", channel="push", variants=(Variant("A", {"title": "Hi", "body": "x"}),))
    >>> r = ws.send(ws.plan(c, "2026-01-07T09:00:00Z"), "hi-1")
    >>> n = respond(ws, "hi-1")
    >>> n > 0, respond(ws, "hi-1")
    (True, 0)
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa

from engagelab.campaigns.spec import Campaign
from engagelab.delivery import ledger as L
from engagelab.errors import ValidationError
from engagelab.simulate.worlds import WORLD_FILE, load_world
from engagelab.storage.core import Core
from engagelab.validate import check_datetime

__all__ = ["respond", "world_answer"]


def respond(ws: Core, run_key: str, *, until: Any = None) -> int:
    """Let the workspace's simulated world answer the sent messages of ``run_key``.

    Appends the world's Delivered / Viewed / Clicked / Charged events (and the later
    'App Launched' events of planted label effects) once per set of sent messages
    (idempotent); returns the number of events appended. ``until`` (a UTC instant) keeps
    only the answers that have happened by then: the end of what the world has been
    observed for, so no answer lies in a future the baseline has not reached.

    A run whose messages are not all final yet (some still queued for the dispatcher, or
    claimed) is answered later, in full, once they are: 0 is returned until then, so the
    answers of one run are appended once. A message is answered as if it went at its
    release time: its planned time, or the later due time it was held to (do-not-disturb).
    """
    cut = check_datetime("until", until, allow_none=True)
    world = load_world(ws)
    with ws.state.read() as conn:
        run = conn.execute(sa.select(L.runs.c.spec).where(L.runs.c.run_key == run_key)).first()
        if run is None:
            raise ValidationError("run_key", run_key, "is not a run of this workspace")
        open_rows = conn.execute(
            sa.select(sa.func.count())
            .select_from(L.ledger)
            .where(
                L.ledger.c.run_key == run_key,
                L.ledger.c.status.in_(("queued", "claimed", "handed")),
            )
        ).scalar_one()
        if open_rows:
            return 0
        rows = conn.execute(
            sa.select(L.ledger.c.user_id, L.ledger.c.variant,
                      sa.func.coalesce(L.ledger.c.due_us, L.ledger.c.send_at), L.ledger.c.send_at,
                      L.ledger.c.key)
            .where(L.ledger.c.run_key == run_key, L.ledger.c.status == "sent")
            .order_by(L.ledger.c.key)
        ).fetchall()  # fmt: skip
    c = Campaign.from_json(run.spec)
    if not rows:
        return 0
    df = pd.DataFrame(rows, columns=["user_id", "variant", "due", "send_ts", "message_key"])
    at = np.maximum(df.pop("due").astype(np.int64), df["send_ts"].astype(np.int64))
    df["send_ts"] = pd.to_datetime(at, unit="us", utc=True)
    df["campaign_id"], df["channel"] = c.id, c.channel
    df["labels"] = [list(c.labels)] * len(df)
    fp = (
        "respond:"
        + run_key
        + ":"
        + hashlib.sha256("\n".join(df["message_key"]).encode()).hexdigest()[:16]
    )
    if cut is not None:
        fp += f":until={pd.Timestamp(cut).isoformat()}"
    if ws.store.find("events", fp) is not None:
        return 0
    answer = world.respond(df)
    if cut is not None:
        limit = pa.scalar(pd.Timestamp(cut).to_pydatetime(), answer.schema.field("ts").type)
        answer = answer.filter(pc.less_equal(answer.column("ts"), limit))
    if answer.num_rows:
        ws.append("events", answer, fingerprint=fp, source="campaigns")
    return answer.num_rows


def world_answer(workspace: Any) -> Callable[[Core, str], int]:
    """:func:`respond`, after checking that ``workspace`` (a workspace, its folder, or ""
    for ``$ENGAGELAB_WORKSPACE``) holds a simulated world: what a campaign job passes as
    ``answer`` so a missing world fails before anything is sent."""
    folder = (
        getattr(workspace, "path", None) or workspace or os.environ.get("ENGAGELAB_WORKSPACE", "")
    )
    if not folder or not (Path(folder) / WORLD_FILE).exists():
        raise ValidationError(
            "simulated", True, f"needs a simulated world in the workspace ({WORLD_FILE})"
        )
    return respond
