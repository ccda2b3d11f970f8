"""``run_job``: the one entry point behind ``engagelab run JOB --logical-date D``.

Order of work: start the papermill child (it imports papermill meanwhile) → validate the
parameters and the secrets' presence → claim the run key's lease (or report "already
running" / "already succeeded") → execute with heartbeats → record the attempt → retry
what the policy allows, with backoff → release the lease → notify.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import html
import json
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engagelab.errors import ValidationError
from engagelab.jobs import lease as _lease
from engagelab.jobs.execute import Executor
from engagelab.jobs.spec import JobSpec
from engagelab.jobs.store import get_job
from engagelab.redact import Redactor

if TYPE_CHECKING:
    import pandas as pd

    from engagelab.storage.statedb import WorkspaceState

__all__ = ["EXIT_CODES", "RunResult", "output_dir", "parse_logical_date", "preflight", "run_job"]

#: Exit codes of ``engagelab run`` by outcome (1 and 2 are generic errors and usage).
EXIT_CODES = {
    "succeeded": 0,
    "cell_error": 10,
    "dead_kernel": 11,
    "timeout": 12,
    "crashed": 13,
    "bad_parameters": 14,
    "already_running": 20,
    "already_succeeded": 21,
}


@dataclass(frozen=True)
class RunResult:
    """What one ``run_job`` call did: the final status and every attempt it made."""

    job: str
    logical_date: str
    status: str
    attempts: tuple[dict[str, Any], ...] = ()
    crashed_run_id: int | None = None
    notify_error: str | None = None
    message: str = ""

    @property
    def last(self) -> dict[str, Any]:
        """The last attempt's record (empty when nothing ran)."""
        return self.attempts[-1] if self.attempts else {}

    @property
    def exit_code(self) -> int:
        """The process exit code for this outcome (see ``EXIT_CODES``)."""
        return EXIT_CODES[self.status]

    @property
    def output_path(self) -> str | None:
        """The executed notebook of the last attempt."""
        return self.last.get("output_path")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready summary."""
        return {"job": self.job, "logical_date": self.logical_date, "status": self.status,
                "exit_code": self.exit_code, "message": self.message, "attempts": list(self.attempts),
                "crashed_run_id": self.crashed_run_id, "notify_error": self.notify_error}  # fmt: skip

    def to_pandas(self) -> pd.DataFrame:
        """One row per attempt made by this call."""
        import pandas as pd

        return pd.DataFrame(list(self.attempts))

    def __repr__(self) -> str:
        n = len(self.attempts)
        tail = f", {self.message}" if self.message else ""
        return f"RunResult({self.job} {self.logical_date}: {self.status}, {n} attempt(s){tail})"

    def _repr_html_(self) -> str:
        rows = "".join(
            f"<tr><td>{a['attempt']}</td><td>{html.escape(a['status'])}</td>"
            f"<td>{html.escape(str(a.get('error_name') or ''))}: {html.escape(str(a.get('error_value') or ''))}</td>"
            f"<td>{html.escape(str(a.get('output_path') or ''))}</td></tr>"
            for a in self.attempts
        )
        return (f"<b>{html.escape(self.job)} {self.logical_date}: {html.escape(self.status)}</b>"
                f"<table><tr><th>attempt</th><th>status</th><th>error</th><th>output</th></tr>{rows}</table>")  # fmt: skip


def parse_logical_date(value: Any) -> str:
    """``YYYY-MM-DD`` text from a date or ISO date text.

    >>> parse_logical_date("2026-03-29"), parse_logical_date(dt.date(2026, 3, 1))
    ('2026-03-29', '2026-03-01')
    """
    if isinstance(value, dt.datetime):
        raise ValidationError("logical_date", value, "must be a date (YYYY-MM-DD), not a datetime")
    if isinstance(value, dt.date):
        return value.isoformat()
    try:
        return dt.date.fromisoformat(str(value).strip()).isoformat()
    except ValueError:
        raise ValidationError("logical_date", value, "must be a date (YYYY-MM-DD)") from None


def output_dir(ws: WorkspaceState, spec: JobSpec, logical_date: str) -> Path:
    """Where this run key's executed notebooks and reports go."""
    base = Path(spec.output_dir) if spec.output_dir else Path("outputs") / "runs"
    if not base.is_absolute():
        base = Path(ws.path) / base
    return base / spec.name / logical_date


