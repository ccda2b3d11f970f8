"""The campaign spec: a frozen, validated, JSON/YAML-serialisable value.

Example:
    >>> c = Campaign(id="welcome", name="Welcome", channel="push",
    ...              schedule=Schedule("one_time", at="2026-03-02T09:00:00Z"),
    ...              variants=(Variant("A", {"title": "Hi", "body": "A"}), Variant("B", {"title": "Hello", "body": "B"})),
    ...              control_percent=10, labels=("Onboarding",))
    >>> Campaign.from_json(c.to_json()) == c
    True
    >>> Campaign.from_yaml(c.to_yaml()).variant_names
    ('A', 'B')
    >>> hash(Campaign.from_json(c.to_json())) == hash(c)
    True
    >>> c.control_percent = 20
    Traceback (most recent call last):
    ...
    engagelab.errors.FrozenSpecError: Campaign is frozen: use campaign.replace(control_percent=...) for a changed copy
    >>> c.replace(control_percent=20).control_percent
    20
    >>> c.replace(channel="fax")
    Traceback (most recent call last):
    ...
    engagelab.errors.SpecError: channel == 'fax', must be one of 'push', 'in_app', 'app_inbox', 'native_display', 'web_push', 'web_popup', 'web_exit_intent', 'email', 'sms', 'webhook', 'facebook_audience', 'google_ads'
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import yaml

from engagelab.campaigns.options import Delivery, _spec, parse_hhmm
from engagelab.errors import SpecError, ValidationError
from engagelab.frozen import freeze, frozen, replace_spec, thaw
from engagelab.schema import CHANNEL_OPTOUT
from engagelab.validate import check_datetime, check_timezone

if TYPE_CHECKING:
    from engagelab.channels import Content

__all__ = [
    "CHANNEL_NAMES",
    "TRIGGER_TYPES",
    "TYPES",
    "WINNER_METRICS",
    "Campaign",
    "Goal",
    "Schedule",
    "Variant",
    "WinnerTest",
]

TYPES = ("one_time", "recurring", "triggered", "inaction", "on_date")
#: Campaign types whose users are picked by an event (templates may read ``event.*``).
TRIGGER_TYPES = ("triggered", "inaction")
CHANNEL_NAMES = (*CHANNEL_OPTOUT, "facebook_audience", "google_ads")
MAX_VARIANTS = 26


def _channels() -> tuple[str, ...]:
    try:
        from engagelab.channels import CHANNELS  # type: ignore[attr-defined]
    except ImportError:
        return CHANNEL_NAMES
    return tuple(CHANNELS)


def validate_content(channel: str, content: Any, field: str) -> Any:
    """The channel's validated content object (a plain dict until engagelab.channels lands)."""
    content_type: type[Content] | None
    content_from_dict: Callable[[str, Any], Content] | None
    try:
        from engagelab.channels import Content as content_type
        from engagelab.channels import content_from_dict
    except ImportError:  # pragma: no cover - the channels module ships with campaigns
        content_type, content_from_dict = None, None
    if content_type is not None and isinstance(content, content_type):
        if content.channel != channel:
            raise SpecError(
                field, type(content).__name__, f"must be content of the {channel} channel"
            )
        return content
    if not isinstance(content, Mapping):
        raise SpecError(field, content, "must be a mapping of the channel's content fields")
    if content_from_dict is None:
        return freeze(content)
    try:
        return content_from_dict(channel, dict(content))
    except ValidationError as exc:
        raise SpecError(
            f"{field}.{exc.field}", exc.value, exc.allowed, message=f"{field}.{exc}"
        ) from None


