"""``SegmentBuilder``: compose a segment with dropdowns and see its audience live.

The widget is thin: it holds the rows' inputs, turns them into a core
:class:`~engagelab.segments.Segment`, and shows what the core says about it: the
audience count (``Workspace.count``), the description (``Segment.describe``) and the
SQL (``Segment.to_sql``). Any error (a bad regular expression, a value that is not a
number for a numeric column, a failing query) shows on the widget's error line.

Example (headless; in a notebook the last line displays the widget)::

    >>> import tempfile
    >>> from engagelab import Workspace
    >>> from engagelab.simulate.worlds import simulate_into
    >>> from engagelab.segments import did
    >>> ws = Workspace.create(tempfile.mkdtemp() + "/ws")
    >>> _ = simulate_into(ws, n_users=200, days=7, seed=1)
    >>> sb = SegmentBuilder(ws, segment=did("App Launched", at_least=2), debounce=0)
    >>> sb.count == ws.count(sb.segment, at=sb.at)
    True
    >>> sb.rows[0].times.value = 3
    >>> print(sb.segment.describe())
    did 'App Launched' ≥ 3 times
"""

from __future__ import annotations

import datetime as dt
import html
from typing import Any

import ipywidgets as w
import traitlets

from engagelab.errors import SpecError
from engagelab.schema import EVENT_SCHEMA, PROFILE_SCHEMA
from engagelab.segments import And, Condition, Or, Segment
from engagelab.segments.base import column_kind
from engagelab.storage.catalog import event_counts, event_labels, reference_time, user_count

from ._guard import Debouncer, ErrorLine, guarded
from ._rows import ConditionRow

__all__ = ["SegmentBuilder"]


def _error_line(self: SegmentBuilder) -> ErrorLine:
    return self.error_line


def _css(widget: w.Widget, name: str) -> w.Widget:
    widget.add_class(f"el-sb-{name}")
    return widget