def notebook_path(ws: WorkspaceState, spec: JobSpec) -> Path:
    """The job's notebook (relative paths are relative to the workspace)."""
    p = Path(spec.notebook).expanduser()
    return p if p.is_absolute() else Path(ws.path) / p


def _checked_params(
    ws: WorkspaceState, spec: JobSpec, params: dict[str, Any] | None
) -> dict[str, Any]:
    import os

    resolved = spec.resolve_params(params)
    nb = notebook_path(ws, spec)
    if not nb.is_file():
        raise ValidationError("notebook", str(nb), "does not exist")
    missing = [v for v in spec.secret_env if not os.environ.get(v)]
    if missing:
        raise ValidationError("secret_env", missing[0], "is not set in the environment")
    return resolved


def preflight(
    ws: WorkspaceState, spec: JobSpec, params: dict[str, Any] | None = None
) -> str | None:
    """Why a run of ``spec`` would fail as ``bad_parameters`` now (None: it would start).

    The checks ``run_job`` makes before starting a kernel: parameters, the notebook's
    presence and the secret environment variables' presence.
    """
    try:
        _checked_params(ws, spec, params)
    except ValidationError as exc:
        return str(exc)
    return None


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def run_job(  # noqa: C901
    ws: WorkspaceState,
    name: str,
    logical_date: Any,
    params: dict[str, Any] | None = None,
    *,
    trigger: str = "api",
    stop: threading.Event | None = None,
    sleep: Any = time.sleep,
    executor: Executor | None = None,
    backfill: bool = False,
) -> RunResult:
    """Run job ``name`` for ``logical_date`` (once per run key), with the job's retries.

    Args:
        ws: the workspace.
        name: a job added with :func:`engagelab.jobs.add_job`.
        logical_date: the run key's date (in the job's time zone).
        params: parameter values (typed, or text as from ``-p key=value``).
        trigger: who asked (recorded in the history).
        stop: set it to abandon a running attempt (recorded as ``crashed``).
        sleep: the backoff sleeper (tests pass a fake).
        executor: the first attempt's papermill child if the caller started it already
            (``Executor.for_workspace(ws.path)``; ``engagelab run`` starts it before opening
            the state database, so papermill's import overlaps all of this); it is
            stopped if it is not needed.
        backfill: allow a logical date before the job's ``start`` (refused otherwise: a
            run for a date the job did not exist for usually sends what nobody wanted).

    Raises:
        ValidationError: an unknown job, a malformed date, or a date before the job's
            ``start`` without ``backfill``.

    Returns:
        a :class:`RunResult`; ``.exit_code`` is what ``engagelab run`` exits with.
    """
    try:
        spec = get_job(ws, name)
        date = parse_logical_date(logical_date)
        if spec.start and date < spec.start and not backfill:
            raise ValidationError("logical_date", date, f"is before job {name!r}'s start "
                                  f"({spec.start}); pass --backfill (backfill=True) to run it")  # fmt: skip
    except BaseException:
        if executor is not None:
            executor.cancel()
        raise
    nb = notebook_path(ws, spec)
    out_dir = output_dir(ws, spec, date)
    if executor is None:
        executor = Executor.for_workspace(ws.path)
    problem: Exception | None = None
    resolved: dict[str, Any] = {}
    try:
        resolved = _checked_params(ws, spec, params)
        nb_hash = _digest(nb.read_bytes())
    except ValidationError as exc:
        problem, nb_hash = exc, ""
    # the secrets' values never reach the history, the output notebook, logs or messages
    red = Redactor.from_env(spec.secret_env)
    hashes = {"params": _digest(json.dumps(resolved, sort_keys=True).encode()), "notebook": nb_hash,
              "spec": spec.fingerprint()}  # fmt: skip
    owner = uuid.uuid4().hex
    try:
        claim = _lease.claim(ws, name, date, owner, stale_after=spec.stale_after,
                             params=red.value(resolved), hashes=hashes, trigger=trigger)  # fmt: skip
    except BaseException:
        executor.cancel()
        raise
    if claim.state != "acquired":
        executor.cancel()
        status = f"already_{claim.state}"
        msg = "another runner holds this run key's lease" if claim.state == "running" else (
            "this run key already succeeded")  # fmt: skip
        return RunResult(name, date, status, message=msg)
    attempts: list[dict[str, Any]] = []
    run_id, attempt = claim.run_id, claim.attempt
    assert run_id is not None  # an acquired claim always carries its new attempt's id
    try:
        if problem is not None:
            executor.cancel()
            rec = {"status": "bad_parameters", "error_class": "bad_parameters",
                   "error_name": type(problem).__name__, "error_value": red.text(str(problem))}  # fmt: skip
            _lease.finish_attempt(ws, run_id, **rec)
            attempts.append({"run_id": run_id, "attempt": attempt, **rec})
        else:
            out_dir.mkdir(parents=True, exist_ok=True)
            while True:
                rec = red.value(_attempt(
                    ws, spec, executor, nb, out_dir, date, attempt, resolved, owner, stop
                ))  # fmt: skip
                for key in ("output_path", "html_path"):  # the child scrubs them too
                    if rec.get(key):
                        red.file(rec[key])
                _lease.finish_attempt(ws, run_id, **rec)
                attempts.append({"run_id": run_id, "attempt": attempt, **rec})
                st = rec["status"]
                retries_done = len(attempts) - 1
                if (st == "succeeded" or st not in spec.retries.retry_on
                        or retries_done >= spec.retries.count or (stop is not None and stop.is_set())):  # fmt: skip
                    break
                sleep(spec.retries.delay(retries_done + 1))
                run_id, attempt = _lease.new_attempt(ws, run_id, owner)
                executor = Executor.for_workspace(ws.path)
    finally:
        _lease.release(ws, name, date, owner)
    status = attempts[-1]["status"]
    result = RunResult(name, date, status, tuple(attempts), claim.crashed_run_id,
                       message=str(attempts[-1].get("error_value") or ""))  # fmt: skip
    if spec.notify is not None:
        from engagelab.jobs.notify import notify

        err = notify(spec.notify, result)
        if err:
            result = dataclasses.replace(result, notify_error=err)
    return result