@frozen
@dataclass(frozen=True)
class Schedule:
    """When a campaign runs and whom it picks.

    Args:
        type: ``one_time`` (``at``; None means the logical date), ``recurring``
            (``cron`` in ``timezone``), ``triggered`` (``event`` with equality
            ``filters`` on its properties, since the last run), ``inaction`` (did
            ``event``, not ``not_event`` within ``within_hours``), ``on_date`` (the
            profile date ``date_property`` plus ``offset_days`` is the logical date;
            ``anniversary`` matches month and day only) sent at ``time`` local.
    """

    type: str = "one_time"
    at: dt.datetime | None = None
    cron: str | None = None
    timezone: str = "UTC"
    event: str | None = None
    filters: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    not_event: str | None = None
    within_hours: float | None = None
    date_property: str | None = None
    offset_days: int = 0
    anniversary: bool = False
    time: str = "09:00"

    def __post_init__(self) -> None:
        if self.type not in TYPES:
            raise SpecError(
                "schedule.type", self.type, "must be one of " + ", ".join(map(repr, TYPES))
            )
        _spec(check_timezone, "schedule.timezone", self.timezone)
        parse_hhmm("schedule.time", self.time)
        if self.at is not None:
            object.__setattr__(self, "at", _spec(check_datetime, "schedule.at", self.at))
        if self.type == "recurring":
            from croniter import croniter

            if not isinstance(self.cron, str) or not croniter.is_valid(self.cron):
                raise SpecError(
                    "schedule.cron", self.cron, "must be a valid cron expression, e.g. '0 9 * * 1'"
                )
        if self.type in ("triggered", "inaction") and (
            not isinstance(self.event, str) or not self.event
        ):
            raise SpecError(
                "schedule.event", self.event, f"must name the event of a {self.type} campaign"
            )
        if not isinstance(self.filters, Mapping):
            raise SpecError("schedule.filters", self.filters, "must be a mapping property -> value")
        object.__setattr__(self, "filters", freeze(self.filters))
        if self.type == "inaction":
            if not isinstance(self.not_event, str) or not self.not_event:
                raise SpecError(
                    "schedule.not_event",
                    self.not_event,
                    "must name the event B of an inaction campaign",
                )
            w = self.within_hours
            if isinstance(w, bool) or not isinstance(w, int | float) or not w > 0:
                raise SpecError("schedule.within_hours", w, "must be a number > 0")
        if self.type == "on_date" and (
            not isinstance(self.date_property, str) or not self.date_property
        ):
            raise SpecError(
                "schedule.date_property",
                self.date_property,
                "must name a date property of profiles",
            )
        if isinstance(self.offset_days, bool) or not isinstance(self.offset_days, int):
            raise SpecError("schedule.offset_days", self.offset_days, "must be an integer")

    def replace(self, **changes: Any) -> Schedule:
        """A copy with some fields changed (schedules are frozen), validated again."""
        return replace_spec(self, changes)

    def to_dict(self) -> dict[str, Any]:
        d = {f.name: thaw(getattr(self, f.name)) for f in dataclasses.fields(self)}
        d["at"] = self.at.isoformat() if self.at else None
        return {k: v for k, v in d.items() if v not in (None, {}) or k == "type"}


@frozen
@dataclass(frozen=True)
class Variant:
    """One message variant: its name, content and split weight (None: equal split)."""

    name: str
    content: Mapping[str, Any]
    weight: float | None = None

    def __post_init__(self) -> None:
        # a plain mapping (content not yet checked against a channel) is frozen too; a
        # campaign replaces it with the channel's content model
        object.__setattr__(self, "content", freeze(self.content))

    def replace(self, **changes: Any) -> Variant:
        """A copy with some fields changed (variants are frozen)."""
        return replace_spec(self, changes)

    def to_dict(self) -> dict[str, Any]:
        content = self.content.to_dict() if hasattr(self.content, "to_dict") else thaw(self.content)
        return {"name": self.name, "content": content, "weight": self.weight}


WINNER_METRICS = ("clicked", "viewed", "converted", "revenue")


