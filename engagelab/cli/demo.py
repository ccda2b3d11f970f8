"""``engagelab demo``: the main job (workspace, simulated world, campaign programme, reports)."""

from __future__ import annotations

import argparse

from engagelab.cli._common import EXIT_ERROR, emit, progress

__all__ = ["register"]


def cmd_demo(args: argparse.Namespace) -> int:
    from engagelab.demo import run_demo

    result = run_demo(
        args.workspace or "demo-workspace",
        users=args.users,
        days=args.days,
        seed=args.seed,
        programme_days=args.programme_days,
        html_reports=not args.no_html,
        progress=progress,
    )
    if args.format == "json":
        emit(result.to_dict(), "json")
    else:
        print(result, flush=True)
    return 0 if result.ok else EXIT_ERROR


def register(
    sub: argparse._SubParsersAction, common: argparse.ArgumentParser, wsopt: argparse.ArgumentParser
) -> None:
    """Add ``engagelab demo``."""
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
