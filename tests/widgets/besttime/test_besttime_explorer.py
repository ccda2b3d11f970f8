"""BestTimeExplorer headless: what it shows equals what the core computes."""

from __future__ import annotations

import pandas as pd
import pytest

pytestmark = pytest.mark.slow

from engagelab.widgets.besttime import BestTimeExplorer  # noqa: E402

from engagelab.besttime import BestTimeOptions, activity_heatmap, fit  # noqa: E402
from engagelab.segments import prop  # noqa: E402


@pytest.fixture(scope="module")
def explorer(sim_ws):
    sim_ws.save_segment("berlin_bt", prop("city") == "Berlin")
    return BestTimeExplorer(sim_ws, debounce=0)


def test_shows_the_core_results(explorer, sim_ws):
    ex = explorer
    assert ex.error == ""
    ref = fit(sim_ws, BestTimeOptions(window=("08:00", "22:00"))).slots()
    pd.testing.assert_frame_equal(ex.slots, ref)
    pd.testing.assert_frame_equal(ex.heatmap, activity_heatmap(sim_ws))
    n_fallback = int((ref["reason"] == "fallback_no_history").sum())
    assert f"{n_fallback} (" in ex.reasons_html.value
    assert "el-bt-heat" in ex.heat_html.value
    for part in ("segment", "mode", "events", "earliest", "latest", "lookup", "evaluate", "error"):
        assert any(f"el-bt-{part}" in c._dom_classes for c in _walk(ex)), part


def _walk(widget):
    yield widget
    for child in getattr(widget, "children", ()):
        yield from _walk(child)


def test_mode_window_and_errors(explorer, sim_ws):
    ex = explorer
    ex.mode.value = "clevertap"
    ref = fit(sim_ws, BestTimeOptions(mode="clevertap", window=("08:00", "22:00"))).slots()
    pd.testing.assert_frame_equal(ex.slots, ref)
    ex.latest.value = "07:00"
    assert "earliest < latest" in ex.error
    ex.latest.value = "20:00"
    assert ex.error == "" and ex.slots["slot_minute"].max() <= 20 * 60
    ex.events.value = "Nope"
    assert (
        ex.error
        == "ValidationError: events == 'Nope', is not an event name found in this workspace"
    )
    assert ex.model is None
    ex.events.value = "App Launched"
    ex.mode.value = "bayes"
    assert ex.error == "" and ex.model.options.mode == "bayes"


def test_lookup_segment_and_evaluate(explorer, sim_ws):
    ex = explorer
    uid = ex.slots["user_id"].iloc[5]
    ex.lookup.value = uid
    row = ex.slots.iloc[5]
    assert row["slot_local"] in ex.lookup_out.value and row["reason"] in ex.lookup_out.value
    ex.lookup.value = "nobody"
    assert "not in this segment" in ex.lookup_out.value
    ex.segment.options = list(ex.segment.options) + ["berlin_bt"]
    ex.segment.value = "berlin_bt"
    assert ex.error == ""
    assert set(ex.slots["user_id"]) == set(sim_ws.user_ids(sim_ws.load_segment("berlin_bt")))
    ex.segment.value = "(everyone)"
    ex.evaluate_button.click()
    assert ex.error == "" and ex.evaluation is not None
    assert "clevertap" in ex.eval_html.value and "bayes" in ex.eval_html.value


def test_hour_of_week_and_weekday(explorer, sim_ws):
    import datetime as dt

    ex = explorer
    ex.mode.value = "bayes"
    ex.granularity.value = "hour_of_week"
    assert ex.error == "" and ex.model.weekly
    o = BestTimeOptions(window=(ex.earliest.value, ex.latest.value), granularity="hour_of_week")
    model = fit(sim_ws, o)
    pd.testing.assert_frame_equal(ex.slots, model.slots(dt.date(2024, 1, 1)))  # a Monday
    assert "β =" in ex.summary_html.value
    ex.weekday.value = "Sat"
    pd.testing.assert_frame_equal(ex.slots, model.slots(dt.date(2024, 1, 6)))
    ex.mode.value = "clevertap"  # one slot a day whatever the histogram setting
    assert ex.error == "" and not ex.model.weekly
    ex.mode.value = "bayes"
    ex.granularity.value = "hour"
    ex.weekday.value = "Mon"
    assert ex.error == "" and not ex.model.weekly