@frozen
@dataclass(frozen=True)
class WinnerTest:
    """Test the variants on ``test_share`` of the audience, wait ``wait_hours``, then send
    the winner to the rest.

    Args:
        test_share: share of the audience in the test, in (0, 1).
        wait_hours: time between the test send and the winner send.
        metric: what decides, per test recipient: ``'clicked'`` / ``'viewed'`` (the
            message's click / view rate), ``'converted'`` (the campaign goal's event
            within ``goal.window_hours`` of the send) or ``'revenue'`` (the goal's revenue
            property summed within that window: revenue per recipient); None means
            views for e-mail and clicks otherwise (as CleverTap does).
        rule: ``'clevertap'`` (the highest rate wins, ties to the first variant) or
            ``'statistical'`` (:func:`engagelab.experiments.choose_winner`: a variant
            significantly better than the first one after Holm's correction, else the
            first one) or ``'bayesian'`` (a variant whose Bayesian probability to be best
            reaches 0.95, else the first one). A sample-ratio mismatch blocks a winner.
    """

    test_share: float = 0.2
    wait_hours: float = 24.0
    metric: str | None = None
    rule: str = "clevertap"

    def __post_init__(self) -> None:
        t = self.test_share
        if isinstance(t, bool) or not isinstance(t, int | float) or not 0 < t < 1:
            raise SpecError("winner_test.test_share", t, "must be in (0, 1)")
        w = self.wait_hours
        if isinstance(w, bool) or not isinstance(w, int | float) or w < 0:
            raise SpecError("winner_test.wait_hours", w, "must be a number >= 0")
        if self.rule not in ("clevertap", "statistical", "bayesian"):
            raise SpecError(
                "winner_test.rule",
                self.rule,
                "must be one of 'clevertap', 'statistical', 'bayesian'",
            )
        if self.metric is not None and self.metric not in WINNER_METRICS:
            raise SpecError(
                "winner_test.metric",
                self.metric,
                "must be one of " + ", ".join(map(repr, WINNER_METRICS)) + " or None",
            )

    def replace(self, **changes: Any) -> WinnerTest:
        """A copy with some fields changed (winner tests are frozen), validated again."""
        return replace_spec(self, changes)


@frozen
@dataclass(frozen=True)
class Goal:
    """Conversion goal: ``event`` within ``window_hours`` of the send; revenue from ``revenue_property``."""

    event: str = "Charged"
    window_hours: float = 24.0
    revenue_property: str | None = "revenue"

    def __post_init__(self) -> None:
        if not isinstance(self.event, str) or not self.event:
            raise SpecError("goal.event", self.event, "must be an event name")
        w = self.window_hours
        if isinstance(w, bool) or not isinstance(w, int | float) or not w > 0:
            raise SpecError("goal.window_hours", w, "must be a number > 0")

    def replace(self, **changes: Any) -> Goal:
        """A copy with some fields changed (goals are frozen), validated again."""
        return replace_spec(self, changes)


