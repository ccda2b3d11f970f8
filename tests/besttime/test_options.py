"""BestTimeOptions: validation messages, JSON round trip, allowed minutes."""

from __future__ import annotations

import numpy as np
import pytest

from engagelab.besttime import BestTimeOptions
from engagelab.errors import ValidationError


def test_json_round_trip_and_immutability():
    o = BestTimeOptions(
        mode="bayes",
        window=("07:30", "21:00"),
        fallback_slot="12:00",
        passed="drop",
        explore_share=0.2,
        seed=4,
        events=("App Launched", "Page Viewed"),
        half_life_days=None,
        prior_by="country",
        dnd=(("12:00", "13:00"),),
    )
    again = BestTimeOptions.from_json(o.to_json())
    assert again == o and again.window == ("07:30", "21:00") and again.dnd == (("12:00", "13:00"),)
    with pytest.raises(AttributeError):
        o.mode = "clevertap"  # type: ignore[misc]
    assert o.replace(mode="clevertap", events=("App Launched",)).mode == "clevertap"


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        (
            {"window": ("21:00", "08:00")},
            "window == ('21:00', '08:00'), must be (earliest, latest) with earliest < latest",
        ),
        ({"window": ("08:00", "08:00")}, "must be (earliest, latest) with earliest < latest"),
        ({"window": ("8am", "10:00")}, "window earliest == '8am', must be a local time 'HH:MM'"),
        ({"window": ("08:00", "09:00"), "dnd": (("07:00", "10:00"),)}, "leaves no allowed minute"),
        ({"mode": "braze"}, "mode == 'braze', must be one of 'clevertap', 'bayes'"),
        ({"passed": "later"}, "passed == 'later'"),
        ({"explore_share": 1.5}, "explore_share == 1.5, must be in [0, 1]"),
        ({"events": ()}, "events == (), must be a non-empty list of event names"),
        (
            {"mode": "clevertap", "events": ("A", "B")},
            "must be exactly one event in clevertap mode",
        ),
        ({"fallback_slot": "25:00"}, "fallback_slot == '25:00'"),
        ({"dnd": (("10:00", "10:00"),)}, "must have start != end"),
    ],
)
def test_bad_options_name_the_field(kw, message):
    with pytest.raises(ValidationError) as err:
        BestTimeOptions(**kw)
    assert message in str(err.value)


def test_unknown_key_in_dict_is_an_error():
    with pytest.raises(ValidationError, match="BestTimeOptions key == 'windows'"):
        BestTimeOptions.from_dict({"windows": ["08:00", "20:00"]})


def test_allowed_minutes_window_and_wrapping_dnd():
    o = BestTimeOptions(window=("06:00", "23:00"), dnd=(("22:00", "07:00"), ("12:00", "12:30")))
    m = o.allowed_minutes()
    ok = np.flatnonzero(m)
    assert ok[0] == 7 * 60 and ok[-1] == 22 * 60 - 1
    assert not m[12 * 60 : 12 * 60 + 30].any() and m[12 * 60 + 30]
    assert m.sum() == (22 - 7) * 60 - 30
