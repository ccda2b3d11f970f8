"""Activity heatmaps for exploring when a segment engages (local hour x weekday)."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from engagelab.besttime._data import _scan, connect, local_minutes, user_table
from engagelab.besttime.model import check_events, latest_event_time
from engagelab.errors import ValidationError
from engagelab.segments.audience import user_ids
from engagelab.validate import check_datetime, check_int

if TYPE_CHECKING:
    from engagelab.storage.core import Core

__all__ = ["WEEKDAYS", "activity_heatmap"]

WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


def activity_heatmap(
    ws: Core,
    segment: Any = None,
    events: tuple[str, ...] = ("App Launched",),
    *,
    days: int = 90,
    at: Any = None,
) -> pd.DataFrame:
    """Event counts by local weekday (rows, Mon..Sun) and local hour (columns 0..23).

    Args:
        ws: the workspace.
        segment: a segment (anything ``ws.as_segment`` takes) or ``None`` for everyone.
        events: the engagement events counted.
        days: length of the period ending at ``at`` (default: after the last event).

    Example:
        >>> import tempfile
        >>> from engagelab import Workspace
        >>> from engagelab.simulate.worlds import simulate_into
        >>> ws = Workspace.create(tempfile.mkdtemp() + "/ws")
        >>> _ = simulate_into(ws, n_users=100, days=14, seed=1)
        >>> h = activity_heatmap(ws)
        >>> h.shape, int(h.to_numpy().sum()) == int(ws.engine.scalar(
        ...     "SELECT count(*) FROM events WHERE event = 'App Launched'"))
        ((7, 24), True)
    """
    events = (events,) if isinstance(events, str) else tuple(events)
    if not events:
        raise ValidationError("events", events, "must be a non-empty list of event names")
    check_int("days", days, low=1)
    check_events(ws, events)
    end = check_datetime("at", at) if at is not None else latest_event_time(ws, events)
    start = end - dt.timedelta(days=days)
    users = user_table(ws, None, None)
    if segment is not None:
        ids = set(user_ids(ws, segment, at=end))
        users = users[users["user_id"].isin(ids)].reset_index(drop=True)
    con = connect(ws)
    try:
        idx, tzi, t, zones = _scan(con, users, events, start, end)
    finally:
        con.close()
    s_us, e_us = int(pd.Timestamp(start).value // 1000), int(pd.Timestamp(end).value // 1000)
    minute, weekday = local_minutes(tzi, t, zones, s_us, e_us)
    grid = np.bincount(weekday * 24 + minute // 60, minlength=7 * 24).reshape(7, 24)
    return pd.DataFrame(
        grid, index=pd.Index(WEEKDAYS, name="weekday"), columns=pd.Index(range(24), name="hour")
    )
