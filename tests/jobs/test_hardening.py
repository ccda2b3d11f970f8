"""Jobs hardening: impossible and sub-daily crons, backfill guard, Airflow export,
bad_parameters re-run once fixed, the kernel dying with its runner."""

from __future__ import annotations

import ast
import datetime as dt
import json
import signal
import time
from pathlib import Path

import pytest
import yaml

from engagelab.errors import SpecError, ValidationError
from engagelab.jobs import JobSpec, Scheduler, add_job, due_slots, history, list_jobs, run_job
from engagelab.jobs.export import airflow_dag
from engagelab.jobs.store import jobs_table

from .conftest import cli, sending_job, sent_rows, write_notebook

UTC = dt.UTC


def _store_raw(ws, name: str, cron: str) -> None:
    """Store a spec the way an older version did, without today's checks."""
    data = JobSpec(name=name, notebook="nb.ipynb", schedule={"cron": "0 2 * * *"}).to_dict()
    data["schedule"]["cron"] = cron
    text = yaml.safe_dump(data)
    now = dt.datetime.now(UTC)
    with ws.state.write() as conn:
        conn.execute(jobs_table.insert().values(name=name, spec=text, paused=False, created_at=now,
                                                updated_at=now))  # fmt: skip


def test_an_impossible_cron_is_refused_with_a_clear_error(jws, tmp_path):
    with pytest.raises(SpecError, match=r"schedule.cron == '0 2 30 2 \*', never fires"):
        JobSpec(name="feb30", notebook="nb.ipynb", schedule={"cron": "0 2 30 2 *"})
    spec = tmp_path / "feb30.yaml"
    spec.write_text("name: feb30\nnotebook: nb.ipynb\nschedule: {cron: '0 2 30 2 *'}\n")
    r = cli("jobs", "add", str(spec), ws=jws)
    assert r.returncode == 1 and "never fires" in r.stderr and r.stderr.count("\n") == 1
    assert "Traceback" not in r.stderr


def test_a_stored_impossible_cron_is_an_error_for_that_job_only(jws, tmp_path):
    _store_raw(jws, "feb30", "0 2 30 2 *")
    nb = write_notebook(tmp_path / "ok.ipynb", "x = 1", "print(x)")
    today = dt.datetime.now(UTC).date().isoformat()
    add_job(jws, JobSpec(name="ok", notebook=str(nb), start=today,
                         schedule={"cron": "0 0 * * *"}, catch_up={"policy": "all"}))  # fmt: skip
    df = list_jobs(jws)
    rows = {r["name"]: r for r in df.to_dict("records")}
    assert "never fires" in rows["feb30"]["error"] and not isinstance(rows["ok"]["error"], str)
    r = cli("jobs", "list", "--format", "json", ws=jws)
    assert r.returncode == 0, r.stderr
    listed = {row["name"]: row for row in json.loads(r.stdout)}
    assert listed["ok"]["next_run"] and listed["feb30"]["next_run"] is None
    sched = Scheduler(jws)
    results = sched.run_due()
    assert [(x.job, x.status) for x in results] == [("ok", "succeeded")]
    assert "never fires" in sched.errors["feb30"]
    assert sched._sleep_for() > 0  # the serving loop does not crash either
    r = cli("jobs", "run-due", ws=jws)
    assert r.returncode == 1 and "feb30: error: schedule.cron" in r.stdout, r.stderr


@pytest.mark.parametrize("cron", ["30 * * * *", "0 9,18 * * *", "*/15 6 * * 1"])
def test_sub_daily_crons_are_refused_at_add(jws, tmp_path, cron):
    with pytest.raises(SpecError, match="fires more than once a day"):
        add_job(jws, JobSpec(name="often", notebook="nb.ipynb", schedule={"cron": cron}))
    spec = tmp_path / "often.yaml"
    spec.write_text(f"name: often\nnotebook: nb.ipynb\nschedule: {{cron: '{cron}'}}\n")
    r = cli("jobs", "add", str(spec), ws=jws)
    assert r.returncode == 1 and "fires more than once a day" in r.stderr
    assert list_jobs(jws).empty
    add_job(jws, JobSpec(name="daily", notebook="nb.ipynb", schedule={"cron": "0 9 * * 1-5"}))


def test_dates_before_the_start_need_backfill(jws, tmp_path):
    sending_job(jws, tmp_path, start="2026-03-01")
    with pytest.raises(
        ValidationError, match=r"logical_date == '2026-02-28', is before .*--backfill"
    ):
        run_job(jws, "send", "2026-02-28", {"n": 2})
    assert history(jws, "send").empty and sent_rows(tmp_path) == []
    r = cli("run", "send", "-d", "2024-01-01", "-p", "n=2", ws=jws)
    assert r.returncode == 1 and "--backfill" in r.stderr and "Traceback" not in r.stderr
    assert sent_rows(tmp_path) == []
    r = cli("run", "send", "-d", "2024-01-01", "-p", "n=2", "--backfill", ws=jws)
    assert r.returncode == 0, r.stderr
    assert len(sent_rows(tmp_path)) == 2
    assert run_job(jws, "send", "2026-02-27", {"n": 1}, backfill=True).status == "succeeded"
    assert run_job(jws, "send", "2026-03-01", {"n": 1}).status == "succeeded"


