"""The jobs' tables in the state database: specs, attempts (run history) and leases.

Portable SQLAlchemy Core only (SQLite or PostgreSQL). One row per *attempt* in
``el_jobs_runs``; the run key is (job, logical date). ``el_jobs_leases`` holds at most one
live lease per run key, refreshed by the runner's heartbeat thread.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from engagelab.errors import SpecError
from engagelab.jobs.spec import JobSpec
from engagelab.storage.statedb import utcnow
from engagelab.storage.tables import job_leases as leases_table
from engagelab.storage.tables import job_runs as runs_table
from engagelab.storage.tables import jobs as jobs_table
from engagelab.storage.upsert import insert_ignore

if TYPE_CHECKING:
    import pandas as pd

    from engagelab.storage.statedb import WorkspaceState

__all__ = [
    "add_job",
    "get_job",
    "history",
    "jobs_table",
    "leases_table",
    "list_jobs",
    "remove_job",
    "runs_table",
    "set_paused",
]


def add_job(ws: WorkspaceState, spec: JobSpec, *, replace: bool = False) -> JobSpec:
    """Store ``spec`` (``replace`` an existing job of that name, keeping its paused flag).

    Raises:
        SpecError: the name is taken (without ``replace``), or the schedule fires more
            than once a day (runs are keyed by logical date).
    """
    if spec.schedule is not None:
        spec.schedule.check_daily()
    now = utcnow()
    row = {
        "name": spec.name,
        "spec": spec.to_yaml(),
        "paused": False,
        "created_at": now,
        "updated_at": now,
    }
    with ws.state.write() as conn:
        if not insert_ignore(conn, jobs_table, [row]):
            if not replace:
                raise SpecError(
                    "name", spec.name, "is already a job (use replace=True / --replace)"
                )
            conn.execute(jobs_table.update().where(jobs_table.c.name == spec.name)
                         .values(spec=spec.to_yaml(), updated_at=now))  # fmt: skip
    return spec


def _row(ws: WorkspaceState, name: str) -> Any:
    with ws.state.read() as conn:
        row = conn.execute(sa.select(jobs_table).where(jobs_table.c.name == name)).first()
    if row is None:
        with ws.state.read() as conn:
            names = [
                r[0] for r in conn.execute(sa.select(jobs_table.c.name).order_by(jobs_table.c.name))
            ]
        raise SpecError("job", name, "is not a job (known: " + (", ".join(names) or "none") + ")")
    return row


def get_job(ws: WorkspaceState, name: str) -> JobSpec:
    """The stored spec of job ``name``."""
    return JobSpec.from_yaml(_row(ws, name).spec)


def job_info(ws: WorkspaceState, name: str) -> dict[str, Any]:
    """Spec, paused flag and creation time of job ``name``."""
    row = _row(ws, name)
    return {
        "spec": JobSpec.from_yaml(row.spec),
        "paused": bool(row.paused),
        "created_at": row.created_at,
    }


def remove_job(ws: WorkspaceState, name: str) -> None:
    """Delete job ``name`` (its run history stays)."""
    _row(ws, name)
    with ws.state.write() as conn:
        conn.execute(jobs_table.delete().where(jobs_table.c.name == name))


def set_paused(ws: WorkspaceState, name: str, paused: bool) -> None:
    """Pause (the scheduler skips it) or resume job ``name``."""
    _row(ws, name)
    with ws.state.write() as conn:
        conn.execute(jobs_table.update().where(jobs_table.c.name == name)
                     .values(paused=bool(paused), updated_at=utcnow()))  # fmt: skip


def list_jobs(ws: WorkspaceState) -> pd.DataFrame:
    """One row per job: name, notebook, cron, time zone, paused, last date and status, and
    ``error`` (why a stored spec cannot be read any more, else None)."""
    with ws.state.read() as conn:
        rows = conn.execute(sa.select(jobs_table).order_by(jobs_table.c.name)).all()
        last = {}
        for r in rows:
            q = (sa.select(runs_table.c.logical_date, runs_table.c.status, runs_table.c.attempt)
                 .where(runs_table.c.job == r.name).order_by(runs_table.c.id.desc()).limit(1))  # fmt: skip
            last[r.name] = conn.execute(q).first()
    out = []
    for r in rows:
        lr = last[r.name]
        try:
            spec = JobSpec.from_yaml(r.spec)
        except SpecError as exc:  # a spec stored by an older version that is no longer valid
            out.append({"name": r.name, "notebook": None, "cron": None, "timezone": None,
                        "paused": bool(r.paused), "last_date": lr.logical_date if lr else None,
                        "last_status": lr.status if lr else None, "error": str(exc)})  # fmt: skip
            continue
        out.append({
            "name": r.name, "notebook": spec.notebook,
            "cron": spec.schedule.cron if spec.schedule else None,
            "timezone": spec.schedule.timezone if spec.schedule else None,
            "paused": bool(r.paused),
            "last_date": lr.logical_date if lr else None,
            "last_status": lr.status if lr else None,
            "error": None,
        })  # fmt: skip
    cols = ["name", "notebook", "cron", "timezone", "paused", "last_date", "last_status", "error"]
    import pandas as pd  # here, not at the top: the run path never needs pandas

    return pd.DataFrame(out, columns=cols)


HISTORY_COLUMNS = [
    "id", "job", "logical_date", "attempt", "status", "trigger", "started_at", "finished_at",
    "error_class", "error_name", "error_value", "cell_index", "param_hash", "notebook_hash",
    "output_path", "html_path", "pid", "host",
]  # fmt: skip


def history(
    ws: WorkspaceState, job: str | None = None, logical_date: str | None = None
) -> pd.DataFrame:
    """Every recorded attempt (newest last), optionally of one job and/or logical date."""
    q = sa.select(*[runs_table.c[c] for c in HISTORY_COLUMNS]).order_by(runs_table.c.id)
    if job is not None:
        q = q.where(runs_table.c.job == job)
    if logical_date is not None:
        q = q.where(runs_table.c.logical_date == str(logical_date))
    with ws.state.read() as conn:
        rows = conn.execute(q).all()
    import pandas as pd

    return pd.DataFrame([tuple(r) for r in rows], columns=HISTORY_COLUMNS)
