"""``CampaignBuilder``: compose a campaign with form fields, preview it per user, dry-run it.

The widget is thin: its inputs become a core :class:`~engagelab.campaigns.Campaign`
(``.campaign``), and everything it shows comes from the core: the content fields are
generated from the channel's content model (``engagelab.channels.CHANNELS``), the
preview is :func:`engagelab.channels.preview` of one audience user's profile (the real
sandboxed template engine), the live audience count is ``ws.count`` at the logical
date, the SMS segment count is :func:`engagelab.channels.sms_info`, and "Dry run" shows
:func:`engagelab.campaigns.plan`'s reach and suppression reasons. Every error (a
template error, weights that do not sum to 1, a cron or time-zone typo) shows inside
the widget, next to the field it names (``field_error(name)``). A dry run whose campaign
has changed since is marked out of date (``dry_run_stale``). The preview shows empty
values as "(empty)", never a raw ``null``.

"Now" is the data's end (:func:`engagelab.storage.catalog.reference_time`): the default
logical date of the dry run and the reference time of the audience's relative windows.

Example (headless; in a notebook the last line displays the widget)::

    >>> import tempfile
    >>> from engagelab import Workspace
    >>> from engagelab.simulate.worlds import simulate_into
    >>> ws = Workspace.create(tempfile.mkdtemp() + "/ws")
    >>> _ = simulate_into(ws, n_users=200, days=7, seed=1)
    >>> cb = CampaignBuilder(ws, debounce=0)
    >>> cb.channel.value = "sms"
    >>> cb.variants[0].fields["text"].value = "Hi {{ profile.name | default('there') }}"
    >>> cb.campaign.channel, cb.variants[0].segments.value
    ('sms', 'GSM-7 · 45 units · 1 segment')
    >>> cb.dry_run_button.click()
    >>> from engagelab.campaigns import plan
    >>> cb.last_plan.reach == plan(ws, cb.campaign, cb.at).reach
    True
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import html
import json
import re
from typing import Any

import ipywidgets as w
import traitlets
from engagelab.widgets.segment_builder import SegmentBuilder

from engagelab.campaigns import (
    DND,
    Campaign,
    Delivery,
    FrequencyCap,
    Goal,
    Schedule,
    Variant,
    load_campaign,
    plan,
    save_campaign,
)
from engagelab.campaigns.spec import TYPES
from engagelab.channels import CHANNELS, content_from_dict, known_variables, preview, sms_info
from engagelab.errors import SpecError, ValidationError
from engagelab.storage.catalog import profile, reference_time, user_count, user_ids

from ._guard import Debouncer, ErrorLine, StaleNote, guarded

__all__ = ["CampaignBuilder", "CapRow", "DndRow", "OptionRow", "VariantPanel"]

_LONG = {"html", "text", "body"}
#: schedule inputs shown for each campaign type
_SCHEDULE_FIELDS = {
    "one_time": ("at", "timezone"),
    "recurring": ("cron", "timezone"),
    "triggered": ("event", "filters", "time", "timezone"),
    "inaction": ("event", "not_event", "within_hours", "time", "timezone"),
    "on_date": ("date_property", "offset_days", "anniversary", "time", "timezone"),
}


def _error_line(self: Any) -> ErrorLine:
    return self.error_line


def _css(widget: w.Widget, name: str) -> w.Widget:
    widget.add_class(f"el-cb-{name}")
    return widget


def _text(name: str, value: str = "", placeholder: str = "", desc: str = "") -> w.Text:
    return _css(w.Text(value=value, placeholder=placeholder, description=desc,
                       style={"description_width": "initial"}), name)  # fmt: skip


def _note(css: str) -> w.HTML:
    """An empty, hidden error note that sits right under one input."""
    note = _css(w.HTML(""), "field-error")
    note.add_class(f"el-cb-field-error-{css}")
    note.layout.display = "none"
    return note


def _show_note(note: w.HTML, text: str) -> None:
    note.value = f"<span style='color:#b00020;font-size:90%'>&#9888; {html.escape(text)}</span>"
    note.layout.display = None


def _hide_note(note: w.HTML) -> None:
    note.value = ""
    note.layout.display = "none"


# --------------------------------------------------------------------------- content
def _field_kind(f: dataclasses.Field[Any]) -> str:
    t = str(f.type)
    if t == "bool":
        return "bool"
    if t.startswith("int"):
        return "int"
    if t.startswith("tuple"):
        return "list"
    if t.startswith("str"):
        return "str"
    return "json"  # dict[...], Any, DisplayRules


def _required(f: dataclasses.Field[Any]) -> bool:
    return f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING


def _default_text(f: dataclasses.Field[Any], kind: str) -> Any:
    if _required(f):
        return ""
    value = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc,operator]
    if kind == "bool":
        return bool(value)
    return _to_text(value, kind)


def _to_text(value: Any, kind: str) -> Any:
    if kind == "bool":
        return bool(value)
    if value is None:
        return ""
    if kind == "list":
        return ", ".join(value)
    if kind == "json":
        value = value.to_dict() if hasattr(value, "to_dict") else value
        return json.dumps(value, ensure_ascii=False)
    return str(value)


class VariantPanel(w.VBox):
    """One variant: name, weight, remove button and the channel's content fields.

    Attributes:
        fields: content key (as in the content dict, e.g. ``'from'``) -> input widget.
        segments: for SMS, the live GSM-7/UCS-2 segment count of the text as typed.
    """

    def __init__(self, builder: CampaignBuilder, name: str):
        super().__init__()
        _css(self, "variant")
        self.builder = builder
        self.name = _text("variant-name", name, desc="variant")
        self.weight = _text("weight", "", placeholder="equal split", desc="weight")
        self.remove_button = _css(w.Button(description="remove", tooltip="remove this variant"),
                                  "remove-variant")  # fmt: skip
        self.fields: dict[str, w.Widget] = {}
        self.notes: dict[str, w.HTML] = {"name": _note("variant-name"), "weight": _note("weight")}
        self.kinds: dict[str, str] = {}
        self.required: set[str] = set()
        self.fields_box = _css(w.VBox(), "content")
        self.segments = _css(w.HTML(""), "segments")
        self.name.observe(self._changed, names="value")
        self.weight.observe(self._changed, names="value")
        self.remove_button.on_click(lambda _b: builder._remove_clicked(self))
        self.children = [w.HBox([w.VBox([self.name, self.notes["name"]]),
                                 w.VBox([self.weight, self.notes["weight"]]), self.remove_button]),
                         self.fields_box, self.segments]  # fmt: skip

    def set_channel(self, channel: str, values: dict[str, Any] | None = None) -> None:
        """Rebuild the fields for ``channel``, keeping values of fields of the same name."""
        old = {k: wd.value for k, wd in self.fields.items()}
        cls = CHANNELS[channel].content_cls
        back = {v: k for k, v in cls.ALIASES.items()}
        self.fields, self.kinds, self.required = {}, {}, set()
        self.notes = {"name": self.notes["name"], "weight": self.notes["weight"]}
        for f in dataclasses.fields(cls):
            key = back.get(f.name, f.name)
            kind = _field_kind(f)
            if values is not None:
                value = _to_text(values[key], kind) if key in values else _default_text(f, kind)
            elif key in old and self.kinds.get(key, kind) == kind and old[key] not in ("", None):
                value = old[key]
            else:
                value = _default_text(f, kind)
            label = key + (" *" if _required(f) else "")
            if kind == "bool":
                box: w.Widget = w.Checkbox(value=bool(value), description=label, indent=False)
            elif kind == "json" or key in _LONG:
                box = w.Textarea(value=value, description=label, layout=w.Layout(width="95%"),
                                 style={"description_width": "110px"})  # fmt: skip
            else:
                box = w.Text(value=value, description=label, layout=w.Layout(width="95%"),
                             style={"description_width": "110px"})  # fmt: skip
            box.add_class("el-cb-field")
            box.add_class(f"el-cb-field-{key}")
            box.observe(self._changed, names="value")
            self.fields[key] = box
            self.notes[key] = _note(key)
            self.kinds[key] = kind
            if _required(f):
                self.required.add(key)
        self.fields_box.children = tuple(
            w.VBox([box, self.notes[key]]) for key, box in self.fields.items()
        )
        self._update_segments()

    def content_dict(self) -> dict[str, Any]:
        """The content fields as the dict the channel's content model reads."""
        channel = self.builder.channel.value
        out: dict[str, Any] = {}
        for key, box in self.fields.items():
            kind, raw = self.kinds[key], box.value
            if kind == "bool":
                out[key] = bool(raw)
                continue
            if raw.strip() == "" and not (kind == "str" and key in self.required):
                continue  # empty optional field: the model's default
            if kind == "int":
                try:
                    out[key] = int(raw.strip())
                except ValueError:
                    raise ValidationError(f"{channel}.{key}", raw, "must be an integer") from None
            elif kind == "json":
                try:
                    out[key] = json.loads(raw)
                except json.JSONDecodeError as exc:
                    raise ValidationError(
                        f"{channel}.{key}", raw[:40], f"must be JSON ({exc.msg})"
                    ) from None
            elif kind == "list":
                out[key] = [p.strip() for p in raw.split(",") if p.strip()]
            else:
                out[key] = raw
        return out

    def variant(self) -> Variant:
        """This panel as a :class:`~engagelab.campaigns.Variant` (content not yet validated)."""
        weight: float | None = None
        if self.weight.value.strip():
            try:
                weight = float(self.weight.value)
            except ValueError:
                raise SpecError(f"variants[{self.index}].weight", self.weight.value,
                                "must be a number in (0, 1] or empty for an equal split") from None  # fmt: skip
        return Variant(self.name.value.strip(), self.content_dict(), weight)

    @property
    def index(self) -> int:
        return self.builder.variants.index(self)

    def load(self, variant: Variant, channel: str) -> None:
        self.name.value = variant.name
        self.weight.value = "" if variant.weight is None else repr(float(variant.weight))
        content = variant.content
        self.set_channel(
            channel, content.to_dict() if hasattr(content, "to_dict") else dict(content)
        )

    def _update_segments(self) -> None:
        box = self.fields.get("text")
        if self.builder.channel.value != "sms" or box is None:
            self.segments.value = ""
            return
        info = sms_info(box.value)
        plural = "" if info.segments == 1 else "s"
        self.segments.value = (
            f"{info.encoding} · {info.units} units · {info.segments} segment{plural}"
        )

    def _changed(self, _change: Any) -> None:
        self._update_segments()
        self.builder._changed(None)


