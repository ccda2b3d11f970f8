"""The scheduler with real runs: `jobs run-due` catches up after downtime, and
`engagelab scheduler` stops cleanly on SIGTERM (finishing or abandoning the attempt)."""

from __future__ import annotations

import datetime as dt
import json
import signal
import time

import pytest

from engagelab.jobs import JobSpec, Scheduler, add_job, history
from engagelab.jobs import lease as L

from .conftest import cli, write_notebook

pytestmark = pytest.mark.slow


def test_run_due_after_three_days_down_catches_up_once(jws, tmp_path):
    nb = write_notebook(
        tmp_path / "day.ipynb", "logical_date = ''", "print('ran for', logical_date)"
    )
    spec = JobSpec(name="daily", notebook=str(nb), schedule={"cron": "0 6 * * *", "timezone": "UTC"},
                   start="2026-10-20", catch_up={"policy": "all", "max_staleness": "5d"})  # fmt: skip
    add_job(jws, spec)
    c = L.claim(jws, "daily", "2026-10-20", "x", stale_after=60, params={},
                hashes=dict.fromkeys(("params", "notebook", "spec"), ""), trigger="test")  # fmt: skip
    L.finish_attempt(
        jws, c.run_id, status="succeeded"
    )  # the last run before the scheduler went down
    L.release(jws, "daily", "2026-10-20", "x")
    now = "2026-10-23T09:00:00+00:00"
    r = cli("jobs", "run-due", "--now", now, "--format", "json", ws=jws)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == [
        {"job": "daily", "logical_date": d, "status": "succeeded"}
        for d in ("2026-10-21", "2026-10-22", "2026-10-23")
    ]
    assert Scheduler(jws).run_due(now=dt.datetime.fromisoformat(now)) == []  # never twice
    h = history(jws, "daily")
    assert h["logical_date"].tolist() == ["2026-10-20", "2026-10-21", "2026-10-22", "2026-10-23"]
    assert set(h["trigger"].iloc[1:]) == {"scheduler"}
    out = jws.path / "outputs/runs/daily/2026-10-22/attempt-1.ipynb"
    assert "ran for 2026-10-22" in out.read_text()


@pytest.mark.parametrize("on_stop", ["finish", "abandon"])
def test_scheduler_stops_cleanly_on_sigterm(jws, tmp_path, on_stop):
    flag = tmp_path / "started"
    nb = write_notebook(tmp_path / "slow.ipynb", f"flag = {str(flag)!r}",
                        "import pathlib, time\npathlib.Path(flag).touch()\ntime.sleep(6)\nprint('done')")  # fmt: skip
    today = dt.datetime.now(dt.UTC).date()
    spec = JobSpec(name="slow", notebook=str(nb), schedule={"cron": "0 0 * * *", "timezone": "UTC"},
                   start=today.isoformat(), catch_up={"policy": "latest"})  # fmt: skip
    add_job(jws, spec)
    proc = cli("scheduler", "--poll", "1", "--on-stop", on_stop, ws=jws, wait=False)
    deadline = time.monotonic() + 300
    while not flag.exists():
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=400)
    assert proc.returncode == 0, err
    assert f"stopping ({on_stop})" in err and "engagelab scheduler: stopped" in err
    h = history(jws, "slow")
    assert len(h) == 1 and h["logical_date"].iloc[0] == today.isoformat()
    if on_stop == "finish":
        assert h["status"].iloc[0] == "succeeded" and f"slow {today}: succeeded" in out
    else:
        assert (h["status"].iloc[0], h["error_name"].iloc[0]) == ("crashed", "Abandoned")
    assert L.claim(jws, "slow", today.isoformat(), "y", stale_after=60, params={},
                   hashes=dict.fromkeys(("params", "notebook", "spec"), ""), trigger="t").state != "running"  # fmt: skip
