"""The workspace: one folder holding a project's data, state and outputs.

Layout::

    <workspace>/
        engagelab.yaml      configuration (state database URL, defaults)
        data/profiles/      Parquet files of the profiles table
        data/events/        Parquet files of the events table
        quarantine/         rejected input rows with a reason code per row
        outputs/            executed notebooks, reports, exports
        state.db            the SQLite state database (unless state_url points elsewhere)

Example:
    >>> import tempfile, pandas as pd
    >>> ws = Workspace.create(tempfile.mkdtemp() + "/ws")
    >>> report = ws.ingest(pd.DataFrame({"user_id": ["a", "b"], "timezone": ["UTC", "Asia/Tokyo"]}),
    ...                    table="profiles", quiet=True)
    >>> report.rows_appended
    2
    >>> int(ws.sql("SELECT count(*) AS n FROM profiles")["n"][0])
    2
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import pyarrow as pa
import sqlalchemy as sa
import yaml

from engagelab._conform import conform, property_types
from engagelab._validate import check_choice, check_datetime
from engagelab.engines.duckdb_engine import DuckDBEngine
from engagelab.errors import ValidationError, WorkspaceError
from engagelab.state import StateDB, saved_segments, state_url, utcnow, workspace_config
from engagelab.store import TABLES, BatchInfo, Store

if TYPE_CHECKING:
    from engagelab.ingest import IngestReport

__all__ = ["Workspace", "current_workspace", "use_workspace"]

CONFIG_NAME = "engagelab.yaml"
ENV_VAR = "ENGAGELAB_WORKSPACE"
FORMAT_VERSION = 1

_default_path: list[Path] = []


class Workspace:
    """A folder with a Parquet event store, a SQL state database and outputs.

    Use :meth:`create` or :meth:`open` rather than the constructor.
    """

    def __init__(self, path: Path, config: dict[str, Any]):
        self.path = Path(path).resolve()
        self.config = config
        self.state = StateDB(self._state_url(config))
        self.store = Store(self.path / "data", self.state)
        self._engine: DuckDBEngine | None = None
        self._extra_engines: dict[str, Any] = {}

    # ------------------------------------------------------------ lifecycle
    @classmethod
    def create(
        cls, path: str | os.PathLike[str], *, state_url: str | None = None, exist_ok: bool = False
    ) -> Workspace:
        """Create a workspace folder (and its state database) at ``path``.

        Args:
            path: the folder; it may exist but must not hold another workspace
                unless ``exist_ok``.
            state_url: a SQLAlchemy URL for the state database; default is a SQLite
                file ``state.db`` inside the workspace.
            exist_ok: open an existing workspace instead of failing.
        """
        path = Path(path)
        cfg_path = path / CONFIG_NAME
        if cfg_path.exists():
            if exist_ok:
                return cls.open(path)
            raise WorkspaceError(
                f"{path} already holds a workspace; use Workspace.open({str(path)!r})"
            )
        if path.exists() and not path.is_dir():
            raise ValidationError("path", str(path), "must be a folder, not a file")
        for sub in ("data/profiles", "data/events", "quarantine", "outputs"):
            (path / sub).mkdir(parents=True, exist_ok=True)
        config = {
            "format_version": FORMAT_VERSION,
            "created_at": utcnow().isoformat(timespec="seconds"),
            "state_url": state_url or "sqlite:///state.db",
            "engine": "duckdb",
        }
        tmp = cfg_path.with_suffix(".tmp")
        tmp.write_text(yaml.safe_dump(config, sort_keys=False))
        os.replace(tmp, cfg_path)
        return cls(path, config)

    @classmethod
    def open(cls, path: str | os.PathLike[str] | None = None) -> Workspace:
        """Open an existing workspace; ``path`` defaults to ``$ENGAGELAB_WORKSPACE``."""
        if path is None:
            if _default_path:
                path = _default_path[-1]
            elif os.environ.get(ENV_VAR):
                path = os.environ[ENV_VAR]
            else:
                raise WorkspaceError(
                    f"no workspace given: pass a path, or set {ENV_VAR}, or create one with "
                    "Workspace.create(path) / `engagelab init PATH`"
                )
        path = Path(path)
        return cls(path, workspace_config(path))

    def _state_url(self, config: dict[str, Any]) -> str:
        return state_url(self.path, config)

    def close(self) -> None:
        """Close the engines and the state database connections."""
        if self._engine is not None:
            self._engine.close()
            self._engine = None
        for eng in self._extra_engines.values():
            with contextlib.suppress(Exception):
                eng.close()
        self._extra_engines.clear()
        self.state.dispose()

    def __enter__(self) -> Workspace:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -------------------------------------------------------------- engines
    @property
    def engine(self) -> DuckDBEngine:
        """The DuckDB engine over this workspace (created on first use)."""
        if self._engine is None:
            self._engine = DuckDBEngine(self.store)
        return self._engine

    def spark(self, spark_session: Any = None) -> Any:
        """A Spark engine over the same Parquet files (needs the ``spark`` extra)."""
        from engagelab.engines.spark_engine import SparkEngine

        key = "spark"
        if key not in self._extra_engines or spark_session is not None:
            self._extra_engines[key] = SparkEngine(self.store, spark=spark_session)
        return self._extra_engines[key]

    def sql(self, query: str, params: dict[str, Any] | list[Any] | None = None) -> pd.DataFrame:
        """Run SQL (DuckDB dialect) over ``events`` and ``profiles``; return a DataFrame.

        Pass user values as ``params`` (``$name`` placeholders), never by formatting them
        into the SQL text.
        """
        return self.engine.query(query, params)

    # -------------------------------------------------------------- writing
    def append(
        self,
        table: str,
        data: pa.Table | pd.DataFrame | Iterable[pa.Table],
        *,
        fingerprint: str | None = None,
        source: str = "api",
    ) -> BatchInfo:
        """Append trusted, well-formed data to ``table`` as one atomic batch.

        Unlike :meth:`ingest` this does not quarantine rows: data that does not fit the
        schema raises. Used by the simulator and by delivery's system events.
        """
        if table not in TABLES:
            raise ValidationError("table", table, "must be one of 'profiles', 'events'")
        if fingerprint is not None:
            existing = self.store.find(table, fingerprint)
            if existing is not None:
                return existing
        parts: Iterable[pa.Table]
        if isinstance(data, pd.DataFrame):
            parts = [pa.Table.from_pandas(data, preserve_index=False)]
        elif isinstance(data, pa.Table):
            parts = [data]
        else:
            parts = data
        return self.store.append(
            table, self._conformed(table, parts), fingerprint=fingerprint, source=source
        )

    def _conformed(self, table: str, parts: Iterable[pa.Table]) -> Iterator[pa.Table]:
        recorded = self.store.columns(table)
        for part in parts:
            if isinstance(part, pd.DataFrame):
                part = pa.Table.from_pandas(part, preserve_index=False)
            new = {c: t for c, t in property_types(table, part).items() if c not in recorded}
            if new:
                recorded = self.store.register_columns(table, new)
            yield conform(table, part, recorded)

    def ingest(self, source: Any, table: str = "events", **options: Any) -> IngestReport:
        """Validate and append a CSV / Parquet / JSON Lines file or a pandas / polars frame.

        Good rows are appended atomically as one batch; bad rows go to the quarantine
        with a reason code per row. See :func:`engagelab.ingest.ingest` for options.
        """
        from engagelab.ingest import ingest

        return ingest(self, source, table=table, **options)

    def compact(self, table: str | None = None) -> dict[str, BatchInfo | None]:
        """Rewrite each table's live files into few large files (concurrent readers are safe)."""
        from engagelab._compact import compact

        return {t: compact(self, t) for t in ([table] if table else TABLES)}

    def gc(self) -> list[str]:
        """Delete orphaned and expired Parquet files; return what was removed."""
        return self.store.gc()

    # ------------------------------------------------------------- segments
    def as_segment(self, segment: Any) -> Any:
        """A :class:`~engagelab.segments.Segment` from a Segment, a condition, its dict or
        JSON, or the name of a saved segment."""
        from engagelab.segments import Condition, Segment

        if isinstance(segment, Segment):
            return segment
        if isinstance(segment, Condition):
            return Segment(segment)
        if isinstance(segment, dict):
            return Segment.from_dict(segment)
        if isinstance(segment, str):
            text = segment.strip()
            return Segment.from_json(text) if text.startswith("{") else self.load_segment(text)
        raise ValidationError(
            "segment",
            type(segment).__name__,
            "must be a Segment, a condition, a dict/JSON spec or a saved name",
        )

    def _segment_sql(self, segment: Any, at: Any, dialect: str = "duckdb") -> str:
        seg = self.as_segment(segment)
        at = check_datetime("at", at, allow_none=True)
        catalog = self.engine.refresh()
        return seg.to_sql(
            dialect=dialect, at=at, resolve=self.load_segment, columns=_sql_columns(catalog)
        )

    def count(self, segment: Any, at: Any = None, *, engine: str = "duckdb") -> int:
        """Number of users in ``segment`` (a Segment, its dict/JSON, or a saved segment's name).

        ``at`` is the reference time of relative windows ("last 30 days"; default now);
        ``engine='spark'`` runs the same segment on the Spark engine.
        """
        check_choice("engine", engine, ["duckdb", "spark"])
        if engine == "spark":
            sql = self._segment_sql(segment, at, dialect="spark")
            return int(
                self.spark().query(f"SELECT count(*) AS n FROM ({sql}) AS seg", dialect="spark")[
                    "n"
                ][0]
            )
        sql = self._segment_sql(segment, at)
        return int(self.engine.scalar(f"SELECT count(*) FROM ({sql}) AS seg"))

    def user_ids(self, segment: Any, at: Any = None, *, engine: str = "duckdb") -> list[str]:
        """Sorted user ids of ``segment`` (on DuckDB or Spark)."""
        check_choice("engine", engine, ["duckdb", "spark"])
        if engine == "spark":
            sql = self._segment_sql(segment, at, dialect="spark")
            return sorted(self.spark().query(sql, dialect="spark")["user_id"].tolist())
        sql = self._segment_sql(segment, at)
        return sorted(self.engine.query(sql)["user_id"].tolist())

    def audience(
        self, segment: Any, at: Any = None, columns: list[str] | None = None
    ) -> pd.DataFrame:
        """Profiles of the users in ``segment`` (``columns`` of profiles; default all)."""
        sql = self._segment_sql(segment, at)
        if columns:
            known = self.engine.refresh().columns.get("profiles", {})
            from engagelab.schema import CORE_PROFILE_COLUMNS

            for c in columns:
                if c not in known and c not in CORE_PROFILE_COLUMNS:
                    raise ValidationError("columns", c, "is not a profiles column")
            cols = ", ".join('p."' + c.replace('"', '""') + '"' for c in columns)
        else:
            cols = "p.*"
        return self.engine.query(
            f"SELECT {cols} FROM profiles AS p SEMI JOIN ({sql}) AS seg ON p.user_id = seg.user_id "
            "ORDER BY p.user_id"
        )

    def save_segment(self, name: str, segment: Any, description: str = "") -> None:
        """Save (or replace) a segment under ``name`` in the state database."""
        if not isinstance(name, str) or not name.strip():
            raise ValidationError("name", name, "must be a non-empty string")
        seg = self.as_segment(segment)
        spec = seg.to_json()
        now = utcnow()
        with self.state.write() as conn:
            updated = conn.execute(
                saved_segments.update()
                .where(saved_segments.c.name == name)
                .values(spec=spec, description=description, updated_at=now)
            ).rowcount
            if not updated:
                conn.execute(
                    saved_segments.insert().values(
                        name=name,
                        spec=spec,
                        description=description,
                        created_at=now,
                        updated_at=now,
                    )
                )

    def load_segment(self, name: str) -> Any:
        """The saved segment called ``name``."""
        from engagelab.segments import Segment

        with self.state.read() as conn:
            spec = conn.execute(
                sa.select(saved_segments.c.spec).where(saved_segments.c.name == name)
            ).scalar_one_or_none()
        if spec is None:
            raise ValidationError(
                "segment",
                name,
                f"is not a saved segment; saved: {self.segments()['name'].tolist()}",
            )
        return Segment.from_json(spec)

    def segments(self) -> pd.DataFrame:
        """Saved segments: name, description, created and updated times."""
        with self.state.read() as conn:
            rows = conn.execute(
                sa.select(
                    saved_segments.c.name,
                    saved_segments.c.description,
                    saved_segments.c.created_at,
                    saved_segments.c.updated_at,
                ).order_by(saved_segments.c.name)
            ).all()
        return pd.DataFrame(rows, columns=["name", "description", "created_at", "updated_at"])

    def delete_segment(self, name: str) -> None:
        """Delete a saved segment."""
        with self.state.write() as conn:
            conn.execute(saved_segments.delete().where(saved_segments.c.name == name))

    # ------------------------------------------------------------ campaigns
    def plan(self, campaign: Any, logical_date: Any, **options: Any) -> Any:
        """The plan of ``campaign`` for ``logical_date``: one row per qualifying user with
        decision, reason, variant and send times; also the "estimate only" dry run.
        See :func:`engagelab.campaigns.plan`."""
        from engagelab.campaigns import plan

        return plan(self, self._campaign(campaign), logical_date, **options)

    def send(
        self, plan: Any, run_key: str | None = None, provider: Any = None, **options: Any
    ) -> Any:
        """Deliver a plan effectively once (rerunnable with the same ``run_key``).
        See :func:`engagelab.campaigns.send`."""
        from engagelab.campaigns import send

        return send(self, plan, run_key, provider, **options)

    def save_campaign(self, campaign: Any, status: str = "draft") -> None:
        """Save (or replace) a campaign spec in the state database."""
        from engagelab.campaigns import save_campaign

        save_campaign(self, campaign, status)

    def load_campaign(self, id: str) -> Any:
        """The saved campaign ``id``."""
        from engagelab.campaigns import load_campaign

        return load_campaign(self, id)

    def campaigns(self) -> pd.DataFrame:
        """Saved campaigns with their channel, type, status and labels."""
        from engagelab.campaigns import list_campaigns

        return list_campaigns(self)

    def campaign_report(self, **filters: Any) -> Any:
        """The consolidated report across campaigns (filters: channel, label, status,
        since, until, text). See :func:`engagelab.campaigns.campaign_report`."""
        from engagelab.campaigns import campaign_report

        return campaign_report(self, **filters)

    def inbox(self, user_id: str, at: Any = None, **options: Any) -> pd.DataFrame:
        """Live messages of pulled channels (in-app, app inbox, native display, web pop-up,
        exit intent) for ``user_id``, honouring TTL and display rules; fetching records an
        impression. See :func:`engagelab.channels.inbox.inbox`."""
        from engagelab.channels.inbox import inbox

        return inbox(self, user_id, at, **options)

    def respond(self, run_key: str) -> int:
        """Let the workspace's simulated world answer the messages sent by ``run_key``."""
        from engagelab.campaigns import respond

        return respond(self, run_key)

    def preview(
        self,
        campaign: Any,
        user_id: str,
        variant: str | None = None,
        *,
        event: dict[str, Any] | None = None,
        at: Any = None,
    ) -> dict[str, Any]:
        """The real rendered message of ``campaign`` for one user.

        For triggered and inaction campaigns, templates reading ``event.*`` render the
        user's latest qualifying trigger event (before ``at``), or ``event`` when given.
        """
        from engagelab.campaigns.api import preview

        return preview(self, self._campaign(campaign), user_id, variant, event=event, at=at)

    def recommended_delay(self, did: str, then: str, **options: Any) -> dict[str, Any]:
        """Median and mean time from ``did`` to the first following ``then`` (for an
        inaction campaign's wait)."""
        from engagelab.campaigns import recommended_delay

        return recommended_delay(self, did, then, **options)

    def _campaign(self, campaign: Any) -> Any:
        from engagelab.campaigns import Campaign

        if isinstance(campaign, str):
            return self.load_campaign(campaign)
        if isinstance(campaign, dict):
            return Campaign.from_dict(campaign)
        return campaign

    # -------------------------------------------------------------- summary
    def summary(self) -> WorkspaceSummary:
        """Counts of users, events and event names; the time span of the events."""
        e = self.engine
        users = int(e.scalar("SELECT count(*) FROM profiles"))
        row = e.query("SELECT count(*) AS n, min(ts) AS first, max(ts) AS last FROM events").iloc[0]
        names = e.query(
            "SELECT event, count(*) AS n FROM events GROUP BY event ORDER BY n DESC, event"
        )
        return WorkspaceSummary(
            str(self.path), users, int(row["n"]), row["first"], row["last"], names
        )

    def __repr__(self) -> str:
        return f"Workspace({str(self.path)!r})"


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

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly dict."""
        return {
            "path": self.path,
            "users": self.users,
            "events": self.events,
            "first_event": None if pd.isna(self.first_event) else str(self.first_event),
            "last_event": None if pd.isna(self.last_event) else str(self.last_event),
            "event_counts": {r.event: int(r.n) for r in self.event_counts.itertuples()},
        }

    def __repr__(self) -> str:
        lines = [
            f"Workspace {self.path}",
            f"  users:  {self.users:,}",
            f"  events: {self.events:,}  ({self.first_event} .. {self.last_event})",
        ]
        lines += [f"    {r.event:<28} {int(r.n):>12,}" for r in self.event_counts.itertuples()]
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        import html

        head = (
            f"<p><b>Workspace</b> <code>{html.escape(self.path)}</code>: {self.users:,} users, "
            f"{self.events:,} events from {html.escape(str(self.first_event))} to "
            f"{html.escape(str(self.last_event))}</p>"
        )
        return head + self.event_counts.to_html(index=False)


def _sql_columns(catalog: Any) -> dict[str, dict[str, str]]:
    from engagelab.engines.base import arrow_type_name
    from engagelab.schema import EVENT_SCHEMA, PROFILE_SCHEMA

    out: dict[str, dict[str, str]] = {}
    for table, schema in (("events", EVENT_SCHEMA), ("profiles", PROFILE_SCHEMA)):
        cols = {f.name: arrow_type_name(f.name, f.type) for f in schema}
        cols.update(
            {c: t for c, t in catalog.columns.get(table, {}).items() if not c.startswith("_")}
        )
        out[table] = cols
    return out


def current_workspace() -> Workspace:
    """The workspace set by :func:`use_workspace` or ``$ENGAGELAB_WORKSPACE``."""
    return Workspace.open()


@contextlib.contextmanager
def use_workspace(path: str | os.PathLike[str]) -> Iterator[None]:
    """Within the block, :meth:`Workspace.open` without a path opens ``path``."""
    _default_path.append(Path(path))
    try:
        yield
    finally:
        _default_path.pop()
