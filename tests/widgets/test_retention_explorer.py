"""CohortRetentionExplorer headless: what it shows equals what the core computes."""

from __future__ import annotations

import pandas as pd
import pytest
from engagelab.widgets.retention import CohortRetentionExplorer

from engagelab import Workspace
from engagelab.retention import retention
from engagelab.retention.labels import label_effect
from engagelab.simulate.labels import label_programme


@pytest.fixture(scope="module")
def small_ws(tmp_path_factory):
    ws = Workspace.create(tmp_path_factory.mktemp("wid") / "ws")
    label_programme(ws, n_users=600, days=14, observe_days=10, seed=3, effect=0.3)
    yield ws
    ws.close()


def test_event_cohorts_follow_inputs(small_ws):
    ex = CohortRetentionExplorer(small_ws, debounce=0)
    assert ex.error == "" and bytes(ex.curves.value).startswith(b"\x89PNG")
    pd.testing.assert_frame_equal(
        ex.result.to_pandas(), retention(small_ws, "App Launched").to_pandas()
    )
    ex.period.value = "week"
    ex.periods.value = 3
    ex.mode.value = "on-or-after"
    want = retention(small_ws, "App Launched", period="week", periods=3, mode="on-or-after")
    pd.testing.assert_frame_equal(ex.result.to_pandas(), want.to_pandas())
    assert "Week 2" in ex.heatmap.value and "el-censored" in ex.heatmap.value
    ex.brackets.value = "1,3,7"
    assert list(ex.result.to_pandas().columns) == ["size", "Week 1–2", "Week 3–6"]


def test_errors_are_shown_in_the_widget(small_ws):
    ex = CohortRetentionExplorer(small_ws, debounce=0)
    ex.brackets.value = "1,x"
    assert ex.error == "ValidationError: brackets == '1,x', must be comma-separated whole numbers"
    assert ex.result is None and ex.error_line.layout.display is None
    ex.brackets.value = ""
    assert ex.error == "" and ex.result is not None
    ex.window.value = "rolling"
    ex.period.value = "month"  # 30-day windows: no cohort has 30 days of data yet
    assert "does not fit the data range" in ex.error and ex.result is None


def test_label_panel_matches_label_effect(small_ws):
    ex = CohortRetentionExplorer(small_ws, labels=["Onboarding"], debounce=0)
    ex.day.value = 5
    assert ex.error == ""
    eff = label_effect(small_ws, "Onboarding", day=5)
    pd.testing.assert_frame_equal(ex.effects["Onboarding"].comparisons, eff.comparisons)
    assert "causal" in ex.comparison.value and "selection bias" in ex.comparison.value
    assert "Onboarding" in ex.heatmap.value


def test_time_zone_input(small_ws):
    ex = CohortRetentionExplorer(small_ws, debounce=0)
    ex.timezone.value = "Asia/Tokyo"
    assert ex.error == ""
    want = retention(small_ws, "App Launched", timezone="Asia/Tokyo")
    pd.testing.assert_frame_equal(ex.result.to_pandas(), want.to_pandas())
    assert not want.to_pandas().equals(retention(small_ws, "App Launched").to_pandas())
    ex.timezone.value = "Tokyo"
    assert ex.error.startswith("ValidationError: timezone == 'Tokyo', must be an IANA time zone")
    assert ex.result is None
