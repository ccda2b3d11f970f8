"""The main job behind ``make demo`` / ``engagelab demo``: a 14-day scheduled campaign programme.

1. Create (or reopen) the workspace and simulate a world into it (~50k users, 60 days of
   history; the Onboarding label has a planted retention effect, the e-mail variants
   planted click effects).
2. Register four campaigns: a daily onboarding push labelled Onboarding with a holdout;
   a 3-variant e-mail test-then-winner (test on one day, the winner the next); a
   cart-abandonment inaction campaign (did 'Added to Cart', no 'Charged' within T, T from
   :func:`~engagelab.campaigns.recommended_delay`); a Mon/Wed/Fri deals push with
   frequency caps, do-not-disturb and a throttle of 500 messages a minute. One job per campaign runs
   ``notebooks/campaign_job.ipynb`` on the campaign's schedule (catch-up ``all``, for slots
   at most 3 days old: a scheduler started on the workspace months later does not replay
   the months in between).
3. Run the programme: the last ``programme_days`` days of the history, one scheduler pass
   per day (:meth:`engagelab.jobs.Scheduler.run_due` with the clock at that day's end), each
   due slot through :func:`engagelab.jobs.run_job` (what ``engagelab run`` calls) in a
   papermill kernel. The jobs send on the clock of their planning instant
   (``send_clock="plan"``): what is due later waits in the send queue, and after each
   pass the dispatcher (:class:`engagelab.campaigns.Dispatcher`) releases the day's queue
   at the messages' due times on a simulated clock (user time zones, do-not-disturb holds,
   the deals' throttle, TTL), stepping from one due time to the next. The simulated users
   answer each run once all its messages are final. The summary counts the released
   messages per campaign and hour of the users' local time.
4. Let the world live on for the label effect's duration (so day-N retention is
   observable for every cohort), then run the analysis notebooks as on-demand jobs
   (variant test: ``analyze_experiment``; label retention: ``label_retention``) and write
   the campaign report (CSV and HTML).

Rerunning is safe: the world is fingerprinted, the run history says every slot already
succeeded (nothing is run or sent again), and the same summary is printed.
"""

from __future__ import annotations

import datetime as dt
import html
import json
import math
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

__all__ = [
    "DEMO_CAMPAIGNS",
    "DemoResult",
    "Release",
    "demo_campaigns",
    "released_per_local_hour",
    "run_demo",
]

#: Planted click multipliers of the simulated world, per campaign and variant.
DEMO_CAMPAIGNS = {"spring-email": {"A": 1.0, "B": 1.3, "C": 1.8}}
#: Planted retention effect of the Onboarding label and how many days it lasts.
LABEL_EFFECT, LABEL_DAYS, RETENTION_DAY = 0.15, 14, 7
NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
JOB_TIMEOUT = 900.0  # seconds a run may take before the runner kills it
#: Event batches after which the programme's dispatcher compacts the events table.
COMPACT_AFTER = 64