class SegmentBuilder(w.VBox):
    """Build a segment from condition rows; live audience count, description and SQL.

    Args:
        ws: the :class:`~engagelab.Workspace` whose users are counted.
        segment: start from this segment (a Segment, a condition, its dict/JSON or a
            saved segment's name); default one "did <most common event>" row.
        at: reference time of "in the last N days" (time-zone aware). Default: just
            after the workspace's last event, so windows are relative to the data
            (what you want on a simulated or historical workspace); the widget says so.
        debounce: seconds to wait after the last change before counting, in a
            background thread (a stale count never overwrites a newer one); ``0``
            counts synchronously, which is what tests use.

    Attributes:
        rows: the :class:`ConditionRow` widgets, in order.
        count: the audience size of the current spec (None while counting or on error).
        spec_json: the current valid segment as JSON ("" while invalid); observable.
    """

    count = traitlets.Int(None, allow_none=True)
    spec_json = traitlets.Unicode("")

    def __init__(
        self,
        ws: Any,
        segment: Any = None,
        *,
        at: dt.datetime | None = None,
        debounce: float = 0.3,
    ):
        super().__init__()
        _css(self, "builder")
        self.ws = ws
        self.error_line = ErrorLine("el-sb-error")
        self.at = reference_time(ws) if at is None else _aware(at)
        self._at_is_default = at is None
        self._debouncer = Debouncer(debounce, self._counted)
        self.options, self.kinds = _workspace_options(ws)
        self.users = user_count(ws)
        self.rows: list[ConditionRow] = []

        self.combine = _css(w.ToggleButtons(options=[("all of (AND)", "and"), ("any of (OR)", "or")],
                                            value="and", style={"button_width": "110px"}), "combine")  # fmt: skip
        self.rows_box = _css(w.VBox(), "rows")
        self.add_button = _css(
            w.Button(description="+ condition", tooltip="add a condition"), "add"
        )
        self.count_html = _css(w.HTML(value=""), "count")
        self.at_html = _css(w.HTML(value=self._at_text()), "at")
        self.description = _css(w.HTML(value=""), "description")
        self.sql = _css(
            w.Textarea(value="", disabled=True, layout=w.Layout(width="100%", height="220px")),
            "sql",
        )
        self.sql_box = _css(w.Accordion(children=[self.sql], selected_index=None), "sql-box")
        self.sql_box.set_title(0, "SQL (DuckDB)")
        self.save_name = _css(w.Text(value="", placeholder="segment name"), "save-name")
        self.save_button = _css(
            w.Button(description="Save as", tooltip="ws.save_segment(name, segment)"), "save"
        )
        self.save_status = _css(w.HTML(value=""), "save-status")

        self.combine.observe(self._changed, names="value")
        self.add_button.on_click(self._add_clicked)
        self.save_button.on_click(self._save_clicked)
        self.children = [
            w.HBox([w.HTML("<b>Users matching</b>"), self.combine]),
            self.rows_box,
            self.add_button,
            w.HBox([self.count_html, self.at_html]),
            self.description,
            self.error_line,
            self.sql_box,
            w.HBox([self.save_name, self.save_button, self.save_status]),
        ]
        self._load(segment)

    # ------------------------------------------------------------------ public
    @property
    def segment(self) -> Segment:
        """The segment the inputs describe now (raises the current error if invalid)."""
        if not self.rows:
            raise SpecError("conditions", 0, "must be at least one: click '+ condition'")
        conditions = []
        for i, row in enumerate(self.rows, start=1):
            try:
                conditions.append(row.condition())
            except SpecError as err:
                raise SpecError(err.field, err.value, err.allowed,
                                message=f"row {i}: {err}") from err  # fmt: skip
        if len(conditions) == 1:
            condition = conditions[0]
        else:
            condition = (And if self.combine.value == "and" else Or)(tuple(conditions))
        return Segment(condition)

    @property
    def error(self) -> str:
        """The error shown in the widget ("" when none)."""
        return self.error_line.text

    def add_row(self, condition: Condition | None = None) -> ConditionRow:
        """Append a row (set from ``condition`` if given) and recount."""
        row = self._new_row(condition)
        self._refresh()
        return row

    def remove_row(self, row: ConditionRow | int) -> None:
        """Remove a row (the widget or its index) and recount."""
        target = self.rows[row] if isinstance(row, int) else row
        self.rows.remove(target)
        self.rows_box.children = tuple(self.rows)
        self._refresh()

    def load(self, segment: Any) -> None:
        """Replace all rows with ``segment`` (anything ``ws.as_segment`` accepts).

        Raises (and leaves the rows as they were) if ``segment`` is not a valid spec or
        saved segment name.
        """
        self._load(segment)

    def save(self, name: str | None = None) -> Segment:
        """Save the current segment under ``name`` (default: the name box) with ``ws.save_segment``."""
        name = (self.save_name.value if name is None else name).strip()
        if not name:
            raise SpecError(
                "name", name, "must be a non-empty segment name (type one next to Save as)"
            )
        segment = self.segment.replace(name=name)
        self.ws.save_segment(name, segment)
        self.save_status.value = f"saved as <b>{html.escape(name)}</b>"
        self.refresh_options()
        return segment

    def refresh_options(self) -> None:
        """Reload columns, event names, labels and saved segments from the workspace."""
        self.options, self.kinds = _workspace_options(self.ws)
        for row in self.rows:
            row.kinds = {table: dict(cols) for table, cols in self.kinds.items()}
            row.set_options(self.options)

    def audience(self, columns: list[str] | None = None) -> Any:
        """Profiles of the users in the current segment (``ws.audience`` at the widget's ``at``)."""
        return self.ws.audience(self.segment, at=self.at, columns=columns)

    def wait(self, timeout: float = 30) -> int | None:
        """Block until the count of the current spec is shown; return it."""
        if not self._debouncer.wait(timeout):
            raise TimeoutError(f"the audience count did not finish within {timeout} s")
        return self.count

    # --------------------------------------------------------------- internals
    def _new_row(self, condition: Condition | None) -> ConditionRow:
        row = ConditionRow(self.options, self.kinds, self._row_changed, self._remove_clicked)
        if condition is not None:
            row.load(condition)
        self.rows.append(row)
        self.rows_box.children = tuple(self.rows)
        return row

    def _load(self, segment: Any) -> None:
        seg = None if segment is None else self.ws.as_segment(segment)  # raises before any change
        old, self.rows = self.rows, []
        self.rows_box.children = ()
        for row in old:
            row.close()
        cond = None if seg is None else seg.condition
        self.combine.unobserve(self._changed, names="value")
        self.combine.value = "or" if isinstance(cond, Or) else "and"
        self.combine.observe(self._changed, names="value")
        self.save_name.value = "" if seg is None else seg.name or ""
        if isinstance(cond, And | Or):
            for child in cond.conditions:
                self._new_row(child)
        else:
            self._new_row(cond)  # None: a "did <most common event>" row
        self._refresh()

    @guarded(_error_line)
    def _add_clicked(self, _button: Any) -> None:
        self.add_row()

    @guarded(_error_line)
    def _remove_clicked(self, row: ConditionRow) -> None:
        self.remove_row(row)
        row.close()

    @guarded(_error_line)
    def _save_clicked(self, _button: Any) -> None:
        self.save_status.value = ""
        self.save()
        self.error_line.clear()  # a valid spec was saved: an earlier save error is stale

    @guarded(_error_line)
    def _changed(self, _change: Any) -> None:
        self._refresh()

    @guarded(_error_line)
    def _row_changed(self) -> None:
        self._refresh()

    def _refresh(self) -> None:
        """Rebuild the spec; show its description and SQL now, its count when debounced."""
        self.save_status.value = ""
        try:
            segment = self.segment
            sql = segment.to_sql(at=self.at, resolve=self.ws.load_segment,
                                 columns=self._columns(), pretty=True)  # fmt: skip
        except Exception as exc:
            self._debouncer.cancel()
            self.spec_json = ""
            self.count = None
            self.count_html.value = "<b>—</b> users"
            self.description.value = ""
            self.sql.value = ""
            self.error_line.show(exc)
            return
        self.error_line.clear()
        self.spec_json = segment.to_json()
        self.description.value = f"<i>{html.escape(segment.describe())}</i>"
        self.sql.value = sql
        self.count = None
        self.count_html.value = "<b>counting…</b>"
        self._debouncer.request(lambda: self.ws.count(segment, at=self.at))

    def _counted(self, result: Any, error: BaseException | None) -> None:
        if error is not None:
            self.count = None
            self.count_html.value = "<b>—</b> users"
            self.error_line.show(error)
            return
        self.count = int(result)
        self.count_html.value = f"<b>{self.count:,}</b> of {self.users:,} users"

    def _columns(self) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for table, schema in (("events", EVENT_SCHEMA), ("profiles", PROFILE_SCHEMA)):
            cols: dict[str, Any] = {f.name: f.type for f in schema}
            cols.update({c: t for c, t in self.ws.columns(table).items() if not c.startswith("_")})
            out[table] = cols
        return out

    def _at_text(self) -> str:
        when = self.at.strftime("%Y-%m-%d %H:%M:%S UTC")
        why = " (just after the workspace's last event)" if self._at_is_default else ""
        return f"&nbsp;· &ldquo;last N days&rdquo; counts back from {when}{why}"

    def __repr__(self) -> str:
        try:
            text = self.segment.describe()
        except Exception as exc:
            text = f"invalid: {exc}"
        return f"SegmentBuilder({text}; count={self.count})"


