"""CLI plug-in: ``engagelab run``, ``engagelab jobs ...`` and ``engagelab scheduler``.

Exit codes of ``engagelab run`` (also ``engagelab.jobs.EXIT_CODES``): 0 succeeded,
10 cell_error, 11 dead_kernel, 12 timeout, 13 crashed, 14 bad_parameters,
20 already running (another runner holds the run key), 21 already succeeded;
1 is any other error (unknown job, bad spec), 2 a usage error.
"""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["register"]


def register(sub: Any, common: argparse.ArgumentParser, wsopt: argparse.ArgumentParser) -> None:
    """Add the jobs' subcommands to the ``engagelab`` parser."""
    s = sub.add_parser(
        "run", parents=[common, wsopt], help="run a job for one logical date (the job entry point)"
    )
    s.add_argument("job")
    s.add_argument(
        "--logical-date",
        "-d",
        required=True,
        help="the run key's date, YYYY-MM-DD (job's time zone)",
    )
    s.add_argument(
        "-p",
        "--param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a parameter (repeatable)",
    )
    s.add_argument("-f", "--params-file", help="YAML file of parameters (-p values win)")
    s.add_argument("--backfill", action="store_true",
                   help="allow a logical date before the job's start")  # fmt: skip
    s.add_argument("--trigger", default="cli", help=argparse.SUPPRESS)
    s.set_defaults(func=cmd_run)

    s = sub.add_parser(
        "jobs", parents=[common], help="add, list, inspect, pause and export scheduled jobs"
    )
    js = s.add_subparsers(dest="jobs_cmd", required=True, metavar="ACTION")
    a = js.add_parser("add", parents=[common, wsopt], help="register a job from a YAML spec file")
    a.add_argument("spec", help="job spec YAML file")
    a.add_argument("--replace", action="store_true", help="replace a job of the same name")
    a.set_defaults(func=cmd_add)
    a = js.add_parser("list", parents=[common, wsopt], help="jobs with next run and last status")
    a.set_defaults(func=cmd_list)
    for name, help_ in (("show", "a job's spec (YAML)"), ("pause", "stop scheduling a job"),
                        ("resume", "schedule a paused job again"), ("remove", "delete a job (history stays)")):  # fmt: skip
        a = js.add_parser(name, parents=[common, wsopt], help=help_)
        a.add_argument("job")
        a.set_defaults(func=cmd_job)
    a = js.add_parser("history", parents=[common, wsopt], help="recorded attempts")
    a.add_argument("job", nargs="?")
    a.add_argument("--logical-date", "-d")
    a.set_defaults(func=cmd_history)
    a = js.add_parser(
        "run-due", parents=[common, wsopt], help="one scheduler pass: run what is due now"
    )
    a.add_argument("--now", help="pretend it is this instant (ISO 8601; for testing and backfills)")
    a.set_defaults(func=cmd_run_due)
    a = js.add_parser(
        "export", parents=[common, wsopt], help="write an Airflow DAG or a Kubernetes CronJob"
    )
    a.add_argument("job")
    a.add_argument("--airflow", metavar="DIR", help="write <DIR>/engagelab_<job>.py")
    a.add_argument("--k8s", metavar="DIR", help="write <DIR>/<job>-cronjob.yaml")
    a.add_argument("--image", default="engagelab:latest", help="container image (--k8s)")
    a.add_argument("--command", default="engagelab", help="the engagelab executable in the target")
    a.set_defaults(func=cmd_export)

    s = sub.add_parser(
        "scheduler", parents=[common, wsopt], help="the embedded scheduler (long-running)"
    )
    s.add_argument("--poll", type=float, default=30.0, help="seconds between passes at most")
    s.add_argument("--on-stop", choices=["finish", "abandon"], default="finish",
                   help="on SIGTERM/SIGINT: let the running attempt finish, or abandon it")  # fmt: skip
    s.set_defaults(func=cmd_scheduler)