def demo_campaigns(
    first_day: dt.date, test_day: dt.date, cart_hours: float
) -> list[tuple[Any, str, str]]:
    """The programme's campaigns with their job schedules: ``[(campaign, cron, time zone)]``.

    ``first_day`` is the history's first day (users created since then are new),
    ``test_day`` the e-mail test's day (the winner goes out the day after),
    ``cart_hours`` the inaction window T of the cart-abandonment campaign.

    >>> cs = demo_campaigns(dt.date(2026, 1, 1), dt.date(2026, 2, 17), 5.0)
    >>> [(c.id, c.schedule.type, cron) for c, cron, _ in cs]  # doctest: +NORMALIZE_WHITESPACE
    [('onboarding-push', 'recurring', '0 10 * * *'), ('spring-email', 'one_time', '0 9 17,18 2 *'),
     ('cart-abandon', 'inaction', '0 8 * * *'), ('weekly-deals', 'recurring', '0 19 * * 1,3,5')]
    """
    import engagelab.campaigns as C
    from engagelab.segments import Segment, did, first_time, prop

    berlin = "Europe/Berlin"
    new_users = Segment(
        first_time("App Launched", within_days=3)
        & (prop("created_at") >= dt.datetime.combine(first_day, dt.time(0), dt.UTC))
    )
    onboarding = C.Campaign(
        id="onboarding-push", name="Onboarding: tip of the day", channel="push",
        variants=(C.Variant("tip", {"title": "Tip of the day",
                                    "body": "Hi {{ profile.name | default('there') }}, save searches to get alerts"}),),
        schedule=C.Schedule("recurring", cron="0 10 * * *", timezone=berlin),
        audience=new_users, control_percent=20, labels=("Onboarding",), goal=C.Goal("Charged", 72, "revenue"),
        delivery=C.Delivery(user_timezone=True, if_passed="next_day", min_gap_hours=20),
    )  # fmt: skip
    winner_day = test_day + dt.timedelta(days=1)
    months = sorted({test_day.month, winner_day.month})
    spring = C.Campaign(
        id="spring-email", name="Spring sale: three subject lines, then the winner", channel="email",
        variants=tuple(C.Variant(name, {"from": "shop@example.com", "subject": subject,
                                        "text": "Hi {{ profile.name | default('there') }}, up to 30% off this week."})
                       for name, subject in (("A", "Spring sale"), ("B", "Your spring picks are here"),
                                             ("C", "30% off, 3 days only"))),
        schedule=C.Schedule("one_time", timezone=berlin, time="09:00"),
        audience=Segment(did("App Launched", within_days=30)), control_percent=10, labels=("Promo",),
        goal=C.Goal("Charged", 72, "revenue"),
        winner_test=C.WinnerTest(test_share=0.3, wait_hours=24, metric="clicked", rule="clevertap"),
    )  # fmt: skip
    cart = C.Campaign(
        id="cart-abandon", name="Cart abandonment reminder", channel="email",
        variants=(C.Variant("reminder", {"from": "shop@example.com", "subject": "You left something in your cart",
                                         "text": "Hi {{ profile.name | default('there') }}, your cart is waiting."}),),
        schedule=C.Schedule("inaction", event="Added to Cart", not_event="Charged", within_hours=cart_hours,
                            timezone="UTC", time="08:00"),
        control_percent=10, labels=("Cart",), goal=C.Goal("Charged", 48, "revenue"),
        delivery=C.Delivery(min_gap_hours=72),
    )  # fmt: skip
    deals = C.Campaign(
        id="weekly-deals", name="Deals of the day (Mon/Wed/Fri)", channel="push",
        variants=(C.Variant("deals", {"title": "Today's deals", "body": "Fresh deals picked for you"}),),
        schedule=C.Schedule("recurring", cron="0 19 * * 1,3,5", timezone=berlin),
        audience=Segment(did("App Launched", within_days=14)), control_percent=5, labels=("Promo",),
        goal=C.Goal("Charged", 48, "revenue"),
        delivery=C.Delivery(dnd=(C.DND("21:00", "09:00"),), throttle_per_minute=500,
                            caps=(C.FrequencyCap(max=2, window=7, unit="days", channel="push"),
                                  C.FrequencyCap(max=1, window=1, unit="days", kind="calendar"))),
    )  # fmt: skip
    email_cron = f"0 9 {test_day.day},{winner_day.day} {','.join(map(str, months))} *"
    return [(onboarding, "0 10 * * *", berlin), (spring, email_cron, berlin),
            (cart, "0 8 * * *", "UTC"), (deals, "0 19 * * 1,3,5", berlin)]  # fmt: skip


