"""WorldConfig: validation messages, immutability and JSON round-trips."""

from __future__ import annotations

import dataclasses
import json

import pytest

from engagelab.errors import ValidationError
from engagelab.simulate import WorldConfig


def test_defaults_and_round_trip() -> None:
    cfg = WorldConfig(
        n_users=10, days=3, seed=2, start="2026-03-01", label_effects={"B": 0.2, "A": 0.05}
    )
    assert cfg.start_date.isoformat() == "2026-03-01"
    assert list(cfg.label_effects) == ["A", "B"]
    again = WorldConfig.from_json(cfg.to_json())
    assert again == cfg
    assert json.loads(cfg.to_json())["label_effects"] == {"A": 0.05, "B": 0.2}
    assert WorldConfig().n_users == 10_000 and WorldConfig().days == 90


def test_frozen_and_replace() -> None:
    cfg = WorldConfig(n_users=10)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.n_users = 20  # type: ignore[misc]
    with pytest.raises(TypeError):
        cfg.label_effects["X"] = 0.1  # type: ignore[index]
    assert cfg.replace(n_users=20).n_users == 20 and cfg.n_users == 10


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"n_users": 0}, "n_users == 0, must be an integer in [1, 9999999]"),
        ({"days": 1.5}, "days == 1.5, must be an integer in [1, 20000]"),
        ({"seed": -1}, "seed == -1, must be an integer >= 0"),
        ({"start": "2026-02-30"}, "start == '2026-02-30', must be a date 'YYYY-MM-DD'"),
        ({"start": "20260201"}, "start == '20260201', must be a date 'YYYY-MM-DD'"),
        (
            {"label_effects": {"Onboarding": 1.0}},
            "label_effects['Onboarding'] == 1.0, must be in [0, 1)",
        ),
        (
            {"label_effects": {"Onboarding": -0.1}},
            "label_effects['Onboarding'] == -0.1, must be in [0, 1)",
        ),
        (
            {"label_effects": ["Onboarding"]},
            "label_effects == ['Onboarding'], must be a mapping label -> effect",
        ),
        (
            {"heavy_share": 0.5, "sparse_share": 0.6},
            "heavy_share + sparse_share == 1.1, must be <= 1",
        ),
        ({"activity": float("nan")}, "activity == nan, must be a number"),
        ({"conversion_rate": 2}, "conversion_rate == 2, must be in [0, 1]"),
    ],
)
def test_validation_messages(changes: dict, message: str) -> None:
    with pytest.raises(ValidationError) as info:
        WorldConfig(**changes)
    assert str(info.value) == message


def test_unknown_key_in_dict() -> None:
    with pytest.raises(ValidationError, match="WorldConfig key == 'n_user'"):
        WorldConfig.from_dict({"n_user": 5})
