"""``engagelab campaign save|list|plan|send|report|global-control``: campaigns from the shell.

``save FILE`` stores a campaign spec (JSON or YAML); ``plan ID --logical-date D`` prints
the dry run's reach and reasons; ``send ID --logical-date D [--run-key K]`` plans and
delivers effectively once (a rerun with the same run key sends nothing twice);
``report`` prints the consolidated table (``--csv``/``--html`` write files);
``global-control set FRACTION`` sets the workspace-wide holdout (a warning outside
1-15 %) and ``global-control show`` prints it with its uplift per campaign and across
all campaigns.
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


def _fraction(text: str) -> float:
    """``0.05`` or ``5%``."""
    from engagelab.errors import ValidationError

    t = text.strip()
    try:
        return float(t[:-1]) / 100 if t.endswith("%") else float(t)
    except ValueError:
        raise ValidationError(
            "FRACTION", text, "must be a share of users such as 0.05 or 5%"
        ) from None


def cmd_global_control_set(args: argparse.Namespace) -> int:
    import sys
    import warnings

    from engagelab.campaigns.global_control import get_global_control, set_global_control
    from engagelab.cli._common import emit

    fraction = _fraction(args.fraction)
    with _ws(args) as ws:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            # without --salt the group keeps its salt: only the share changes
            set_global_control(ws, fraction, args.salt or get_global_control(ws)[1])
        frac, salt = get_global_control(ws)
    out: dict = {"fraction": frac, "percent": f"{frac:.2%}", "salt": salt}
    for w in caught:
        out["warning"] = str(w.message)
        if args.format != "json":
            print(f"engagelab: warning: {w.message}", file=sys.stderr)
    emit(out, args.format)
    return 0


def cmd_global_control_show(args: argparse.Namespace) -> int:
    from engagelab.campaigns.global_control import RECOMMENDED, get_global_control
    from engagelab.campaigns.global_report import RULE, global_control_report
    from engagelab.cli._common import emit
    from engagelab.errors import ValidationError

    with _ws(args) as ws:
        frac, salt = get_global_control(ws)
        try:
            rep = global_control_report(
                ws, args.event, window_hours=args.window_hours, since=args.since, until=args.until
            )
        except ValidationError as exc:  # name the option, not the keyword
            if exc.field in ("event", "window_hours", "since", "until"):
                flag = "--" + exc.field.replace("_", "-")
                raise ValidationError(flag, exc.value, exc.allowed) from None
            raise
    head = {
        "fraction": frac,
        "percent": f"{frac:.2%}" if frac else "off",
        "salt": salt,
        "recommended": f"{RECOMMENDED[0]:.0%}-{RECOMMENDED[1]:.0%}",
    }
    if args.format == "json":
        rows = [
            {k: (None if isinstance(v, float) and v != v else v) for k, v in r.items()}
            for r in rep.to_pandas().to_dict("records")
        ]
        emit(head | {"rule": RULE, "report": rows}, "json")
        return 0
    emit(head, "table")
    print(f"uplift: {RULE}")
    emit(_report_table(rep.to_pandas()), "table")
    return 0


def _report_table(t):  # type: ignore[no-untyped-def]
    """The report as printed: p-values from log10, rates and intervals with 4 digits."""
    import pandas as pd

    from engagelab.experiments.formatting import format_p

    def num(v: float, signed: bool = False) -> str:
        return "" if v != v else (f"{v:+.4g}" if signed else f"{v:.4g}")

    return pd.DataFrame(
        {
            "scope": t["scope"],
            "goal": [f"{g} ({w:g} h)" for g, w in zip(t["goal"], t["window_hours"], strict=True)],
            "held_out": t["holdout_users"],
            "messaged": t["messaged_users"],
            "holdout_rate": [num(v) for v in t["holdout_rate"]],
            "messaged_rate": [num(v) for v in t["messaged_rate"]],
            "uplift": [num(v, True) for v in t["uplift"]],
            "ci_low": [num(v, True) for v in t["uplift_ci_low"]],
            "ci_high": [num(v, True) for v in t["uplift_ci_high"]],
            "p": [
                "" if p != p and lp != lp else format_p(p, lp)
                for p, lp in zip(t["p_value"], t["log10_p"], strict=True)
            ],
            "srm_p": ["" if v != v else format_p(v) for v in t["srm_p"]],
            "note": t["note"],
        }
    )


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
    g = cs.add_parser("global-control", help="set or show the workspace-wide global control group")
    gs = g.add_subparsers(dest="global_control_command", required=True)
    a = gs.add_parser(
        "set", parents=[common, wsopt], help="hold FRACTION of all users out of every campaign"
    )
    a.add_argument("fraction", metavar="FRACTION", help="share of users, e.g. 0.05 or 5%%; 0: off")
    a.add_argument(
        "--salt",
        default=None,
        help="hash salt (default: keep the current one; a new one draws a new group)",
    )
    a.set_defaults(func=cmd_global_control_set)
    a = gs.add_parser(
        "show", parents=[common, wsopt],
        help="the setting and the holdout uplift, per campaign and across all campaigns",
    )  # fmt: skip
    a.add_argument(
        "--event", default=None, help="outcome across all campaigns (default: their goal)"
    )
    a.add_argument("--window-hours", type=float, default=None, help="hours after first entry")
    a.add_argument("--since", default=None)
    a.add_argument("--until", default=None)
    a.set_defaults(func=cmd_global_control_show)
