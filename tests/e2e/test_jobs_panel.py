"""JobsPanel in a real JupyterLab: run a job from the panel and watch its status turn succeeded.

The notebook creates a workspace with one job (a tiny parameterised notebook) and shows
the panel; the test clicks "Run now", which starts ``engagelab run`` in a subprocess of
the kernel, and waits for the job table's status and the history to say ``succeeded``.
The test process then checks the run history and the executed notebook itself.
"""

from __future__ import annotations

import time
from pathlib import Path

import nbformat
import pytest
from playwright.sync_api import Page, expect

from engagelab import Workspace
from engagelab.jobs import history
from tests.e2e.lab import (
    assert_no_error_outputs,
    open_notebook,
    run_all_cells,
    wait_for_selector,
    write_notebook,
)
from tests.servers import JupyterLabServer

pytestmark = pytest.mark.browser

RUN_TIMEOUT_MS = 300_000  # a papermill run on a busy 2-core machine


def _job_notebook(path: Path) -> None:
    nb = nbformat.v4.new_notebook()
    first = nbformat.v4.new_code_cell("n = 1")
    first.metadata["tags"] = ["parameters"]
    nb.cells = [first, nbformat.v4.new_code_cell("print('doubled', n * 2)")]
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nbformat.write(nb, path)


def test_run_a_job_from_the_panel(
    page: Page, lab_server: JupyterLabServer, notebook_dir: Path
) -> None:
    started = time.monotonic()
    ws_path = notebook_dir / "ws"
    _job_notebook(notebook_dir / "double.ipynb")
    cells = [
        f"""\
from engagelab import Workspace
from engagelab.jobs import JobSpec, add_job
from engagelab.widgets.jobs_panel import JobsPanel

ws = Workspace.create({str(ws_path)!r})
add_job(ws, JobSpec(name="double", notebook={str(notebook_dir / "double.ipynb")!r}, params={{"n": "int"}},
                    schedule={{"cron": "0 6 * * *", "timezone": "Europe/Berlin"}}))
panel = JobsPanel(ws)
panel""",
    ]
    nb = write_notebook(notebook_dir, "jobs.ipynb", cells)
    open_notebook(page, lab_server, nb)
    run_all_cells(page)
    assert_no_error_outputs(page)

    status = wait_for_selector(page, ".el-jobs-table .el-jobs-laststatus[data-job='double']")
    expect(status).to_have_text("—")
    page.locator(".el-jobs-date input").fill("2026-03-01")
    page.locator(".el-jobs-params input").fill("n=21")
    page.locator(".el-jobs-run").click()
    expect(page.locator(".el-jobs-status")).to_contain_text("running double for 2026-03-01")
    expect(status).to_have_text("succeeded", timeout=RUN_TIMEOUT_MS)
    expect(page.locator(".el-jobs-status")).to_have_text("double 2026-03-01: succeeded (exit 0)")
    history_row = page.locator(".el-jobs-history .el-jobs-run").first
    expect(history_row).to_contain_text("2026-03-01")
    expect(history_row.locator("a", has_text="notebook")).to_be_visible()
    expect(page.locator(".el-jobs-error")).to_be_hidden()

    ws = Workspace.open(ws_path)  # the test's own view of what the panel did
    try:
        h = history(ws, "double")
        assert h[["logical_date", "status", "trigger"]].values.tolist() == [
            ["2026-03-01", "succeeded", "widget"]
        ]
        out = nbformat.read(h["output_path"].iloc[0], as_version=4)
        assert "doubled 42" in "".join(
            o.get("text", "") for c in out.cells for o in c.get("outputs", [])
        )
    finally:
        ws.close()
    print(f"JobsPanel browser test body: {time.monotonic() - started:.1f}s")
