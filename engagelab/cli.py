"""The ``engagelab`` command line: a thin shell over the library.

Every command takes ``--format table|json``; errors print one line and exit non-zero
(``--debug`` shows the traceback).
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from engagelab._validate import check_datetime
from engagelab.errors import EngagelabError, ValidationError

__all__ = ["main"]

EXIT_ERROR = 1
EXIT_USAGE = 2

#: Modules that add subcommands: each has ``register(subparsers, common, wsopt)`` adding
#: parsers whose ``func(args) -> int`` does the work. Keep their top-level imports light.
PLUGINS = (
    "engagelab.experiments.cli",
    "engagelab.campaigns.cli",
    "engagelab.channels.cli",
    "engagelab.jobs.cli",
    "engagelab.besttime.cli",
    "engagelab.retention.cli",
)

#: The subcommands each plug-in adds, with their one-line help: a command line imports
#: only the plug-in it names (importing all of them costs seconds: scipy, statsmodels).
PLUGIN_COMMANDS = {
    "experiment": ("engagelab.experiments.cli", "design and analyse A/B/n experiments"),
    "campaign": ("engagelab.campaigns.cli", "save, plan, send and report campaigns"),
    "channel": ("engagelab.channels.cli", "channels, message previews and the client inbox"),
    "run": ("engagelab.jobs.cli", "run a job for one logical date (the job entry point)"),
    "jobs": ("engagelab.jobs.cli", "add, list, inspect, pause and export scheduled jobs"),
    "scheduler": ("engagelab.jobs.cli", "the embedded scheduler (long-running)"),
    "besttime": ("engagelab.besttime.cli", "fit and evaluate per-user best send times"),
    "retention": ("engagelab.retention.cli", "cohort retention and message-label cohorts"),
}


# ----------------------------------------------------------------------------- output
def emit(obj: Any, fmt: str) -> None:
    """Print a DataFrame, dict or scalar as a table or JSON."""
    # pandas is imported only by the commands that produce DataFrames, never for this check
    pd: Any = sys.modules.get("pandas")
    is_frame = pd is not None and isinstance(obj, pd.DataFrame)
    if fmt == "json":
        if is_frame:
            obj = json.loads(obj.to_json(orient="records", date_format="iso"))
        print(json.dumps(obj, indent=2, default=str, ensure_ascii=False))
        return
    if is_frame:
        if obj.empty:
            print("(no rows)")
        else:
            with pd.option_context(
                "display.max_rows", 200, "display.max_columns", 50, "display.width", 200
            ):
                print(obj.to_string(index=False))
    elif isinstance(obj, dict):
        width = max((len(str(k)) for k in obj), default=0)
        for k, v in obj.items():
            if isinstance(v, dict):
                print(f"{k}:")
                for k2, v2 in v.items():
                    print(f"  {k2}: {v2}")
            else:
                print(f"{str(k).ljust(width)}  {v}")
    else:
        print(obj)


def _workspace(args: argparse.Namespace) -> Any:
    from engagelab.workspace import Workspace

    return Workspace.open(args.workspace)


def _parse_at(text: str | None) -> datetime | None:
    return check_datetime("--at", text, allow_none=True)


def _load_segment(args: argparse.Namespace, ws: Any) -> Any:
    given = [x for x in (args.spec, args.json, args.name) if x]
    if len(given) != 1:
        raise ValidationError(
            "segment", None, "give exactly one of --spec FILE, --json TEXT, --name SAVED"
        )
    if args.name:
        return ws.load_segment(args.name)
    from engagelab.segments import Segment

    if args.json:
        return Segment.from_json(args.json)
    path = Path(args.spec)
    if not path.is_file():
        raise ValidationError("--spec", str(path), "does not exist")
    text = path.read_text()
    return Segment.from_yaml(text) if path.suffix in (".yaml", ".yml") else Segment.from_json(text)


# ----------------------------------------------------------------------------- commands
def cmd_init(args: argparse.Namespace) -> int:
    from engagelab.workspace import Workspace

    ws = Workspace.create(args.path, state_url=args.state_url, exist_ok=args.exist_ok)
    emit(
        {
            "workspace": str(ws.path),
            "state": ws.state.engine.url.render_as_string(hide_password=True),
        },
        args.format,
    )
    return 0


def cmd_ingest(args: argparse.Namespace) -> int:
    ws = _workspace(args)
    mapping = dict(_pair("--map", m) for m in args.map or [])
    types = dict(_pair("--type", m) for m in args.type or [])
    report = ws.ingest(
        args.source,
        table=args.table,
        mapping=mapping,
        types=types,
        format=args.input_format,
        force=args.force,
        ts_unit=args.ts_unit,
        quiet=True,
    )
    emit(report.to_dict() if args.format == "json" else repr(report), args.format)
    return 0


def _pair(flag: str, text: str) -> tuple[str, str]:
    if "=" not in text:
        raise ValidationError(flag, text, "must look like name=value")
    k, v = text.split("=", 1)
    return k.strip(), v.strip()


def cmd_simulate(args: argparse.Namespace) -> int:
    from engagelab.worlds import simulate_into

    ws = _workspace(args)
    t0 = time.perf_counter()
    info = simulate_into(
        ws,
        n_users=args.users,
        days=args.days,
        seed=args.seed,
        start=args.start,
        progress=None if args.format == "json" else _progress,
    )
    info["seconds"] = round(time.perf_counter() - t0, 2)
    emit(info, args.format)
    return 0


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def cmd_segment(args: argparse.Namespace) -> int:
    ws = _workspace(args)
    if args.segment_cmd == "list":
        emit(ws.segments(), args.format)
        return 0
    seg = _load_segment(args, ws)
    if args.segment_cmd == "count":
        at = _parse_at(args.at)
        emit({"segment": seg.describe(), "users": ws.count(seg, at=at)}, args.format)
    elif args.segment_cmd == "show-sql":
        sql = seg.to_sql(dialect=args.dialect, at=_parse_at(args.at), resolve=ws.load_segment)
        emit({"dialect": args.dialect, "sql": sql} if args.format == "json" else sql, args.format)
    elif args.segment_cmd == "save":
        ws.save_segment(args.save_as, seg, description=args.description or "")
        emit({"saved": args.save_as, "segment": seg.describe()}, args.format)
    return 0


def cmd_sql(args: argparse.Namespace) -> int:
    ws = _workspace(args)
    query = args.query
    if query == "-":
        query = sys.stdin.read()
    emit(ws.sql(query), args.format)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from engagelab.demo import run_demo

    result = run_demo(
        args.workspace or "demo-workspace",
        users=args.users,
        days=args.days,
        seed=args.seed,
        programme_days=args.programme_days,
        html_reports=not args.no_html,
        progress=_progress,
    )
    if args.format == "json":
        emit(result.to_dict(), "json")
    else:
        print(result, flush=True)
    return 0 if result.ok else EXIT_ERROR


# ----------------------------------------------------------------------------- parser
def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The argument parser of the ``engagelab`` command.

    With ``command`` (the first word of a command line) only the plug-in that adds that
    command is imported; other plug-in commands appear with their help text only.
    """
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--format", choices=["table", "json"], default="table", help="output format"
    )
    common.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    wsopt = argparse.ArgumentParser(add_help=False)
    wsopt.add_argument(
        "--workspace",
        "-w",
        default=os.environ.get("ENGAGELAB_WORKSPACE"),
        help="workspace folder (default: $ENGAGELAB_WORKSPACE)",
    )

    p = argparse.ArgumentParser(
        prog="engagelab", description="Design, run and analyse messaging campaigns."
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    s = sub.add_parser("init", parents=[common], help="create a workspace")
    s.add_argument("path")
    s.add_argument(
        "--state-url",
        help="SQLAlchemy URL of the state database (default: SQLite in the workspace)",
    )
    s.add_argument("--exist-ok", action="store_true", help="open the workspace if it exists")
    s.set_defaults(func=cmd_init)

    s = sub.add_parser(
        "ingest", parents=[common, wsopt], help="validate and append a file of events or profiles"
    )
    s.add_argument("source", help="CSV, Parquet or JSON Lines file")
    s.add_argument("--table", choices=["events", "profiles"], default="events")
    s.add_argument(
        "--map", action="append", metavar="SOURCE=TARGET", help="rename a column (repeatable)"
    )
    s.add_argument(
        "--type", action="append", metavar="COLUMN=TYPE", help="declare a new column's type"
    )
    s.add_argument(
        "--input-format", choices=["csv", "parquet", "jsonl"], help="when the suffix doesn't tell"
    )
    s.add_argument(
        "--ts-unit", choices=["s", "ms", "us"], default="s", help="unit of numeric timestamps"
    )
    s.add_argument("--force", action="store_true", help="ingest again even if already ingested")
    s.set_defaults(func=cmd_ingest)

    s = sub.add_parser(
        "simulate", parents=[common, wsopt], help="simulate users and behaviour into a workspace"
    )
    s.add_argument("--users", type=int, default=10_000)
    s.add_argument("--days", type=int, default=60)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--start", default=None, help="first simulated day (YYYY-MM-DD)")
    s.set_defaults(func=cmd_simulate)

    s = sub.add_parser("segment", parents=[common], help="count, save or show the SQL of a segment")
    ssub = s.add_subparsers(dest="segment_cmd", required=True, metavar="ACTION")
    for name, help_ in (
        ("count", "number of users in a segment"),
        ("show-sql", "the SQL a segment compiles to"),
        ("save", "save a segment under a name"),
    ):
        a = ssub.add_parser(name, parents=[common, wsopt], help=help_)
        a.add_argument("--spec", help="segment spec file (.json or .yaml)")
        a.add_argument("--json", help="segment spec as JSON text")
        a.add_argument("--name", help="a saved segment")
        a.add_argument("--at", help="reference time for relative windows (default: now)")
        if name == "show-sql":
            a.add_argument(
                "--dialect",
                default="duckdb",
                help="duckdb (default), spark, or any sqlglot dialect",
            )
        if name == "save":
            a.add_argument("save_as", metavar="NAME")
            a.add_argument("--description")
        a.set_defaults(func=cmd_segment)
    a = ssub.add_parser("list", parents=[common, wsopt], help="saved segments")
    a.set_defaults(func=cmd_segment)

    s = sub.add_parser(
        "sql", parents=[common, wsopt], help="run SQL (DuckDB dialect) over events and profiles"
    )
    s.add_argument("query", help="the SQL text, or - to read it from stdin")
    s.set_defaults(func=cmd_sql)

    s = sub.add_parser(
        "demo",
        parents=[common],
        help="the main job: workspace, simulated world, campaigns, reports",
    )
    s.add_argument("--workspace", "-w", default=None, help="folder (default: ./demo-workspace)")
    s.add_argument("--users", type=int, default=50_000)
    s.add_argument("--days", type=int, default=60)
    s.add_argument("--seed", type=int, default=7)
    s.add_argument(
        "--programme-days",
        type=int,
        default=None,
        help="scheduled days at the end of the history (default: min(14, days // 2))",
    )
    s.add_argument(
        "--no-html", action="store_true", help="skip the HTML reports of runs and analyses"
    )
    s.set_defaults(func=cmd_demo)

    if command is None:
        wanted = list(PLUGINS)
    elif command in PLUGIN_COMMANDS:
        wanted = [PLUGIN_COMMANDS[command][0]]
    else:
        wanted = []
    for module in wanted:
        importlib.import_module(module).register(sub, common, wsopt)
    if command is not None:
        loaded = set(sub.choices)
        for name, (_module, help_) in PLUGIN_COMMANDS.items():
            if name not in loaded:
                sub.add_parser(name, help=help_)  # placeholder: listed in --help only
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    first = next((a for a in argv if not a.startswith("-")), "")
    parser = build_parser(first)
    args = parser.parse_args(argv)
    if (
        getattr(args, "command", None) != "init"
        and hasattr(args, "workspace")
        and args.command != "demo"
        and not args.workspace
    ):
        parser.exit(
            EXIT_USAGE,
            "engagelab: error: no workspace: pass --workspace PATH or set ENGAGELAB_WORKSPACE\n",
        )
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except EngagelabError as exc:
        if args.debug:
            raise
        print(f"engagelab: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except (OSError, KeyboardInterrupt) as exc:
        if args.debug:
            raise
        print(f"engagelab: error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
