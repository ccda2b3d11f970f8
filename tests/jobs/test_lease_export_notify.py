"""Leases (SQLite and PostgreSQL), Airflow/Kubernetes exports, notification hooks."""

from __future__ import annotations

import ast
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest
import sqlalchemy as sa
import yaml

from engagelab.jobs import JobSpec, Notify, RunResult, add_job
from engagelab.jobs import lease as L
from engagelab.jobs.export import airflow_dag, k8s_cronjob
from engagelab.jobs.notify import notify
from engagelab.jobs.store import leases_table, runs_table

from .conftest import cli

H = dict.fromkeys(("params", "notebook", "spec"), "h")


def _claim(ws, owner, stale=60.0, date="2026-01-01"):
    return L.claim(
        ws, "j", date, owner, stale_after=stale, params={"a": 1}, hashes=H, trigger="test"
    )


def test_one_lease_per_run_key_then_already_succeeded(any_ws):
    a = _claim(any_ws, "A")
    assert (a.state, a.attempt) == ("acquired", 1)
    assert _claim(any_ws, "B").state == "running"
    assert _claim(any_ws, "B", date="2026-01-02").state == "acquired"  # another run key
    L.finish_attempt(any_ws, a.run_id, status="succeeded")
    L.release(any_ws, "j", "2026-01-01", "A")
    assert _claim(any_ws, "B").state == "succeeded"


def test_stale_lease_is_taken_over_and_the_dead_attempt_marked_crashed(any_ws):
    a = _claim(any_ws, "A", stale=0.3)
    with L.Heartbeat(any_ws, "j", "2026-01-01", "A", interval=0.05):
        time.sleep(0.6)  # heartbeats keep it alive past stale_after
        assert _claim(any_ws, "B", stale=0.3).state == "running"
    time.sleep(0.5)  # runner A is gone: no heartbeat any more
    b = _claim(any_ws, "B", stale=0.3)
    assert (b.state, b.attempt, b.crashed_run_id) == ("acquired", 2, a.run_id)
    with any_ws.state.read() as conn:
        rows = conn.execute(sa.select(runs_table.c.attempt, runs_table.c.status, runs_table.c.error_name)
                            .order_by(runs_table.c.id)).all()  # fmt: skip
        owner = conn.execute(sa.select(leases_table.c.owner)).scalar_one()
    assert [tuple(r) for r in rows] == [(1, "crashed", "RunnerLost"), (2, "running", None)]
    assert owner == "B"
    hb = L.Heartbeat(any_ws, "j", "2026-01-01", "A", interval=0.05)
    assert hb.beat() is False  # A's heartbeat notices it lost the lease


def test_concurrent_claims_one_winner(any_ws):
    states, barrier = [], threading.Barrier(6)

    def go(i):
        barrier.wait()
        states.append(_claim(any_ws, f"o{i}").state)

    threads = [threading.Thread(target=go, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(states) == ["acquired"] + ["running"] * 5


SPEC = JobSpec(name="daily-push", notebook="nb.ipynb", schedule={"cron": "30 2 * * *", "timezone": "Europe/Berlin"},
               secret_env=("API_TOKEN",), retries={"count": 2})  # fmt: skip


def test_airflow_dag_parses_and_calls_the_entry_point(jws, tmp_path):
    add_job(jws, SPEC)
    r = cli(
        "jobs",
        "export",
        "daily-push",
        "--airflow",
        str(tmp_path / "dags"),
        "--format",
        "json",
        ws=jws,
    )
    assert r.returncode == 0, r.stderr
    path = json.loads(r.stdout)["airflow"]
    tree = ast.parse(Path(path).read_text())
    calls = {
        n.func.id: n
        for n in ast.walk(tree)
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)
    }
    kw = {k.arg: ast.literal_eval(k.value) for k in calls["BashOperator"].keywords}
    assert (
        kw["bash_command"]
        == f"engagelab run daily-push --logical-date '{{{{ ds }}}}' --workspace {jws.path}"
    )
    assert kw["retries"] == 2
    dag = {k.arg: k.value for k in calls["DAG"].keywords}
    assert ast.literal_eval(dag["schedule"]) == "30 2 * * *"
    assert ast.literal_eval(dag["catchup"]) is False  # policy 'latest'
    tz = [k for k in ast.walk(dag["start_date"]) if isinstance(k, ast.keyword) and k.arg == "tz"][0]
    assert ast.literal_eval(tz.value) == "Europe/Berlin"


def test_k8s_cronjob_parses_with_forbid_timezone_and_command(tmp_path):
    doc = yaml.safe_load(k8s_cronjob(SPEC, "/data/ws", image="registry/engagelab:1"))
    assert doc["kind"] == "CronJob" and doc["apiVersion"] == "batch/v1"
    spec = doc["spec"]
    assert (spec["schedule"], spec["timeZone"], spec["concurrencyPolicy"]) == (
        "30 2 * * *",
        "Europe/Berlin",
        "Forbid",
    )
    c = spec["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]
    assert c["image"] == "registry/engagelab:1"
    assert c["command"] == ["/bin/sh", "-c",
                            'engagelab run daily-push --logical-date "$(date +%F)" --workspace /data/ws']  # fmt: skip
    assert {"name": "TZ", "value": "Europe/Berlin"} in c["env"]
    assert any(e["name"] == "API_TOKEN" and "secretKeyRef" in e["valueFrom"] for e in c["env"])
    with pytest.raises(ValueError, match="schedule == None"):
        airflow_dag(SPEC.replace(schedule=None), "/ws")


def _result(status):
    att = {"attempt": 1, "status": status, "error_name": "ZeroDivisionError", "error_value": "division by zero",
           "cell_index": 2, "output_path": "/x/attempt-1.ipynb"}  # fmt: skip
    return RunResult("j", "2026-01-01", status, (att,))


def test_webhook_gets_json_on_failure_only_when_asked():
    got = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            got.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *a):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        hook = Notify(webhook=f"http://127.0.0.1:{server.server_port}/hook")
        assert notify(hook, _result("succeeded")) is None and got == []
        assert notify(hook, _result("cell_error")) is None
        assert got == [{"job": "j", "logical_date": "2026-01-01", "status": "cell_error", "attempts": 1,
                        "error_name": "ZeroDivisionError", "error_value": "division by zero", "cell_index": 2,
                        "output_path": "/x/attempt-1.ipynb", "html_path": None}]  # fmt: skip
    finally:
        server.shutdown()
    err = notify(Notify(webhook="http://127.0.0.1:9/none"), _result("timeout"))
    assert err.startswith("webhook: ConnectError")


def test_email_over_smtp():
    from aiosmtpd.controller import Controller

    class Sink:
        def __init__(self):
            self.messages = []

        async def handle_DATA(self, server, session, envelope):  # noqa: N802
            self.messages.append((envelope.rcpt_tos, envelope.content.decode()))
            return "250 OK"

    sink = Sink()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    ctl = Controller(sink, hostname="127.0.0.1", port=port)
    ctl.start()
    try:
        hook = Notify(on=("failure", "success"), email="ops@example.com", smtp=f"127.0.0.1:{port}")
        assert notify(hook, _result("succeeded")) is None
    finally:
        ctl.stop()
    [(to, text)] = sink.messages
    assert to == ["ops@example.com"]
    assert "Subject: [engagelab] j 2026-01-01: succeeded" in text and "status: succeeded" in text
