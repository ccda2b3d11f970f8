"""BestTimeExplorer in a real JupyterLab: change the mode and window, look a user up, evaluate.

The notebook simulates a small workspace in the test's folder and shows the explorer; the
test process opens the same workspace and fits the same models itself, so the reason
counts and the looked-up slot the browser shows are checked against the core.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from engagelab import Workspace
from engagelab.besttime import BestTimeOptions, fit
from tests.e2e.lab import (
    TIMEOUT_MS,
    open_notebook,
    run_all_cells,
    wait_for_selector,
    write_notebook,
)
from tests.servers import JupyterLabServer

pytestmark = pytest.mark.browser


def _cells(ws_path: Path) -> list[str]:
    return [
        f"""\
from engagelab import Workspace
from engagelab.simulate.worlds import simulate_into
from engagelab.widgets.besttime import BestTimeExplorer

ws = Workspace.create({str(ws_path)!r})
simulate_into(ws, n_users=800, days=28, seed=4)
ex = BestTimeExplorer(ws, debounce=0.2)""",
        "ex",
    ]


def _reason_text(slots, reason: str) -> str:
    n = int((slots["reason"] == reason).sum())
    return f"{n} ({100 * n / len(slots):.1f}%)"


def test_explorer_follows_the_ui(
    page: Page, lab_server: JupyterLabServer, notebook_dir: Path
) -> None:
    ws_path = notebook_dir / "ws"
    nb = write_notebook(notebook_dir, "besttime.ipynb", _cells(ws_path))
    open_notebook(page, lab_server, nb)
    run_all_cells(page)
    ws = Workspace.open(ws_path)
    try:
        bayes = fit(ws, BestTimeOptions(mode="bayes", window=("08:00", "22:00"))).slots()
        ct = fit(ws, BestTimeOptions(mode="clevertap", window=("08:00", "22:00"))).slots()
    finally:
        ws.close()
    reasons = wait_for_selector(page, ".el-bt-reasons")
    expect(reasons).to_contain_text(_reason_text(bayes, "fallback_no_history"), timeout=TIMEOUT_MS)
    expect(page.locator(".el-bt-heatmap table")).to_have_count(1)

    page.locator(".el-bt-mode select").select_option(label="clevertap")
    expect(reasons).to_contain_text(_reason_text(ct, "outside_window"), timeout=TIMEOUT_MS)

    user = ct[ct["reason"] == "chosen"].iloc[0]
    page.locator(".el-bt-lookup input").fill(user["user_id"])
    expect(page.locator(".el-bt-lookup-text")).to_contain_text(
        f"{user['user_id']}: {user['slot_local']}"
    )

    latest = page.locator(".el-bt-latest input")
    latest.fill("07:00")
    error = page.locator(".el-bt-error")
    expect(error).to_contain_text("must be (earliest, latest) with earliest < latest")
    latest.fill("22:00")
    expect(error).to_be_hidden()

    page.locator(".el-bt-evaluate").click()
    expect(page.locator(".el-bt-eval-table")).to_contain_text(
        "most_frequent_hour", timeout=TIMEOUT_MS
    )
