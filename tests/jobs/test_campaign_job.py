"""The campaign job: engagelab.campaigns.job in-process, and notebooks/campaign_job.ipynb as a job.

The in-process tests check the logic quickly; the notebook tests run the real notebook in a
papermill kernel through ``run_job`` / ``engagelab run`` (the scheduler's entry point).
Exactly-once is checked at the provider: the outbox file of each run key.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path

import nbformat
import papermill as pm
import pytest
import sqlalchemy as sa

from engagelab import Workspace
from engagelab.campaigns import (
    Campaign,
    Delivery,
    FrequencyCap,
    Schedule,
    Variant,
    WinnerTest,
    read_outbox,
    save_campaign,
)
from engagelab.campaigns.job import CampaignJobResult, plan_instant, run_campaign_job
from engagelab.delivery import ledger as L
from engagelab.delivery.outbox import outbox_path
from engagelab.errors import ValidationError
from engagelab.experiments import campaign_split
from engagelab.jobs import JobSpec, add_job, history, run_job
from engagelab.simulate import world_answer
from engagelab.simulate.worlds import load_world, simulate_into
from tests.jobs.conftest import cli

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOK = ROOT / "notebooks" / "campaign_job.ipynb"
EMAIL = {"from": "shop@example.com", "subject": "Hello", "text": "Hi {{ profile.name }}"}


def _email(id_: str = "welcome", **kw) -> Campaign:
    kw.setdefault("variants", (Variant("A", EMAIL), Variant("B", {**EMAIL, "subject": "Hey"})))
    return Campaign(id=id_, channel="email", control_percent=20, labels=("Welcome",), **kw)


@pytest.fixture
def sim(tmp_path):
    """A small simulated workspace with a saved two-variant e-mail campaign."""
    w = Workspace.create(tmp_path / "sim")
    simulate_into(w, n_users=600, days=10, seed=5)
    save_campaign(w, _email(), status="active")
    yield w
    w.close()


def _outbox(ws, run_key):
    return read_outbox(outbox_path(ws, run_key))


def _events(ws, event, campaign_id):
    q = "SELECT count(*) AS n FROM events WHERE event = $e AND campaign_id = $c"
    return int(ws.sql(q, {"e": event, "c": campaign_id})["n"][0])


# --------------------------------------------------------------------------- in-process
def test_dry_run_plans_and_records_nothing(sim):
    before = sim.summary().events
    r = run_campaign_job(
        sim, "2026-01-08", campaign_id="welcome", dry_run=True, answer=world_answer(sim)
    )
    assert r.dry_run and r.sent_now == 0 and r.responses is None
    # every user of the workspace is in the audience: reach + reasons cover all 600 profiles
    assert sum(r.decisions.values()) == 600
    assert r.decisions["send"] > 0 and r.decisions["control"] > 0
    # send = the reachable users (an address, not opted out) outside the 20% control group
    reach = sim.sql("SELECT user_id FROM profiles WHERE email IS NOT NULL AND NOT optout_email")
    arm = campaign_split(reach["user_id"], "welcome", ["A", "B"], [0.5, 0.5], 0.2)
    assert r.decisions["send"] == int((arm != "control").sum()) > 0
    assert r.decisions["control"] == r.reasons["control"]
    assert set(r.reasons) == {"control", "opted_out", "unreachable"}
    with sim.state.read() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(L.ledger)).scalar_one() == 0
        assert conn.execute(sa.select(sa.func.count()).select_from(L.runs)).scalar_one() == 0
    assert sim.summary().events == before
    assert not outbox_path(sim, "welcome/2026-01-08").exists()


def test_send_once_then_rerun_sends_nothing(sim):
    first = run_campaign_job(sim, "2026-01-08", campaign_id="welcome", run_key="j/2026-01-08",
                             answer=world_answer(sim))  # fmt: skip
    box = _outbox(sim, "j/2026-01-08")
    plan_send = first.decisions["send"]
    assert first.sent_now == plan_send == len(box) > 0
    assert first.delivered == {"sent": plan_send}
    assert Counter(m["user_id"] for m in box).most_common(1)[0][1] == 1  # one message per user
    assert first.responses and first.responses > 0  # the world answered
    assert int(first.report["sent"].iloc[0]) == plan_send
    assert int(first.report["delivered"].iloc[0]) > 0
    events = sim.summary().events
    again = run_campaign_job(sim, "2026-01-08", campaign_id="welcome", run_key="j/2026-01-08",
                             answer=world_answer(sim))  # fmt: skip
    assert again.sent_now == 0 and again.already_sent == plan_send
    assert again.responses == 0
    assert len(_outbox(sim, "j/2026-01-08")) == plan_send
    assert sim.summary().events == events
    assert _events(sim, "Notification Sent", "welcome") == plan_send


def test_variant_split_and_result_protocol(sim):
    r = run_campaign_job(sim, "2026-01-08", campaign_id="welcome", answer=world_answer(sim))
    split = r.variant_split
    assert set(split.index) == {"", "A", "B"}  # control users have no variant
    assert int(split.loc["", "control"]) == r.decisions["control"]
    sent_a, sent_b = int(split.loc["A", "send"]), int(split.loc["B", "send"])
    # a 50/50 split of ~360 reachable users: both arms within 5 standard deviations
    n = sent_a + sent_b
    assert abs(sent_a - n / 2) < 5 * math.sqrt(n / 4)
    t = r.to_pandas()
    assert list(t.columns) == ["stage", "decision", "reason", "variant", "users"]
    assert set(t["stage"]) == {"plan", "delivery"}
    assert json.loads(json.dumps(r.to_dict()))["sent_now"] == r.sent_now
    assert "welcome" in repr(r) and f"sent {r.sent_now:,} now" in repr(r)
    assert "el-campaign-job" in r._repr_html_()
    assert isinstance(r, CampaignJobResult) and r.run_key == "welcome/2026-01-08"


def test_frequency_cap_counts_as_a_reason(sim):
    capped = _email("capped", delivery=Delivery(caps=(FrequencyCap(max=1, window=7, unit="days"),)))
    save_campaign(sim, capped)
    run_campaign_job(sim, "2026-01-08", campaign_id="welcome")
    r = run_campaign_job(sim, "2026-01-09", campaign_id="capped")
    welcome = {m["user_id"] for m in _outbox(sim, "welcome/2026-01-08")}
    capped_users = {m["user_id"] for m in _outbox(sim, "capped/2026-01-09")}
    # only users 'welcome' held out (its control group) can get 'capped' the next day
    assert capped_users and not capped_users & welcome
    reach = sim.sql("SELECT user_id FROM profiles WHERE email IS NOT NULL AND NOT optout_email")
    arm = campaign_split(reach["user_id"], "capped", ["A", "B"], [0.5, 0.5], 0.2)
    eligible = set(reach["user_id"][arm != "control"])
    assert r.reasons["frequency_cap"] == len(eligible & welcome) > 0
    assert r.sent_now == len(eligible - welcome) == len(capped_users)


def test_one_time_phase_runs_once(sim):
    first = run_campaign_job(sim, "2026-01-08", campaign_id="welcome", run_key="k1")
    later = run_campaign_job(sim, "2026-01-09", campaign_id="welcome", run_key="k2")
    assert first.sent_now > 0
    assert later.phase == "skipped" and later.sent_now == 0 and "'k1'" in later.note
    assert not outbox_path(sim, "k2").exists()


def test_test_then_winner_keeps_each_run_keys_phase(sim):
    c = _email("abtest", winner_test=WinnerTest(test_share=0.4, wait_hours=24, metric="clicked"),
               schedule=Schedule("one_time", timezone="Europe/Berlin"))  # fmt: skip
    save_campaign(sim, c)
    world = load_world(sim)
    world.plant_variant_effects("abtest", {"A": 1.0, "B": 8.0})
    world.save(sim.path / "world.json")
    test = run_campaign_job(
        sim, "2026-01-08", campaign_id="abtest", run_key="ab/1", answer=world_answer(sim)
    )
    assert test.phase == "test" and test.decisions["deferred"] > 0 and test.sent_now > 0
    # the test day's rerun stays in the test phase and sends nothing (no winner error)
    again = run_campaign_job(
        sim, "2026-01-08", campaign_id="abtest", run_key="ab/1", answer=world_answer(sim)
    )
    assert again.phase == "test" and again.sent_now == 0
    win = run_campaign_job(
        sim, "2026-01-09", campaign_id="abtest", run_key="ab/2", answer=world_answer(sim)
    )
    assert win.phase == "winner" and win.decisions["excluded"] > 0
    split = win.variant_split  # test users keep their variant, excluded; the rest get the winner
    assert set(split.index[split["send"] > 0]) == {"B"}  # the planted 8x clicks win
    assert int(split.loc["A", "excluded"]) > 0
    users = Counter(m["user_id"] for k in ("ab/1", "ab/2") for m in _outbox(sim, k))
    assert users and max(users.values()) == 1  # test and winner phases reach different users


def test_spec_file_yaml_and_json(sim, tmp_path):
    c = _email("from-file")
    y, j = tmp_path / "c.yaml", tmp_path / "c.json"
    y.write_text(c.to_yaml())
    j.write_text(c.to_json())
    a = run_campaign_job(sim, "2026-01-08", spec_file=str(y), dry_run=True)
    b = run_campaign_job(str(sim.path), "2026-01-08", spec_file=str(j), dry_run=True)
    assert a.campaign_id == b.campaign_id == "from-file"
    assert a.decisions == b.decisions


@pytest.mark.parametrize(
    ("kwargs", "field", "text"),
    [
        ({"campaign_id": "nope"}, "campaign_id", "is not a saved campaign (saved: welcome)"),
        ({}, "campaign_id", "give a saved campaign id or a spec_file"),
        ({"campaign_id": "welcome", "spec_file": "x.yaml"}, "campaign_id", "not both"),
        ({"spec_file": "/no/such/file.yaml"}, "spec_file", "does not exist"),
        ({"campaign_id": "welcome", "logical_date": "2026-02-30"}, "logical_date", "YYYY-MM-DD"),
        ({"campaign_id": "welcome", "logical_date": "yesterday"}, "logical_date", "YYYY-MM-DD"),
        ({"campaign_id": "welcome", "dry_run": "yes"}, "dry_run", "must be True or False"),
        ({"campaign_id": "welcome", "send_clock": "now"}, "send_clock", "one of: system, plan"),
        ({"campaign_id": "welcome", "workspace": "/no/such/ws"}, "workspace", "not an engagelab"),
    ],
)
def test_bad_inputs_fail_with_one_line_naming_the_parameter(sim, kwargs, field, text):
    kwargs = {"logical_date": "2026-01-08", "workspace": sim, **kwargs}
    with pytest.raises(ValidationError) as info:
        run_campaign_job(kwargs.pop("workspace"), kwargs.pop("logical_date"), **kwargs)
    msg = str(info.value)
    assert info.value.field == field and text in msg and "\n" not in msg


def test_malformed_spec_file_and_unsimulated_workspace(sim, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("id: x\nchannel: fax\nvariants: []\n")
    with pytest.raises(ValidationError, match=r"^spec_file .*bad.yaml: channel == 'fax'") as e1:
        run_campaign_job(sim, "2026-01-08", spec_file=str(bad))
    assert e1.value.field == "spec_file"
    bad.write_text("id: [unclosed\n")
    with pytest.raises(ValidationError, match="is not valid YAML") as e2:
        run_campaign_job(sim, "2026-01-08", spec_file=str(bad))
    assert "\n" not in str(e2.value)
    plain = Workspace.create(tmp_path / "plain")
    save_campaign(plain, _email())
    with pytest.raises(ValidationError, match="needs a simulated world"):
        run_campaign_job(plain, "2026-01-08", campaign_id="welcome", answer=world_answer(plain))
    plain.close()


def test_plan_instant_by_campaign_type():
    v = (Variant("A", {"title": "t", "body": "b"}),)
    berlin = Schedule("recurring", cron="0 10 * * *", timezone="Europe/Berlin")
    push = Campaign(id="p", channel="push", variants=v, schedule=berlin)
    # recurring: local midnight (the cron picks the hour); summer time shifts it by an hour
    assert plan_instant(push, "2026-01-15").isoformat() == "2026-01-14T23:00:00+00:00"
    assert plan_instant(push, "2026-07-15").isoformat() == "2026-07-14T22:00:00+00:00"
    inaction = Schedule("inaction", event="Added to Cart", not_event="Charged", within_hours=2,
                        timezone="America/New_York", time="08:00")  # fmt: skip
    assert plan_instant(push.replace(schedule=inaction), "2026-01-15").isoformat() == (
        "2026-01-15T13:00:00+00:00"
    )
    assert plan_instant(push.replace(schedule=Schedule("one_time")), "2026-01-15").hour == 9


# --------------------------------------------------------------------------- the notebook
def _job(ws, name="welcome-job", campaign="welcome") -> JobSpec:
    spec = JobSpec(
        name=name, notebook=str(NOTEBOOK),
        params={"dry_run": {"type": "bool", "default": False}},
        fixed={"campaign_id": campaign, "simulated": True},
    )  # fmt: skip
    return add_job(ws, spec)


def _text(path) -> str:
    cells = nbformat.read(path, as_version=4).cells
    return "\n".join(
        o.get("text", "") + json.dumps(o.get("data", {}).get("text/plain", ""))
        for c in cells
        if c.cell_type == "code"
        for o in c.get("outputs", [])
    )


def _sent_once(ws, run_key):
    box = _outbox(ws, run_key)
    assert box and max(Counter(m["user_id"] for m in box).values()) == 1
    return box


def test_notebook_sends_once_through_run_job(sim):
    _job(sim)
    real = run_job(sim, "welcome-job", "2026-01-08")
    assert real.status == "succeeded", real.message
    box = _sent_once(sim, "welcome-job/2026-01-08")  # the runner's run key keys the messages
    text = _text(real.output_path)
    assert f"sent {len(box):,} now, 0 earlier" in text and "decisions:" in text
    assert _events(sim, "Notification Viewed", "welcome") > 0  # simulated=True: the world answered
    # the scheduler's rerun of the date: the history says it already succeeded, nothing runs
    assert run_job(sim, "welcome-job", "2026-01-08").status == "already_succeeded"
    assert len(_outbox(sim, "welcome-job/2026-01-08")) == len(box)
    assert list(history(sim, "welcome-job")["status"]) == ["succeeded"]


@pytest.mark.slow  # two more kernels; the logic is covered in-process above
def test_notebook_dry_run_and_a_retried_run_key(sim, tmp_path):
    _job(sim)
    dry = run_job(sim, "welcome-job", "2026-01-07", {"dry_run": "true"})
    assert dry.status == "succeeded", dry.message
    assert "dry run" in _text(dry.output_path)
    with sim.state.read() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(L.ledger)).scalar_one() == 0
    first = run_campaign_job(
        sim, "2026-01-08", campaign_id="welcome", run_key="welcome-job/2026-01-08"
    )
    box = _sent_once(sim, "welcome-job/2026-01-08")
    assert first.sent_now == len(box)
    # executing the notebook again for the same run key (a retried attempt) sends nothing new
    out = tmp_path / "again.ipynb"
    pm.execute_notebook(str(NOTEBOOK), str(out), kernel_name="python3", progress_bar=False,
                        parameters={"workspace": str(sim.path), "campaign_id": "welcome",
                                    "logical_date": "2026-01-08", "run_key": "welcome-job/2026-01-08",
                                    "simulated": True})  # fmt: skip
    assert f"sent 0 now, {len(box):,} earlier" in _text(out)
    assert len(_outbox(sim, "welcome-job/2026-01-08")) == len(box)


def test_bad_campaign_id_is_a_cell_error_of_engagelab_run(sim):
    _job(sim, "broken", campaign="nope")
    proc = cli("run", "broken", "--logical-date", "2026-01-08", ws=sim)
    assert proc.returncode == 10, proc.stderr
    assert "broken 2026-01-08: cell_error" in proc.stdout
    assert "campaign_id == 'nope', is not a saved campaign (saved: welcome)" in proc.stderr
    h = history(sim, "broken").iloc[-1]
    assert h["status"] == "cell_error" and h["error_name"] == "ValidationError"
    assert h["error_value"].startswith("campaign_id == 'nope'")
