"""``JobsPanel``: scheduled jobs at a glance, run one now, pause and resume, read history.

The panel is thin: it reads the core's job list and run history and shows them; "run
now" starts ``engagelab run JOB --logical-date D`` in a *subprocess* (the kernel stays
responsive, and the run gets the same lease, history and exit code as any other), and a
watcher thread refreshes the panel when it ends. Every error shows on the panel's error
line.

Example (headless)::

    >>> import tempfile
    >>> from engagelab import Workspace
    >>> from engagelab.jobs import JobSpec, add_job
    >>> ws = Workspace.create(tempfile.mkdtemp() + "/ws")
    >>> _ = add_job(ws, JobSpec(name="daily", notebook="nb.ipynb",
    ...                         schedule={"cron": "0 6 * * *", "timezone": "Europe/Paris"}))
    >>> panel = JobsPanel(ws)
    >>> panel.job.value, panel.jobs_df["last_status"].tolist()
    ('daily', [None])
    >>> panel.pause_button.click()
    >>> bool(panel.jobs_df["paused"].iloc[0])
    True
"""

from __future__ import annotations

import datetime as dt
import html
import json
import os
import subprocess
import sys
import threading
import zoneinfo
from pathlib import Path
from typing import Any, cast

import ipywidgets as w
import pandas as pd
import traitlets

from engagelab.errors import ValidationError

from ._guard import ErrorLine, guarded

__all__ = ["JobsPanel"]

_COLOURS = {"succeeded": "#1b7f3b", "running": "#8a6d00"}


def _error_line(self: JobsPanel) -> ErrorLine:
    return self.error_line


def _css(widget: w.Widget, name: str) -> w.Widget:
    widget.add_class(f"el-jobs-{name}")
    return widget


class JobsPanel(w.VBox):
    """Jobs with next run and last status; run now for a logical date; pause/resume; history.

    Args:
        ws: the :class:`~engagelab.Workspace`.
        python: interpreter for the ``engagelab run`` subprocess (default: this kernel's).

    Attributes:
        jobs_df: the job table shown (a DataFrame; refreshed by :meth:`refresh`).
        history_df: the selected job's attempts.
        run_status: text of the last "run now" outcome (observable).
    """

    run_status = traitlets.Unicode("")

    def __init__(self, ws: Any, *, python: str | None = None):
        super().__init__()
        _css(self, "panel")
        self.ws = ws
        self.python = python or sys.executable
        self.error_line = ErrorLine("el-jobs-error")
        self._proc: subprocess.Popen[str] | None = None
        self._watcher: threading.Thread | None = None
        self.jobs_df = pd.DataFrame()
        self.history_df = pd.DataFrame()

        self.table = _css(w.HTML(), "table")
        self.job = _css(w.Dropdown(description="job", options=[]), "select")
        self.date = _css(w.Text(description="logical date", placeholder="YYYY-MM-DD"), "date")
        self.params = _css(
            w.Text(description="params", placeholder="key=value; key=value"), "params"
        )
        self.run_button = _css(w.Button(description="Run now", button_style="primary"), "run")
        self.pause_button = _css(w.Button(description="Pause"), "pause")
        self.resume_button = _css(w.Button(description="Resume"), "resume")
        self.refresh_button = _css(w.Button(description="Refresh"), "refresh")
        self.status = _css(w.HTML(), "status")
        self.history = _css(w.HTML(), "history")

        self.job.observe(self._job_changed, names="value")
        self.run_button.on_click(self._run_clicked)
        self.pause_button.on_click(lambda _b: self._set_paused(True))
        self.resume_button.on_click(lambda _b: self._set_paused(False))
        self.refresh_button.on_click(lambda _b: self.refresh())
        self.children = [
            self.table,
            w.HBox([self.job, self.pause_button, self.resume_button, self.refresh_button]),
            w.HBox([self.date, self.params, self.run_button]),
            self.status,
            self.error_line,
            self.history,
        ]
        self.refresh()

    # ----------------------------------------------------------------- data
    @guarded(_error_line)
    def refresh(self) -> None:
        """Reload the job table and the selected job's history from the state database."""
        from engagelab.jobs import get_job, list_jobs, next_slot

        df = list_jobs(self.ws)
        nxt = []
        for name, paused in zip(df["name"], df["paused"], strict=True):
            spec = get_job(self.ws, name)
            slot = next_slot(spec.schedule) if spec.schedule is not None and not paused else None
            tz = zoneinfo.ZoneInfo(spec.schedule.timezone) if spec.schedule else None
            nxt.append(slot.at.astimezone(tz).strftime("%Y-%m-%d %H:%M %Z") if slot else None)
        df.insert(4, "next_run", nxt)
        self.jobs_df = df
        self.table.value = _jobs_html(df)
        names = list(df["name"])
        if list(self.job.options) != names:
            keep = self.job.value if self.job.value in names else (names[0] if names else None)
            self.job.options = names
            self.job.value = keep
        self._show_history()

    def _show_history(self) -> None:
        from engagelab.jobs import history

        if not self.job.value:
            self.history_df = pd.DataFrame()
            self.history.value = "<i>no jobs yet: add one with engagelab.jobs.add_job</i>"
            return
        self.history_df = history(self.ws, self.job.value)
        self.history.value = _history_html(self.history_df.tail(20).iloc[::-1])

    @guarded(_error_line)
    def _job_changed(self, _change: Any) -> None:
        self.error_line.clear()
        if self.job.value and not self.date.value:
            self.date.value = self._today(self.job.value)
        self._show_history()

    def _today(self, name: str) -> str:
        from engagelab.jobs import get_job

        spec = get_job(self.ws, name)
        tz = zoneinfo.ZoneInfo(spec.schedule.timezone if spec.schedule else "UTC")
        return dt.datetime.now(tz).date().isoformat()

    @guarded(_error_line)
    def _set_paused(self, paused: bool) -> None:
        from engagelab.jobs import set_paused

        self.error_line.clear()
        if not self.job.value:
            raise ValidationError("job", None, "choose a job first")
        set_paused(self.ws, self.job.value, paused)
        self.refresh()

    # ----------------------------------------------------------------- run now
    @guarded(_error_line)
    def _run_clicked(self, _button: Any) -> None:
        from engagelab.jobs.runner import parse_logical_date

        self.error_line.clear()
        if self._proc is not None and self._proc.poll() is None:
            raise ValidationError("run", self.job.value, "a run started here is still going")
        if not self.job.value:
            raise ValidationError("job", None, "choose a job first")
        date = parse_logical_date(self.date.value or self._today(self.job.value))
        cmd = [self.python, "-m", "engagelab.cli", "run", self.job.value, "--logical-date", date,
               "--workspace", str(self.ws.path), "--format", "json", "--trigger", "widget"]  # fmt: skip
        for item in filter(None, (p.strip() for p in self.params.value.split(";"))):
            if "=" not in item:
                raise ValidationError("params", item, "must look like key=value")
            cmd += ["-p", item]
        self.run_status = f"running {self.job.value} for {date}…"
        self.status.value = html.escape(self.run_status)
        self._proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        self._watcher = threading.Thread(target=self._watch, args=(self._proc,), daemon=True)
        self._watcher.start()
        self.refresh()

    def _watch(self, proc: subprocess.Popen[str]) -> None:
        out, err = proc.communicate()
        try:
            res = json.loads(out) if out.strip() else {}
        except ValueError:
            res = {}
        if res:
            text = f"{res['job']} {res['logical_date']}: {res['status']} (exit {proc.returncode})"
            if res.get("message") and res["status"] != "succeeded":
                text += f" — {res['message']}"
        else:
            text = f"engagelab run failed (exit {proc.returncode}): {err.strip().splitlines()[-1:] or ''}"
            self.error_line.show(RuntimeError(err.strip() or f"exit code {proc.returncode}"))
        self.run_status = text
        colour = _COLOURS.get(res.get("status", ""), "#b00020")
        self.status.value = f"<span style='color:{colour}'>{html.escape(text)}</span>"
        self.refresh()

    def wait(self, timeout: float | None = None) -> str:
        """Block until the running "run now" ends (tests and scripts); returns :attr:`run_status`."""
        if self._watcher is not None:
            self._watcher.join(timeout)
        return self.run_status