def _ws(args: argparse.Namespace) -> Any:
    from engagelab.workspace import Workspace

    return Workspace.open(args.workspace)


def _params(args: argparse.Namespace) -> dict[str, Any]:
    from pathlib import Path

    from engagelab.errors import ValidationError
    from engagelab.validate import load_yaml

    out: dict[str, Any] = {}
    if args.params_file:
        path = Path(args.params_file)
        if not path.is_file():
            raise ValidationError("--params-file", str(path), "does not exist")
        data = load_yaml(path.read_bytes(), f"--params-file {path}") or {}
        if not isinstance(data, dict):
            raise ValidationError("--params-file", str(path), "must hold a YAML mapping")
        out.update(data)
    for item in args.param:
        if "=" not in item:
            raise ValidationError("-p", item, "must look like key=value")
        k, v = item.split("=", 1)
        out[k.strip()] = v
    return out


def cmd_run(args: argparse.Namespace) -> int:
    """``engagelab run``: its cost over bare papermill is what a scheduled job pays each time.

    So it starts the papermill child first (its papermill import then overlaps everything
    else), and opens only the workspace's state database (no pandas, pyarrow or DuckDB).
    """
    import sys
    from pathlib import Path

    from engagelab.jobs.execute import Executor

    executor = Executor.for_workspace(Path(args.workspace).resolve())
    try:
        from engagelab.jobs.runner import run_job
        from engagelab.storage.statedb import WorkspaceState

        params = _params(args)
        ws = WorkspaceState(args.workspace)
    except BaseException:
        executor.cancel()
        raise
    try:
        result = run_job(ws, args.job, args.logical_date, params, trigger=args.trigger,
                         executor=executor, backfill=args.backfill)  # fmt: skip
    finally:
        ws.close()
    from engagelab.cli._common import emit

    if args.format == "json":
        emit(result.to_dict(), "json")
    else:
        last = result.last
        line = f"{result.job} {result.logical_date}: {result.status}"
        if last.get("attempt"):
            line += f" (attempt {last['attempt']})"
        print(line)
        if result.status != "succeeded" and result.message:
            cell = f" in cell {last['cell_index']}" if last.get("cell_index") is not None else ""
            name = f"{last['error_name']}{cell}: " if last.get("error_name") else ""
            print(f"  {name}{result.message}", file=sys.stderr)
        if result.output_path:
            print(f"  output: {result.output_path}")
    return result.exit_code


def cmd_add(args: argparse.Namespace) -> int:
    from pathlib import Path

    from engagelab.cli._common import emit
    from engagelab.errors import ValidationError
    from engagelab.jobs.spec import JobSpec
    from engagelab.jobs.store import add_job

    path = Path(args.spec)
    if not path.is_file():
        raise ValidationError("spec", str(path), "does not exist")
    from engagelab.validate import load_yaml

    spec = JobSpec.from_dict(load_yaml(path.read_bytes(), f"--spec {path}") or {})
    ws = _ws(args)
    try:
        add_job(ws, spec, replace=args.replace)
    finally:
        ws.close()
    emit({"added": spec.name, "notebook": spec.notebook}, args.format)
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    from engagelab.cli._common import emit
    from engagelab.jobs.schedule import next_slot
    from engagelab.jobs.store import get_job, list_jobs

    ws = _ws(args)
    try:
        df = list_jobs(ws)
        nxt: list[str | None] = []
        for name, paused, error in zip(df["name"], df["paused"], df["error"], strict=True):
            if isinstance(error, str):
                nxt.append(None)
                continue
            spec = get_job(ws, name)
            slot = next_slot(spec.schedule) if spec.schedule and not paused else None
            nxt.append(slot.at.isoformat(timespec="minutes") if slot else None)
        df.insert(4, "next_run", nxt)
    finally:
        ws.close()
    emit(df, args.format)
    return 0


