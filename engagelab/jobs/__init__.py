"""Scheduled jobs: parameterised notebooks run by papermill, keyed by logical date.

``engagelab run JOB --logical-date D`` (:func:`run_job`) is the one entry point that the
embedded scheduler, cron, Airflow or a Kubernetes CronJob call. A run key (job, logical
date in the job's time zone) runs at most once at a time (a lease with heartbeats in the
state database) and is never re-run once it succeeded; every attempt is recorded with
its outcome class (succeeded, cell_error, dead_kernel, timeout, crashed, bad_parameters).

Example (registering a job and asking what a restarted scheduler would run; ``run_job``
then executes each slot in a papermill kernel):

    >>> import datetime as dt, tempfile
    >>> from engagelab import Workspace
    >>> from engagelab.jobs import EXIT_CODES, JobSpec, add_job, due_slots
    >>> ws = Workspace.create(tempfile.mkdtemp() + "/ws")
    >>> _ = add_job(ws, JobSpec(name="daily", notebook="daily.ipynb", start="2026-03-27",
    ...     schedule={"cron": "30 2 * * *", "timezone": "Europe/Berlin"}, catch_up={"policy": "all"}))
    >>> now = dt.datetime(2026, 3, 30, 12, tzinfo=dt.UTC)
    >>> [s.logical_date for s in due_slots(ws, "daily", now)]
    ['2026-03-27', '2026-03-28', '2026-03-29', '2026-03-30']
    >>> EXIT_CODES["already_running"], EXIT_CODES["already_succeeded"]
    (20, 21)

Importing this package is cheap: each name is imported from its module on first use, so
``engagelab run`` (which imports ``engagelab.cli.jobs``) loads only what a run needs.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from engagelab.jobs.runner import EXIT_CODES, RunResult, run_job
    from engagelab.jobs.schedule import Scheduler, due_slots, next_slot, slots_between
    from engagelab.jobs.spec import CatchUp, JobSpec, Notify, Param, Retries, Schedule
    from engagelab.jobs.store import add_job, get_job, history, list_jobs, remove_job, set_paused

__all__ = [
    "CatchUp",
    "EXIT_CODES",
    "JobSpec",
    "Notify",
    "Param",
    "Retries",
    "RunResult",
    "Schedule",
    "Scheduler",
    "add_job",
    "due_slots",
    "get_job",
    "history",
    "list_jobs",
    "next_slot",
    "remove_job",
    "run_job",
    "set_paused",
    "slots_between",
]

#: The module defining each exported name (imported on first access).
_HOME = {
    **dict.fromkeys(("EXIT_CODES", "RunResult", "run_job"), "engagelab.jobs.runner"),
    **dict.fromkeys(("Scheduler", "due_slots", "next_slot", "slots_between"), "engagelab.jobs.schedule"),
    **dict.fromkeys(("CatchUp", "JobSpec", "Notify", "Param", "Retries", "Schedule"), "engagelab.jobs.spec"),
    **dict.fromkeys(("add_job", "get_job", "history", "list_jobs", "remove_job", "set_paused"),
                    "engagelab.jobs.store"),
}  # fmt: skip


def __getattr__(name: str) -> Any:
    if name not in _HOME:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_HOME[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
