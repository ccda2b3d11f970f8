"""``engagelab run`` end to end with real papermill kernels: outcome classes, exit codes,
leases between real processes, kills mid-send, retries, secrets, reports.

Every test runs tiny notebooks written into its tmp dir; "messages" are keyed rows in a
SQLite file (see conftest), so "nothing sent twice" is checked after kills.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest

from engagelab.errors import ValidationError
from engagelab.jobs import EXIT_CODES, JobSpec, add_job, history, run_job

from .conftest import cli, sending_job, sent_rows, write_notebook

pytestmark = pytest.mark.slow


def _statuses(ws, job):
    h = history(ws, job)
    return list(zip(h["attempt"], h["status"], strict=True))


def _assert_each_key_once(tmp, run_key, n):
    keys = [k for k, _ in sent_rows(tmp)]
    assert len(keys) == len(set(keys)), "a message was sent twice"
    assert sorted(keys) == sorted(f"{run_key}/user-{i}" for i in range(n))


def test_cli_run_succeeds_once_then_reports_already_succeeded(jws, tmp_path):
    sending_job(jws, tmp_path)
    (tmp_path / "p.yaml").write_text("n: 3\npause: 0.0\n")
    r = cli(
        "run",
        "send",
        "--logical-date",
        "2026-03-01",
        "-f",
        str(tmp_path / "p.yaml"),
        "-p",
        "n=4",
        ws=jws,
    )
    assert r.returncode == 0, r.stderr
    out = jws.path / "outputs/runs/send/2026-03-01/attempt-1.ipynb"
    assert f"output: {out}" in r.stdout and out.exists()
    _assert_each_key_once(tmp_path, "send/2026-03-01", 4)  # -p wins over the file
    again = cli("run", "send", "--logical-date", "2026-03-01", "--format", "json", ws=jws)
    assert again.returncode == EXIT_CODES["already_succeeded"] == 21
    assert json.loads(again.stdout)["status"] == "already_succeeded"
    assert _statuses(jws, "send") == [(1, "succeeded")]
    row = history(jws, "send").iloc[0]
    assert (
        len(row["param_hash"]) == 64 and len(row["notebook_hash"]) == 64 and row["trigger"] == "cli"
    )


def test_bad_parameters_fail_before_any_kernel(jws, tmp_path):
    sending_job(jws, tmp_path)
    r = cli("run", "send", "--logical-date", "2026-03-01", "-p", "n=five", ws=jws)
    assert r.returncode == EXIT_CODES["bad_parameters"] == 14
    assert "params.n == 'five', must be an integer" in r.stderr
    r = run_job(jws, "send", "2026-03-01", {"colour": "red"})
    assert r.exit_code == 14 and "params.colour == 'red', is not a declared parameter" in r.message
    assert not (jws.path / "outputs/runs/send/2026-03-01").exists()  # no notebook ever ran
    assert _statuses(jws, "send") == [(1, "bad_parameters"), (2, "bad_parameters")]
    assert sent_rows(tmp_path) == []
    with pytest.raises(ValidationError, match="logical_date == 'March 1st', must be a date"):
        run_job(jws, "send", "March 1st")


def test_cell_error_is_classified_with_cell_and_message_and_notifies(jws, tmp_path):
    posted = []

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            posted.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *a):
            pass

    server = HTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    nb = write_notebook(
        tmp_path / "fails.ipynb", "x = 1", "y = x + 1", "raise ValueError(f'bad input {y}')"
    )
    url = f"http://127.0.0.1:{server.server_port}/hook"
    add_job(
        jws,
        JobSpec(
            name="fails",
            notebook=str(nb),
            retries={"count": 1, "backoff": 0},
            notify={"webhook": url},
        ),
    )
    try:
        r = run_job(jws, "fails", "2026-03-01")
    finally:
        server.shutdown()
    assert (r.status, r.exit_code, len(r.attempts)) == (
        "cell_error",
        10,
        1,
    )  # user errors are not retried
    last = r.last
    # cell 3 of the executed notebook: parameters, injected parameters, y = x + 1, raise
    assert (last["error_name"], last["error_value"], last["cell_index"]) == (
        "ValueError",
        "bad input 2",
        3,
    )
    assert Path(last["output_path"]).exists()
    assert (
        posted and posted[0]["status"] == "cell_error" and posted[0]["error_value"] == "bad input 2"
    )
    row = history(jws, "fails").iloc[0]
    assert (row["error_class"], row["error_name"], row["cell_index"]) == (
        "cell_error",
        "ValueError",
        3,
    )


def test_cell_timeout_and_wall_clock_timeout(jws, tmp_path):
    nb = write_notebook(tmp_path / "slow.ipynb", f"pidfile = {str(tmp_path / 'pid')!r}",
                        "import os, time\nopen(pidfile, 'w').write(str(os.getpid()))", "time.sleep(600)")  # fmt: skip
    add_job(jws, JobSpec(name="cell", notebook=str(nb), cell_timeout=2))
    add_job(jws, JobSpec(name="wall", notebook=str(nb), timeout=60))  # room for a slow kernel start
    r = run_job(jws, "cell", "2026-03-01")
    assert (r.status, r.exit_code, r.last["error_name"]) == ("timeout", 12, "CellTimeoutError")
    assert "timed out" in r.message.lower()
    (tmp_path / "pid").unlink()
    t0 = time.monotonic()
    r = run_job(jws, "wall", "2026-03-01")
    assert (r.status, r.last["error_name"]) == ("timeout", "WallClockTimeout")
    assert "longer than 60 s" in r.message and 59 < time.monotonic() - t0 < 240
    pid = int((tmp_path / "pid").read_text())
    deadline = time.monotonic() + 15
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _alive(pid), "the kernel outlived the killed attempt"


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split(")")[-1].split()[0] == "Z")


def test_kernel_killed_mid_send_then_rerun_sends_nothing_twice(jws, tmp_path):
    sending_job(jws, tmp_path)
    r = run_job(jws, "send", "2026-03-02", {"n": 5, "die_after": 2})
    assert (r.status, r.exit_code, r.last["error_name"]) == ("dead_kernel", 11, "DeadKernelError")
    assert len(sent_rows(tmp_path)) == 2
    r = run_job(jws, "send", "2026-03-02", {"n": 5, "die_after": 2})  # attempt 2 does not die
    assert r.status == "succeeded"
    _assert_each_key_once(tmp_path, "send/2026-03-02", 5)
    assert [a for _, a in sent_rows(tmp_path)] == [1, 1, 2, 2, 2]
    assert _statuses(jws, "send") == [(1, "dead_kernel"), (2, "succeeded")]
    assert (jws.path / "outputs/runs/send/2026-03-02/attempt-1.ipynb").exists()
    assert (jws.path / "outputs/runs/send/2026-03-02/attempt-2.ipynb").exists()


def test_retry_policy_retries_infrastructure_failures_with_backoff(jws, tmp_path):
    sending_job(jws, tmp_path, retries={"count": 2, "backoff": 0.5, "factor": 3})
    waits = []
    r = run_job(jws, "send", "2026-03-03", {"n": 4, "die_after": 1}, sleep=waits.append)
    assert [a["status"] for a in r.attempts] == ["dead_kernel", "succeeded"]
    assert waits == [0.5]
    _assert_each_key_once(tmp_path, "send/2026-03-03", 4)
    assert _statuses(jws, "send") == [(1, "dead_kernel"), (2, "succeeded")]


def test_runner_killed_mid_send_then_rerun_sends_nothing_twice(jws, tmp_path):
    sending_job(jws, tmp_path, stale_after=3)
    proc = cli(
        "run",
        "send",
        "--logical-date",
        "2026-03-04",
        "-p",
        "n=8",
        "-p",
        "pause=0.5",
        ws=jws,
        wait=False,
    )
    deadline = time.monotonic() + 240
    while len(sent_rows(tmp_path)) < 2:
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.1)
    proc.send_signal(signal.SIGKILL)  # the runner dies; its papermill child and kernel follow
    proc.communicate()
    time.sleep(3)
    n_after_kill = len(sent_rows(tmp_path))
    time.sleep(2.5)
    assert len(sent_rows(tmp_path)) == n_after_kill < 8, (
        "the kernel kept sending after its runner died"
    )
    assert _statuses(jws, "send") == [(1, "running")]  # nobody could record the death yet
    r = cli("run", "send", "--logical-date", "2026-03-04", "-p", "n=8", ws=jws)
    assert r.returncode == 0, r.stderr
    assert _statuses(jws, "send") == [(1, "crashed"), (2, "succeeded")]
    assert history(jws, "send").iloc[0]["error_name"] == "RunnerLost"
    _assert_each_key_once(tmp_path, "send/2026-03-04", 8)


def test_two_simultaneous_runs_of_one_run_key_run_once(jws, tmp_path):
    sending_job(jws, tmp_path)
    args = ("run", "send", "--logical-date", "2026-03-05", "-p", "n=2", "-p", "pause=2")
    procs = [cli(*args, ws=jws, wait=False) for _ in range(2)]
    codes = sorted(p.wait(timeout=600) for p in procs)
    for p in procs:
        p.communicate()
    assert codes in ([0, EXIT_CODES["already_running"]], [0, EXIT_CODES["already_succeeded"]])
    assert _statuses(jws, "send") == [(1, "succeeded")]
    _assert_each_key_once(tmp_path, "send/2026-03-05", 2)


def test_secrets_reach_the_kernel_by_environment_and_never_the_stored_notebooks(
    jws, tmp_path, monkeypatch
):
    token = "tok-9f8e7d6c5b4a"
    nb = write_notebook(tmp_path / "secret.ipynb", "greeting = 'hi'",
                        "import os\ntoken = os.environ['API_TOKEN']\nprint('using', token)\ntoken")  # fmt: skip
    add_job(jws, JobSpec(name="sec", notebook=str(nb), secret_env=["API_TOKEN"], html_report=True))
    monkeypatch.delenv("API_TOKEN", raising=False)
    r = run_job(jws, "sec", "2026-03-01")
    assert r.status == "bad_parameters" and "secret_env == 'API_TOKEN', is not set" in r.message
    monkeypatch.setenv("API_TOKEN", token)
    r = run_job(jws, "sec", "2026-03-01")
    assert r.status == "succeeded", r
    text = Path(r.output_path).read_text()
    assert token not in text and "using ***" in text
    html = Path(r.last["html_path"]).read_text()
    assert r.last["html_path"].endswith("attempt-2.html") and "<html" in html and token not in html
    for path in jws.path.rglob("*"):
        if path.is_file() and path.suffix in (".ipynb", ".html", ".json", ".yaml"):
            assert token not in path.read_text(errors="replace"), path