class OptionRow(w.HBox):
    """A removable row of delivery inputs (a DND window or a frequency cap)."""

    css = ""

    def __init__(self, builder: CampaignBuilder, boxes: dict[str, w.Widget]):
        super().__init__()
        _css(self, f"{self.css}-row")
        self.builder = builder
        self.boxes = boxes
        self.remove_button = _css(w.Button(description="remove"), f"remove-{self.css}")
        for box in boxes.values():
            box.observe(builder._changed, names="value")
        self.remove_button.on_click(lambda _b: builder._remove_option(self))
        self.children = [*boxes.values(), self.remove_button]


class DndRow(OptionRow):
    """One do-not-disturb window: from, to, weekdays, hold or drop."""

    css = "dnd"

    def __init__(self, builder: CampaignBuilder, dnd: DND | None = None):
        d = dnd or DND()
        super().__init__(builder, {
            "start": _text("dnd-start", d.start, desc="from"),
            "end": _text("dnd-end", d.end, desc="to"),
            "days": _text("dnd-days", ", ".join(d.days), desc="days"),
            "action": _css(w.Dropdown(options=["hold", "drop"], value=d.action,
                                      description="action"), "dnd-action"),
        })  # fmt: skip

    def value(self) -> DND:
        b = self.boxes
        days = tuple(x.strip() for x in b["days"].value.split(",") if x.strip())
        return DND(b["start"].value.strip(), b["end"].value.strip(), days, b["action"].value)


