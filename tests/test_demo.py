"""``make demo`` (engagelab.demo.run_demo): the scheduled campaign programme on a small world.

Fast tests check the programme's jobs and schedules and play its runs in-process (the
same function the job notebook calls); the slow test runs the whole demo twice with real
papermill kernels. Exactly-once is checked at the provider: every run key's outbox file
holds one message per user, exactly the users its audience snapshot planned to send
minus those a frequency cap turned down at claim time.
"""

from __future__ import annotations

import datetime as dt
import io
import json
from collections import Counter
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa

from engagelab import Workspace
from engagelab.campaigns import list_campaigns, read_outbox
from engagelab.campaigns.job import run_campaign_job
from engagelab.delivery import ledger as L
from engagelab.delivery.outbox import outbox_path
from engagelab.demo import (
    NOTEBOOKS,
    DemoResult,
    Release,
    _register,
    _world,
    demo_campaigns,
    released_per_local_hour,
    run_demo,
)
from engagelab.errors import ValidationError
from engagelab.jobs import due_slots, get_job, history, list_jobs
from engagelab.simulate import world_answer

CAMPAIGN_JOBS = ["cart-abandon", "onboarding-push", "spring-email", "weekly-deals"]


def _runs(ws) -> dict[str, tuple[str, bytes]]:
    with ws.state.read() as conn:
        rows = conn.execute(
            sa.select(L.runs.c.run_key, L.runs.c.campaign_id, L.runs.c.snapshot)
        ).all()
    return {r.run_key: (r.campaign_id, r.snapshot) for r in rows}


def _ledger(ws) -> pd.DataFrame:
    with ws.state.read() as conn:
        rows = conn.execute(
            sa.select(L.ledger.c.run_key, L.ledger.c.user_id, L.ledger.c.status)
        ).all()
    return pd.DataFrame([tuple(r) for r in rows], columns=["run_key", "user_id", "status"])


def check_exactly_once(ws) -> dict[str, int]:
    """Every run key: outbox users == planned 'send' users minus claim-time suppressions,
    each exactly once. Returns messages per run key."""
    ledger = _ledger(ws)
    out = {}
    for key, (_cid, blob) in _runs(ws).items():
        snap = pq.read_table(io.BytesIO(blob)).to_pandas()
        planned = set(snap.loc[snap["decision"] == "send", "user_id"])
        led = ledger[ledger["run_key"] == key]
        turned_down = set(led.loc[led["status"] == "suppressed", "user_id"])
        box = read_outbox(outbox_path(ws, key))
        per_user = Counter(m["user_id"] for m in box)
        assert not per_user or max(per_user.values()) == 1, key
        assert set(per_user) == planned - turned_down, key
        assert set(led.loc[led["status"] == "sent", "user_id"]) == set(per_user), key
        out[key] = len(box)
    return out


def test_programme_jobs_follow_their_campaigns_schedules(tmp_path):
    ws = Workspace.create(tmp_path / "ws")
    world = _world(ws, 800, 21, 3, lambda _m: None)
    dates, hours, why = _register(ws, NOTEBOOKS, world, 21, 14, html_reports=False)
    assert dates == [dt.date(2026, 1, 8) + dt.timedelta(days=k) for k in range(14)]
    assert 1 <= hours <= 48 and "h" in why
    assert sorted(list_jobs(ws)["name"]) == CAMPAIGN_JOBS
    assert sorted(list_campaigns(ws)["id"]) == CAMPAIGN_JOBS

    def due(job, day):
        clock = dt.datetime.combine(day, dt.time(23, 59), dt.UTC)
        return [dt.date.fromisoformat(s.logical_date) for s in due_slots(ws, job, clock)]

    # a scheduler started at the end catches up at most 3 days; the demo's daily passes see all
    assert due("onboarding-push", dates[-1]) == dates[-3:]
    due = {j: sorted({d for day in dates for d in due(j, day)}) for j in CAMPAIGN_JOBS}
    assert due["onboarding-push"] == dates and due["cart-abandon"] == dates
    assert due["spring-email"] == dates[2:4]  # the test day, then the winner the day after
    assert due["weekly-deals"] == [d for d in dates if d.weekday() in (0, 2, 4)]  # Mon, Wed, Fri
    for j in CAMPAIGN_JOBS:
        spec = get_job(ws, j)
        assert spec.catch_up.policy == "all" and spec.catch_up.max_staleness == 3 * 86400
        assert spec.fixed == {"campaign_id": j, "simulated": True, "send_clock": "plan"}
        assert (ws.path / spec.notebook).read_bytes() == (
            NOTEBOOKS / "campaign_job.ipynb"
        ).read_bytes()
    ws.close()


