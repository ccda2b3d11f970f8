"""``engagelab campaign save|list|plan|send|report``: campaigns from the shell.

``save FILE`` stores a campaign spec (JSON or YAML); ``plan ID --logical-date D`` prints
the dry run's reach and reasons; ``send ID --logical-date D [--run-key K]`` plans and
delivers effectively once (a rerun with the same run key sends nothing twice);
``report`` prints the consolidated table (``--csv``/``--html`` write files).
"""

from __future__ import annotations

import argparse

__all__ = ["register"]


def _ws(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    from engagelab.workspace import Workspace

    return Workspace.open(args.workspace)


def cmd_save(args: argparse.Namespace) -> int:
    from pathlib import Path

    from engagelab.campaigns import Campaign, save_campaign
    from engagelab.cli._common import emit
    from engagelab.validate import load_spec_file

    c = Campaign.from_dict(load_spec_file(Path(args.file), f"campaign file {args.file}"))
    with _ws(args) as ws:
        save_campaign(ws, c, status=args.status)
    emit({"saved": c.id, "status": args.status}, args.format)
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    from engagelab.campaigns import list_campaigns
    from engagelab.cli._common import emit

    with _ws(args) as ws:
        emit(list_campaigns(ws), args.format)
    return 0


def cmd_plan(args: argparse.Namespace) -> int:
    from engagelab.campaigns import load_campaign, plan
    from engagelab.cli._common import emit

    with _ws(args) as ws:
        p = plan(ws, load_campaign(ws, args.id), args.logical_date, run_key=args.run_key)
        emit(p.summary(), args.format)
    return 0


def cmd_send(args: argparse.Namespace) -> int:
    from engagelab.campaigns import load_campaign, plan, send
    from engagelab.cli._common import emit

    with _ws(args) as ws:
        p = plan(ws, load_campaign(ws, args.id), args.logical_date, run_key=args.run_key)
        answer = None
        if args.respond:  # checked before sending: the workspace must hold a world
            from engagelab.simulate.answers import world_answer

            answer = world_answer(ws)
        r = send(ws, p, batch_size=args.batch_size)
        if answer is not None:
            answer(ws, r.run_key)
        emit(r.to_dict(), args.format)
    return 0 if r.done else 1


def cmd_report(args: argparse.Namespace) -> int:
    from engagelab.campaigns import campaign_report
    from engagelab.cli._common import emit

    with _ws(args) as ws:
        rep = campaign_report(
            ws, channel=args.channel, label=args.label, status=args.status, since=args.since,
            until=args.until, text=args.text,
        )  # fmt: skip
    if args.csv:
        rep.to_csv(args.csv)
    if args.html:
        rep.to_html(args.html)
    emit(rep.table, args.format)
    return 0


def register(
    sub: argparse._SubParsersAction, common: argparse.ArgumentParser, wsopt: argparse.ArgumentParser
) -> None:
    """Add ``engagelab campaign ...``."""
    p = sub.add_parser("campaign", help="save, plan, send and report campaigns")
    cs = p.add_subparsers(dest="campaign_command", required=True)
    a = cs.add_parser(
        "save", parents=[common, wsopt], help="save a campaign spec (JSON or YAML file)"
    )
    a.add_argument("file")
    a.add_argument("--status", default="draft", choices=["draft", "active", "paused", "archived"])
    a.set_defaults(func=cmd_save)
    a = cs.add_parser("list", parents=[common, wsopt], help="saved campaigns")
    a.set_defaults(func=cmd_list)
    for name, fn, help_ in (
        ("plan", cmd_plan, "dry run: reach and suppression reasons"),
        ("send", cmd_send, "plan and send effectively once"),
    ):
        a = cs.add_parser(name, parents=[common, wsopt], help=help_)
        a.add_argument("id")
        a.add_argument("--logical-date", required=True)
        a.add_argument("--run-key", default=None)
        if name == "send":
            a.add_argument("--batch-size", type=int, default=5000)
            a.add_argument("--respond", action="store_true", help="let the simulated world answer")
        a.set_defaults(func=fn)
    a = cs.add_parser("report", parents=[common, wsopt], help="the consolidated campaign report")
    for opt in ("channel", "label", "status", "since", "until", "text", "csv", "html"):
        a.add_argument(f"--{opt}", default=None)
    a.set_defaults(func=cmd_report)
