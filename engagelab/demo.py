"""The main job behind ``make demo`` / ``engagelab demo``.

Creates (or reopens) a workspace, simulates a world into it, runs a small campaign
programme through the real planner, ledger and outbox provider (the simulated users
answer every message), and writes the consolidated campaign report as CSV and HTML.
Rerunning is safe: the world is fingerprinted and every send is keyed by campaign and
logical date, so nothing is appended or sent twice.
"""

from __future__ import annotations

import datetime as dt
import os
import time
from collections.abc import Callable
from typing import Any

__all__ = ["DEMO_CAMPAIGNS", "run_demo"]


def _campaigns() -> list[Any]:
    from engagelab.campaigns import DND, Campaign, Delivery, FrequencyCap, Goal, Schedule, Variant

    onboarding = Campaign(
        id="onboarding-push",
        name="Daily onboarding tip",
        channel="push",
        variants=(
            Variant(
                "tip",
                {
                    "title": "Tip of the day",
                    "body": "Hi {{ profile.name | default('there') }}, try our new search",
                },
            ),
        ),
        schedule=Schedule("recurring", cron="0 10 * * *", timezone="Europe/Berlin"),
        control_percent=10,
        labels=("Onboarding",),
        goal=Goal("Charged", 48, "revenue"),
        delivery=Delivery(
            dnd=(DND("22:00", "08:00"),),
            caps=(FrequencyCap(max=3, window=7, unit="days"),),
        ),
    )
    spring = Campaign(
        id="spring-email",
        name="Spring sale, three subject lines",
        channel="email",
        variants=tuple(
            Variant(
                name,
                {
                    "from": "shop@example.com",
                    "subject": subject,
                    "text": "Up to 30% off this week.",
                },
            )
            for name, subject in (
                ("A", "Spring sale"),
                ("B", "Your spring picks are here"),
                ("C", "30% off, 3 days only"),
            )
        ),
        schedule=Schedule("one_time"),
        control_percent=10,
        labels=("Promo",),
        goal=Goal("Charged", 72, "revenue"),
    )
    return [onboarding, spring]


#: Planted click multipliers of the simulated world, per campaign and variant.
DEMO_CAMPAIGNS = {"spring-email": {"A": 1.0, "B": 1.3, "C": 1.8}}


def run_demo(
    path: str | os.PathLike[str] = "demo-workspace",
    *,
    users: int = 50_000,
    days: int = 60,
    seed: int = 7,
    campaign_days: int = 3,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Create ``path`` (or reuse it), simulate a world, run the campaign programme for
    the last ``campaign_days`` simulated days, and return a summary dict."""
    from engagelab.campaigns import campaign_report, plan, save_campaign, send
    from engagelab.workspace import Workspace
    from engagelab.worlds import load_world, simulate_into

    say = progress or (lambda _m: None)
    t0 = time.perf_counter()
    ws = Workspace.create(path, exist_ok=True)
    say(f"workspace: {ws.path}")
    simulate_into(ws, n_users=users, days=days, seed=seed, progress=say)
    world = load_world(ws)
    for cid, effects in DEMO_CAMPAIGNS.items():
        world.plant_variant_effects(cid, effects)
    world.save(ws.path / "world.json")

    last_day = world.config.start_date + dt.timedelta(days=days - 1)
    dates = [last_day - dt.timedelta(days=k) for k in range(campaign_days - 1, -1, -1)]
    sent_total = 0
    for c in _campaigns():
        save_campaign(ws, c, status="active")
        run_dates = dates if c.schedule.type == "recurring" else dates[:1]
        for day in run_dates:
            run_key = f"{c.id}:{day.isoformat()}"
            p = plan(ws, c, day.isoformat(), now=f"{day.isoformat()}T00:00:00Z", run_key=run_key)
            r = send(ws, p, respond_with_world=True)
            sent_total += r.sent
            say(f"  {run_key}: reach {p.reach:,}, sent now {r.sent:,} (earlier {r.already_sent:,})")
    report = campaign_report(ws)
    out = ws.path / "outputs"
    csv_path = report.to_csv(out / "campaign_report.csv")
    html_path = out / "campaign_report.html"
    html_path.write_text(report.to_html())
    summary = ws.summary()
    result = {
        "workspace": str(ws.path),
        "users": summary.users,
        "events": summary.events,
        "first_event": str(summary.first_event),
        "last_event": str(summary.last_event),
        "campaign_runs": sum(
            len(dates) if c.schedule.type == "recurring" else 1 for c in _campaigns()
        ),
        "messages_sent_this_run": sent_total,
        "campaigns": {
            r.campaign_id: {"sent": int(r.sent), "clicked": int(r.clicked)}
            for r in report.table.itertuples()
        },
        "campaign_report_csv": str(csv_path),
        "campaign_report_html": str(html_path),
        "seconds": round(time.perf_counter() - t0, 1),
    }
    ws.close()
    return result