def test_email_job_cron_across_a_month_end():
    cs = {
        c.id: cron
        for c, cron, _tz in demo_campaigns(dt.date(2026, 1, 1), dt.date(2026, 2, 28), 2.0)
    }
    assert cs["spring-email"] == "0 9 28,1 2,3 *"
    cart = next(c for c, _, _ in demo_campaigns(dt.date(2026, 1, 1), dt.date(2026, 2, 1), 2.0)
                if c.id == "cart-abandon")  # fmt: skip
    assert cart.schedule.within_hours == 2.0 and cart.schedule.not_event == "Charged"


def test_programme_in_process_sends_exactly_once(tmp_path):
    """The demo's slots played through run_campaign_job (what each kernel runs), twice."""
    ws = Workspace.create(tmp_path / "ws")
    world = _world(ws, 800, 12, 5, lambda _m: None)
    dates, _h, _w = _register(ws, NOTEBOOKS, world, 12, 3, html_reports=False)
    for day in dates:
        clock = dt.datetime.combine(day, dt.time(23, 59), dt.UTC)
        for job in CAMPAIGN_JOBS:
            # no job history is recorded here: take the day's own slot (the scheduler's
            # history would have marked the earlier ones done)
            for slot in [s for s in due_slots(ws, job, clock) if s.logical_date == str(day)]:
                run_campaign_job(ws, slot.logical_date, campaign_id=job,
                                 run_key=f"{job}/{slot.logical_date}", answer=world_answer(ws))  # fmt: skip
    sent = check_exactly_once(ws)
    # Jan 10-12 2026 are Saturday to Monday: deals go out on the Monday only
    assert Counter(k.split("/")[0] for k in sent) == {
        "onboarding-push": 3, "cart-abandon": 3, "spring-email": 2, "weekly-deals": 1}  # fmt: skip
    assert all(n > 0 for k, n in sent.items() if not k.startswith("cart-abandon"))
    assert {c for c, _ in _runs(ws).values()} == set(CAMPAIGN_JOBS)
    events = ws.summary().events
    last = {k.split("/")[0]: k for k in sorted(sent)}  # each job's last run key, run again
    again = [run_campaign_job(ws, k.split("/")[1], campaign_id=j, run_key=k, answer=world_answer(ws))
             for j, k in last.items()]  # fmt: skip
    assert [r.sent_now for r in again] == [0, 0, 0, 0]
    assert [r.already_sent for r in again] == [sent[k] for k in last.values()]
    assert check_exactly_once(ws) == sent and ws.summary().events == events
    ws.close()


def test_programme_through_the_dispatcher_releases_at_due_times(tmp_path):
    """The demo's path: jobs send on their planning instant's clock (later messages are
    queued), the dispatcher releases the queue day by day on a simulated clock, and the
    world answers each run once, when all its messages are final."""
    ws = Workspace.create(tmp_path / "ws")
    world = _world(ws, 800, 12, 5, lambda _m: None)
    dates, _h, _w = _register(ws, NOTEBOOKS, world, 12, 3, html_reports=False)
    release = Release(ws, dt.datetime.combine(dates[0], dt.time(0), dt.UTC))
    queued = 0
    for day in dates:
        clock = dt.datetime.combine(day, dt.time(23, 59), dt.UTC)
        for job in CAMPAIGN_JOBS:
            for slot in [s for s in due_slots(ws, job, clock) if s.logical_date == str(day)]:
                r = run_campaign_job(ws, slot.logical_date, campaign_id=job, send_clock="plan",
                                     run_key=f"{job}/{slot.logical_date}", answer=world_answer(ws))  # fmt: skip
                queued += int(r.note.count("queued for the dispatcher"))
        release.until(dt.datetime.combine(day + dt.timedelta(days=1), dt.time(0), dt.UTC))
    release.until(dt.datetime.combine(dates[-1] + dt.timedelta(days=3), dt.time(0), dt.UTC))
    assert queued > 0  # the onboarding push waits for 10:00 local time, deals for 19:00
    led = _ledger(ws)
    assert not set(led["status"]) & {"queued", "claimed", "handed"}  # every message final
    sent = check_exactly_once(ws)
    assert sum(sent.values()) == (led["status"] == "sent").sum() > 0
    # hand-over times: never before the due time, onboarding at 10:00 in the user's zone
    ev = ws.sql("SELECT message_key, ts FROM events WHERE event = 'Notification Sent'")
    with ws.state.read() as conn:
        due = pd.DataFrame([tuple(r) for r in conn.execute(
            sa.select(L.ledger.c.key, L.ledger.c.due_us).where(L.ledger.c.status == "sent")).all()],
            columns=["message_key", "due_us"])  # fmt: skip
    both = ev.merge(due, on="message_key")
    assert len(both) == len(due) == ev["message_key"].nunique()  # one event per message
    epoch = pd.Timestamp(0, tz="UTC")
    ts_us = (pd.to_datetime(both["ts"], utc=True) - epoch) // pd.Timedelta(1, "us")
    assert (ts_us >= both["due_us"]).all()
    hours = released_per_local_hour(ws)
    onboarding = hours[hours["campaign_id"] == "onboarding-push"]
    assert set(onboarding["local_hour"]) == {10}
    deals = hours[hours["campaign_id"] == "weekly-deals"]
    assert len(deals) and not set(deals["local_hour"]) & {21, 22, 23, 0, 1, 2, 3, 4, 5, 6, 7, 8}
    # the world answered every message once (no run was answered twice)
    answers = ws.sql("SELECT message_key, count(*) AS n FROM events WHERE event = 'Notification Delivered' "
                     "AND message_key IS NOT NULL GROUP BY ALL")  # fmt: skip
    assert len(answers) > 0 and answers["n"].max() == 1
    # ... including the messages the dispatcher released later (the onboarding push's)
    with ws.state.read() as conn:
        later = {r[0] for r in conn.execute(sa.select(L.ledger.c.key).where(
            L.ledger.c.campaign_id == "onboarding-push", L.ledger.c.status == "sent")).all()}  # fmt: skip
    assert later and set(answers["message_key"]) & later
    ws.close()


