"""JobsPanel headless: table, pause/resume, run now through a real `engagelab run`, errors."""

from __future__ import annotations

import pandas as pd
import pytest
from engagelab.widgets.jobs_panel import JobsPanel

from engagelab.jobs import JobSpec, add_job, history
from tests.jobs.conftest import write_notebook


@pytest.fixture
def panel_ws(jws, tmp_path):
    ok = write_notebook(tmp_path / "ok.ipynb", "n = 1", "print(n * 2)")
    bad = write_notebook(tmp_path / "bad.ipynb", "n = 1", "raise KeyError('campaign')")
    sched = {"cron": "30 2 * * *", "timezone": "Europe/Berlin"}
    add_job(jws, JobSpec(name="ok", notebook=str(ok), params={"n": "int"}, schedule=sched))
    add_job(jws, JobSpec(name="bad", notebook=str(bad)))
    return jws


def test_table_pause_resume_and_input_errors(panel_ws):
    p = JobsPanel(panel_ws)
    df = p.jobs_df.set_index("name")
    assert list(p.job.options) == ["bad", "ok"]
    assert (
        df.loc["ok", "next_run"].endswith(("CET", "CEST")) and "02:30" in df.loc["ok", "next_run"]
    )
    assert pd.isna(df.loc["bad", "next_run"]) and "on demand" in p.table.value
    p.job.value = "ok"
    p.pause_button.click()
    assert bool(p.jobs_df.set_index("name").loc["ok", "paused"]) and "paused" in p.table.value
    assert pd.isna(p.jobs_df.set_index("name").loc["ok", "next_run"])
    p.resume_button.click()
    assert not bool(p.jobs_df.set_index("name").loc["ok", "paused"])
    p.date.value = "tomorrow"
    p.run_button.click()
    assert (
        p.error_line.text
        == "ValidationError: logical_date == 'tomorrow', must be a date (YYYY-MM-DD)"
    )
    p.date.value = "2026-03-01"
    p.params.value = "n"
    p.run_button.click()
    assert p.error_line.text == "ValidationError: params == 'n', must look like key=value"
    assert history(panel_ws).empty


@pytest.mark.slow
def test_run_now_success_and_failure_show_in_the_panel(panel_ws):
    p = JobsPanel(panel_ws)
    p.job.value = "ok"
    p.date.value = "2026-03-01"
    p.params.value = "n=4"
    p.run_button.click()
    assert p.run_status.startswith("running ok for 2026-03-01")
    assert p.wait(600) == "ok 2026-03-01: succeeded (exit 0)"
    assert p.error_line.text == ""
    h = p.history_df
    assert (h["status"].tolist(), h["trigger"].tolist()) == (["succeeded"], ["widget"])
    assert "attempt-1.ipynb" in p.history.value and "<a href=" in p.history.value
    assert "data-job='ok' style='color:#1b7f3b'>succeeded" in p.table.value

    p.job.value = "bad"
    p.params.value = ""
    p.run_button.click()
    status = p.wait(600)
    assert status.startswith("bad 2026-03-01: cell_error (exit 10)") and "'campaign'" in status
    assert "KeyError (cell 2): &#x27;campaign&#x27;" in p.history.value