class CapRow(OptionRow):
    """One frequency cap: at most ``max`` per ``window`` ``unit`` (rolling or calendar) on a channel."""

    css = "cap"

    def __init__(self, builder: CampaignBuilder, cap: FrequencyCap | None = None):
        c = cap or FrequencyCap()
        super().__init__(builder, {
            "max": _css(w.IntText(value=c.max, description="max"), "cap-max"),
            "window": _css(w.IntText(value=c.window, description="per"), "cap-window"),
            "unit": _css(w.Dropdown(options=["minutes", "hours", "days", "weeks", "months"],
                                    value=c.unit, description="unit"), "cap-unit"),
            "kind": _css(w.Dropdown(options=["rolling", "calendar"], value=c.kind,
                                    description="kind"), "cap-kind"),
            "channel": _text("cap-channel", c.channel, desc="channel"),
        })  # fmt: skip

    def value(self) -> FrequencyCap:
        b = self.boxes
        return FrequencyCap(b["max"].value, b["window"].value, b["unit"].value, b["kind"].value,
                            b["channel"].value.strip())  # fmt: skip


# --------------------------------------------------------------------------- builder
class CampaignBuilder(w.VBox):
    """Build a campaign: channel, content with a live per-user preview, audience with a
    live count, schedule, delivery options, labels, variants, control group; dry run; save.

    Args:
        ws: the :class:`~engagelab.Workspace`.
        campaign: start from this :class:`~engagelab.campaigns.Campaign` (or a saved
            campaign's id); default a one-time push to all users.
        logical_date: the dry run's logical date and the reference time of the
            audience's relative windows (default: just after the workspace's last event).
        debounce: seconds to wait before counting the audience (``0``: synchronously).

    Attributes:
        variants: the :class:`VariantPanel` widgets, in order.
        count: audience size (None while counting or on error); observable.
        spec_json: the current valid campaign as JSON ("" while invalid); observable.
        last_plan: the :class:`~engagelab.campaigns.Plan` of the last dry run.
        preview_result: the rendered message shown (a dict), or None on error.
    """

    count = traitlets.Int(None, allow_none=True)
    spec_json = traitlets.Unicode("")

    def __init__(self, ws: Any, campaign: Any = None, *, logical_date: Any = None,
                 debounce: float = 0.3):  # fmt: skip
        super().__init__()
        _css(self, "builder")
        self.ws = ws
        self.error_line = ErrorLine("el-cb-error")
        self._debouncer = Debouncer(debounce, self._counted)
        self._loading = False
        self._count_key: str | None = None
        self.last_plan: Any = None
        self.preview_result: dict[str, Any] | None = None
        self.preview_error: BaseException | None = None
        self.winner_test: Any = None  # kept from a loaded campaign (not edited here)
        self.best_time: Any = None  # delivery.best_time, kept from a loaded campaign
        ld = reference_time(ws) if logical_date is None else _when("logical_date", logical_date)
        self.users = user_count(ws)

        # identity, channel, variants
        self.id = _text("id", "campaign", desc="id")
        self.name = _text("name", "", desc="name")
        self.channel = _css(w.Dropdown(options=list(CHANNELS), value="push", description="channel"),
                            "channel")  # fmt: skip
        self.variants: list[VariantPanel] = []
        self.variants_tab = _css(w.Tab(), "variants")
        self.add_variant_button = _css(w.Button(description="+ variant"), "add-variant")
        self.control = _css(w.FloatText(value=0.0, description="control %"), "control")
        self.global_control = _css(w.Checkbox(value=True, description="respect global control group",
                                              indent=False), "global-control")  # fmt: skip
        self.labels = _text("labels", "", placeholder="Onboarding, Promo", desc="labels")

        # audience
        saved = ws.segments()["name"].tolist()
        self.audience_mode = _css(w.ToggleButtons(
            options=[("all users", "all"), ("saved segment", "saved"), ("build", "build")],
            value="all"), "audience-mode")  # fmt: skip
        self.segment = _css(w.Dropdown(options=saved, value=saved[0] if saved else None,
                                       description="segment"), "segment")  # fmt: skip
        self.segment_builder = SegmentBuilder(ws, at=ld, debounce=0)
        self.count_html = _css(w.HTML(""), "count")

        # schedule
        self.logical_date = _text("logical-date", ld.isoformat(), desc="logical date (dry run)")
        self.schedule_type = _css(w.Dropdown(options=list(TYPES), value="one_time",
                                             description="type"), "schedule-type")  # fmt: skip
        self.schedule: dict[str, w.Widget] = {
            "at": _text("at", "", placeholder="ISO time; empty = the logical date", desc="at"),
            "cron": _text("cron", "0 9 * * 1", desc="cron"),
            "timezone": _text("timezone", "UTC", desc="time zone"),
            "time": _text("time", "09:00", desc="local time"),
            "event": _text("event", "", desc="event"),
            "filters": _text("filters", "{}", desc="filters (JSON)"),
            "not_event": _text("not-event", "", desc="not followed by"),
            "within_hours": _text("within-hours", "24", desc="within hours"),
            "date_property": _text("date-property", "", desc="date property"),
            "offset_days": _text("offset-days", "0", desc="offset days"),
            "anniversary": _css(
                w.Checkbox(value=False, description="anniversary", indent=False), "anniversary"
            ),  # fmt: skip
        }

        # delivery
        self.user_timezone = _css(w.Checkbox(value=False, description="user time zone",
                                             indent=False), "user-timezone")  # fmt: skip
        self.if_passed = _css(w.Dropdown(options=["drop", "next_day"], value="drop",
                                         description="if passed"), "if-passed")  # fmt: skip
        self.default_timezone = _text("default-timezone", "UTC", desc="default zone")
        self.dnd_rows: list[DndRow] = []
        self.dnd_box = _css(w.VBox(), "dnds")
        self.add_dnd_button = _css(w.Button(description="+ DND window"), "add-dnd")
        self.cap_rows: list[CapRow] = []
        self.caps_box = _css(w.VBox(), "caps")
        self.add_cap_button = _css(w.Button(description="+ frequency cap"), "add-cap")
        self.ignore_caps = _css(w.Checkbox(value=False, description="ignore caps", indent=False),
                                "ignore-caps")  # fmt: skip
        self.ignore_workspace_caps = _css(
            w.Checkbox(value=False, description="ignore workspace caps", indent=False),
            "ignore-workspace-caps",
        )
        self.min_gap = _text("min-gap", "", placeholder="hours", desc="min gap")
        self.throttle = _text("throttle", "", placeholder="messages", desc="throttle")
        self.throttle_per = _css(w.Dropdown(options=[("per minute", "minute"),
                                                     ("per 5 minutes", "5 minutes")],
                                            value="minute"), "throttle-per")  # fmt: skip
        self.ttl = _text("ttl", "", placeholder="hours", desc="TTL")
        self.cut_off = _text("cut-off", "", placeholder="ISO time", desc="cut-off")
        self.send_time_policy = _text(
            "send-time-policy", "", placeholder="policy", desc="best time"
        )
        self.goal_event = _text("goal-event", "Charged", desc="goal event")
        self.goal_window = _text("goal-window", "24", desc="window hours")
        self.goal_revenue = _text("goal-revenue", "revenue", desc="revenue property")

        # preview, dry run, save
        self.preview_user = _css(w.Dropdown(options=[], description="preview for"), "user")
        self.preview_html = _css(w.HTML(""), "preview")
        self.dry_run_button = _css(w.Button(description="Dry run", tooltip="plan(ws, campaign, date)"),
                                   "dry-run")  # fmt: skip
        self.reach_html = _css(w.HTML(""), "reach")
        self.save_button = _css(w.Button(description="Save", tooltip="save_campaign(ws, campaign)"),
                                "save")  # fmt: skip
        self.save_status = _css(w.HTML(""), "save-status")
        self.dry_run_note = StaleNote("el-cb-dry-run-stale", (self.reach_html,))
        self._dry_run_key: str | None = None
        self.notes: dict[str, w.HTML] = {
            key: _note(key)
            for key in ("id", "name", "channel", "control_percent", "labels", "audience",
                        "logical_date", "schedule", *(f"schedule.{k}" for k in self.schedule),
                        "delivery", "delivery.default_timezone", "delivery.if_passed",
                        "delivery.dnd", "delivery.caps", "delivery.min_gap_hours",
                        "delivery.throttle_per_minute", "delivery.ttl_hours", "delivery.cut_off",
                        "delivery.send_time_policy", "goal.event", "goal.window_hours",
                        "goal.revenue_property", "variants")
        }  # fmt: skip
        # one input for both throttle periods: its errors show under it
        self.notes["delivery.throttle_per_5_minutes"] = self.notes["delivery.throttle_per_minute"]
        n = self._with_note

        watched = [self.id, self.name, self.control, self.global_control, self.labels,
                   self.audience_mode, self.segment, self.logical_date, self.schedule_type,
                   *self.schedule.values(), self.user_timezone, self.if_passed,
                   self.default_timezone, self.ignore_caps, self.ignore_workspace_caps, self.min_gap,
                   self.throttle, self.throttle_per, self.ttl, self.cut_off, self.send_time_policy, self.goal_event,
                   self.goal_window, self.goal_revenue]  # fmt: skip
        for wd in watched:
            wd.observe(self._changed, names="value")
        self.channel.observe(self._channel_changed, names="value")
        self.variants_tab.observe(self._changed, names="selected_index")
        self.preview_user.observe(self._preview_changed, names="value")
        self.segment_builder.observe(self._changed, names="spec_json")
        self.add_variant_button.on_click(self._add_clicked)
        self.add_dnd_button.on_click(self._add_dnd_clicked)
        self.add_cap_button.on_click(self._add_cap_clicked)
        self.dry_run_button.on_click(self._dry_run_clicked)
        self.save_button.on_click(self._save_clicked)

        self._schedule_boxes = {k: n(f"schedule.{k}", v) for k, v in self.schedule.items()}
        self.schedule_box = _css(w.VBox(list(self._schedule_boxes.values())), "schedule")
        self.audience_box = w.VBox()
        self.children = [
            w.HBox([n("id", self.id), n("name", self.name), n("channel", self.channel)]),
            w.HTML("<b>Content</b>"),
            self.variants_tab,
            self.notes["variants"],
            w.HBox(
                [self.add_variant_button, n("control_percent", self.control), self.global_control]
            ),  # fmt: skip
            n("labels", self.labels),
            w.HTML("<b>Preview</b>"),
            self.preview_user,
            self.preview_html,
            w.HTML("<b>Audience</b>"),
            self.audience_mode,
            self.audience_box,
            self.notes["audience"],
            self.count_html,
            w.HTML("<b>Schedule</b>"),
            w.HBox([n("schedule", self.schedule_type), n("logical_date", self.logical_date)]),
            self.schedule_box,
            w.HTML("<b>Delivery</b>"),
            w.HBox(
                [
                    self.user_timezone,
                    n("delivery.if_passed", self.if_passed),
                    n("delivery.default_timezone", self.default_timezone),
                ]
            ),  # fmt: skip
            self.dnd_box,
            self.notes["delivery.dnd"],
            self.add_dnd_button,
            self.caps_box,
            self.notes["delivery.caps"],
            w.HBox([self.add_cap_button, self.ignore_caps, self.ignore_workspace_caps]),
            w.HBox(
                [
                    n("delivery.min_gap_hours", self.min_gap),
                    n("delivery.throttle_per_minute", w.HBox([self.throttle, self.throttle_per])),
                    n("delivery.ttl_hours", self.ttl),
                    n("delivery.cut_off", self.cut_off),
                    n("delivery.send_time_policy", self.send_time_policy),
                ]
            ),  # fmt: skip
            self.notes["delivery"],
            w.HBox(
                [
                    n("goal.event", self.goal_event),
                    n("goal.window_hours", self.goal_window),
                    n("goal.revenue_property", self.goal_revenue),
                ]
            ),  # fmt: skip
            self.error_line,
            w.HBox([self.dry_run_button, self.save_button, self.save_status]),
            self.dry_run_note,
            self.reach_html,
        ]
        self._load(campaign)

    # ------------------------------------------------------------------ public
    @property
    def campaign(self) -> Campaign:
        """The campaign the inputs describe now (raises the current error if invalid)."""
        labels = tuple(p.strip() for p in self.labels.value.split(",") if p.strip())
        return Campaign(
            id=self.id.value.strip(),
            name=self.name.value,
            channel=self.channel.value,
            variants=tuple(v.variant() for v in self.variants),
            schedule=self._schedule(),
            audience=self.audience,
            control_percent=float(self.control.value),
            respect_global_control=bool(self.global_control.value),
            labels=labels,
            goal=Goal(
                self.goal_event.value.strip(),
                _number("goal.window_hours", self.goal_window.value),
                self.goal_revenue.value.strip() or None,
            ),  # fmt: skip
            delivery=self._delivery(),
            winner_test=self.winner_test,
        )

    @property
    def audience(self) -> Any:
        """The audience: None (all users), a saved segment's name, or a built Segment."""
        mode = self.audience_mode.value
        if mode == "saved":
            if not self.segment.value:
                raise SpecError("audience", None, "must be a saved segment (none saved yet)")
            return self.segment.value
        if mode == "build":
            return self.segment_builder.segment
        return None

    @property
    def at(self) -> dt.datetime:
        """The logical date of the dry run (UTC)."""
        return _when("logical_date", self.logical_date.value)

    @property
    def error(self) -> str:
        """The error shown in the widget ("" when none)."""
        return self.error_line.text

    def field_error(self, field: str) -> str:
        """The error shown next to input ``field`` (``'schedule.cron'``, ``'id'``,
        ``'variants[0].title'``; "" when none)."""
        m = re.fullmatch(r"variants\[(\d+)\]\.(\w+)", field)
        note = self.variants[int(m.group(1))].notes.get(m.group(2)) if m else self.notes.get(field)
        if note is None:
            raise ValidationError("field", field, "must name an input of the builder")
        return html.unescape(re.sub(r"<[^>]+>", "", note.value)).removeprefix("⚠ ").strip()

    @property
    def dry_run_stale(self) -> bool:
        """True when the dry run shown is for another campaign or logical date."""
        return self.dry_run_note.stale

    def add_variant(self, name: str | None = None) -> VariantPanel:
        """Add a variant (its content copied from the selected one) and refresh."""
        names = {v.name.value for v in self.variants}
        if name is None:
            name = next(c for c in (chr(65 + i) for i in range(26)) if c not in names)
        panel = VariantPanel(self, name)
        src = self._selected()
        values = src.content_dict() if src is not None else None
        panel.set_channel(self.channel.value, None)
        if values:
            for k, v in values.items():
                if k in panel.fields:
                    panel.fields[k].value = _to_text(v, panel.kinds[k])
        self.variants.append(panel)
        self._sync_tabs(len(self.variants) - 1)
        self._refresh()
        return panel

    def remove_variant(self, panel: VariantPanel | int) -> None:
        """Remove a variant (the panel or its index) and refresh."""
        target = self.variants[panel] if isinstance(panel, int) else panel
        if len(self.variants) == 1:
            raise SpecError("variants", 1, "must keep at least one variant")
        self.variants.remove(target)
        target.close()
        self._sync_tabs(0)
        self._refresh()

    def add_dnd(self, dnd: DND | None = None) -> DndRow:
        """Add a do-not-disturb window row (default 22:00-08:00 every day, hold) and refresh."""
        row = DndRow(self, dnd)
        self.dnd_rows.append(row)
        self.dnd_box.children = tuple(self.dnd_rows)
        self._refresh()
        return row

    def add_cap(self, cap: FrequencyCap | None = None) -> CapRow:
        """Add a frequency cap row (default 1 per rolling day, all channels) and refresh."""
        row = CapRow(self, cap)
        self.cap_rows.append(row)
        self.caps_box.children = tuple(self.cap_rows)
        self._refresh()
        return row

    def load(self, campaign: Any) -> None:
        """Replace every input with ``campaign`` (a Campaign or a saved campaign's id)."""
        self._load(campaign)

    def dry_run(self) -> Any:
        """``plan(ws, campaign, logical_date)``: shown in the widget and returned."""
        c = self.campaign
        p = plan(self.ws, c, self.at)
        self.last_plan = p
        self._dry_run_key = self._key(c)
        self.dry_run_note.clear()
        summary = p.summary()
        self.reach_html.value = (
            f"<div class='el-cb-reach-line'>reach <b>{p.reach:,}</b> of {len(p.frame):,} "
            f"qualifying users</div>" + summary.to_html(index=False, classes="el-cb-reasons")
        )
        return p

    def save(self, status: str = "draft") -> Campaign:
        """``save_campaign(ws, campaign, status)``."""
        c = self.campaign
        save_campaign(self.ws, c, status)
        self.save_status.value = f"saved <b>{html.escape(c.id)}</b>"
        return c

    def wait(self, timeout: float = 30) -> int | None:
        """Block until the audience count is shown; return it."""
        if not self._debouncer.wait(timeout):
            raise TimeoutError(f"the audience count did not finish within {timeout} s")
        return self.count

    # --------------------------------------------------------------- internals
    def _with_note(self, key: str, widget: w.Widget) -> w.Widget:
        return w.VBox([widget, self.notes[key]], layout=w.Layout(width="auto"))

    def _key(self, c: Campaign | None) -> str | None:
        try:
            return json.dumps([c.to_json() if c else None, self.at.isoformat()])
        except Exception:
            return None

    def _note_for(self, field: str) -> w.HTML | None:
        """The note under the input that ``field`` (an error's field name) refers to."""
        m = re.match(r"variants\[(\d+)\]\.(?:content\.\w+\.)?(\w+)", field)
        if m and int(m.group(1)) < len(self.variants):
            return self.variants[int(m.group(1))].notes.get(m.group(2))
        panel = self._selected()
        m = re.match(r"(\w+)\.(\w+)$", field)
        if m and panel is not None and m.group(1) == self.channel.value:
            return panel.notes.get(m.group(2))  # a content field the panel could not parse
        if field.startswith("variants"):
            return self.notes["variants"]
        key = field
        while key:
            base = re.sub(r"\[\d+\]", "", key)
            if base in self.notes:
                return self.notes[base]
            key = key.rpartition(".")[0]
        return None

    def _clear_notes(self) -> None:
        for note in self.notes.values():
            _hide_note(note)
        for v in self.variants:
            for note in v.notes.values():
                _hide_note(note)

    def _show_error(self, exc: BaseException) -> None:
        """The error under the field it names (the error line otherwise)."""
        self._clear_notes()
        self.error_line.show(exc)
        field = getattr(exc, "field", None)
        note = self._note_for(str(field)) if field else None
        if note is not None:
            _show_note(note, self.error_line.text)
            self.error_line.layout.display = "none"  # shown at its field, not twice

    def _schedule(self) -> Schedule:
        s, t = self.schedule, self.schedule_type.value
        use = set(_SCHEDULE_FIELDS[t])
        kw: dict[str, Any] = {"type": t, "timezone": s["timezone"].value.strip()}
        if "at" in use and s["at"].value.strip():
            kw["at"] = s["at"].value.strip()
        if "cron" in use:
            kw["cron"] = s["cron"].value.strip()
        if "event" in use:
            kw["event"] = s["event"].value.strip()
        if "filters" in use:
            try:
                kw["filters"] = json.loads(s["filters"].value or "{}")
            except json.JSONDecodeError as exc:
                raise SpecError(
                    "schedule.filters", s["filters"].value, f"must be JSON ({exc.msg})"
                ) from None
        if "not_event" in use:
            kw["not_event"] = s["not_event"].value.strip()
            kw["within_hours"] = _number("schedule.within_hours", s["within_hours"].value)
        if "time" in use:
            kw["time"] = s["time"].value.strip()
        if "date_property" in use:
            kw["date_property"] = s["date_property"].value.strip()
            kw["offset_days"] = _int("schedule.offset_days", s["offset_days"].value)
            kw["anniversary"] = bool(s["anniversary"].value)
        return Schedule(**kw)

    def _delivery(self) -> Delivery:
        dnd = tuple(row.value() for row in self.dnd_rows)
        caps = tuple(row.value() for row in self.cap_rows)
        throttle = self.throttle.value.strip()
        per5 = self.throttle_per.value == "5 minutes"
        name = "delivery.throttle_per_5_minutes" if per5 else "delivery.throttle_per_minute"
        rate = _int(name, throttle) if throttle else None
        return Delivery(
            user_timezone=bool(self.user_timezone.value),
            if_passed=self.if_passed.value,
            default_timezone=self.default_timezone.value.strip(),
            dnd=dnd,
            caps=caps,
            min_gap_hours=_number("delivery.min_gap_hours", self.min_gap.value, optional=True),
            ignore_caps=bool(self.ignore_caps.value),
            ignore_workspace_caps=bool(self.ignore_workspace_caps.value),
            throttle_per_minute=None if per5 else rate,
            throttle_per_5_minutes=rate if per5 else None,
            ttl_hours=_number("delivery.ttl_hours", self.ttl.value, optional=True),
            cut_off=self.cut_off.value.strip() or None,
            send_time_policy=self.send_time_policy.value.strip() or None,
            best_time=self.best_time,
        )

    def _load(self, campaign: Any) -> None:
        if isinstance(campaign, str):
            campaign = load_campaign(self.ws, campaign)
        if campaign is not None and not isinstance(campaign, Campaign):
            raise SpecError(
                "campaign", type(campaign).__name__, "must be a Campaign, a saved id or None"
            )
        c = campaign or Campaign(id="campaign", channel="push",
                                 variants=(Variant("A", {"title": "Hello", "body": "Hi"}),))  # fmt: skip
        d = c.delivery
        self._loading = True
        try:
            self.id.value, self.name.value = c.id, c.name
            self.channel.value = c.channel
            for old in self.variants:
                old.close()
            self.variants = []
            for v in c.variants:
                panel = VariantPanel(self, v.name)
                panel.load(v, c.channel)
                self.variants.append(panel)
            self._sync_tabs(0)
            self.control.value = float(c.control_percent)
            self.global_control.value = c.respect_global_control
            self.labels.value = ", ".join(c.labels)
            self.winner_test = c.winner_test
            self.best_time = c.delivery.best_time
            aud = c.audience
            if aud is None:
                self.audience_mode.value = "all"
            elif isinstance(aud, str):
                if aud not in self.segment.options:
                    self.segment.options = [*self.segment.options, aud]
                self.segment.value = aud
                self.audience_mode.value = "saved"
            else:
                self.segment_builder.load(aud)
                self.audience_mode.value = "build"
            s = c.schedule
            self.schedule_type.value = s.type
            f = self.schedule
            f["at"].value = s.at.isoformat() if s.at else ""
            f["cron"].value = s.cron or f["cron"].value
            f["timezone"].value = s.timezone
            f["time"].value = s.time
            f["event"].value = s.event or ""
            f["filters"].value = json.dumps(dict(s.filters))
            f["not_event"].value = s.not_event or ""
            f["within_hours"].value = f"{s.within_hours:g}" if s.within_hours else "24"
            f["date_property"].value = s.date_property or ""
            f["offset_days"].value = str(s.offset_days)
            f["anniversary"].value = s.anniversary
            self.user_timezone.value, self.if_passed.value = d.user_timezone, d.if_passed
            self.default_timezone.value = d.default_timezone
            self._set_options(d.dnd, d.caps)
            self.ignore_caps.value = d.ignore_caps
            self.ignore_workspace_caps.value = d.ignore_workspace_caps
            self.min_gap.value = "" if d.min_gap_hours is None else f"{d.min_gap_hours:g}"
            thr = d.throttle
            self.throttle.value = "" if thr is None else str(thr[0])
            self.throttle_per.value = "5 minutes" if thr is not None and thr[1] == 300 else "minute"
            self.ttl.value = "" if d.ttl_hours is None else f"{d.ttl_hours:g}"
            self.cut_off.value = d.cut_off.isoformat() if d.cut_off else ""
            self.send_time_policy.value = d.send_time_policy or ""
            g = c.goal
            self.goal_event.value, self.goal_window.value = g.event, f"{g.window_hours:g}"
            self.goal_revenue.value = g.revenue_property or ""
        finally:
            self._loading = False
        self._refresh()

    def _set_options(self, dnds: tuple[DND, ...], caps: tuple[FrequencyCap, ...]) -> None:
        for row in (*self.dnd_rows, *self.cap_rows):
            row.close()
        self.dnd_rows = [DndRow(self, d) for d in dnds]
        self.cap_rows = [CapRow(self, c) for c in caps]
        self.dnd_box.children = tuple(self.dnd_rows)
        self.caps_box.children = tuple(self.cap_rows)

    def _remove_option(self, row: OptionRow) -> None:
        rows: list[Any] = self.dnd_rows if isinstance(row, DndRow) else self.cap_rows
        rows.remove(row)
        self.dnd_box.children = tuple(self.dnd_rows)
        self.caps_box.children = tuple(self.cap_rows)
        row.close()
        self._changed(None)

    def _sync_tabs(self, selected: int) -> None:
        self.variants_tab.unobserve(self._changed, names="selected_index")
        self.variants_tab.children = tuple(self.variants)
        for i, v in enumerate(self.variants):
            self.variants_tab.set_title(i, v.name.value or f"#{i + 1}")
        self.variants_tab.selected_index = selected if self.variants else None
        self.variants_tab.observe(self._changed, names="selected_index")

    def _selected(self) -> VariantPanel | None:
        i = self.variants_tab.selected_index
        return (
            self.variants[i] if self.variants and i is not None and i < len(self.variants) else None
        )

    @guarded(_error_line)
    def _channel_changed(self, _change: Any) -> None:
        if self._loading:
            return
        for v in self.variants:
            v.set_channel(self.channel.value)
        self._refresh()

    @guarded(_error_line)
    def _changed(self, _change: Any) -> None:
        if not self._loading:
            self._refresh()

    @guarded(_error_line)
    def _preview_changed(self, _change: Any) -> None:
        if not self._loading:
            self._update_preview()

    @guarded(_error_line)
    def _add_clicked(self, _button: Any) -> None:
        self.add_variant()

    @guarded(_error_line)
    def _remove_clicked(self, panel: VariantPanel) -> None:
        self.remove_variant(panel)

    @guarded(_error_line)
    def _add_dnd_clicked(self, _button: Any) -> None:
        self.add_dnd()

    @guarded(_error_line)
    def _add_cap_clicked(self, _button: Any) -> None:
        self.add_cap()

    @guarded(_error_line)
    def _dry_run_clicked(self, _button: Any) -> None:
        self.reach_html.value = ""
        self.last_plan, self._dry_run_key = None, None
        self.dry_run_note.clear()
        try:
            self.dry_run()
        except Exception as exc:
            self._show_error(exc)

    @guarded(_error_line)
    def _save_clicked(self, _button: Any) -> None:
        self.save_status.value = ""
        try:
            self.save()
        except Exception as exc:
            self._show_error(exc)

    def _refresh(self) -> None:
        """Validate the spec, show the audience inputs, the preview; recount when debounced."""
        self.save_status.value = ""
        for i, v in enumerate(self.variants):
            self.variants_tab.set_title(i, v.name.value or f"#{i + 1}")
        use = set(_SCHEDULE_FIELDS[self.schedule_type.value])
        for key, box in self.schedule.items():
            box.layout.display = None if key in use else "none"
        mode = self.audience_mode.value
        self.audience_box.children = (
            [self.segment] if mode == "saved" else [self.segment_builder] if mode == "build" else []
        )
        c = None
        try:
            c = self.campaign
            _ = self.at  # the dry run's logical date must parse too
            self.error_line.clear()
            self._clear_notes()
            self.spec_json = c.to_json()
        except Exception as exc:
            self.spec_json = ""
            c = None
            self._show_error(exc)
        if self._dry_run_key is not None:
            if c is not None and self._key(c) == self._dry_run_key:
                self.dry_run_note.clear()
            else:
                self.dry_run_note.mark("the campaign changed since this dry run; run it again")
        self._request_count()
        self._update_preview()

    def _request_count(self) -> None:
        try:
            audience, at = self.audience, self.at
        except Exception:
            self._debouncer.cancel()
            self._count_key = None
            self.count = None
            self.count_html.value = "<b>—</b> users"
            return
        key = json.dumps([audience.to_dict() if hasattr(audience, "to_dict") else audience,
                          at.isoformat()], sort_keys=True, default=str)  # fmt: skip
        if key == self._count_key:
            return
        self._count_key = key
        self.count = None
        self.count_html.value = "<b>counting…</b>"

        def work() -> tuple[int, list[str]]:
            if audience is None:
                ids = user_ids(self.ws)
                return len(ids), ids[:200]
            ids = self.ws.user_ids(audience, at=at)
            return len(ids), ids[:200]

        self._debouncer.request(work)

    def _counted(self, result: Any, error: BaseException | None) -> None:
        if error is not None:
            self._count_key = None
            self.count = None
            self.count_html.value = "<b>—</b> users"
            self._show_error(error)
            return
        n, ids = result
        self.count = int(n)
        self.count_html.value = f"audience <b>{n:,}</b> of {self.users:,} users"
        current = self.preview_user.value
        self._loading = True
        try:
            self.preview_user.options = ids
            self.preview_user.value = current if current in ids else (ids[0] if ids else None)
        finally:
            self._loading = False
        self._update_preview()

    def _update_preview(self) -> None:
        self.preview_result, self.preview_error = None, None
        panel, uid = self._selected(), self.preview_user.value
        if panel is None or uid is None:
            self.preview_html.value = "<i>no user to preview</i>"
            return
        try:
            content = content_from_dict(self.channel.value, panel.content_dict())
            content.validate_variables(known_variables(self.ws, event=False))
            out = preview(content, profile_of(self.ws, uid))
        except Exception as exc:
            self.preview_error = exc
            self.preview_html.value = (
                "<div class='el-cb-preview-error' style='color:#b00020'>&#9888; "
                f"{html.escape(type(exc).__name__)}: {html.escape(str(exc))}</div>"
            )
            return
        self.preview_result = out
        rows = "".join(
            f"<tr><th style='text-align:left'>{html.escape(str(k))}</th>"
            f"<td class='el-cb-preview-{html.escape(str(k))}'>{html.escape(_show(v))}</td></tr>"
            for k, v in out.items()
        )
        self.preview_html.value = (
            f"<div>variant <b>{html.escape(panel.name.value)}</b> for user "
            f"<code>{html.escape(str(uid))}</code></div><table>{rows}</table>"
        )

    def __repr__(self) -> str:
        try:
            text = repr(self.campaign)
        except Exception as exc:
            text = f"invalid: {exc}"
        return f"CampaignBuilder({text}; audience={self.count})"


