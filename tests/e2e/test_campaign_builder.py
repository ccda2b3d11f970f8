"""CampaignBuilder in a real JupyterLab: build an SMS campaign through the UI, see its
per-user preview, its live segment count, and its dry-run reach.

The notebook simulates a small workspace in the test's folder and shows the builder;
the test process opens the same workspace with engagelab and computes every expected
value itself: the preview with ``channels.preview`` on the profile it reads, the
segment count with ``sms_info``, the reach with ``plan`` and, independently, with a
pandas count of users with a phone number who did not opt out of SMS.
"""

from __future__ import annotations

import datetime as dt
import re
import time
from pathlib import Path

import pandas as pd
import pytest
from playwright.sync_api import Page, expect

from engagelab import Workspace
from engagelab.campaigns import Campaign, Variant, plan
from engagelab.channels import content_from_dict, preview, sms_info
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

LOGICAL_DATE = "2026-01-10T09:00:00+00:00"
TEXT = "Hi {{ profile.name | default('there') }}, 10% off in {{ profile.city | default('town') }}"


def _cells(ws_path: Path) -> list[str]:
    return [
        f"""\
from engagelab import Workspace
from engagelab.simulate.worlds import simulate_into
from engagelab.widgets.campaign_builder import CampaignBuilder

ws = Workspace.create({str(ws_path)!r})
simulate_into(ws, n_users=400, days=7, seed=5)
cb = CampaignBuilder(ws, logical_date={LOGICAL_DATE!r}, debounce=0.2)
print("USERS=" + str(cb.users))""",
        "cb",
    ]


def test_build_an_sms_campaign_and_see_preview_and_reach(
    page: Page, lab_server: JupyterLabServer, notebook_dir: Path
) -> None:
    started = time.monotonic()
    ws_path = notebook_dir / "ws"
    nb = write_notebook(notebook_dir, "campaign.ipynb", _cells(ws_path))
    open_notebook(page, lab_server, nb)
    run_all_cells(page)
    users = int(re.search(r"USERS=(\d+)", cell_output_text(page, 0)).group(1))

    ws = Workspace.open(ws_path)  # the test's own view of the notebook's workspace
    try:
        profiles = ws.sql("SELECT * FROM profiles ORDER BY user_id")
        assert users == len(profiles) == 400
        count = wait_for_selector(page, ".el-cb-count")
        expect(count).to_have_text(re.compile(rf"^\s*audience {users} of {users} users\s*$"),
                                   timeout=TIMEOUT_MS)  # fmt: skip

        # pick the SMS channel: its content fields replace the push fields
        page.locator(".el-cb-channel select").select_option("sms")
        text_box = wait_for_selector(page, ".el-cb-field-text textarea")
        expect(page.locator(".el-cb-field-title")).to_have_count(0)
        text_box.fill(TEXT)

        # live segment count of the text as typed
        info = sms_info(TEXT)
        expect(page.locator(".el-cb-segments")).to_have_text(
            f"{info.encoding} · {info.units} units · {info.segments} segment", timeout=TIMEOUT_MS
        )

        # the preview is the real rendering for the first user of the audience
        uid = profiles["user_id"].iloc[0]
        row = profiles.iloc[0]
        profile = {k: (None if pd.isna(v) else v) for k, v in row.items()}
        content = content_from_dict("sms", {"text": TEXT})
        expected = preview(content, profile)
        assert expected["text"].startswith("Hi ") and "{{" not in expected["text"]
        prev = page.locator(".el-cb-preview")
        expect(prev).to_contain_text(f"for user {uid}", timeout=TIMEOUT_MS)
        expect(page.locator(".el-cb-preview-text")).to_have_text(expected["text"])
        expect(page.locator(".el-cb-preview-segments")).to_have_text(str(expected["segments"]))

        # a template error shows in the widget, then the fix clears it
        text_box.fill("Hi {{ profile.nickname }}")
        expect(page.locator(".el-cb-preview-error")).to_contain_text(
            "unknown variable 'profile.nickname'", timeout=TIMEOUT_MS
        )
        text_box.fill(TEXT)
        expect(page.locator(".el-cb-preview-text")).to_have_text(expected["text"])

        # dry run: reach as the core plans it, computed here on the same workspace
        page.locator(".el-cb-dry-run").click()
        c = Campaign(id="campaign", channel="sms", variants=(Variant("A", {"text": TEXT}),))
        p = plan(ws, c, dt.datetime.fromisoformat(LOGICAL_DATE))
        reachable = profiles["phone"].notna() & ~profiles["optout_sms"].fillna(False).astype(bool)
        assert p.reach == int(reachable.sum()) > 0  # no control groups here
        expect(page.locator(".el-cb-reach-line")).to_have_text(
            f"reach {p.reach:,} of {len(p.frame):,} qualifying users", timeout=TIMEOUT_MS
        )
        expect(page.locator(".el-cb-reach")).to_contain_text("unreachable")
        expect(page.locator(".el-cb-error")).to_be_hidden()
    finally:
        ws.close()
    print(f"CampaignBuilder browser test body: {time.monotonic() - started:.1f}s")
