"""``engagelab segment count | show-sql | save | list``."""

from __future__ import annotations

import argparse

from engagelab.cli._common import emit, load_segment, open_workspace, parse_at

__all__ = ["register"]


def cmd_segment(args: argparse.Namespace) -> int:
    ws = open_workspace(args)
    if args.segment_cmd == "list":
        emit(ws.segments(), args.format)
        return 0
    seg = load_segment(args, ws)
    if args.segment_cmd == "count":
        at = parse_at(args.at)
        emit({"segment": seg.describe(), "users": ws.count(seg, at=at)}, args.format)
    elif args.segment_cmd == "show-sql":
        sql = seg.to_sql(dialect=args.dialect, at=parse_at(args.at), resolve=ws.load_segment)
        emit({"dialect": args.dialect, "sql": sql} if args.format == "json" else sql, args.format)
    elif args.segment_cmd == "save":
        ws.save_segment(args.save_as, seg, description=args.description or "")
        emit({"saved": args.save_as, "segment": seg.describe()}, args.format)
    return 0


def register(
    sub: argparse._SubParsersAction, common: argparse.ArgumentParser, wsopt: argparse.ArgumentParser
) -> None:
    """Add ``engagelab segment ...``."""
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