def test_airflow_export_uses_the_jobs_start_catchup_and_skip_codes(jws, tmp_path):
    spec = JobSpec(name="d", notebook="nb.ipynb", start="2026-03-05", catch_up={"policy": "all"},
                   schedule={"cron": "30 2 * * *", "timezone": "Europe/Berlin"})  # fmt: skip
    tree = ast.parse(airflow_dag(spec, "/ws"))
    calls = {n.func.id if isinstance(n.func, ast.Name) else n.func.attr: n
             for n in ast.walk(tree) if isinstance(n, ast.Call)}  # fmt: skip
    dag = {k.arg: k.value for k in calls["DAG"].keywords}
    start = calls["datetime"]
    assert [ast.literal_eval(a) for a in start.args] == [2026, 3, 5]
    assert ast.literal_eval(dag["catchup"]) is True
    op = {k.arg: ast.literal_eval(k.value) for k in calls["BashOperator"].keywords}
    assert op["skip_on_exit_code"] == [20, 21]
    latest = airflow_dag(spec.replace(catch_up={"policy": "latest"}), "/ws")
    assert "catchup=False" in latest
    # without a start: the day the job was added, through the CLI
    add_job(jws, spec.replace(start=None))
    r = cli("jobs", "export", "d", "--airflow", str(tmp_path / "dags"), "--format", "json", ws=jws)
    assert r.returncode == 0, r.stderr
    text = Path(json.loads(r.stdout)["airflow"]).read_text()
    today = dt.datetime.now(UTC).date()
    assert "2024, 1, 1" not in text
    assert any(f"pendulum.datetime({d.year}, {d.month}, {d.day}," in text
               for d in (today, today - dt.timedelta(days=1), today + dt.timedelta(days=1)))  # fmt: skip
    with pytest.raises(ValidationError, match="no start date"):
        airflow_dag(spec.replace(start=None), "/ws")


def test_a_bad_parameters_date_runs_again_once_the_secret_is_set(jws, tmp_path, monkeypatch):
    monkeypatch.delenv("HARDEN_TOKEN", raising=False)
    nb = write_notebook(
        tmp_path / "s.ipynb", "x = 1", "import os\nassert os.environ['HARDEN_TOKEN']"
    )
    add_job(jws, JobSpec(name="s", notebook=str(nb), secret_env=["HARDEN_TOKEN"], start="2026-03-01",
                         schedule={"cron": "0 6 * * *"}, catch_up={"policy": "all"}))  # fmt: skip
    now = dt.datetime(2026, 3, 1, 12, tzinfo=UTC)
    [r] = Scheduler(jws).run_due(now)
    assert r.status == "bad_parameters"
    assert due_slots(jws, "s", now) == []  # still broken: not retried in a loop
    monkeypatch.setenv("HARDEN_TOKEN", "set-now-1234")
    assert [s.logical_date for s in due_slots(jws, "s", now)] == ["2026-03-01"]
    [r] = Scheduler(jws).run_due(now)
    assert r.status == "succeeded", r
    assert list(history(jws, "s")["status"]) == ["bad_parameters", "succeeded"]
    assert due_slots(jws, "s", now) == []


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"  # a zombie has stopped running
    except FileNotFoundError:
        return False


def test_the_kernel_dies_with_its_runner(jws, tmp_path):
    pidfile = tmp_path / "kernel.pid"
    nb = write_notebook(
        tmp_path / "loop.ipynb",
        f"pidfile = {str(pidfile)!r}\nledger = {str(tmp_path / 'sent.db')!r}",
        "import os, pathlib, sqlite3, time\npathlib.Path(pidfile).write_text(str(os.getpid()))",
        "con = sqlite3.connect(ledger, isolation_level=None)\n"
        "con.execute('CREATE TABLE IF NOT EXISTS sent (message_key TEXT, attempt INTEGER)')\n"
        "for i in range(100000):\n"
        "    con.execute('INSERT INTO sent VALUES (?, 1)', (f'k{i}',))\n"
        "    sum(range(6 * 10**7))  # C code holding the GIL: no Python thread can poll meanwhile",
    )
    add_job(jws, JobSpec(name="loop", notebook=str(nb)))
    proc = cli("run", "loop", "-d", "2026-03-01", ws=jws, wait=False)
    deadline = time.monotonic() + 120
    while len(sent_rows(tmp_path)) < 2:
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.05)
    kernel = int(pidfile.read_text())
    assert _alive(kernel)
    proc.send_signal(signal.SIGKILL)
    killed = time.monotonic()
    proc.wait()
    while _alive(kernel) and time.monotonic() - killed < 5:
        time.sleep(0.01)
    gone_after = time.monotonic() - killed
    assert not _alive(kernel), "the kernel outlived its runner"
    print(f"kernel gone {gone_after:.3f} s after the runner was killed")
    assert gone_after < 0.5, gone_after
    n = len(sent_rows(tmp_path))
    time.sleep(1.0)
    assert len(sent_rows(tmp_path)) == n  # nothing more is sent after the runner died