def _attempt(
    ws: WorkspaceState, spec: JobSpec, executor: Executor, nb: Path, out_dir: Path, date: str, attempt: int,
    resolved: dict[str, Any], owner: str, stop: threading.Event | None,
) -> dict[str, Any]:  # fmt: skip
    out = out_dir / f"attempt-{attempt}.ipynb"
    html_path = out_dir / f"attempt-{attempt}.html"
    request = {
        "input": str(nb), "output": str(out), "kernel_name": spec.kernel_name,
        "parameters": {**resolved, "logical_date": date, "run_key": f"{spec.name}/{date}", "attempt": attempt},
        "cell_timeout": spec.cell_timeout, "cwd": str(nb.parent), "secret_env": list(spec.secret_env),
        "html": str(html_path) if spec.html_report else None, "result": str(out_dir / f".attempt-{attempt}.json"),
    }  # fmt: skip
    interval = max(0.2, min(10.0, spec.stale_after / 4))
    with _lease.Heartbeat(ws, spec.name, date, owner, interval) as hb:
        verdict = executor.run(request, timeout=spec.timeout, lost=hb.lost, stop=stop)
    status = verdict["status"]
    rec: dict[str, Any] = {
        "status": status, "output_path": str(out) if out.exists() else None,
        "html_path": verdict.get("html_path"),
    }  # fmt: skip
    if status != "succeeded":
        rec.update(error_class=status, error_name=verdict.get("error_name"),
                   error_value=verdict.get("error_value"), cell_index=verdict.get("cell_index"))  # fmt: skip
    return rec
