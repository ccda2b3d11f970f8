"""CohortRetentionExplorer in a real JupyterLab: the heatmap follows the UI, errors show.

The notebook simulates a small label programme in the test's folder and shows the
explorer; the test process opens the same workspace and computes the expected numbers
itself with the core (and the label panel's sizes with plain SQL counts).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from engagelab import Workspace
from engagelab.retention import retention
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
from engagelab.simulate.labels import label_programme
from engagelab.widgets.retention import CohortRetentionExplorer

ws = Workspace.create({str(ws_path)!r})
label_programme(ws, n_users=800, days=14, observe_days=10, seed=3, effect=0.3)
ex = CohortRetentionExplorer(ws, debounce=0.2)""",
        "ex",
    ]


def _all_row(page: Page):
    return page.locator(".el-cre-heatmap tr", has_text="All cohorts").first


def test_explorer_follows_the_ui(
    page: Page, lab_server: JupyterLabServer, notebook_dir: Path
) -> None:
    ws_path = notebook_dir / "ws"
    nb = write_notebook(notebook_dir, "retention.ipynb", _cells(ws_path))
    open_notebook(page, lab_server, nb)
    run_all_cells(page)
    wait_for_selector(page, ".el-cre-heatmap table")
    ws = Workspace.open(ws_path)
    try:
        day = retention(ws, "App Launched").overall()
        expect(_all_row(page)).to_contain_text(f"{day['rate'].iloc[1]:.1%}", timeout=TIMEOUT_MS)

        # switch to weeks: the heatmap shows week columns and the weekly numbers
        page.locator(".el-cre-period button", has_text="week").click()
        week = retention(ws, "App Launched", period="week").overall()
        expect(page.locator(".el-cre-heatmap")).to_contain_text("Week 1", timeout=TIMEOUT_MS)
        expect(_all_row(page)).to_contain_text(f"{week['rate'].iloc[1]:.1%}", timeout=TIMEOUT_MS)
        expect(page.locator(".el-cre-heatmap .el-censored").first).to_be_attached()

        # a bad bracket list: the error shows in the widget
        brackets = page.locator(".el-cre-brackets input")
        brackets.fill("1,x")
        brackets.press("Enter")
        expect(page.locator(".el-cre-error")).to_contain_text(
            "brackets == '1,x', must be comma-separated whole numbers", timeout=TIMEOUT_MS
        )
        brackets.fill("")
        brackets.press("Enter")
        expect(page.locator(".el-cre-error")).to_be_hidden(timeout=TIMEOUT_MS)

        # choose the label: the comparison panel shows sent / holdout sizes
        page.locator(".el-cre-period button", has_text="day").click()
        page.locator(".el-cre-labels select").select_option("Onboarding")
        sent = int(
            ws.sql(
                "SELECT count(DISTINCT user_id) AS n FROM events WHERE event = 'Notification Sent'"
            )["n"][0]
        )
        panel = page.locator(".el-cre-comparison")
        expect(panel).to_contain_text("sent − holdout", timeout=TIMEOUT_MS)
        expect(panel).to_contain_text("causal")
        expect(panel).to_contain_text("selection bias")
        expect(panel.locator(".el-label-groups tr", has_text="sent").first).to_contain_text(
            str(sent)
        )
    finally:
        ws.close()
