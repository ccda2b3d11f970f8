"""``engagelab retention``: cohort retention from the command line.

``--format json`` prints one row per cohort × period (cohort size, retained users, rate
and Wilson interval; censored cells are null) followed by the "All cohorts" rows
(``cohort`` null). With ``--label L`` the cohorts are the users sent label ``L``.
"""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["register"]


def cmd_retention(args: argparse.Namespace) -> int:
    from engagelab.cli._common import emit, open_workspace
    from engagelab.retention.engine import retention
    from engagelab.retention.labels import label_retention

    ws = open_workspace(args)
    opts: dict[str, Any] = dict(
        period=args.period, periods=args.periods, mode=args.mode, cohort=args.cohort,
        window=args.window, timezone=args.timezone,
    )  # fmt: skip
    if args.brackets:
        try:
            opts["brackets"] = tuple(int(x) for x in args.brackets.split(","))
        except ValueError:
            from engagelab.errors import ValidationError

            raise ValidationError(
                "--brackets", args.brackets, "must be comma-separated whole numbers"
            ) from None
    if args.since:
        opts["since"] = args.since
    if args.until:
        opts["until"] = args.until
    if args.label:
        res = label_retention(ws, args.label, args.return_event or "App Launched", **opts)[
            args.label
        ]
        if res.empty:
            emit({"label": args.label, "rows": [], "message": res.message} if args.format == "json"
                 else res.message, args.format)  # fmt: skip
            return 0
    else:
        if not args.start_event:
            from engagelab.errors import ValidationError

            raise ValidationError("--start-event", None, "is required (or pass --label)")
        res = retention(ws, args.start_event, args.return_event, **opts)
    table = res.long()
    table["cohort"] = [
        None if c is None or c != c else c.strftime("%Y-%m-%d") for c in table["cohort"]
    ]
    if args.format == "json":
        rows = []
        for r in table.to_dict("records"):
            rows.append({k: (None if _missing(v) else _plain(v)) for k, v in r.items()})
        emit(rows, "json")
    else:
        print(res.to_pandas().round(4).to_string())
    return 0


def _missing(v: Any) -> bool:
    try:
        return v is None or bool(v != v) or str(v) == "<NA>"
    except (TypeError, ValueError):
        return False


def _plain(v: Any) -> Any:
    return v.item() if hasattr(v, "item") else v


def register(
    subparsers: Any, common: argparse.ArgumentParser, wsopt: argparse.ArgumentParser
) -> None:
    """Add the ``retention`` subcommand."""
    p = subparsers.add_parser(
        "retention", parents=[common, wsopt],
        help="cohort retention (N-day or on-or-after; first-time or recurring cohorts)",
    )  # fmt: skip
    p.add_argument(
        "--start-event", help="cohort-defining event (default with --label: Notification Sent)"
    )
    p.add_argument(
        "--return-event", help="return event (default: the start event; App Launched with --label)"
    )
    p.add_argument("--period", choices=["day", "week", "month"], default="day")
    p.add_argument("--periods", type=int, default=8, help="number of periods, period 0 included")
    p.add_argument("--mode", choices=["on", "on-or-after"], default="on")
    p.add_argument("--cohort", choices=["first", "recurring"], default="first")
    p.add_argument("--window", choices=["calendar", "rolling"], default="calendar")
    p.add_argument("--brackets", help="custom brackets as boundaries, e.g. 1,4,8,15")
    p.add_argument(
        "--timezone", default="UTC", help="IANA time zone of calendar periods (default UTC)"
    )
    p.add_argument("--label", help="cohorts of users sent a message carrying this label")
    p.add_argument("--since", help="first cohort date")
    p.add_argument("--until", help="end of observation (exclusive)")
    p.set_defaults(func=cmd_retention)
