"""BestTimeExplorer headless: what it shows equals what the core computes."""

from __future__ import annotations

import pandas as pd
import pytest

pytestmark = pytest.mark.slow

from engagelab.widgets.besttime import BestTimeExplorer  # noqa: E402

from engagelab.besttime import BestTimeOptions, activity_heatmap, fit  # noqa: E402
from engagelab.segments import did, prop  # noqa: E402
from engagelab.storage.catalog import reference_time  # noqa: E402


@pytest.fixture(scope="module")
def explorer(sim_ws):
    sim_ws.save_segment("berlin_bt", prop("city") == "Berlin")
    return BestTimeExplorer(sim_ws, debounce=0)


def test_shows_the_core_results(explorer, sim_ws):
    ex = explorer
    assert ex.error == ""
    at = reference_time(sim_ws)
    ref = fit(sim_ws, BestTimeOptions(window=("08:00", "22:00")), at=at).slots()
    pd.testing.assert_frame_equal(ex.slots, ref)
    pd.testing.assert_frame_equal(ex.heatmap, activity_heatmap(sim_ws, at=at))
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
    ref = fit(sim_ws, BestTimeOptions(mode="clevertap", window=("08:00", "22:00")),
              at=reference_time(sim_ws)).slots()  # fmt: skip
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
    model = fit(sim_ws, o, at=reference_time(sim_ws))
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


def test_now_is_the_data_end_so_relative_saved_segments_have_users(sim_ws):
    """A saved "did X in the last 7 days" segment is evaluated at the data's end (as in
    the segment and campaign builders), not at today's clock, where it would be empty."""
    sim_ws.save_segment("recent_bt", did("App Launched", within_days=7))
    ex = BestTimeExplorer(sim_ws, debounce=0)
    at = reference_time(sim_ws)
    assert ex.at == at and f"as of {at:%Y-%m-%d %H:%M:%S} UTC" in ex.at_html.value
    ex.segment.options = list(ex.segment.options) + ["recent_bt"]
    ex.segment.value = "recent_bt"
    expected = set(sim_ws.user_ids(sim_ws.load_segment("recent_bt"), at=at))
    assert ex.error == "" and len(expected) > 100
    assert set(ex.slots["user_id"]) == expected
    assert sim_ws.count(sim_ws.load_segment("recent_bt")) == 0  # today's clock: nobody


def test_an_error_clears_the_results_of_other_settings(sim_ws):
    ex = BestTimeExplorer(sim_ws, debounce=0)
    assert ex.error == "" and "users" in ex.summary_html.value and ex.heat_html.value
    ex.events.value = "Nope"
    assert "Nope" in ex.error and ex.model is None and ex.slots.empty
    assert ex.summary_html.value == "" and ex.heat_html.value == ""
    assert ex.slots_html.value == "" and ex.reasons_html.value == ""
    ex.events.value = "App Launched"
    ex.latest.value = "07:00"  # a validation error, before any refit
    assert "earliest < latest" in ex.error and ex.summary_html.value == "" and ex.model is None


def test_a_pending_refit_marks_the_old_results_out_of_date(sim_ws):
    ex = BestTimeExplorer(sim_ws, debounce=0.2)
    assert ex.wait(60) and ex.model is not None and not ex.stale
    ex.mode.value = "clevertap"
    assert ex.stale and "out of date" in ex.stale_note.value
    assert "el-stale" in ex.heat_html._dom_classes
    assert ex.wait(60) and not ex.stale and ex.model.options.mode == "clevertap"
    assert "el-stale" not in ex.heat_html._dom_classes and ex.stale_note.value == ""
