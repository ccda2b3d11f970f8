"""ExperimentDesigner in a real JupyterLab: change the MDE in the browser, watch the sample size follow.

Every expected number is computed in the test process with
``engagelab.experiments.sample_size``, independently of the kernel that drives the widget.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from engagelab.experiments import sample_size
from tests.e2e.lab import (
    TIMEOUT_MS,
    assert_no_error_outputs,
    open_notebook,
    run_all_cells,
    wait_for_selector,
    write_notebook,
)
from tests.servers import JupyterLabServer

pytestmark = pytest.mark.browser

CELLS = [
    """\
from engagelab.widgets.experiment_designer import ExperimentDesigner

designer = ExperimentDesigner(baseline=0.05, mde=0.10, relative=True, daily_traffic=4000)""",
    "designer",
]


def _total(n: int) -> re.Pattern[str]:
    return re.compile(rf"^\s*{n:,}\s*$")


def test_changing_the_mde_updates_the_sample_size(
    page: Page, lab_server: JupyterLabServer, notebook_dir: Path
) -> None:
    nb = write_notebook(notebook_dir, "designer.ipynb", CELLS)
    open_notebook(page, lab_server, nb)
    run_all_cells(page)
    total = wait_for_selector(page, ".el-ed-total")
    first = sample_size("proportion", baseline=0.05, mde=0.10, relative=True, daily_traffic=4000)
    expect(total).to_have_text(_total(first.total_n), timeout=TIMEOUT_MS)
    expect(page.locator(".el-ed-n")).to_contain_text(f"{first.days} days")
    expect(page.locator(".el-ed-summary")).to_contain_text("detects 5.000% -> 5.500%")
    expect(page.locator(".el-ed-formula")).to_contain_text("unpooled")

    mde = page.locator(".el-ed-mde input")
    mde.fill("0.2")
    mde.press("Enter")
    second = sample_size("proportion", baseline=0.05, mde=0.2, relative=True, daily_traffic=4000)
    assert second.total_n < first.total_n
    expect(total).to_have_text(_total(second.total_n), timeout=TIMEOUT_MS)
    expect(page.locator(".el-ed-summary")).to_contain_text("detects 5.000% -> 6.000%")

    # an MDE of zero: the core's error shows in the widget, then the widget recovers
    mde.fill("0")
    mde.press("Enter")
    expect(page.locator(".el-ed-error")).to_contain_text(
        "ValidationError: mde == 0.0, must be non-zero"
    )
    mde.fill("0.3")
    mde.press("Enter")
    third = sample_size("proportion", baseline=0.05, mde=0.3, relative=True, daily_traffic=4000)
    expect(total).to_have_text(_total(third.total_n), timeout=TIMEOUT_MS)
    expect(page.locator(".el-ed-error")).to_be_hidden()
    assert_no_error_outputs(page)
