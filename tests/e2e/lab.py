"""Helpers for driving a real JupyterLab with Playwright (sync API).

Used by the browser tests in this folder; see ``conftest.py`` for the fixtures
(``lab_server``, ``notebook_dir``, ``page``) and how to run and debug them.

Typical test::

    def test_widget(page, lab_server, notebook_dir):
        cells = ["import ipywidgets as w", "s = w.IntSlider(); s.add_class('el-demo'); s"]
        nb = write_notebook(notebook_dir, "demo.ipynb", cells)
        open_notebook(page, lab_server, nb)
        run_all_cells(page)  # raises, naming the cell, if a cell raised
        wait_for_selector(page, ".el-demo")
"""

from __future__ import annotations

import re
import time
import urllib.parse
from pathlib import Path
from typing import Any

import nbformat
from playwright.sync_api import Locator, Page

from tests.servers import JupyterLabServer

#: Default wait for anything that involves the kernel (start, run, comm round trip).
#: Generous on purpose: CI machines have 2 busy cores.
TIMEOUT_MS = 60_000

_KERNEL_STATUS = ".jp-StatusBar-TextItem"
_IDLE = re.compile(r"\|\s*Idle\s*$")
_CODE_PROMPTS = ".jp-Notebook .jp-CodeCell .jp-InputArea-prompt"


def write_notebook(directory: Path, name: str, cells: list[str]) -> Path:
    """Write a notebook of code cells (with the ``python3`` kernelspec) and return its path.

    Args:
        directory: Folder inside the server's root directory (``notebook_dir`` fixture).
        name: File name, e.g. ``"slider.ipynb"``.
        cells: Source of each code cell, in order.
    """
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3 (ipykernel)",
        "language": "python",
    }
    nb.metadata["language_info"] = {"name": "python"}
    nb.cells = [nbformat.v4.new_code_cell(src) for src in cells]
    path = Path(directory) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path


def wait_for_selector(
    page: Page, selector: str, *, state: str = "visible", timeout_ms: int = TIMEOUT_MS
) -> Locator:
    """Wait (generously) until ``selector`` matches exactly one element in ``state``; return it.

    Playwright is strict: several matches is an error. Select on a CSS class you gave
    the widget (``w.add_class("el-...")``), or append ``>> nth=0``.
    """
    loc = page.locator(selector)
    loc.wait_for(state=state, timeout=timeout_ms)  # type: ignore[arg-type]
    return loc


def wait_for_kernel_idle(page: Page, *, timeout_ms: int = TIMEOUT_MS) -> None:
    """Wait until the status bar's kernel item reads ``<kernel name> | Idle``."""
    page.locator(_KERNEL_STATUS, has_text=_IDLE).first.wait_for(state="visible", timeout=timeout_ms)


def open_notebook(
    page: Page, server: JupyterLabServer, path: Path, *, timeout_ms: int = TIMEOUT_MS
) -> None:
    """Open ``path`` (under the server's root) in JupyterLab and wait until its kernel is idle.

    The URL carries ``?reset`` so no saved layout from another test is restored.
    Running cells before the kernel is idle is unreliable (JupyterLab drops
    "Run All" while the kernel initialises), hence the wait.
    """
    rel = Path(path).resolve().relative_to(server.root_dir.resolve()).as_posix()
    page.goto(f"{server.url}lab/tree/{urllib.parse.quote(rel)}?reset", timeout=timeout_ms)
    page.locator(".jp-Notebook .jp-Cell").first.wait_for(state="attached", timeout=timeout_ms)
    wait_for_kernel_idle(page, timeout_ms=timeout_ms)


def lab_command(page: Page, command: str, args: dict[str, Any] | None = None) -> Any:
    """Execute a JupyterLab command by id (e.g. ``"notebook:restart-run-all"``).

    Works because the test server runs with ``--LabApp.expose_app_in_browser``.
    """
    return page.evaluate(
        "([c, a]) => window.jupyterapp.commands.execute(c, a)", [command, args or {}]
    )


def shutdown_kernels(page: Page, *, timeout_ms: int = 15_000) -> None:
    """Shut down every kernel session of the server (through the page, so XSRF is handled).

    The ``page`` fixture calls this after each test so idle kernels do not pile up.
    """
    page.evaluate(
        """(ms) => Promise.race([
            window.jupyterapp.serviceManager.sessions.shutdownAll(),
            new Promise((_, reject) => setTimeout(() => reject(new Error("kernel shutdown timed out")), ms)),
        ])""",
        timeout_ms,
    )


def _prompts(page: Page) -> list[str]:
    return [t.strip() for t in page.locator(_CODE_PROMPTS).all_inner_texts()]


def run_all_cells(
    page: Page, *, raise_on_error: bool = True, timeout_ms: int = TIMEOUT_MS
) -> list[str]:
    """Run every cell through the menu (Run → Run All Cells) and wait until the run ends.

    The run has ended when no code cell shows ``[*]:`` any more and the kernel is
    idle. If the menu click is not picked up (no cell queued within 5 s) the command
    is issued once more through the app's command registry.

    Args:
        page: A page showing the notebook (see :func:`open_notebook`).
        raise_on_error: Raise ``AssertionError`` with the traceback text if a cell
            raised (JupyterLab then stops and leaves later cells unrun).
        timeout_ms: How long the whole run may take.

    Returns:
        The code cells' prompts afterwards, e.g. ``["[1]:", "[2]:"]``.
    """
    wait_for_kernel_idle(page, timeout_ms=timeout_ms)
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).click()
    page.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^Run All Cells$")).click()
    deadline = time.monotonic() + 5
    while all(p in ("[ ]:", "") for p in _prompts(page)):
        if time.monotonic() > deadline:  # nothing queued: the click was dropped
            lab_command(page, "notebook:run-all-cells")
            break
        page.wait_for_timeout(100)
    page.wait_for_function(
        "(sel) => ![...document.querySelectorAll(sel)].some(e => e.textContent.includes('*'))",
        arg=_CODE_PROMPTS,
        timeout=timeout_ms,
    )
    wait_for_kernel_idle(page, timeout_ms=timeout_ms)
    if raise_on_error:
        assert_no_error_outputs(page)
    return _prompts(page)


def cell_output_text(page: Page, index: int) -> str:
    """Text of the output area of the ``index``-th cell (0-based, all cell types count)."""
    return page.locator(".jp-Notebook .jp-Cell").nth(index).locator(".jp-OutputArea").inner_text()


def error_outputs(page: Page) -> list[str]:
    """``"cell <i>: <ename>: <evalue>"`` for every error output of the current notebook.

    Read from the notebook model (``output_type == "error"``), not from the DOM, where
    errors and stderr text look alike.
    """
    return page.evaluate(
        """() => {
            const nb = window.jupyterapp.shell.currentWidget;
            const cells = nb && nb.content && nb.content.model ? nb.content.model.cells : null;
            if (!cells) { throw new Error("the current JupyterLab widget is not a notebook"); }
            const found = [];
            for (let i = 0; i < cells.length; i++) {
                const outputs = cells.get(i).outputs;
                for (let j = 0; outputs && j < outputs.length; j++) {
                    const out = outputs.get(j).toJSON();
                    if (out.output_type === "error") { found.push(`cell ${i}: ${out.ename}: ${out.evalue}`); }
                }
            }
            return found;
        }"""
    )


def assert_no_error_outputs(page: Page) -> None:
    """Fail, naming the cell and exception, if any cell of the notebook raised."""
    errors = error_outputs(page)
    assert not errors, "notebook cells raised:\n" + "\n".join(errors)
