"""Bad input to every entry point: one clear error naming the field, or a per-user reason;
DND windows in clevertap mode."""

from __future__ import annotations

import pytest

from engagelab.besttime import BestTimeOptions, activity_heatmap, evaluate, fit
from engagelab.errors import ValidationError
from tests.besttime.conftest import make_ws

AL = "App Launched"


@pytest.fixture
def small_ws(tmp_path):
    rows = [
        ("a", AL, "2026-03-02 09:10", "Europe/Berlin"),
        ("a", AL, "2026-03-03 09:40", "Europe/Berlin"),
        ("a", AL, "2026-03-04 09:20", "Europe/Berlin"),
        ("b", AL, "2026-03-02 21:30", "America/New_York"),
        ("c", AL, "2026-03-02 12:00", "UTC"),
    ]
    ws = make_ws(tmp_path / "ws", {"a": "Europe/Berlin", "b": "America/New_York",
                                   "c": "Not/AZone", "d": None}, rows)  # fmt: skip
    yield ws
    ws.close()


def test_invalid_and_missing_time_zones_are_per_user_reasons(small_ws):
    s = fit(small_ws, BestTimeOptions(window=("06:00", "23:00")), at="2026-03-10")
    s = s.slots().set_index("user_id")
    assert s.loc["c", "reason"] == s.loc["d", "reason"] == "invalid_timezone"
    assert s.loc["c", "slot_minute"] == s.loc["d", "slot_minute"] == -1
    assert s.loc["a", "reason"] == "chosen" and s.loc["a", "slot_local"] == "09:30"


def test_dnd_in_clevertap_mode_moves_the_slot_to_the_nearest_allowed_minute(small_ws):
    o = BestTimeOptions(mode="clevertap", window=("06:00", "23:00"), dnd=(("08:00", "10:30"),))
    s = fit(small_ws, o, at="2026-03-10").slots().set_index("user_id")
    # a's bucket 08-10 starts inside the DND window: the nearest allowed minute is 07:59
    assert s.loc["a", ["slot_local", "reason"]].tolist() == ["07:59", "outside_window"]
    # b's bucket 20-22 is allowed
    assert s.loc["b", ["slot_local", "reason"]].tolist() == ["20:00", "chosen"]


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"options": {"mode": "bayes"}}, "options == 'dict', must be BestTimeOptions"),
        ({"eval_weeks": 0}, "eval_weeks == 0, must be"),
        ({"sim_days": -1}, "sim_days == -1, must be"),
        ({"logs": [1, 2]}, "logs == 'list', must be a DataFrame"),
        ({"fixed_time": "noon"}, "fixed_time == 'noon', must be a local time"),
        ({"cutoff": "yesterday"}, "cutoff == 'yesterday'"),
    ],
)
def test_evaluate_rejects_bad_arguments(small_ws, kw, message):
    with pytest.raises(ValidationError) as err:
        evaluate(small_ws, **{"options": BestTimeOptions(), **kw})
    assert message in str(err.value)


def test_heatmap_arguments(small_ws):
    h = activity_heatmap(small_ws, events=AL, at="2026-03-10")  # one name, not its letters
    assert int(h.to_numpy().sum()) == 4  # c's zone is invalid: its event has no local time
    assert h.loc["Mon", 9] == 1 and h.loc["Mon", 21] == 1
    with pytest.raises(ValidationError, match="days == 0, must be"):
        activity_heatmap(small_ws, days=0)
    with pytest.raises(ValidationError, match="events == \\(\\), must be a non-empty list"):
        activity_heatmap(small_ws, events=())
    with pytest.raises(ValidationError, match="events == 'Nope', is not an event name"):
        activity_heatmap(small_ws, events=["Nope"])


def test_fit_rejects_bad_options_and_cutoff(small_ws):
    with pytest.raises(ValidationError, match="options == 'dict', must be BestTimeOptions"):
        fit(small_ws, {"mode": "bayes"})  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="at == 'soon'"):
        fit(small_ws, BestTimeOptions(), at="soon")