def profile_of(ws: Any, user_id: str) -> dict[str, Any]:
    """The profile record of ``user_id`` as the send path renders it (missing values None)."""
    rec = profile(ws, user_id)
    return {"user_id": user_id} if rec is None else rec


EMPTY = "(empty)"


def _show(v: Any) -> str:
    """A preview value as text: strings as they are, empty values as "(empty)", lists
    comma-separated and mappings as ``key: value`` pairs (never a raw ``null``)."""
    if v is None or v == "" or v == [] or v == {} or v == ():
        return EMPTY
    if isinstance(v, str):
        return v
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, dict):
        return "; ".join(f"{k}: {_show(x)}" for k, x in v.items())
    if isinstance(v, list | tuple):
        return ", ".join(_show(x) for x in v)
    return str(v)


def _when(name: str, value: Any) -> dt.datetime:
    from engagelab.validate import check_datetime

    try:
        when = check_datetime(name, value)
    except ValidationError as exc:
        raise SpecError(exc.field, exc.value, exc.allowed, message=str(exc)) from None
    if when is None:
        raise SpecError(name, value, "must be a time-zone-aware date-time")
    return when


def _number(name: str, text: str, *, optional: bool = False) -> Any:
    if optional and not text.strip():
        return None
    try:
        return float(text)
    except ValueError:
        raise SpecError(name, text, "must be a number") from None


def _int(name: str, text: str) -> int:
    try:
        return int(text.strip())
    except ValueError:
        raise SpecError(name, text, "must be an integer") from None
