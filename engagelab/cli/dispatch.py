"""``engagelab dispatch -w WS``: release queued messages when they fall due.

Long-running by default: rounds until SIGTERM or SIGINT, which let the round in flight
finish, give back the claims not yet handed over and exit 0. ``--once`` runs one round
(for cron, Airflow, a Kubernetes CronJob), ``--until-idle`` rounds until nothing is due.
Prints the :class:`~engagelab.delivery.dispatcher.DispatchResult` at the end.

Every round also plans the active triggered and inaction campaigns on the events that
landed since the last round (:mod:`engagelab.campaigns.live`); ``--no-triggers`` turns
that off (release what is queued only).
"""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["register"]


def cmd_dispatch(args: argparse.Namespace) -> int:
    import signal
    import sys

    from engagelab.campaigns.dispatch import Dispatcher
    from engagelab.cli._common import emit
    from engagelab.validate import check_int, check_number
    from engagelab.workspace import Workspace

    check_number("--lease-seconds", args.lease_seconds, low=0, low_open=True)
    check_number("--poll-seconds", args.poll_seconds, low=0, low_open=True)
    check_int("--batch", args.batch, low=1)
    ws = Workspace.open(args.workspace)
    try:
        d = Dispatcher(
            ws, lease_seconds=args.lease_seconds, batch=args.batch,
            poll_seconds=args.poll_seconds, triggers=args.triggers,
        )  # fmt: skip
        if args.once:
            r = d.run_once()
        elif args.until_idle:
            r = d.run_until_idle()
        else:

            def _stop(signum: int, _frame: Any) -> None:
                print(f"engagelab dispatch: got signal {signum}, stopping", file=sys.stderr,
                      flush=True)  # fmt: skip
                d.stopping.set()

            signal.signal(signal.SIGTERM, _stop)
            signal.signal(signal.SIGINT, _stop)
            print(f"engagelab dispatch: started on {ws.path} as {d.owner}", file=sys.stderr,
                  flush=True)  # fmt: skip
            r = d.run_forever()
            print("engagelab dispatch: stopped", file=sys.stderr, flush=True)
    finally:
        ws.close()
    emit(r.to_dict(), args.format)
    return 0


def register(
    sub: argparse._SubParsersAction, common: argparse.ArgumentParser, wsopt: argparse.ArgumentParser
) -> None:
    """Add ``engagelab dispatch``."""
    p = sub.add_parser(
        "dispatch", parents=[common, wsopt], help="release queued messages when due (long-running)"
    )
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--once", action="store_true", help="one round: release what is due, exit")
    mode.add_argument("--until-idle", action="store_true", help="rounds until nothing is due")
    p.add_argument("--poll-seconds", type=float, default=1.0, help="pause when idle (default 1)")
    p.add_argument("--lease-seconds", type=float, default=60.0, help="claim lease (default 60)")
    p.add_argument("--batch", type=int, default=50, help="messages per round (default 50)")
    p.add_argument(
        "--no-triggers", dest="triggers", action="store_false",
        help="do not plan triggered / inaction campaigns on new events (default: plan them)",
    )  # fmt: skip
    p.set_defaults(func=cmd_dispatch)