def _status_span(status: Any, job: str = "") -> str:
    if not isinstance(status, str):
        return f"<span class='el-jobs-laststatus' data-job='{html.escape(job)}'>—</span>"
    colour = _COLOURS.get(str(status), "#b00020")
    return (f"<span class='el-jobs-laststatus' data-job='{html.escape(job)}' "
            f"style='color:{colour}'>{html.escape(str(status))}</span>")  # fmt: skip


def _txt(value: Any) -> str:
    return value if isinstance(value, str) and value else "—"


def _jobs_html(df: pd.DataFrame) -> str:
    if df.empty:
        return "<i>no jobs</i>"
    rows = []
    for r in df.itertuples(index=False):
        name = cast(str, r.name)
        sched = f"{r.cron} ({r.timezone})" if isinstance(r.cron, str) else "on demand"
        rows.append(
            f"<tr><td><b>{html.escape(name)}</b></td><td>{html.escape(sched)}</td>"
            f"<td>{html.escape(_txt(r.next_run))}</td><td>{'paused' if r.paused else 'active'}</td>"
            f"<td>{html.escape(_txt(r.last_date))}</td><td>{_status_span(r.last_status, name)}</td></tr>"
        )
    head = "<tr><th>job</th><th>schedule</th><th>next run</th><th>state</th><th>last date</th><th>last status</th></tr>"
    return f"<table class='el-jobs-grid'>{head}{''.join(rows)}</table>"


def _link(path: Any, label: str) -> str:
    if not isinstance(path, str) or not path:
        return ""
    try:
        href = os.path.relpath(path, Path.cwd())
    except ValueError:
        href = path
    return f"<a href='{html.escape(href)}' target='_blank' title='{html.escape(path)}'>{label}</a>"


def _history_html(df: pd.DataFrame) -> str:
    if df.empty:
        return "<i>no runs yet</i>"
    rows = []
    for r in df.itertuples(index=False):
        err = ""
        if isinstance(r.error_name, str):
            cell_index = cast(float, r.cell_index)
            cell = f" (cell {int(cell_index)})" if pd.notna(cell_index) else ""
            err = html.escape(f"{r.error_name}{cell}: {r.error_value}")
        links = " ".join(
            x for x in (_link(r.output_path, "notebook"), _link(r.html_path, "report")) if x
        )
        rows.append(
            f"<tr class='el-jobs-run'><td>{html.escape(cast(str, r.logical_date))}</td><td>{r.attempt}</td>"
            f"<td>{_status_span(r.status)}</td><td>{html.escape(str(r.started_at)[:19])}</td>"
            f"<td>{err}</td><td>{links}</td></tr>"
        )
    head = "<tr><th>date</th><th>attempt</th><th>status</th><th>started (UTC)</th><th>error</th><th>output</th></tr>"
    return f"<table class='el-jobs-history-table'>{head}{''.join(rows)}</table>"
