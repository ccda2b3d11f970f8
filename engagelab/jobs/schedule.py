"""Due slots and the embedded scheduler.

Slots are computed on *local wall-clock* time in the job's time zone: croniter walks
naive local times (so the autumn fall-back day, whose 02:30 happens twice, yields one
02:30, and the spring-forward day's missing 02:30 still yields one), each is placed on the
UTC timeline (a missing local time lands just after the gap, an ambiguous one on its
first occurrence), and slots are deduplicated by logical date (the run key).

What is due is computed from the run history, so a restarted scheduler catches up per
the job's :class:`~engagelab.jobs.CatchUp` policy and never runs a slot twice.

Example:
    >>> import datetime as dt
    >>> from engagelab.jobs import Schedule
    >>> berlin = Schedule("30 2 * * *", "Europe/Berlin")
    >>> start = dt.datetime(2026, 10, 24, tzinfo=dt.UTC)
    >>> [(s.logical_date, s.at.strftime("%H:%M")) for s in slots_between(berlin, start, start + dt.timedelta(days=3))]
    [('2026-10-24', '00:30'), ('2026-10-25', '00:30'), ('2026-10-26', '01:30')]
"""

from __future__ import annotations

import datetime as dt
import threading
import zoneinfo
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from engagelab.errors import EngagelabError
from engagelab.jobs.lease import aware
from engagelab.jobs.spec import JobSpec, Schedule
from engagelab.jobs.store import job_info, jobs_table, leases_table, runs_table
from engagelab.storage.statedb import utcnow

if TYPE_CHECKING:
    from engagelab.jobs.runner import RunResult
    from engagelab.storage.statedb import WorkspaceState

__all__ = ["Scheduler", "Slot", "due_slots", "next_slot", "slots_between"]


@dataclass(frozen=True)
class Slot:
    """One scheduled run: its logical date (the run key) and its instant (UTC)."""

    logical_date: str
    at: dt.datetime


def slots_between(schedule: Schedule, start: dt.datetime, end: dt.datetime) -> list[Slot]:
    """Slots whose instant is in ``[start, end]``, one per logical date (the first that day)."""
    from croniter import croniter

    tz = zoneinfo.ZoneInfo(schedule.timezone)
    start, end = _utc(start), _utc(end)
    local = start.astimezone(tz).replace(tzinfo=None) - dt.timedelta(days=1, minutes=1)
    stop_local = end.astimezone(tz).replace(tzinfo=None) + dt.timedelta(days=1)
    it = croniter(schedule.cron, local)
    out: dict[str, Slot] = {}
    while True:
        t = it.get_next(dt.datetime)
        if t > stop_local:
            break
        at = t.replace(tzinfo=tz).astimezone(
            dt.UTC
        )  # fold=0: the gap shifts forward, an overlap takes the first
        if start <= at <= end:
            out.setdefault(t.date().isoformat(), Slot(t.date().isoformat(), at))
    return sorted(out.values(), key=lambda s: s.at)


def next_slot(schedule: Schedule, after: dt.datetime | None = None) -> Slot | None:
    """The first slot strictly after ``after`` (default now), within 400 days."""
    after = _utc(after or utcnow())
    for s in slots_between(
        schedule, after + dt.timedelta(microseconds=1), after + dt.timedelta(days=400)
    ):
        return s
    return None


def _utc(t: dt.datetime) -> dt.datetime:
    if t.tzinfo is None:
        raise ValueError(f"{t!r} must be time-zone aware")
    return t.astimezone(dt.UTC)


def due_slots(ws: WorkspaceState, name: str, now: dt.datetime | None = None) -> list[Slot]:
    """The slots of job ``name`` to run now, oldest first, per its catch-up policy.

    A slot is *pending* if its logical date has no attempt, a ``running`` attempt whose
    lease is gone or stale (a dead runner: running it again takes over and records the
    ``crashed`` attempt), or only failed attempts including a ``bad_parameters`` one whose
    cause is fixed now (the run never started, so it is not done). Slots before the job's ``start`` (or, without one, before it
    was added) never run; ``max_staleness`` drops older slots. Policies: ``all`` = every
    pending slot; ``latest`` = the most recent slot if pending; ``none`` = a pending slot
    only within ``max_staleness`` (default 1 hour) of its time.
    """
    info = job_info(ws, name)
    spec: JobSpec = info["spec"]
    if spec.schedule is None or info["paused"]:
        return []
    now = _utc(now or utcnow())
    tz = zoneinfo.ZoneInfo(spec.schedule.timezone)
    if spec.start:
        begin = dt.datetime.combine(dt.date.fromisoformat(spec.start), dt.time(0), tz).astimezone(
            dt.UTC
        )
    else:
        begin = aware(info["created_at"])
    cu = spec.catch_up
    staleness = (
        cu.max_staleness
        if cu.max_staleness is not None
        else (3600.0 if cu.policy == "none" else None)
    )
    if staleness is not None:
        begin = max(begin, now - dt.timedelta(seconds=staleness))
    slots = slots_between(spec.schedule, begin, now) if begin <= now else []
    if not slots:
        return []
    pending = _pending(ws, spec, {s.logical_date for s in slots}, utcnow())
    if cu.policy == "latest":
        return [slots[-1]] if slots[-1].logical_date in pending else []
    return [s for s in slots if s.logical_date in pending]


