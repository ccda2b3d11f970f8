"""Real-browser tests: a real JupyterLab server driven by Debian's Chromium via Playwright.

Running
-------
``make test`` runs them with everything else. Alone::

    .venv/bin/python -m pytest tests/e2e -q              # all browser tests
    .venv/bin/python -m pytest -m browser -q             # same, selected by marker
    .venv/bin/python -m pytest -m "not browser" -q       # everything but these

They need ``/usr/bin/chromium`` (``make system-deps`` apt-installs it; override the
path with ``ENGAGELAB_CHROMIUM``). Playwright's own browser downloads are never used:
do not run ``playwright install``. Without Chromium the tests fail (never skip) with a
message naming ``make system-deps``.

One JupyterLab server is started per session (``lab_server``, about 5 s) on a free
loopback port, with a temporary HOME / config / data / runtime dir, no token, and a
``python3`` kernelspec pointing at this virtualenv's Python (so kernels import
engagelab). Each test gets its own folder under the server root (``notebook_dir``)
and a fresh browser context (``page``). A JupyterLab test takes roughly 10-30 s.

Writing a test
--------------
Mark it ``@pytest.mark.browser`` (tests here are also marked automatically). Use the
helpers in ``tests/e2e/lab.py``: ``write_notebook``, ``open_notebook``,
``run_all_cells``, ``wait_for_selector``, ``cell_output_text``, ``error_outputs``,
``lab_command`` (any JupyterLab command id). Give widgets CSS classes
(``w.add_class("el-...")``) and select on those, not on built-in classes.

Debugging
---------
- Failure artifacts: when a test fails, a screenshot (``<test>.png``) and the page HTML
  are saved and their paths printed, together with the JupyterLab server log tail. The
  folder is ``$ENGAGELAB_E2E_ARTIFACTS`` if set, else a new ``/tmp/engagelab-e2e-*``.
- Headed mode (watch the browser): ``pytest tests/e2e --headed --slowmo 300``; on a
  machine without a display wrap it in ``xvfb-run -a``.
- Playwright inspector (step through): ``PWDEBUG=1 pytest tests/e2e --headed -s``.
- Traces: ``pytest tests/e2e --tracing retain-on-failure`` then
  ``.venv/bin/playwright show-trace test-results/<test>/trace.zip``.
- Keep the server's state dir and log after the run: ``ENGAGELAB_E2E_KEEP=1``.
- Open the server yourself: put a ``breakpoint()`` in a test, run with ``-s``, and
  browse to ``lab_server.url`` (no token).
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.lab import TIMEOUT_MS, shutdown_kernels
from tests.servers import SYSTEM_DEPS_HINT, JupyterLabServer, _tail, start_jupyterlab

CHROMIUM = os.environ.get("ENGAGELAB_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
_HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if _HERE in Path(str(item.path)).resolve().parents:
            item.add_marker(pytest.mark.browser)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    setattr(item, f"_el_report_{report.when}", report)
    return report


@pytest.fixture(scope="session")
def browser_type_launch_args(
    browser_type_launch_args: dict[str, Any], pytestconfig: pytest.Config
) -> dict[str, Any]:
    """Launch Debian's Chromium (never a Playwright download) with CI-safe flags."""
    if not Path(CHROMIUM).exists():
        pytest.fail(
            f"Chromium not found at {CHROMIUM}: {SYSTEM_DEPS_HINT} (or set ENGAGELAB_CHROMIUM)",
            pytrace=False,
        )
    headed = bool(pytestconfig.getoption("--headed", default=False))
    args = CHROMIUM_ARGS if headed else ["--headless", *CHROMIUM_ARGS]
    return {**browser_type_launch_args, "executable_path": CHROMIUM, "args": args}


@pytest.fixture(scope="session")
def browser_context_args(browser_context_args: dict[str, Any]) -> dict[str, Any]:
    return {**browser_context_args, "viewport": {"width": 1400, "height": 1000}}


@pytest.fixture(scope="session")
def lab_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[JupyterLabServer]:
    """A JupyterLab server for the whole session, serving a temporary root folder."""
    root = tmp_path_factory.mktemp("lab-root")
    server = start_jupyterlab(root)
    keep = bool(os.environ.get("ENGAGELAB_E2E_KEEP"))
    try:
        yield server
    finally:
        server.stop(keep_state=keep)
        if keep:
            print(f"\nJupyterLab state and log kept in {server.state_dir}", file=sys.stderr)


@pytest.fixture(scope="session")
def base_url(lab_server: JupyterLabServer) -> str:
    """The server's URL, so ``page.goto("lab")`` works (replaces pytest-base-url's fixture)."""
    return lab_server.url


@pytest.fixture
def notebook_dir(lab_server: JupyterLabServer, request: pytest.FixtureRequest) -> Path:
    """An empty folder for this test's notebooks, inside the server's root."""
    # module + test name: two modules may hold tests of the same name
    module = request.node.module.__name__.rsplit(".", 1)[-1]
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{module}.{request.node.name}")[:100]
    path = lab_server.root_dir / name
    path.mkdir()
    return path


def _artifacts_dir() -> Path:
    configured = os.environ.get("ENGAGELAB_E2E_ARTIFACTS")
    if configured:
        Path(configured).mkdir(parents=True, exist_ok=True)
        return Path(configured)
    return Path(tempfile.mkdtemp(prefix="engagelab-e2e-"))


@pytest.fixture
def page(page: Any, lab_server: JupyterLabServer, request: pytest.FixtureRequest) -> Iterator[Any]:
    """pytest-playwright's page: generous timeouts, a screenshot on failure, kernels shut down after."""
    page.set_default_timeout(TIMEOUT_MS)
    yield page
    report = getattr(request.node, "_el_report_call", None)
    if report is not None and report.failed:
        _save_failure_artifacts(page, lab_server, request)
    if page.url.startswith(lab_server.url) and not page.is_closed():
        with contextlib.suppress(Exception):  # best effort: the server stops them at the end anyway
            shutdown_kernels(page)


def _save_failure_artifacts(
    page: Any, server: JupyterLabServer, request: pytest.FixtureRequest
) -> None:
    out = _artifacts_dir()
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)[:80]
    lines = [f"e2e failure artifacts for {request.node.nodeid}:"]
    try:
        page.screenshot(path=str(out / f"{stem}.png"), full_page=True)
        lines.append(f"  screenshot: {out / f'{stem}.png'}")
        (out / f"{stem}.html").write_text(page.content())
        lines.append(f"  page html:  {out / f'{stem}.html'}")
    except Exception as exc:  # the page may have crashed; still report the log
        lines.append(f"  (could not capture the page: {exc!r})")
    lines.append(f"  JupyterLab log tail ({server.log_path}):")
    lines.extend("    " + line for line in _tail(server.log_path, 20).splitlines())
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    text = "\n".join(lines)
    if reporter is not None:
        reporter.write_line("")
        reporter.write_line(text)
    else:
        print(text, file=sys.stderr)
