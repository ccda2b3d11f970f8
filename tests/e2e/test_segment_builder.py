"""SegmentBuilder in a real JupyterLab: edit conditions through the UI, watch the count follow.

The notebook simulates a small workspace in the test's folder and shows the builder;
the test process opens the same workspace with engagelab and computes every expected
count itself (``ws.count`` of the spec the UI should now hold, and a pandas count), so
the number the browser shows is checked against an independent computation.
"""

from __future__ import annotations

import datetime as dt
import re
import time
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from engagelab import Workspace
from engagelab.segments import Segment, did, prop
from tests.e2e.lab import (
    TIMEOUT_MS,
    cell_output_text,
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
from engagelab.segments import prop
from engagelab.widgets import SegmentBuilder

ws = Workspace.create({str(ws_path)!r})
simulate_into(ws, n_users=1500, days=14, seed=5)
sb = SegmentBuilder(ws, segment=prop("age") >= 40, debounce=0.2)
print("AT=" + sb.at.isoformat())""",
        "sb",
    ]


def _count_text(n: int, users: int) -> re.Pattern[str]:
    return re.compile(rf"^\s*{n:,} of {users:,} users\s*$")


def test_editing_a_condition_in_the_browser_updates_the_count(
    page: Page, lab_server: JupyterLabServer, notebook_dir: Path
) -> None:
    started = time.monotonic()
    ws_path = notebook_dir / "ws"
    nb = write_notebook(notebook_dir, "segments.ipynb", _cells(ws_path))
    open_notebook(page, lab_server, nb)
    run_all_cells(page)
    at = dt.datetime.fromisoformat(re.search(r"AT=(\S+)", cell_output_text(page, 0)).group(1))

    ws = Workspace.open(ws_path)  # the test's own view of the notebook's workspace
    try:
        profiles = ws.sql("SELECT user_id, age FROM profiles")
        users = len(profiles)
        launched = set(ws.sql("SELECT user_id FROM events WHERE event = 'App Launched'")["user_id"])

        def expected(segment: Segment, reference: int) -> int:
            assert ws.count(segment, at=at) == reference  # engine and pandas agree
            return reference

        count = wait_for_selector(page, ".el-sb-count")
        n40 = expected(Segment(prop("age") >= 40), int((profiles["age"] >= 40).sum()))
        expect(count).to_have_text(_count_text(n40, users), timeout=TIMEOUT_MS)
        expect(page.locator(".el-sb-at")).to_contain_text("just after the workspace's last event")

        # type a new value: the count follows once the debounce (0.2 s) has passed
        value = page.locator(".el-sb-row >> nth=0").locator(".el-sb-value input")
        value.fill("60")
        n60 = expected(Segment(prop("age") >= 60), int((profiles["age"] >= 60).sum()))
        assert n60 != n40
        expect(count).to_have_text(_count_text(n60, users), timeout=TIMEOUT_MS)
        expect(page.locator(".el-sb-description")).to_have_text("age ≥ 60")

        # pick another operator
        page.locator(".el-sb-row >> nth=0").locator(".el-sb-op select").select_option(label="<")
        under60 = int((profiles["age"] < 60).sum())
        expect(count).to_have_text(_count_text(expected(Segment(prop("age") < 60), under60), users))

        # an invalid value shows the core's error message in the widget, then recovers
        value.fill("sixty")
        error = page.locator(".el-sb-error")
        expect(error).to_have_text(
            "⚠ SpecError: row 1: value == 'sixty', must be a number for column 'age'"
        )
        value.fill("60")
        expect(error).to_be_hidden()
        expect(count).to_have_text(_count_text(under60, users))

        # add a row (did the most common event, 'App Launched'), then remove the first
        page.locator(".el-sb-add").click()
        expect(page.locator(".el-sb-row")).to_have_count(2)
        both = len(set(profiles.loc[profiles["age"] < 60, "user_id"]) & launched)
        seg = Segment((prop("age") < 60) & did("App Launched"))
        expect(count).to_have_text(_count_text(expected(seg, both), users))
        page.locator(".el-sb-row >> nth=0").locator(".el-sb-remove").click()
        expect(page.locator(".el-sb-row")).to_have_count(1)
        only = len(launched & set(profiles["user_id"]))
        expect(count).to_have_text(_count_text(expected(Segment(did("App Launched")), only), users))
    finally:
        ws.close()
    print(f"SegmentBuilder browser test body: {time.monotonic() - started:.1f}s")