def _pending(ws: WorkspaceState, spec: JobSpec, dates: set[str], clock: dt.datetime) -> set[str]:
    # lease ages are measured on the real clock (heartbeats are real), not the pass's ``now``
    with ws.state.read() as conn:
        runs = conn.execute(sa.select(runs_table.c.logical_date, runs_table.c.status)
                            .where((runs_table.c.job == spec.name) & runs_table.c.logical_date.in_(dates))).all()  # fmt: skip
        leases = {r.logical_date: aware(r.heartbeat_at) for r in conn.execute(
            sa.select(leases_table.c.logical_date, leases_table.c.heartbeat_at).where(leases_table.c.job == spec.name))}  # fmt: skip
    statuses: dict[str, set[str]] = {}
    for r in runs:
        statuses.setdefault(r.logical_date, set()).add(r.status)
    out = set()
    fixed: bool | None = None  # is the cause of a bad_parameters attempt gone? (checked once)
    for d in dates:
        st = statuses.get(d)
        if not st:
            out.add(d)
        elif "succeeded" in st:
            continue
        elif "running" in st:
            hb = leases.get(d)
            if hb is None or (clock - hb).total_seconds() >= spec.stale_after:
                out.add(d)
        elif "bad_parameters" in st:
            # the run never started: once its cause (a missing secret, notebook or
            # parameter) is fixed, the slot is due again; until then it is not retried
            if fixed is None:
                from engagelab.jobs.runner import preflight

                fixed = preflight(ws, spec) is None
            if fixed:
                out.add(d)
    return out


class Scheduler:
    """The embedded scheduler: runs every unpaused job's due slots through :func:`run_job`.

    Args:
        ws: the workspace.
        poll: seconds between passes when nothing is due sooner.
        on_stop: ``'finish'`` (a stop request lets the running attempt finish) or
            ``'abandon'`` (it is killed and recorded as ``crashed``; its slot stays pending).
    """

    def __init__(self, ws: WorkspaceState, *, poll: float = 30.0, on_stop: str = "finish"):
        from engagelab.validate import check_choice

        self.ws = ws
        self.poll = poll
        self.on_stop = check_choice("on_stop", on_stop, ["finish", "abandon"])
        self.stop_event = threading.Event()
        #: job -> error of the last pass's jobs that could not be scheduled
        self.errors: dict[str, str] = {}

    def stop(self) -> None:
        """Ask the loop to end (safe from a signal handler)."""
        self.stop_event.set()

    def run_due(self, now: dt.datetime | None = None, *, progress: Any = None) -> list[RunResult]:
        """One pass: run every due slot of every unpaused job, oldest first; the results.

        ``progress(text)``, if given, is called before and after each run. A job whose
        stored spec cannot be read is skipped and its error kept in :attr:`errors`.
        """
        from engagelab.jobs.runner import run_job

        with self.ws.state.read() as conn:
            names = [r[0] for r in conn.execute(sa.select(jobs_table.c.name).where(jobs_table.c.paused == sa.false())
                                                .order_by(jobs_table.c.name))]  # fmt: skip
        results: list[RunResult] = []
        self.errors = {}
        abandon = self.stop_event if self.on_stop == "abandon" else None
        for name in names:
            try:
                slots = due_slots(self.ws, name, now)
            except EngagelabError as exc:  # one job's unreadable spec must not stop the others
                self.errors[name] = str(exc)
                if progress:
                    progress(f"{name}: error: {exc}")
                continue
            for slot in slots:
                if self.stop_event.is_set():
                    return results
                if progress:
                    progress(f"{name} {slot.logical_date}: running")
                results.append(
                    run_job(self.ws, name, slot.logical_date, trigger="scheduler", stop=abandon)
                )
                if progress:
                    progress(repr(results[-1]))
        return results

    def serve(self, *, log: Any = None) -> int:
        """Loop until :meth:`stop`: run what is due, then sleep until the next slot or ``poll``."""
        passes = 0
        while not self.stop_event.is_set():
            for r in self.run_due():
                if log:
                    log(f"{r.job} {r.logical_date}: {r.status}")
            for name, err in self.errors.items():
                if log:
                    log(f"{name}: error: {err}")
            passes += 1
            self.stop_event.wait(self._sleep_for())
        return passes

    def _sleep_for(self) -> float:
        now = utcnow()
        best = self.poll
        with self.ws.state.read() as conn:
            rows = conn.execute(
                sa.select(jobs_table.c.spec).where(jobs_table.c.paused == sa.false())
            ).all()
        for r in rows:
            try:
                spec = JobSpec.from_yaml(r.spec)
            except EngagelabError:
                continue  # reported by run_due
            if spec.schedule is not None:
                nxt = next_slot(spec.schedule, now)
                if nxt is not None:
                    best = min(best, max(0.5, (nxt.at - now).total_seconds() + 0.5))
        return best
