"""``engagelab besttime fit|evaluate``: the command-line face of :mod:`engagelab.besttime`."""

from __future__ import annotations

import argparse

__all__ = ["register"]


def _options(args: argparse.Namespace):
    from engagelab.besttime.options import BestTimeOptions

    kw = {"mode": args.mode, "granularity": args.granularity}
    if args.window:
        kw["window"] = tuple(args.window.split("-", 1)) if "-" in args.window else (args.window,)
    if args.events:
        kw["events"] = tuple(args.events)
    return BestTimeOptions(**kw)


def cmd_fit(args: argparse.Namespace) -> int:
    from engagelab.besttime.model import fit
    from engagelab.cli._common import emit, open_workspace

    ws = open_workspace(args)
    model = fit(ws, _options(args), at=args.at)
    day = args.day or (model.cutoff.date() if model.weekly else None)
    slots = model.slots(day)
    out = ws.path / "outputs" / f"besttime_slots_{model.options.mode}.csv"
    out.parent.mkdir(parents=True, exist_ok=True)
    slots.to_csv(out, index=False)
    summary = model.summary()
    summary["slots_file"] = str(out)
    if model.weekly:
        summary["day"] = str(day)
    summary["slot_counts"] = slots["slot_local"].value_counts().sort_index().to_dict()
    emit(summary, args.format)
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from engagelab.besttime.evaluate import evaluate
    from engagelab.cli._common import emit, open_workspace
    from engagelab.simulate.worlds import WORLD_FILE, load_world

    ws = open_workspace(args)
    world = load_world(ws) if (ws.path / WORLD_FILE).exists() else None
    result = evaluate(
        ws,
        _options(args),
        fit_weeks=args.fit_weeks,
        eval_weeks=args.eval_weeks,
        world=world,
        sim_days=args.sim_days if world is not None else 0,
    )
    table = result.to_pandas()
    if args.format == "json":
        emit({"info": result.info, "results": table.to_dict(orient="records")}, "json")
    else:
        emit(table.round(4), "table")
    return 0


def register(sub, common, wsopt) -> None:
    """Add the ``besttime`` command and its ``fit`` / ``evaluate`` actions."""
    p = sub.add_parser("besttime", parents=[common], help="per-user best send time")
    actions = p.add_subparsers(dest="besttime_cmd", required=True, metavar="ACTION")
    for name, help_, func in (
        ("fit", "fit the model and write every user's slot", cmd_fit),
        ("evaluate", "time-split evaluation against baselines", cmd_evaluate),
    ):
        a = actions.add_parser(name, parents=[common, wsopt], help=help_)
        a.add_argument("--mode", choices=["clevertap", "bayes"], default="bayes")
        a.add_argument("--window", help="local delivery window EARLIEST-LATEST, e.g. 08:00-22:00")
        a.add_argument("--events", nargs="+", help="engagement events (default: 'App Launched')")
        a.add_argument(
            "--granularity",
            choices=["hour", "hour_of_week"],
            default="hour",
            help="bayes histogram: one slot per user, or one per weekday (hour_of_week)",
        )
        if name == "fit":
            a.add_argument("--at", help="history cutoff (default: after the last event)")
            a.add_argument(
                "--day",
                help="logical date whose weekday picks the slots with --granularity "
                "hour_of_week (default: the day of the cutoff)",
            )
        else:
            a.add_argument("--fit-weeks", type=int, default=None)
            a.add_argument("--eval-weeks", type=int, default=2)
            a.add_argument(
                "--sim-days",
                type=int,
                default=0,
                help="simulated sends per policy (workspaces with a simulated world)",
            )
        a.set_defaults(func=func)
