"""What the workspace holds, as the widgets and the summary need it: event names and
labels, users and their profiles, the columns of each table and their types, the time
span of the data and the one "now" the widgets use (:func:`reference_time`).

These are the only queries the widgets need; the widgets hold no SQL of their own.

Example:
    >>> import tempfile, pandas as pd
    >>> from engagelab.storage.core import Core
    >>> core = Core.create(tempfile.mkdtemp() + "/ws")
    >>> _ = core.ingest(pd.DataFrame({"user_id": ["a"], "event": ["Charged"],
    ...                               "ts": ["2026-01-02T10:00:00Z"], "amount": [3.5]}), quiet=True)
    >>> event_names(core), data_end(core).isoformat()
    (['Charged'], '2026-01-02T10:00:00+00:00')
    >>> summary(core).events
    1
    >>> reference_time(core).isoformat()
    '2026-01-02T10:00:01+00:00'
    >>> user_count(core), event_counts(core).to_dict("records")
    (0, [{'event': 'Charged', 'n': 1}])
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pandas as pd

from engagelab.storage.core import Core

__all__ = [
    "WorkspaceSummary",
    "data_end",
    "event_counts",
    "event_labels",
    "event_names",
    "profile",
    "property_values",
    "reference_time",
    "run_query",
    "summary",
    "user_count",
    "user_ids",
    "user_timezones",
]


def event_names(core: Core) -> list[str]:
    """The distinct event names in the store, sorted."""
    got = core.sql("SELECT DISTINCT event FROM events WHERE event IS NOT NULL ORDER BY event")
    return [str(x) for x in got["event"]]


def data_end(core: Core) -> dt.datetime | None:
    """The time of the latest event (UTC), or None for an empty store: the "now" of
    relative windows in the widgets, so a workspace of past data is explored as of its end."""
    value = core.engine.scalar("SELECT max(ts) FROM events")
    if value is None or pd.isna(value):
        return None
    out = pd.Timestamp(value)
    return (out.tz_localize("UTC") if out.tzinfo is None else out.tz_convert("UTC")).to_pydatetime()


def reference_time(core: Core) -> dt.datetime:
    """The one "now" of the widgets: just after the latest event (:func:`data_end` rounded
    up to the next whole second, so "in the last N days" includes the last event), or the
    current time (whole seconds, UTC) for an empty store.

    A workspace of past data is explored, counted and dry-run as of its end, never as of
    today's clock (which would leave relative windows empty).
    """
    end = data_end(core)
    if end is None:
        return dt.datetime.now(dt.UTC).replace(microsecond=0)
    return end.replace(microsecond=0) + dt.timedelta(seconds=1)


def event_counts(core: Core) -> pd.DataFrame:
    """Columns ``event``, ``n``: the rows per event name, most frequent first."""
    got = core.sql(
        "SELECT event, count(*) AS n FROM events WHERE event IS NOT NULL "
        "GROUP BY event ORDER BY n DESC, event"
    )
    return pd.DataFrame({"event": got["event"].astype(str), "n": got["n"].astype(int)})


def event_labels(core: Core) -> list[str]:
    """The distinct campaign labels on events (the ``labels`` list column), sorted; empty
    when no event carries labels."""
    if "labels" not in core.columns("events"):
        return []
    got = core.sql(
        "SELECT DISTINCT l AS label FROM (SELECT unnest(labels) AS l FROM events "
        "WHERE labels IS NOT NULL) WHERE l IS NOT NULL ORDER BY l"
    )
    return [str(x) for x in got["label"]]


def user_count(core: Core) -> int:
    """The number of profiles (users)."""
    return int(core.engine.scalar("SELECT count(*) FROM profiles"))


def user_ids(core: Core) -> list[str]:
    """Every user id in the profiles, sorted."""
    got = core.sql("SELECT user_id FROM profiles ORDER BY user_id")
    return [str(x) for x in got["user_id"]]


def user_timezones(core: Core) -> pd.DataFrame:
    """Columns ``user_id``, ``timezone`` (None where unknown), one row per profile."""
    got = core.sql("SELECT user_id, timezone FROM profiles ORDER BY user_id")
    return got.reset_index(drop=True)


def profile(core: Core, user_id: str) -> dict[str, Any] | None:
    """The profile record of ``user_id`` (missing values as None), or None if unknown."""
    from engagelab.validate import check_str

    check_str("user_id", user_id)
    df = core.sql("SELECT * FROM profiles WHERE user_id = $u LIMIT 1", {"u": user_id})
    if df.empty:
        return None
    return {str(k): (None if _missing(v) else v) for k, v in df.iloc[0].to_dict().items()}


def _missing(v: Any) -> bool:
    if v is None:
        return True
    try:
        return bool(pd.isna(v))
    except (TypeError, ValueError):  # lists and arrays
        return False


def run_query(core: Core, query: str) -> pd.DataFrame:
    """A user's own DuckDB query over ``events`` and ``profiles`` as a DataFrame (what a
    widget does with SQL its user typed; widgets write no SQL themselves)."""
    from engagelab.validate import check_str

    check_str("query", query)
    return core.sql(query)


def property_values(core: Core, table: str, column: str, *, limit: int = 50) -> list[Any]:
    """Up to ``limit`` most frequent non-null values of ``column`` in ``table``."""
    from engagelab.validate import check_choice, check_int

    check_choice("table", table, ["events", "profiles"])
    check_int("limit", limit, low=1, high=10_000)
    known = set(core.columns(table)) | _core_columns(table)
    if column not in known:
        from engagelab.errors import ValidationError

        raise ValidationError("column", column, f"is not a column of {table}")
    q = '"' + column.replace('"', '""') + '"'
    got = core.sql(
        f"SELECT {q} AS v, count(*) AS n FROM {table} WHERE {q} IS NOT NULL "
        f"GROUP BY {q} ORDER BY n DESC, v LIMIT {int(limit)}"
    )
    return got["v"].tolist()


def _core_columns(table: str) -> set[str]:
    from engagelab.schema import CORE_EVENT_COLUMNS, CORE_PROFILE_COLUMNS

    return set(CORE_EVENT_COLUMNS if table == "events" else CORE_PROFILE_COLUMNS)


def summary(core: Core) -> WorkspaceSummary:
    """Counts of users, events and event names; the time span of the events."""
    e = core.engine
    users = int(e.scalar("SELECT count(*) FROM profiles"))
    row = e.query("SELECT count(*) AS n, min(ts) AS first, max(ts) AS last FROM events").iloc[0]
    names = e.query("SELECT event, count(*) AS n FROM events GROUP BY event ORDER BY n DESC, event")
    return WorkspaceSummary(str(core.path), users, int(row["n"]), row["first"], row["last"], names)


@dataclass(frozen=True)
class WorkspaceSummary:
    """What a workspace holds; renders as a small table in Jupyter."""

    path: str
    users: int
    events: int
    first_event: Any
    last_event: Any
    event_counts: pd.DataFrame

    def to_pandas(self) -> pd.DataFrame:
        """The event counts per event name."""
        return self.event_counts.copy()

    def _counts(self) -> Iterator[tuple[Any, Any]]:
        """(event name, count) pairs in the table's order."""
        ec = self.event_counts
        return zip(ec["event"], ec["n"], strict=True)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly dict."""
        return {
            "path": self.path,
            "users": self.users,
            "events": self.events,
            "first_event": None if pd.isna(self.first_event) else str(self.first_event),
            "last_event": None if pd.isna(self.last_event) else str(self.last_event),
            "event_counts": {e: int(n) for e, n in self._counts()},
        }

    def __repr__(self) -> str:
        lines = [
            f"Workspace {self.path}",
            f"  users:  {self.users:,}",
            f"  events: {self.events:,}  ({self.first_event} .. {self.last_event})",
        ]
        lines += [f"    {e:<28} {int(n):>12,}" for e, n in self._counts()]
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        import html

        head = (
            f"<p><b>Workspace</b> <code>{html.escape(self.path)}</code>: {self.users:,} users, "
            f"{self.events:,} events from {html.escape(str(self.first_event))} to "
            f"{html.escape(str(self.last_event))}</p>"
        )
        return head + self.event_counts.to_html(index=False)
