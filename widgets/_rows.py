"""One condition row of the :class:`~engagelab.widgets.SegmentBuilder`.

A row picks a kind (user property, did event, did not do event, was sent label, near
a point, in / not in a saved segment) and shows that kind's inputs. It turns its
inputs into a core :class:`~engagelab.segments.Condition` (:meth:`ConditionRow.condition`)
and back (:func:`row_state`). Conditions the row cannot edit (built in code, e.g. an
event filter with ``where=`` or a date-range window) are kept as they are in an
"as given" row, so any segment can be loaded and the rest edited around it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import ipywidgets as w

from engagelab.errors import SpecError
from engagelab.segments import (
    Condition,
    DidEvent,
    Geofence,
    InSegment,
    Not,
    PropertyFilter,
    SentLabel,
    did,
    in_segment,
    near,
    not_in_segment,
    was_sent,
)

from ._text import format_value, parse_value

__all__ = ["COUNT_MODES", "KINDS", "OPERATOR_LABELS", "ConditionRow", "row_state"]

#: (label, key) of the kinds a row can be.
KINDS = (
    ("user property", "property"),
    ("did event", "did"),
    ("did not do event", "did_not"),
    ("was sent label", "sent"),
    ("near a point", "near"),
    ("in saved segment", "in_segment"),
    ("not in saved segment", "not_in_segment"),
)
_GIVEN = ("as given in code", "given")

#: (label, canonical operator) in the operator dropdown.
OPERATOR_LABELS = (
    ("=", "="), ("≠", "!="), ("<", "<"), ("≤", "<="), (">", ">"), ("≥", ">="),
    ("between", "between"), ("in", "in"), ("contains", "contains"),
    ("starts with", "starts_with"), ("matches regex", "matches"),
    ("does not match", "not_matches"), ("exists", "exists"), ("not exists", "not_exists"),
)  # fmt: skip
_NO_VALUE = ("exists", "not_exists")
_PLACEHOLDER = {"between": "low, high", "in": "a, b, c", "matches": "regular expression (RE2)",
                "not_matches": "regular expression (RE2)"}  # fmt: skip

#: Count modes of "did event": (label, key).
COUNT_MODES = (("at least", "at_least"), ("at most", "at_most"), ("exactly", "exactly"),
               ("between", "between"))  # fmt: skip


def _lay(width: str) -> w.Layout:
    return w.Layout(width=width)


def _css(widget: w.Widget, name: str) -> w.Widget:
    widget.add_class(f"el-sb-{name}")
    return widget


class ConditionRow(w.HBox):
    """A row of inputs that describes one condition.

    Args:
        options: ``{'columns': [...], 'events': [...], 'event_columns': [...], 'labels': [...],
            'saved': [...]}`` to fill the dropdowns.
        kinds: ``{'profiles': {column: value kind}, 'events': {column: value kind}}``, used
            to read the value text.
        on_change: called (no arguments) after any input changes.
        on_remove: called with the row when its remove button is clicked.
    """

    def __init__(
        self,
        options: Mapping[str, Sequence[str]],
        kinds: Mapping[str, Mapping[str, str]],
        on_change: Callable[[], None],
        on_remove: Callable[[ConditionRow], None],
    ):
        super().__init__()
        _css(self, "row")
        self.kinds = {table: dict(cols) for table, cols in kinds.items()}
        self._on_change = on_change
        self._given: Condition | None = None
        self._muted = False
        self.kind = _css(w.Dropdown(options=KINDS, value="did", layout=_lay("170px")), "kind")
        # user property
        self.column = _css(
            w.Dropdown(options=list(options.get("columns", ())), layout=_lay("170px")), "column"
        )
        self.op = _css(w.Dropdown(options=OPERATOR_LABELS, value="=", layout=_lay("130px")), "op")
        self.value = _css(w.Text(value="", placeholder="value", layout=_lay("170px")), "value")
        # did / did not do
        self.event = _css(
            w.Dropdown(options=list(options.get("events", ())), layout=_lay("170px")), "event"
        )
        self.where_column = _css(
            w.Dropdown(options=_where_options(options), value="", layout=_lay("130px")),
            "where-column",
        )
        self.where_op = _css(
            w.Dropdown(options=OPERATOR_LABELS, value="=", layout=_lay("130px")), "where-op"
        )
        self.where_value = _css(
            w.Text(value="", placeholder="value", layout=_lay("130px")), "where-value"
        )
        self.count_mode = _css(
            w.Dropdown(options=COUNT_MODES, value="at_least", layout=_lay("95px")), "count-mode"
        )
        self.times = _css(w.BoundedIntText(value=1, min=0, max=10**9, layout=_lay("70px")), "times")
        self.times_max = _css(
            w.BoundedIntText(value=2, min=0, max=10**9, layout=_lay("70px")), "times-max"
        )
        self.days = _css(w.BoundedIntText(value=0, min=0, max=36_500, layout=_lay("70px")), "days")
        # was sent label
        self.label = _css(w.Combobox(options=list(options.get("labels", ())), placeholder="label",
                                     ensure_option=False, layout=_lay("170px")), "label")  # fmt: skip
        # near a point
        self.lat = _css(
            w.BoundedFloatText(value=0.0, min=-90, max=90, description="lat", layout=_lay("150px")),
            "lat",
        )
        self.lon = _css(
            w.BoundedFloatText(
                value=0.0, min=-180, max=180, description="lon", layout=_lay("150px")
            ),
            "lon",
        )
        self.radius = _css(
            w.BoundedFloatText(
                value=10.0, min=0, max=20_100, description="km", layout=_lay("150px")
            ),
            "radius",
        )
        # saved segment
        self.saved = _css(
            w.Dropdown(options=list(options.get("saved", ())), layout=_lay("170px")), "saved"
        )
        self.given = _css(w.HTML(value=""), "given")
        self.remove = _css(w.Button(description="✕", tooltip="remove this condition",
                                    layout=_lay("36px")), "remove")  # fmt: skip
        self.remove.on_click(lambda _b: on_remove(self))
        for widget in (self.kind, self.column, self.op, self.value, self.event, self.where_column,
                       self.where_op, self.where_value, self.count_mode, self.times,
                       self.times_max, self.days, self.label, self.lat, self.lon, self.radius,
                       self.saved):  # fmt: skip
            widget.observe(self._changed, names="value")
        self._layout()

    def close(self) -> None:
        """Close the row and every input it owns (their comms too)."""
        for widget in (self.kind, self.column, self.op, self.value, self.event, self.where_column,
                       self.where_op, self.where_value, self.count_mode, self.times,
                       self.times_max, self.days, self.label, self.lat, self.lon, self.radius,
                       self.saved, self.given, self.remove):  # fmt: skip
            widget.close()
        super().close()

    # ----------------------------------------------------------------- view
    def _parts(self) -> list[w.Widget]:
        text = lambda s: w.HTML(value=s)  # noqa: E731
        days = [text("in the last"), self.days, text("days (0 = any time)")]
        where = [text("where"), self.where_column]
        if self.where_column.value:
            where += [self.where_op, self.where_value]
        kind = self.kind.value
        if kind == "property":
            return [self.column, self.op, self.value]
        if kind == "did":
            times = (
                [self.times, text("and"), self.times_max]
                if self.count_mode.value == "between"
                else [self.times]
            )
            return [self.event, *where, self.count_mode, *times, text("times,"), *days]
        if kind == "did_not":
            return [self.event, *where, *days]
        if kind == "sent":
            return [self.label, *days]
        if kind == "near":
            return [self.lat, self.lon, self.radius, text("by profile location")]
        if kind in ("in_segment", "not_in_segment"):
            return [self.saved]
        return [self.given]

    def _layout(self) -> None:
        for op, value in ((self.op.value, self.value), (self.where_op.value, self.where_value)):
            value.disabled = op in _NO_VALUE
            value.placeholder = _PLACEHOLDER.get(op, "value")
        self.children = [self.kind, *self._parts(), self.remove]

    def _changed(self, change: dict[str, Any]) -> None:
        if change["owner"] in (self.kind, self.op, self.count_mode, self.where_column,
                               self.where_op):  # fmt: skip
            self._layout()
        if not self._muted:
            self._on_change()

    def set_options(self, options: Mapping[str, Sequence[str]]) -> None:
        """Refill the dropdowns, keeping the current choices that still exist."""
        for key, widget in (
            ("columns", self.column),
            ("events", self.event),
            ("saved", self.saved),
        ):
            if key in options:
                keep = widget.value
                widget.options = list(options[key])
                if keep in widget.options:
                    widget.value = keep
        if "labels" in options:
            self.label.options = list(options["labels"])
        if "event_columns" in options:
            keep = self.where_column.value
            self.where_column.options = _where_options(options)
            if keep in [v for _, v in self.where_column.options]:
                self.where_column.value = keep

    # ----------------------------------------------------------------- model
    def condition(self) -> Condition:
        """The condition these inputs describe (raises :class:`SpecError` if invalid)."""
        kind = self.kind.value
        if kind == "given":
            assert self._given is not None
            return self._given
        if kind == "property":
            column, op = self.column.value, self.op.value
            if column is None:
                raise SpecError("column", None, "must be a profile column (the workspace has none)")
            value = parse_value(column, self.kinds["profiles"].get(column), op, self.value.value)
            return PropertyFilter(column, op, value)
        window = {"within_days": self.days.value} if self.days.value else {}
        if kind == "did":
            mode, n = self.count_mode.value, self.times.value
            counts = {"at_least": {"at_least": n}, "at_most": {"at_least": 0, "at_most": n},
                      "exactly": {"exactly": n},
                      "between": {"at_least": n, "at_most": self.times_max.value}}[mode]  # fmt: skip
            return did(_event(self.event.value), **counts, **window, where=self._where())
        if kind == "did_not":
            return ~did(_event(self.event.value), **window, where=self._where())
        if kind == "sent":
            return was_sent(self.label.value.strip(), **window)
        if kind == "near":
            return near(self.lat.value, self.lon.value, self.radius.value)
        name = self.saved.value
        if name is None:
            raise SpecError(
                "segment", None, "must be a saved segment (none saved yet: use Save as)"
            )
        return in_segment(name) if kind == "in_segment" else not_in_segment(name)

    def _where(self) -> list[PropertyFilter]:
        column, op = self.where_column.value, self.where_op.value
        if not column:
            return []
        kind = self.kinds.get("events", {}).get(column)
        return [PropertyFilter(column, op, parse_value(column, kind, op, self.where_value.value))]

    def load(self, condition: Condition) -> None:
        """Set the inputs from ``condition`` (an uneditable one becomes an "as given" row)."""
        state = row_state(condition)
        self._muted = True
        try:
            if state is None:
                self._given = condition
                self.kind.options = (*KINDS, _GIVEN)
                self.given.value = f"<code>{_escape(condition.describe())}</code> (edit it in code)"
                self.kind.value = "given"
            else:
                for key, value in state.items():
                    widget = getattr(self, key)
                    if key in ("column", "event", "saved") and value not in widget.options:
                        widget.options = [*widget.options, value]
                    if key == "where_column" and value not in [v for _, v in widget.options]:
                        widget.options = [*widget.options, (value, value)]
                    widget.value = value
        finally:
            self._muted = False
        self._layout()


def _escape(text: str) -> str:
    import html

    return html.escape(text)


def _where_options(options: Mapping[str, Sequence[str]]) -> list[tuple[str, str]]:
    return [("(any)", ""), *((c, c) for c in options.get("event_columns", ()))]


def _event(name: Any) -> str:
    if name is None:
        raise SpecError("event", None, "must be an event name (the workspace has no events)")
    return name


def _days(window: Any) -> int | None:
    """Days of a "last N days" window (0 for none); None if the window is a date range."""
    if window is None:
        return 0
    return window.last_days


def _where_state(where: tuple[PropertyFilter, ...]) -> dict[str, Any] | None:
    """Row inputs of an event filter: none or one filter is editable, more are not."""
    if not where:
        return {"where_column": ""}
    if len(where) > 1:
        return None
    (f,) = where
    return {"where_column": f.column, "where_op": f.op, "where_value": format_value(f.value)}


def row_state(condition: Condition) -> dict[str, Any] | None:  # noqa: C901
    """The row inputs (``{widget name: value}``) that rebuild ``condition``, or None.

    >>> from engagelab.segments import did, prop
    >>> row_state(prop("age").between(18, 30))
    {'kind': 'property', 'column': 'age', 'op': 'between', 'value': '18, 30'}
    >>> row_state(did("Charged", at_least=2, within_days=7))
    {'kind': 'did', 'event': 'Charged', 'where_column': '', 'count_mode': 'at_least', 'times': 2, 'days': 7}
    >>> row_state(did("Charged", where=prop("revenue") > 50))["where_value"]
    '50'
    >>> row_state(did("Charged", where={"product": "X", "category": "Y"})) is None
    True
    """
    if isinstance(condition, PropertyFilter):
        return {"kind": "property", "column": condition.column, "op": condition.op,
                "value": format_value(condition.value)}  # fmt: skip
    if isinstance(condition, DidEvent):
        days, where = _days(condition.window), _where_state(condition.where)
        if where is None or condition.aggregate is not None or days is None:
            return None
        lo, hi = condition.at_least, condition.at_most
        if hi is None:
            mode = {"count_mode": "at_least", "times": lo}
        elif lo == hi:
            mode = {"count_mode": "exactly", "times": lo}
        elif lo == 0:
            mode = {"count_mode": "at_most", "times": hi}
        else:
            mode = {"count_mode": "between", "times": lo, "times_max": hi}
        return {"kind": "did", "event": condition.event, **where, **mode, "days": days}
    if isinstance(condition, Not):
        inner = condition.condition
        if isinstance(inner, InSegment):
            return {"kind": "not_in_segment", "saved": inner.name}
        if isinstance(inner, DidEvent) and inner.at_least == 1 and inner.at_most is None:
            days, where = _days(inner.window), _where_state(inner.where)
            if where is not None and inner.aggregate is None and days is not None:
                return {"kind": "did_not", "event": inner.event, **where, "days": days}
        return None
    if isinstance(condition, SentLabel):
        days = _days(condition.window)
        return None if days is None else {"kind": "sent", "label": condition.label, "days": days}
    if isinstance(condition, Geofence) and condition.source == "profile":
        return {"kind": "near", "lat": condition.latitude, "lon": condition.longitude,
                "radius": condition.radius_km}  # fmt: skip
    if isinstance(condition, InSegment):
        return {"kind": "in_segment", "saved": condition.name}
    return None