@dataclass(frozen=True, repr=False)
class DemoResult:
    """The demo's summary: one row per job (runs, statuses, messages sent, outputs) and paths."""

    workspace: str
    users: int
    events: int
    programme: tuple[str, str]
    jobs: pd.DataFrame
    paths: dict[str, str]
    cart_hours: float
    ran_now: int = 0
    sent_now: int = 0
    seconds: float = 0.0
    failed: tuple[str, ...] = field(default_factory=tuple)
    #: messages handed over per campaign and hour of the user's local time
    #: (``campaign_id, local_hour, messages``)
    released: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(
        {"campaign_id": pd.Series(dtype=object), "local_hour": pd.Series(dtype=int),
         "messages": pd.Series(dtype=int)}))  # fmt: skip

    @property
    def ok(self) -> bool:
        """True when every run of the programme succeeded."""
        return not self.failed

    def to_pandas(self) -> pd.DataFrame:
        """The jobs table (a copy)."""
        return self.jobs.copy()

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready summary."""
        return {
            "workspace": self.workspace, "users": self.users, "events": self.events,
            "programme": list(self.programme), "cart_abandon_hours": self.cart_hours,
            "jobs": json.loads(self.jobs.to_json(orient="records")), "messages_sent": int(self.jobs["sent"].sum()),
            "runs": int(self.jobs["runs"].sum()), "ran_now": self.ran_now, "sent_now": self.sent_now,
            "failed": list(self.failed), "seconds": self.seconds,
            "released_per_local_hour": {
                str(cid): {int(h): int(n) for h, n in zip(g["local_hour"], g["messages"], strict=True)}
                for cid, g in self.released.groupby("campaign_id")
            },
            **self.paths,
        }  # fmt: skip

    def released_table(self) -> pd.DataFrame:
        """Messages released per local hour: one row per campaign, one column per hour."""
        if self.released.empty:
            return pd.DataFrame()
        t = self.released.pivot_table(index="campaign_id", columns="local_hour",
                                      values="messages", aggfunc="sum", fill_value=0)  # fmt: skip
        t.columns = [f"{int(h):02d}h" for h in t.columns]
        return t

    def __repr__(self) -> str:
        cols = ["job", "schedule", "runs", "status", "sent", "last_notebook", "last_html"]
        with pd.option_context("display.max_colwidth", 200, "display.width", 250):
            table = self.jobs[cols].to_string(index=False)
        lines = [
            f"engagelab demo: {self.workspace}",
            f"  world: {self.users:,} users, {self.events:,} events; programme "
            f"{self.programme[0]} .. {self.programme[1]}; cart-abandon T = {self.cart_hours:g} h",
            "  jobs (notebooks and HTML reports under the runs folder):",
            table,
            f"  messages sent: {int(self.jobs['sent'].sum()):,} in {int(self.jobs['runs'].sum())} runs",
            *self._released_lines(),
            *(f"  {k.replace('_', ' ')}: {v}" for k, v in self.paths.items()),
        ]
        if self.failed:
            lines.append("  FAILED runs: " + ", ".join(self.failed))
        return "\n".join(lines)

    def _released_lines(self) -> list[str]:
        if self.released.empty:
            return []
        lines = ["  released by the dispatcher, per hour of the user's local time:"]
        for cid, g in self.released.groupby("campaign_id"):
            hours = " · ".join(f"{int(h):02d}h {int(n):,}" for h, n in
                               zip(g["local_hour"], g["messages"], strict=True))  # fmt: skip
            lines.append(f"    {cid}: {hours}")
        return lines

    def _repr_html_(self) -> str:
        return f"<pre>{html.escape(repr(self))}</pre>"


def run_demo(
    path: Any = "demo-workspace",
    *,
    users: int = 50_000,
    days: int = 60,
    seed: int = 7,
    programme_days: int | None = None,
    html_reports: bool = True,
    notebooks: Any = None,
    progress: Callable[[str], None] | None = None,
) -> DemoResult:
    """Create ``path`` (or reuse it), simulate a world, run the scheduled campaign programme,
    the analyses and the campaign report; return the summary.

    Args:
        path: the workspace folder.
        users, days, seed: the simulated world (``days`` of history).
        programme_days: programme length, the last days of the history (default
            ``min(14, days // 2)``; at least 2).
        html_reports: also write an HTML report of the e-mail test's runs and the analyses.
        notebooks: folder holding ``campaign_job.ipynb``, ``analyze_experiment.ipynb`` and
            ``label_retention.ipynb`` (default: the repository's ``notebooks/``); they are
            copied into the workspace's ``notebooks/``.
        progress: called with one line of text per step and per run.
    """
    from engagelab.validate import check_int
    from engagelab.workspace import Workspace

    check_int("users", users, low=100)
    check_int("days", days, low=4)
    check_int("seed", seed, low=0)
    if programme_days is None:
        programme_days = min(14, days // 2)
    check_int("programme_days", programme_days, low=2, high=days - 2)
    say = progress or (lambda _m: None)
    t0 = time.perf_counter()
    src = _notebooks(notebooks)
    ws = Workspace.create(path, exist_ok=True)
    try:
        return _programme(ws, src, users, days, seed, programme_days, html_reports, say, t0)
    finally:
        ws.close()


def _notebooks(notebooks: Any) -> Path:
    from engagelab.errors import ValidationError

    src = Path(notebooks) if notebooks is not None else NOTEBOOKS
    for name in ("campaign_job.ipynb", "analyze_experiment.ipynb", "label_retention.ipynb"):
        if not (src / name).is_file():
            raise ValidationError(
                "notebooks", str(src), f"must hold {name} (the repository's notebooks/)"
            )
    return src


def _world(ws: Any, users: int, days: int, seed: int, say: Callable[[str], None]) -> Any:
    from engagelab.simulate.worlds import load_world, simulate_into

    simulate_into(ws, n_users=users, days=days, seed=seed, progress=say,
                  label_effects={"Onboarding": LABEL_EFFECT}, retention_days=LABEL_DAYS)  # fmt: skip
    world = load_world(ws)
    for cid, effects in DEMO_CAMPAIGNS.items():
        world.plant_variant_effects(cid, effects)
    world.save(ws.path / "world.json")
    return world


def _cart_hours(ws: Any) -> tuple[float, str]:
    """T of the cart campaign and why: the median time from a cart to the first following
    charge, rounded up to whole hours and kept within 1 to 48 hours (24 when no cart is
    ever followed by a charge)."""
    from engagelab.errors import ValidationError

    try:
        median = ws.recommended_delay("Added to Cart", "Charged")["median"]
    except ValidationError:
        return 24.0, "no cart is followed by a charge: 24 h"
    hours = float(min(48, max(1, math.ceil(median.total_seconds() / 3600))))
    return (
        hours,
        f"median cart -> charge {median.total_seconds() / 60:.0f} min, rounded up within 1-48 h",
    )


def _register(
    ws: Any, src: Path, world: Any, days: int, programme_days: int, html_reports: bool
) -> tuple[list[dt.date], float, str]:
    from engagelab.campaigns import save_campaign
    from engagelab.jobs import CatchUp, JobSpec, Param, Schedule, add_job

    nb_dir = ws.path / "notebooks"
    nb_dir.mkdir(exist_ok=True)
    for name in ("campaign_job.ipynb", "analyze_experiment.ipynb", "label_retention.ipynb"):
        if (
            not (nb_dir / name).exists()
            or (nb_dir / name).read_bytes() != (src / name).read_bytes()
        ):
            shutil.copyfile(src / name, nb_dir / name)
    last = world.config.start_date + dt.timedelta(days=days - 1)
    dates = [last - dt.timedelta(days=k) for k in range(programme_days - 1, -1, -1)]
    test_day = dates[min(2, len(dates) - 2)]
    hours, why = _cart_hours(ws)
    for c, cron, tz in demo_campaigns(world.config.start_date, test_day, hours):
        save_campaign(ws, c, status="active")
        spec = JobSpec(
            name=c.id, notebook="notebooks/campaign_job.ipynb", description=c.name,
            params={"dry_run": Param("bool", default=False, description="plan only")},
            fixed={"campaign_id": c.id, "simulated": True, "send_clock": "plan"},
            schedule=Schedule(cron, tz), start=dates[0].isoformat(),
            catch_up=CatchUp("all", max_staleness="3d"), timeout=JOB_TIMEOUT,
            html_report=html_reports and c.winner_test is not None,
        )  # fmt: skip
        add_job(ws, spec, replace=True)
    return dates, hours, why


def _programme(ws: Any, src: Path, users: int, days: int, seed: int, programme_days: int,
               html_reports: bool, say: Callable[[str], None], t0: float) -> DemoResult:  # fmt: skip
    from engagelab.jobs import Scheduler

    say(f"workspace: {ws.path}")
    world = _world(ws, users, days, seed, say)
    dates, hours, why = _register(ws, src, world, days, programme_days, html_reports)
    say(f"registered 4 campaigns and one job each; cart-abandon T = {hours:g} h ({why})")
    say(f"programme: {dates[0]} .. {dates[-1]}, one scheduler pass per day (catch-up 'all')")
    runs = _Runs(ws, say)
    sched = Scheduler(ws)
    release = Release(ws, dt.datetime.combine(dates[0], dt.time(0), dt.UTC))
    for day in dates:
        clock = dt.datetime.combine(day, dt.time(23, 59), dt.UTC)
        done = sched.run_due(now=clock, progress=runs.progress)
        if not done:
            say(f"  {day}: nothing due (the run history says every slot already succeeded)")
        r = release.until(dt.datetime.combine(day + dt.timedelta(days=1), dt.time(0), dt.UTC))
        runs.sent += r.sent
        if r.released or r.suppressed:
            say(f"  {day}: dispatcher {r}")
    # what is still queued after the last day goes at its due time (or expires)
    r = release.until(dt.datetime.combine(dates[-1] + dt.timedelta(days=3), dt.time(0), dt.UTC))
    runs.sent += r.sent
    if r.released or r.suppressed:
        say(f"  after the programme: dispatcher {r}")
    _observe(ws, world, days, say)
    paths = _analyses(ws, dates, html_reports, runs, say)
    return _summary(ws, dates, hours, paths, runs, time.perf_counter() - t0)


class Release:
    """The dispatcher of a simulated programme: releases the send queue at the messages'
    due times on a :class:`~engagelab.clock.SimulatedClock`, and lets the simulated world
    answer every run whose messages are all final (once per run).

    Args:
        ws: the (simulated) workspace.
        start: the clock's start (UTC).
    """

    def __init__(self, ws: Any, start: dt.datetime):
        from engagelab.campaigns import Dispatcher
        from engagelab.clock import SimulatedClock

        self.ws = ws
        self.clock = SimulatedClock(start)
        # the programme's jobs plan the cart-abandonment campaign daily: no live triggers
        self.dispatcher = Dispatcher(ws, self.clock, triggers=False)
        self._answered: set[str] = set()

    def until(self, end: dt.datetime) -> Any:
        """Release everything due by ``end``, one due time after the other (the clock
        jumps to the next due time); return the summed :class:`DispatchResult`."""
        from engagelab.campaigns import DispatchResult

        total = DispatchResult()
        end_us = int(end.timestamp() * 1_000_000)
        while True:
            nxt = _next_due(self.ws)
            now = self.clock.now()
            if nxt is None or nxt > end_us:
                break
            at = dt.datetime.fromtimestamp(nxt / 1_000_000, dt.UTC)
            if at > now:
                self.clock.set(at)
            elif now >= end:  # due but not released by the end (held): the next call
                break
            r = self.dispatcher.run_until_idle()
            total = total.add(r)
            self.answer()
            self._compact()
            if r.idle and _next_due(self.ws) == nxt:  # nothing moved (held back): a minute on
                self.clock.advance(min(60.0, (end - self.clock.now()).total_seconds()))
        if end > self.clock.now():
            self.clock.set(end)
        self.answer()
        return total

    def _compact(self) -> None:
        """Every round appends its 'Notification Sent' events as a small batch; once
        :data:`COMPACT_AFTER` have piled up the events are compacted (fingerprints are kept,
        so reruns stay idempotent), which keeps the release checks' queries fast."""
        if self.ws.store.catalog().batches.get("events", 0) > COMPACT_AFTER:
            self.ws.compact("events")

    def answer(self) -> int:
        """Let the world answer the runs that became complete; the number of events."""
        import sqlalchemy as sa

        from engagelab.delivery import ledger as L
        from engagelab.simulate import respond

        with self.ws.state.read() as conn:
            keys = {r[0] for r in conn.execute(sa.select(L.runs.c.run_key)).all()}
            open_ = {
                r[0]
                for r in conn.execute(
                    sa.select(L.ledger.c.run_key)
                    .where(L.ledger.c.status.in_(("queued", "claimed", "handed")))
                    .distinct()
                ).all()
            }
        n = 0
        for key in sorted(keys - open_ - self._answered):
            n += respond(self.ws, key)
            self._answered.add(key)
        return n


def _next_due(ws: Any) -> int | None:
    import sqlalchemy as sa

    from engagelab.delivery import ledger as L

    with ws.state.read() as conn:
        nxt = conn.execute(
            sa.select(sa.func.min(L.ledger.c.due_us)).where(L.ledger.c.status == "queued")
        ).scalar()
    return None if nxt is None else int(nxt)


class _Runs:
    """Progress of the runs: one line per run, with the messages it sent."""

    def __init__(self, ws: Any, say: Callable[[str], None]):
        self.ws, self.say = ws, say
        self.n = self.sent = 0
        self.started, self.key = 0.0, ""

    def progress(self, text: str) -> None:
        """The scheduler's progress callback: ``'<job> <date>: running'``, then the result."""
        if text.endswith(": running"):
            self.started = time.perf_counter()
            self.key = text[: -len(": running")].replace(" ", "/")
            return
        secs = time.perf_counter() - self.started
        if "already_" in text:  # nothing ran
            self.say(f"  {text}")
            return
        self.n += 1
        sent = _sent(self.ws, self.key)
        self.sent += sent
        self.say(f"  [{self.n:>2}] {text}  ({secs:.1f} s; {sent:,} messages sent)")


def _sent(ws: Any, run_key: str) -> int:
    import sqlalchemy as sa

    from engagelab.delivery import ledger as L

    with ws.state.read() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(L.ledger)
                                .where(L.ledger.c.run_key == run_key, L.ledger.c.status == "sent")).scalar_one())  # fmt: skip


def _observe(ws: Any, world: Any, days: int, say: Callable[[str], None]) -> None:
    """The world lives on after the history for as long as the label effect lasts, so
    every cohort's day-N retention is observed (appended once, fingerprinted)."""
    d0, d1 = days, days + LABEL_DAYS + 1
    fp = f"simulate-observe:{world.config.to_json()}:{d0}-{d1}"
    if ws.store.find("events", fp) is None:
        say(f"the world lives on: baseline behaviour of days {d0}..{d1 - 1} after the history")
        ws.append("events", world.baseline_events(d0, d1), fingerprint=fp, source="simulate")


def _analyses(
    ws: Any, dates: list[dt.date], html_reports: bool, runs: _Runs, say: Callable[[str], None]
) -> dict[str, str]:
    from engagelab.campaigns import campaign_report, load_campaign
    from engagelab.campaigns.report import user_outcomes
    from engagelab.jobs import JobSpec, add_job, run_job

    out = ws.path / "outputs"
    (out / "analysis").mkdir(parents=True, exist_ok=True)
    # the e-mail test as an experiment: test-phase users by variant (the winner phase is not randomised)
    c = load_campaign(ws, "spring-email")
    uo = user_outcomes(ws, c)
    test_keys = _phase_keys(ws, c.id, "test")
    test = uo[(uo["grp"] == "sent") & uo["message_key"].isin(test_keys)]
    data = out / "analysis" / "spring_email_test.parquet"
    test.assign(clicked=test["clicked"].astype(int), converted=test["converted"].astype(int))[
        ["user_id", "variant", "clicked", "converted", "revenue"]
    ].to_parquet(data, index=False)
    last = dates[-1].isoformat()
    specs = [
        JobSpec(name="analysis-spring-email", notebook="notebooks/analyze_experiment.ipynb",
                description="the e-mail test's variants as an experiment",
                fixed={"data_path": str(data), "arm_col": "variant", "control": "A",
                       "metrics": ["clicked:proportion", "converted:proportion"], "covariate": "",
                       "output_dir": str(out / "analysis" / "spring-email")},
                html_report=html_reports, timeout=JOB_TIMEOUT),
        JobSpec(name="analysis-onboarding-retention", notebook="notebooks/label_retention.ipynb",
                description="day-7 retention of users sent Onboarding vs the holdout",
                fixed={"workspace": str(ws.path), "label": "Onboarding", "day": RETENTION_DAY},
                html_report=html_reports, timeout=JOB_TIMEOUT),
    ]  # fmt: skip
    onboarding = user_outcomes(ws, load_campaign(ws, "onboarding-push"))["grp"].value_counts()
    ready = {  # the retention notebook would simulate its own programme for an unused label
        "analysis-spring-email": test["variant"].nunique() >= 2,
        "analysis-onboarding-retention": onboarding.get("sent", 0) > 0 and onboarding.get("control", 0) > 0,
    }  # fmt: skip
    for spec in specs:
        if not ready[spec.name]:
            say(f"  {spec.name}: skipped, the programme produced too little data for it")
            continue
        add_job(ws, spec, replace=True)
        runs.progress(f"{spec.name} {last}: running")
        r = run_job(ws, spec.name, last, trigger="demo")
        runs.progress(repr(r))
    report = campaign_report(ws)
    csv_path = report.to_csv(out / "campaign_report.csv")
    html_path = out / "campaign_report.html"
    report.to_html(html_path)
    say(f"campaign report: {csv_path}")
    return {"campaign_report_csv": str(csv_path), "campaign_report_html": str(html_path),
            "runs_folder": str(out / "runs"), "outbox_folder": str(out / "outbox")}  # fmt: skip


def _phase_keys(ws: Any, campaign_id: str, phase: str) -> set[str]:
    import sqlalchemy as sa

    from engagelab.delivery import ledger as L

    with ws.state.read() as conn:
        rows = conn.execute(
            sa.select(L.ledger.c.key).join(L.runs, L.runs.c.run_key == L.ledger.c.run_key)
            .where(L.runs.c.campaign_id == campaign_id, L.runs.c.phase == phase)
        ).all()  # fmt: skip
    return {r[0] for r in rows}


def _summary(ws: Any, dates: list[dt.date], hours: float, paths: dict[str, str], runs: _Runs,
             seconds: float) -> DemoResult:  # fmt: skip
    import sqlalchemy as sa

    from engagelab.delivery import ledger as L
    from engagelab.jobs import history, list_jobs

    hist = history(ws)
    with ws.state.read() as conn:
        sent = dict(conn.execute(sa.select(L.ledger.c.run_key, sa.func.count()).where(L.ledger.c.status == "sent")
                                 .group_by(L.ledger.c.run_key)).all())  # fmt: skip
    rows, failed = [], []
    for j in list_jobs(ws).itertuples():
        h = hist[hist["job"] == j.name]
        final = h.groupby("logical_date").tail(1)
        counts = final["status"].value_counts()
        failed += [
            f"{j.name} {d}"
            for d, s in zip(final["logical_date"], final["status"], strict=True)
            if s != "succeeded"
        ]
        done = final[final["status"] == "succeeded"]
        rows.append({
            "job": j.name, "schedule": f"{j.cron} {j.timezone}" if isinstance(j.cron, str) else "on demand",
            "runs": len(final), "status": ", ".join(f"{k} {v}" for k, v in counts.items()) or "never run",
            "sent": int(sum(sent.get(f"{j.name}/{d}", 0) for d in final["logical_date"])),
            "last_notebook": _rel(ws, done["output_path"].iloc[-1] if len(done) else None),
            "last_html": _rel(ws, done["html_path"].dropna().iloc[-1] if done["html_path"].notna().any() else None),
        })  # fmt: skip
    summary = ws.summary()
    return DemoResult(str(ws.path), summary.users, summary.events, (str(dates[0]), str(dates[-1])),
                      pd.DataFrame(rows), paths, hours, runs.n, runs.sent, round(seconds, 1),
                      tuple(failed), released_per_local_hour(ws))  # fmt: skip


def released_per_local_hour(ws: Any) -> pd.DataFrame:
    """Messages handed over ('Notification Sent', stamped with the hand-over time) per
    campaign and hour of the user's local time (the ledger's time zone of the message):
    ``campaign_id, local_hour, messages``."""
    import zoneinfo

    import numpy as np
    import sqlalchemy as sa

    from engagelab.delivery import ledger as L

    ev = ws.sql("SELECT message_key, campaign_id, ts FROM events WHERE event = 'Notification Sent'")
    with ws.state.read() as conn:
        rows = conn.execute(
            sa.select(L.ledger.c.key, L.ledger.c.timezone).where(L.ledger.c.status == "sent")
        ).all()
    zones = pd.DataFrame([tuple(r) for r in rows], columns=["message_key", "timezone"])
    df = ev.merge(zones, on="message_key", how="inner")
    hour = np.zeros(len(df), dtype=int)
    ts = pd.to_datetime(df["ts"], utc=True)
    for zone, idx in df.groupby("timezone").indices.items():
        try:
            tz: Any = zoneinfo.ZoneInfo(str(zone))
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            tz = dt.UTC
        hour[idx] = ts.iloc[idx].dt.tz_convert(tz).dt.hour.to_numpy()
    out = (
        df.assign(local_hour=hour).groupby(["campaign_id", "local_hour"]).size()
        .rename("messages").reset_index()
    )  # fmt: skip
    return out.astype({"local_hour": int, "messages": int})


def _rel(ws: Any, path: Any) -> str:
    """``path`` relative to the workspace's runs folder (where every run's outputs go)."""
    if not isinstance(path, str) or not path:
        return ""
    p = Path(path)
    try:
        return str(p.relative_to(ws.path / "outputs" / "runs"))
    except ValueError:
        return str(p)
