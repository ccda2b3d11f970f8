"""A real JupyterLab renders an ipywidgets slider and its comm round trip works."""

from __future__ import annotations

import json
import re
import time
import urllib.request
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.lab import (
    TIMEOUT_MS,
    assert_no_error_outputs,
    cell_output_text,
    error_outputs,
    open_notebook,
    run_all_cells,
    wait_for_selector,
    write_notebook,
)
from tests.servers import JupyterLabServer

pytestmark = pytest.mark.browser

REPO_ROOT = Path(__file__).resolve().parents[2]

CELLS = [
    # The kernel is this venv's Python: engagelab imports from the checkout under test.
    "import engagelab, pathlib\nprint('engagelab at', pathlib.Path(engagelab.__file__).parent.parent)",
    """\
import ipywidgets as widgets

slider = widgets.IntSlider(value=5, min=0, max=20, description="n")
slider.add_class("el-smoke")
label = widgets.Label(value=f"doubled: {slider.value * 2}")
label.add_class("el-smoke-label")
slider.observe(lambda change: setattr(label, "value", f"doubled: {change['new'] * 2}"), names="value")
widgets.VBox([slider, label])""",
]


def test_intslider_drives_label_through_kernel(
    page: Page, lab_server: JupyterLabServer, notebook_dir: Path
) -> None:
    started = time.monotonic()
    nb = write_notebook(notebook_dir, "slider.ipynb", CELLS)
    open_notebook(page, lab_server, nb)
    run_all_cells(page)
    assert_no_error_outputs(page)
    assert f"engagelab at {REPO_ROOT}" in cell_output_text(page, 0)

    label = wait_for_selector(page, ".el-smoke-label")
    expect(label).to_have_text("doubled: 10", timeout=TIMEOUT_MS)
    handle = wait_for_selector(page, ".el-smoke .noUi-handle")
    readout = page.locator(".el-smoke .widget-readout")
    expect(readout).to_have_text("5")

    # Keyboard on the slider handle: the browser changes the value, the kernel's
    # observer sets the label, and the new label value comes back over the comm.
    handle.focus()
    page.keyboard.press("ArrowRight")
    page.keyboard.press("ArrowRight")
    expect(readout).to_have_text("7", timeout=TIMEOUT_MS)
    expect(label).to_have_text("doubled: 14", timeout=TIMEOUT_MS)

    page.keyboard.press("End")
    expect(label).to_have_text("doubled: 40", timeout=TIMEOUT_MS)
    assert re.fullmatch(
        r"\[\d+\]:", page.locator(".jp-InputArea-prompt").nth(1).inner_text().strip()
    )
    print(f"e2e widget smoke test body: {time.monotonic() - started:.1f}s")


def test_run_all_cells_reports_the_failing_cell(
    page: Page, lab_server: JupyterLabServer, notebook_dir: Path
) -> None:
    # Kernels of earlier tests were shut down by the page fixture's teardown.
    with urllib.request.urlopen(f"{lab_server.url}api/kernels", timeout=10) as resp:
        assert json.load(resp) == []
    # stderr text must not count as an error; the raising cell must, and the run stops there.
    cells = ["import sys\nprint('just a warning', file=sys.stderr)", "1 / 0", "never = 'run'"]
    nb = write_notebook(notebook_dir, "raises.ipynb", cells)
    open_notebook(page, lab_server, nb)
    with pytest.raises(AssertionError, match=r"cell 1: ZeroDivisionError: division by zero"):
        run_all_cells(page)
    assert error_outputs(page) == ["cell 1: ZeroDivisionError: division by zero"]
    prompts = page.locator(".jp-InputArea-prompt").all_inner_texts()
    assert [re.sub(r"\d+", "n", p.strip()) for p in prompts] == ["[n]:", "[n]:", "[ ]:"]
    assert "just a warning" in cell_output_text(page, 0)