def cmd_job(args: argparse.Namespace) -> int:
    from engagelab.cli._common import emit
    from engagelab.jobs.store import get_job, remove_job, set_paused

    ws = _ws(args)
    try:
        if args.jobs_cmd == "show":
            spec = get_job(ws, args.job)
            emit(spec.to_dict() if args.format == "json" else spec.to_yaml().rstrip(), args.format)
        elif args.jobs_cmd == "remove":
            remove_job(ws, args.job)
            emit({"removed": args.job}, args.format)
        else:
            set_paused(ws, args.job, args.jobs_cmd == "pause")
            emit({"job": args.job, "paused": args.jobs_cmd == "pause"}, args.format)
    finally:
        ws.close()
    return 0


def cmd_history(args: argparse.Namespace) -> int:
    from engagelab.cli._common import emit
    from engagelab.jobs.store import history

    ws = _ws(args)
    try:
        df = history(ws, args.job, args.logical_date)
    finally:
        ws.close()
    if args.format != "json":
        df = df[["id", "job", "logical_date", "attempt", "status", "started_at", "finished_at",
                 "error_name", "error_value", "output_path"]]  # fmt: skip
    emit(df, args.format)
    return 0


def cmd_run_due(args: argparse.Namespace) -> int:
    from engagelab.cli._common import emit
    from engagelab.jobs.schedule import Scheduler
    from engagelab.validate import check_datetime

    ws = _ws(args)
    sched = Scheduler(ws)
    try:
        results = sched.run_due(now=check_datetime("--now", args.now, allow_none=True))
    finally:
        ws.close()
    rows: list[dict[str, Any]] = [{"job": r.job, "logical_date": r.logical_date, "status": r.status}
                                  for r in results]  # fmt: skip
    lines = [repr(r) for r in results]
    for name, err in sched.errors.items():
        rows.append({"job": name, "logical_date": None, "status": "error", "error": err})
        lines.append(f"{name}: error: {err}")
    emit(rows if args.format == "json" else "\n".join(lines) or "nothing due", args.format)
    ok = ("succeeded", "already_succeeded", "already_running")
    return 0 if all(r.status in ok for r in results) and not sched.errors else 1


def cmd_export(args: argparse.Namespace) -> int:
    import zoneinfo

    from engagelab.cli._common import emit
    from engagelab.errors import ValidationError
    from engagelab.jobs.export import write_airflow_dag, write_k8s_cronjob
    from engagelab.jobs.lease import aware
    from engagelab.jobs.store import job_info

    if not args.airflow and not args.k8s:
        raise ValidationError("export", None, "give --airflow DIR and/or --k8s DIR")
    ws = _ws(args)
    try:
        info = job_info(ws, args.job)
        spec = info["spec"]
        tz = zoneinfo.ZoneInfo(spec.schedule.timezone if spec.schedule else "UTC")
        created = aware(info["created_at"])
        added = created.astimezone(tz).date().isoformat() if created else None
        written = {}
        if args.airflow:
            written["airflow"] = str(write_airflow_dag(spec, args.airflow, workspace=str(ws.path),
                                                       command=args.command, start=added))  # fmt: skip
        if args.k8s:
            written["k8s"] = str(write_k8s_cronjob(spec, args.k8s, workspace=str(ws.path), image=args.image,
                                                   command=args.command))  # fmt: skip
    finally:
        ws.close()
    emit(written, args.format)
    return 0


def cmd_scheduler(args: argparse.Namespace) -> int:
    import signal
    import sys

    from engagelab.jobs.schedule import Scheduler

    ws = _ws(args)
    sched = Scheduler(ws, poll=args.poll, on_stop=args.on_stop)

    def _stop(signum: int, _frame: Any) -> None:
        print(
            f"engagelab scheduler: got signal {signum}, stopping ({args.on_stop})",
            file=sys.stderr,
            flush=True,
        )
        sched.stop()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    print(f"engagelab scheduler: started on {ws.path}", file=sys.stderr, flush=True)
    try:
        sched.serve(log=lambda m: print(m, flush=True))
    finally:
        ws.close()
    print("engagelab scheduler: stopped", file=sys.stderr, flush=True)
    return 0
