"""WorldConfig: the frozen, validated, JSON-serialisable description of a simulated world."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from engagelab.errors import ValidationError
from engagelab.validate import check_int, check_number, check_str

__all__ = ["WorldConfig"]


@dataclasses.dataclass(frozen=True)
class WorldConfig:
    """Everything that determines a simulated world; the same config gives the same world.

    Args:
        n_users: number of users (ids ``u0000001`` ...).
        days: length of the initially simulated period in days (local calendar days,
            starting at ``start``); :meth:`World.baseline_events` can go beyond it.
        seed: the world's seed; every random draw is a pure function of it.
        start: first simulated local date, ``'YYYY-MM-DD'``.
        label_effects: planted retention effect of message labels: a delivered message
            carrying label ``L`` adds an extra 'App Launched' on each of the days
            ``1..retention_days`` after the send with probability
            ``label_effects[L]`` (several labels combine as independent chances; days
            are the user's local calendar days; churned users are re-activated too), so
            day-N retention of sent users is ``1 - (1 - p0) * (1 - effect * P(delivered))``
            for a baseline ``p0``. Each value must be in [0, 1).
        retention_days: how many days after a send a label effect lasts.
        activity: multiplier on every user's session rate (1.0 gives about 15 million
            events for 1M users over 90 days).
        heavy_share: share of heavy users (median 0.8 sessions a day).
        sparse_share: share of sparse users (median one session in 40 days); the rest are
            regular users (median one session in 8 days).
        churn: multiplier on every user's daily churn hazard (0 disables churn).
        new_user_share: share of users who sign up during the simulated period
            (the rest existed before ``start``).
        conversion_rate: probability that a message click leads to a 'Charged' event.

    Example:
        >>> cfg = WorldConfig(n_users=100, days=7, seed=3, label_effects={"Onboarding": 0.1})
        >>> WorldConfig.from_json(cfg.to_json()) == cfg
        True
        >>> cfg.replace(seed=4).seed
        4
        >>> WorldConfig(days=0)
        Traceback (most recent call last):
        ...
        engagelab.errors.ValidationError: days == 0, must be an integer in [1, 20000]
    """

    n_users: int = 10_000
    days: int = 90
    seed: int = 0
    start: str = "2026-01-01"
    label_effects: Mapping[str, float] = dataclasses.field(default_factory=dict)
    retention_days: int = 45
    activity: float = 1.0
    heavy_share: float = 0.05
    sparse_share: float = 0.65
    churn: float = 1.0
    new_user_share: float = 0.3
    conversion_rate: float = 0.1

    def __post_init__(self) -> None:
        check_int("n_users", self.n_users, low=1, high=9_999_999)
        check_int("days", self.days, low=1, high=20_000)
        check_int("seed", self.seed, low=0)
        check_str("start", self.start)
        try:
            dt.date.fromisoformat(self.start)
        except ValueError:
            raise ValidationError("start", self.start, "must be a date 'YYYY-MM-DD'") from None
        if len(self.start) != 10:
            raise ValidationError("start", self.start, "must be a date 'YYYY-MM-DD'")
        if not isinstance(self.label_effects, Mapping):
            raise ValidationError(
                "label_effects", self.label_effects, "must be a mapping label -> effect"
            )
        effects: dict[str, float] = {}
        for label, effect in self.label_effects.items():
            check_str("label_effects key", label)
            check_number(f"label_effects[{label!r}]", effect, low=0, high=1, high_open=True)
            effects[label] = float(effect)
        object.__setattr__(self, "label_effects", MappingProxyType(dict(sorted(effects.items()))))
        check_int("retention_days", self.retention_days, low=1, high=365)
        check_number("activity", self.activity, low=0, high=100)
        check_number("heavy_share", self.heavy_share, low=0, high=1)
        check_number("sparse_share", self.sparse_share, low=0, high=1)
        if self.heavy_share + self.sparse_share > 1 + 1e-12:
            raise ValidationError(
                "heavy_share + sparse_share", self.heavy_share + self.sparse_share, "must be <= 1"
            )
        check_number("churn", self.churn, low=0, high=100)
        check_number("new_user_share", self.new_user_share, low=0, high=1)
        check_number("conversion_rate", self.conversion_rate, low=0, high=1)

    @property
    def start_date(self) -> dt.date:
        """``start`` as a :class:`datetime.date`."""
        return dt.date.fromisoformat(self.start)

    def replace(self, **changes: Any) -> WorldConfig:
        """A copy with some fields changed (configs are immutable)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form (``label_effects`` as a dict)."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        out["label_effects"] = dict(self.label_effects)
        return out

    def to_json(self) -> str:
        """JSON text that :meth:`from_json` turns back into an equal config."""
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> WorldConfig:
        """Build from :meth:`to_dict` output; unknown keys are an error."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValidationError(
                "WorldConfig key", unknown[0], "must be one of " + ", ".join(sorted(names))
            )
        return cls(**dict(data))

    @classmethod
    def from_json(cls, text: str) -> WorldConfig:
        """Inverse of :meth:`to_json`."""
        return cls.from_dict(json.loads(text))