def test_run_demo_validates_its_inputs(tmp_path):
    with pytest.raises(ValidationError, match="programme_days == 9, must be an integer in"):
        run_demo(tmp_path / "ws", users=500, days=10, programme_days=9)
    with pytest.raises(ValidationError, match="notebooks == .*must hold campaign_job.ipynb"):
        run_demo(tmp_path / "ws", users=500, days=10, notebooks=tmp_path)
    assert not (tmp_path / "ws").exists()


@pytest.mark.slow  # ~12 papermill kernels; covered quickly by the in-process test above
def test_run_demo_twice_on_a_small_world(tmp_path):
    lines: list[str] = []
    first = run_demo(tmp_path / "demo", users=1500, days=10, seed=3, programme_days=3,
                     progress=lines.append)  # fmt: skip
    assert first.ok, first.failed
    ws = Workspace.open(tmp_path / "demo")
    h = history(ws)
    jobs = h.groupby("job")["logical_date"].apply(list).to_dict()
    assert (
        jobs["onboarding-push"]
        == jobs["cart-abandon"]
        == ["2026-01-08", "2026-01-09", "2026-01-10"]
    )
    assert jobs["spring-email"] == ["2026-01-09", "2026-01-10"]
    assert jobs["weekly-deals"] == [
        "2026-01-09"
    ]  # Friday; the 8th is a Thursday, the 10th a Saturday
    assert set(h["status"]) == {"succeeded"} and set(h["attempt"]) == {1}
    assert {"analysis-spring-email", "analysis-onboarding-retention"} <= set(jobs)
    sent = check_exactly_once(ws)
    assert int(first.jobs["sent"].sum()) == sum(sent.values()) == first.sent_now > 0
    assert first.ran_now == len(h)
    for path in h["output_path"]:
        assert Path(path).is_file()
    assert h["html_path"].notna().sum() == 4  # the e-mail test's two runs and the two analyses
    assert Path(first.paths["campaign_report_csv"]).is_file()
    report = pd.read_csv(first.paths["campaign_report_csv"])
    assert set(report["campaign_id"]) == set(CAMPAIGN_JOBS) and (report["delivered"] > 0).all()
    assert sum(line.startswith("  [") for line in lines) == len(h)  # one progress line per run
    events = ws.summary().events
    ws.close()

    lines.clear()
    second = run_demo(tmp_path / "demo", users=1500, days=10, seed=3, programme_days=3,
                      progress=lines.append)  # fmt: skip
    assert second.ran_now == 0 and second.sent_now == 0
    assert repr(second) == repr(first)  # the same summary
    assert any("already succeeded" in line for line in lines)
    ws = Workspace.open(tmp_path / "demo")
    assert len(history(ws)) == len(h) and ws.summary().events == events
    assert check_exactly_once(ws) == sent
    ws.close()


def test_demo_result_json_keeps_numbers():
    jobs = pd.DataFrame([{"job": "cart-abandon", "schedule": "0 8 * * * UTC", "runs": 3,
                          "status": "succeeded 3", "sent": 12, "last_notebook": "a.ipynb", "last_html": ""}])  # fmt: skip
    r = DemoResult(
        "ws", 100, 2000, ("2026-01-08", "2026-01-10"), jobs, {"campaign_report_csv": "r.csv"}, 2.0
    )
    d = json.loads(json.dumps(r.to_dict()))
    assert d["jobs"][0]["sent"] == 12 and d["messages_sent"] == 12 and d["runs"] == 3
    assert d["campaign_report_csv"] == "r.csv" and r.ok
    text = repr(r)
    assert "cart-abandon" in text and "messages sent: 12 in 3 runs" in text
    assert "<pre>" in r._repr_html_()
