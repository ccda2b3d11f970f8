"""``engagelab init | ingest | simulate | sql``: the workspace and its data."""

from __future__ import annotations

import argparse
import sys
import time

from engagelab.cli._common import emit, open_workspace, pair, progress

__all__ = ["register"]


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
    ws = open_workspace(args)
    mapping = dict(pair("--map", m) for m in args.map or [])
    types = dict(pair("--type", m) for m in args.type or [])
    report = ws.ingest(
        args.source,
        table=args.table,
        mapping=mapping,
        types=types,
        format=args.input_format,
        force=args.force,
        ts_unit=args.ts_unit,
        encoding=args.encoding,
        date_format=args.date_format,
        dedupe_key=args.dedupe_key,
        quiet=True,
    )
    emit(report.to_dict() if args.format == "json" else repr(report), args.format)
    return 0


def cmd_simulate(args: argparse.Namespace) -> int:
    from engagelab.simulate.worlds import simulate_into

    ws = open_workspace(args)
    t0 = time.perf_counter()
    info = simulate_into(
        ws,
        n_users=args.users,
        days=args.days,
        seed=args.seed,
        start=args.start,
        progress=None if args.format == "json" else progress,
    )
    info["seconds"] = round(time.perf_counter() - t0, 2)
    emit(info, args.format)
    return 0


def cmd_sql(args: argparse.Namespace) -> int:
    """Read-only by default (see :mod:`engagelab.engines.readonly`); ``--unsafe`` runs the
    text on the workspace's own engine, which can read and write any file."""
    from engagelab.engines.readonly import check_read_only, read_only_query

    query = args.query
    if query == "-":
        query = sys.stdin.read()
    if not args.unsafe:
        check_read_only(query)  # refuse before the workspace is even opened
    ws = open_workspace(args)
    if args.unsafe:
        emit(ws.sql(query), args.format)
    else:
        emit(read_only_query(ws.store.catalog(), query), args.format)
    return 0


def register(
    sub: argparse._SubParsersAction, common: argparse.ArgumentParser, wsopt: argparse.ArgumentParser
) -> None:
    """Add ``engagelab init``, ``ingest``, ``simulate`` and ``sql``."""
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
    s.add_argument("--encoding", default="utf-8", help="text encoding of the file (e.g. latin-1)")
    s.add_argument("--date-format", help="strftime pattern of non-ISO dates, e.g. '%%d/%%m/%%Y'")
    s.add_argument(
        "--dedupe-key",
        choices=["event_id", "content"],
        default="event_id",
        help="content: events without event_id are deduplicated by a hash of their values",
    )
    s.set_defaults(func=cmd_ingest)

    s = sub.add_parser(
        "simulate", parents=[common, wsopt], help="simulate users and behaviour into a workspace"
    )
    s.add_argument("--users", type=int, default=10_000)
    s.add_argument("--days", type=int, default=60)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--start", default=None, help="first simulated day (YYYY-MM-DD)")
    s.set_defaults(func=cmd_simulate)

    s = sub.add_parser(
        "sql",
        parents=[common, wsopt],
        help="run read-only SQL (DuckDB dialect) over events and profiles",
    )
    s.add_argument("query", help="the SQL text, or - to read it from stdin")
    s.add_argument(
        "--unsafe",
        action="store_true",
        help="trusted use only: allow any statement and any file (COPY, ATTACH, read_csv, ...)",
    )
    s.set_defaults(func=cmd_sql)
