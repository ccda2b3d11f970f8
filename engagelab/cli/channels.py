"""``engagelab channel list|preview|inbox``: the command-line face of :mod:`engagelab.channels`.

* ``channel list``: every channel with its reach field, opt-out and delivery mode;
* ``channel preview CHANNEL --content JSON --user ID [--event JSON]``: the message one
  user of the workspace would get (validated against the workspace's columns);
* ``channel inbox USER [--at T] [--event E] [--page URL] [--peek]``: the live messages
  of pulled channels for a user (``--peek`` does not record impressions).
"""

from __future__ import annotations

import argparse

__all__ = ["register"]


def cmd_list(args: argparse.Namespace) -> int:
    import pandas as pd

    from engagelab.channels import CHANNELS
    from engagelab.cli._common import emit
    from engagelab.schema import REACH_RULES

    rows = [
        {
            "channel": c.name,
            "reach_field": c.reach_field,
            "reach_fields": ", ".join(REACH_RULES[c.name].fields),
            "optout_field": c.optout_field,
            "reaches": REACH_RULES[c.name].rule,
            "delivery": c.delivery,
            "content": c.content_cls.__name__,
        }
        for c in CHANNELS.values()
    ]
    emit(pd.DataFrame(rows), args.format)
    return 0


def _json_arg(name: str, text: str | None) -> dict:
    import json

    from engagelab.errors import ValidationError

    if text is None:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValidationError(name, text, f"must be a JSON object ({exc.msg})") from None
    if not isinstance(value, dict):
        raise ValidationError(name, text, "must be a JSON object")
    return value


def cmd_preview(args: argparse.Namespace) -> int:
    from engagelab.channels import content_from_dict, known_variables, preview
    from engagelab.cli._common import emit, open_workspace
    from engagelab.errors import ValidationError

    ws = open_workspace(args)
    content = content_from_dict(args.channel, _json_arg("--content", args.content))
    event = _json_arg("--event", args.event)
    content.validate_variables(known_variables(ws) | {f"event.{k}" for k in event})
    prof = ws.sql("SELECT * FROM profiles WHERE user_id = $u", {"u": args.user})
    if prof.empty:
        raise ValidationError("--user", args.user, "is not a user of this workspace")
    emit(preview(content, prof.iloc[0].to_dict(), event), "json")
    return 0


def cmd_inbox(args: argparse.Namespace) -> int:
    from engagelab.cli._common import emit, open_workspace
    from engagelab.delivery.inbox import inbox

    ws = open_workspace(args)
    res = inbox(
        ws,
        args.user,
        args.at,
        event=args.event,
        event_at=args.event_at,
        page=args.page,
        exit_intent=args.exit_intent,
        record=not args.peek,
    )
    if args.format == "json":
        emit({"user_id": res.user_id, "messages": [m.to_dict() for m in res]}, "json")
    else:
        emit(res.to_pandas(), "table")
    return 0


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser,
             wsopt: argparse.ArgumentParser) -> None:  # fmt: skip
    """Add ``channel list|preview|inbox`` to the engagelab CLI."""
    p = sub.add_parser("channel", help="channels: list, preview a message, read a user's inbox")
    ssub = p.add_subparsers(dest="channel_cmd", required=True)
    a = ssub.add_parser("list", parents=[common], help="channels, reach rules, delivery modes")
    a.set_defaults(func=cmd_list)
    a = ssub.add_parser("preview", parents=[common, wsopt], help="render a message for a user")
    a.add_argument("channel")
    a.add_argument("--content", required=True, help="the content as a JSON object")
    a.add_argument("--user", required=True, help="the user id whose profile fills the template")
    a.add_argument("--event", help="trigger event properties as a JSON object")
    a.set_defaults(func=cmd_preview)
    a = ssub.add_parser("inbox", parents=[common, wsopt], help="live in-app/inbox messages")
    a.add_argument("user")
    a.add_argument("--at", help="fetch time (default: now)")
    a.add_argument("--event", help="the event the app reports now")
    a.add_argument("--event-at", help="when the reported event happened (default: --at)")
    a.add_argument("--page", help="the page URL the site shows now")
    a.add_argument(
        "--exit-intent",
        action="store_true",
        help="the site reports an exit-intent signal (shows exit-intent pop-ups)",
    )
    a.add_argument("--peek", action="store_true", help="do not record impressions")
    a.set_defaults(func=cmd_inbox)
