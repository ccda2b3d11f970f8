"""Run-key leases with heartbeats: at most one live attempt per (job, logical date).

:func:`claim` runs in one write transaction (``BEGIN IMMEDIATE`` on SQLite; on PostgreSQL
the lease's primary key makes a racing second insert fail): it refuses if the run key
already succeeded or a live lease exists, takes over a *stale* lease (no heartbeat for
``stale_after`` seconds: the runner died), marks that dead runner's attempt ``crashed``,
and records the new attempt as ``running``. :class:`Heartbeat` refreshes the lease from a
thread and notices if it was lost.
"""

from __future__ import annotations

import datetime as dt
import os
import socket
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from engagelab.jobs.store import leases_table, runs_table
from engagelab.storage.statedb import utcnow

if TYPE_CHECKING:
    from engagelab.storage.statedb import WorkspaceState

__all__ = ["Claim", "Heartbeat", "claim", "finish_attempt", "release"]


def aware(value: dt.datetime) -> dt.datetime:
    """SQLite returns naive datetimes: read them as UTC."""
    if value.tzinfo is not None:
        return value
    return value.replace(tzinfo=dt.UTC)


def _inserted_id(result: sa.CursorResult[Any]) -> int:
    """The primary key of the row a single-row ``INSERT`` just wrote."""
    key = result.inserted_primary_key
    if key is None:  # only for statements that are not single-row inserts
        raise RuntimeError("the insert returned no primary key")
    return int(key[0])


@dataclass(frozen=True)
class Claim:
    """The outcome of :func:`claim`: ``acquired``, ``running`` or ``succeeded``."""

    state: str
    run_id: int | None = None
    attempt: int = 0
    crashed_run_id: int | None = None
    holder: str = ""


def claim(
    ws: WorkspaceState,
    job: str,
    logical_date: str,
    owner: str,
    *,
    stale_after: float,
    params: dict[str, Any],
    hashes: dict[str, str],
    trigger: str,
) -> Claim:
    """Take the lease of run key (job, logical_date) and record a new ``running`` attempt."""
    now = utcnow()
    key = (leases_table.c.job == job) & (leases_table.c.logical_date == logical_date)
    runs_key = (runs_table.c.job == job) & (runs_table.c.logical_date == logical_date)
    try:
        with ws.state.write() as conn:
            done = conn.execute(
                sa.select(runs_table.c.id).where(runs_key & (runs_table.c.status == "succeeded"))
            ).first()
            if done is not None:
                return Claim("succeeded", run_id=done.id)
            lease = conn.execute(sa.select(leases_table).where(key)).first()
            crashed = None
            if lease is not None:
                age = (now - aware(lease.heartbeat_at)).total_seconds()
                if age < stale_after:
                    return Claim("running", run_id=lease.run_id, holder=lease.owner)
                crashed = lease.run_id
                conn.execute(
                    leases_table.delete().where(key & (leases_table.c.owner == lease.owner))
                )
            # any attempt still 'running' without a live lease belongs to a dead runner
            dead = conn.execute(
                sa.select(runs_table.c.id).where(runs_key & (runs_table.c.status == "running"))
            ).all()
            for r in dead:
                conn.execute(runs_table.update().where(runs_table.c.id == r.id).values(
                    status="crashed", finished_at=now, error_class="crashed", error_name="RunnerLost",
                    error_value=f"the runner stopped heartbeating (no heartbeat for >= {stale_after:g} s); "
                                "lease taken over"))  # fmt: skip
                crashed = crashed or r.id
            attempt = (
                conn.execute(sa.select(sa.func.max(runs_table.c.attempt)).where(runs_key)).scalar()
                or 0
            ) + 1
            run_id = _inserted_id(conn.execute(runs_table.insert().values(
                job=job, logical_date=logical_date, attempt=attempt, status="running", trigger=trigger,
                owner=owner, host=socket.gethostname()[:200], pid=os.getpid(), started_at=now,
                params=params, param_hash=hashes["params"], notebook_hash=hashes["notebook"],
                spec_hash=hashes["spec"])))  # fmt: skip
            conn.execute(leases_table.insert().values(job=job, logical_date=logical_date, owner=owner,
                                                      run_id=run_id, acquired_at=now, heartbeat_at=now))  # fmt: skip
    except sa.exc.IntegrityError:
        return Claim("running")  # a concurrent claimer won the insert race (PostgreSQL)
    return Claim("acquired", run_id=run_id, attempt=attempt, crashed_run_id=crashed)


def finish_attempt(ws: WorkspaceState, run_id: int, **values: Any) -> None:
    """Record the outcome of attempt ``run_id`` (status, error details, output paths)."""
    with ws.state.write() as conn:
        conn.execute(
            runs_table.update()
            .where(runs_table.c.id == run_id)
            .values(finished_at=utcnow(), **values)
        )


def new_attempt(ws: WorkspaceState, run_id: int, owner: str) -> tuple[int, int]:
    """Record a retry of ``run_id``'s run key under the same lease; returns (run_id, attempt)."""
    with ws.state.write() as conn:
        prev = conn.execute(sa.select(runs_table).where(runs_table.c.id == run_id)).one()
        rk = (runs_table.c.job == prev.job) & (runs_table.c.logical_date == prev.logical_date)
        # prev itself matches rk, so the maximum is an integer
        attempt = (
            conn.execute(sa.select(sa.func.max(runs_table.c.attempt)).where(rk)).scalar_one() + 1
        )
        now = utcnow()
        new_id = _inserted_id(conn.execute(runs_table.insert().values(
            job=prev.job, logical_date=prev.logical_date, attempt=attempt, status="running",
            trigger=prev.trigger, owner=owner, host=prev.host, pid=os.getpid(), started_at=now,
            params=prev.params, param_hash=prev.param_hash, notebook_hash=prev.notebook_hash,
            spec_hash=prev.spec_hash)))  # fmt: skip
        conn.execute(leases_table.update().where((leases_table.c.job == prev.job)
                     & (leases_table.c.logical_date == prev.logical_date) & (leases_table.c.owner == owner))
                     .values(run_id=new_id, heartbeat_at=now))  # fmt: skip
    return new_id, attempt


def release(ws: WorkspaceState, job: str, logical_date: str, owner: str) -> None:
    """Drop the lease if we still hold it."""
    with ws.state.write() as conn:
        conn.execute(leases_table.delete().where((leases_table.c.job == job)
                     & (leases_table.c.logical_date == logical_date) & (leases_table.c.owner == owner)))  # fmt: skip


class Heartbeat:
    """A daemon thread refreshing the lease every ``interval`` seconds; ``lost`` is set if
    another runner took it over (then the attempt must stop)."""

    def __init__(
        self, ws: WorkspaceState, job: str, logical_date: str, owner: str, interval: float
    ):
        self.ws, self.job, self.date, self.owner, self.interval = (
            ws,
            job,
            logical_date,
            owner,
            interval,
        )
        self.lost = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"heartbeat-{job}", daemon=True)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def beat(self) -> bool:
        """Refresh once; False if the lease is no longer ours."""
        with self.ws.state.write() as conn:
            res = conn.execute(leases_table.update().where((leases_table.c.job == self.job)
                               & (leases_table.c.logical_date == self.date) & (leases_table.c.owner == self.owner))
                               .values(heartbeat_at=utcnow()))  # fmt: skip
        return res.rowcount > 0

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                if not self.beat():
                    self.lost.set()
                    return
            except Exception:  # a transient DB error: try again at the next beat
                continue