@frozen
@dataclass(frozen=True)
class Campaign:
    """A campaign: who, what, on which channel, when and how (see the module example).

    ``audience`` is a Segment, its dict, a saved segment's name, or None (all users).
    """

    id: str
    channel: str
    variants: tuple[Variant, ...]
    name: str = ""
    schedule: Schedule = dataclasses.field(default_factory=Schedule)
    audience: Any = None
    control_percent: float = 0.0
    respect_global_control: bool = True
    labels: tuple[str, ...] = ()
    goal: Goal = dataclasses.field(default_factory=Goal)
    delivery: Delivery = dataclasses.field(default_factory=Delivery)
    winner_test: WinnerTest | None = None

    def __post_init__(self) -> None:  # noqa: C901
        if not isinstance(self.id, str) or not self.id.strip() or len(self.id) > 100:
            raise SpecError("id", self.id, "must be a non-empty string of at most 100 characters")
        channels = _channels()
        if self.channel not in channels:
            raise SpecError(
                "channel", self.channel, "must be one of " + ", ".join(map(repr, channels))
            )
        if not isinstance(self.name, str):
            raise SpecError("name", self.name, "must be a string")
        if isinstance(self.schedule, Mapping):
            object.__setattr__(self, "schedule", Schedule(**self.schedule))
        if isinstance(self.goal, Mapping):
            object.__setattr__(self, "goal", Goal(**self.goal))
        if isinstance(self.delivery, Mapping):
            object.__setattr__(self, "delivery", Delivery.from_dict(self.delivery))
        if isinstance(self.winner_test, Mapping):
            object.__setattr__(self, "winner_test", WinnerTest(**self.winner_test))
        self._check_variants()
        cp = self.control_percent
        if isinstance(cp, bool) or not isinstance(cp, int | float) or not 0 <= cp < 100:
            raise SpecError("control_percent", cp, "must be in [0, 100)")
        if not isinstance(self.respect_global_control, bool):
            raise SpecError(
                "respect_global_control", self.respect_global_control, "must be true or false"
            )
        labels = (self.labels,) if isinstance(self.labels, str) else tuple(self.labels)
        if any(not isinstance(x, str) or not x.strip() for x in labels):
            raise SpecError("labels", list(labels), "must be non-empty strings")
        object.__setattr__(self, "labels", labels)
        if isinstance(self.audience, Mapping):
            object.__setattr__(self, "audience", freeze(self.audience))
        elif self.audience is not None and not isinstance(self.audience, str):
            from engagelab.segments import Segment

            if not isinstance(self.audience, Segment):
                raise SpecError(
                    "audience",
                    type(self.audience).__name__,
                    "must be a Segment, its dict, a saved name or None",
                )
        self._check_event_variables()
        for opt in ("user_timezone", "best_time"):
            if getattr(self.delivery, opt) and self.schedule.type in TRIGGER_TYPES:
                raise SpecError(
                    f"delivery.{opt}",
                    "set",
                    f"is for scheduled campaigns: a {self.schedule.type} campaign's messages "
                    "follow each user's event, not a wall-clock time",
                )
        if self.winner_test is not None and len(self.variants) < 2:
            raise SpecError("winner_test", "set", "needs at least two variants")
        if (
            self.winner_test is not None
            and self.winner_test.metric == "revenue"
            and not self.goal.revenue_property
        ):
            raise SpecError("winner_test.metric", "revenue", "needs goal.revenue_property")
        if self.channel in ("facebook_audience", "google_ads") and self.winner_test is not None:
            raise SpecError("winner_test", "set", "is not available for remarketing exports")

    def _check_variants(self) -> None:
        vs: tuple[Any, ...] | Variant | Mapping[str, Any] = self.variants  # as given, unchecked
        if isinstance(vs, Variant | Mapping):
            vs = (vs,)
        vs = tuple(Variant(**v) if isinstance(v, Mapping) else v for v in vs)
        if not vs or len(vs) > MAX_VARIANTS or not all(isinstance(v, Variant) for v in vs):
            raise SpecError("variants", len(vs), f"must be 1 to {MAX_VARIANTS} variants")
        names = [v.name for v in vs]
        for i, n in enumerate(names):
            if not isinstance(n, str) or not n.strip() or n == "control":
                raise SpecError(
                    f"variants[{i}].name", n, "must be a non-empty string other than 'control'"
                )
        if len(set(names)) != len(names):
            raise SpecError("variants", names, "must have distinct names")
        weights = [v.weight for v in vs]
        if any(w is not None for w in weights):
            for i, w in enumerate(weights):
                if isinstance(w, bool) or not isinstance(w, int | float) or not 0 < w <= 1:
                    raise SpecError(
                        f"variants[{i}].weight",
                        w,
                        "must be in (0, 1] (give every variant a weight)",
                    )
            if abs(sum(cast(list[float], weights)) - 1) > 1e-6:  # all numbers: checked above
                raise SpecError("variants.weight", weights, "must sum to 1")
        checked = tuple(
            Variant(
                v.name,
                validate_content(self.channel, v.content, f"variants[{i}].content"),
                v.weight,
            )
            for i, v in enumerate(vs)
        )
        object.__setattr__(self, "variants", checked)

    def _check_event_variables(self) -> None:
        """``event.*`` variables need a triggering event: only triggered and inaction
        campaigns have one (its properties are those of the user's latest qualifying
        occurrence)."""
        if self.schedule.type in TRIGGER_TYPES:
            return
        for i, v in enumerate(self.variants):
            fields = v.content.template_fields() if hasattr(v.content, "template_fields") else {}
            for field, names in sorted(fields.items()):
                ev = sorted(n for n in names if n.startswith("event."))
                if ev:
                    raise SpecError(
                        f"variants[{i}].content.{field}",
                        ev[0],
                        f"reads the trigger event, but a {self.schedule.type} campaign has none "
                        "(event.* works in 'triggered' and 'inaction' campaigns)",
                    )

    # ----------------------------------------------------------------- helpers
    @property
    def variant_names(self) -> tuple[str, ...]:
        return tuple(v.name for v in self.variants)

    @property
    def weights(self) -> list[float]:
        if self.variants[0].weight is None:
            return [1.0 / len(self.variants)] * len(self.variants)
        return [float(cast(float, v.weight)) for v in self.variants]  # all set: checked

    def variant(self, name: str) -> Variant:
        for v in self.variants:
            if v.name == name:
                return v
        raise ValidationError("variant", name, "must be one of " + ", ".join(self.variant_names))

    def replace(self, **changes: Any) -> Campaign:
        """A copy with some fields changed (campaigns are frozen), validated again."""
        return replace_spec(self, changes)

    # ----------------------------------------------------------------- serialisation
    def to_dict(self) -> dict[str, Any]:
        aud = self.audience
        if aud is not None and not isinstance(aud, str | Mapping):
            aud = aud.to_dict()
        wt = dataclasses.asdict(self.winner_test) if self.winner_test else None
        return {
            "id": self.id,
            "name": self.name,
            "channel": self.channel,
            "schedule": self.schedule.to_dict(),
            "audience": thaw(aud),
            "variants": [v.to_dict() for v in self.variants],
            "control_percent": self.control_percent,
            "respect_global_control": self.respect_global_control,
            "labels": list(self.labels),
            "goal": dataclasses.asdict(self.goal),
            "delivery": self.delivery.to_dict(),
            "winner_test": wt,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Campaign:
        if not isinstance(data, Mapping):
            raise SpecError("campaign", type(data).__name__, "must be a mapping")
        known = {f.name for f in dataclasses.fields(cls)}
        extra = sorted(set(data) - known)
        if extra:
            raise SpecError(
                extra[0], data[extra[0]], "is not a campaign field: " + ", ".join(sorted(known))
            )
        for req in ("id", "channel", "variants"):
            if req not in data:
                raise SpecError(req, None, "is required")
        d = dict(data)
        d["variants"] = (
            tuple(d["variants"]) if isinstance(d["variants"], list | tuple) else d["variants"]
        )
        labels = d.get("labels") or ()
        d["labels"] = (labels,) if isinstance(labels, str) else tuple(labels)
        try:
            return cls(**d)
        except TypeError as exc:
            raise SpecError("campaign", None, str(exc)) from None

    def to_json(self, **kw: Any) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, **kw)

    @classmethod
    def from_json(cls, text: str) -> Campaign:
        from engagelab.validate import load_json

        return cls.from_dict(load_json(text, "campaign JSON"))

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    @classmethod
    def from_yaml(cls, text: str) -> Campaign:
        from engagelab.validate import load_yaml

        return cls.from_dict(load_yaml(text, "campaign YAML"))

    def __repr__(self) -> str:
        kind = self.schedule.type
        vs = ", ".join(self.variant_names)
        extra = f", control {self.control_percent:g}%" if self.control_percent else ""
        return f"Campaign({self.id!r}: {kind} {self.channel}, variants {vs}{extra})"