def _aware(at: dt.datetime) -> dt.datetime:
    if not isinstance(at, dt.datetime) or at.tzinfo is None:
        raise SpecError("at", at, "must be a time-zone-aware datetime")
    return at.astimezone(dt.UTC)


def _workspace_options(ws: Any) -> tuple[dict[str, list[str]], dict[str, dict[str, str]]]:
    """Dropdown options from the workspace, and the value kind of each column."""
    custom = {c: t for c, t in ws.columns("profiles").items() if not c.startswith("_")}
    core = {f.name: f.type for f in PROFILE_SCHEMA}
    event_cols = {c: t for c, t in ws.columns("events").items() if not c.startswith("_")}
    event_core = {f.name for f in EVENT_SCHEMA}
    kinds = {
        "profiles": {c: column_kind("profiles", c, t) for c, t in {**core, **custom}.items()},
        "events": {c: column_kind("events", c, t) for c, t in event_cols.items()},
    }
    columns = (
        sorted(c for c in custom if c not in core)
        + [c for c in core if c != "user_id"]
        + ["user_id"]
    )
    events = event_counts(ws)
    labels = event_labels(ws)
    saved = ws.segments()["name"].tolist()
    event_columns = sorted(c for c in event_cols if c not in event_core and c != "labels")
    return {"columns": columns, "events": events["event"].tolist(), "labels": labels,
            "saved": saved, "event_columns": event_columns}, kinds  # fmt: skip
