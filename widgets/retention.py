"""``CohortRetentionExplorer``: retention heatmap, curves and a label-vs-holdout panel.

The widget is thin: its inputs make a :class:`~engagelab.retention.RetentionSpec`
(or label cohorts), the core computes, and the widget shows the result's heatmap table
(``_repr_html_``), its curves with interval bands (``plot()`` rendered to PNG) and, for
labels, :func:`~engagelab.retention.labels.label_effect`'s sent / holdout / everyone
else panel. Every error (unknown event, bad brackets, a query failure) shows on the
widget's error line.

Example (headless)::

    >>> import tempfile
    >>> from engagelab import Workspace
    >>> from engagelab.simulate.labels import label_programme
    >>> ws = Workspace.create(tempfile.mkdtemp() + "/ws")
    >>> _ = label_programme(ws, n_users=400, days=14, observe_days=8, seed=2)
    >>> ex = CohortRetentionExplorer(ws, debounce=0)
    >>> ex.result is not None and ex.error == ""
    True
    >>> ex.brackets.value = "4,2"
    >>> ex.error
    'ValidationError: brackets == (4, 2), must be at least two increasing period numbers >= 0'
"""

from __future__ import annotations

import io
from typing import Any

import ipywidgets as w
import traitlets

from engagelab.errors import ValidationError
from engagelab.retention.engine import retention
from engagelab.retention.labels import label_effect, label_retention, labels_in_use
from engagelab.retention.spec import RetentionSpec
from engagelab.storage.catalog import event_names

from ._guard import Debouncer, ErrorLine, guarded

__all__ = ["CohortRetentionExplorer"]


_ZONES = ["UTC", "America/New_York", "America/Los_Angeles", "America/Sao_Paulo", "Europe/London",
          "Europe/Berlin", "Asia/Kolkata", "Asia/Singapore", "Asia/Tokyo", "Australia/Sydney"]  # fmt: skip


def _css(widget: w.Widget, name: str) -> w.Widget:
    widget.add_class(f"el-cre-{name}")
    return widget


def _error_line(self: CohortRetentionExplorer) -> ErrorLine:
    return self.error_line


def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80)
    return buf.getvalue()


class CohortRetentionExplorer(w.VBox):
    """Explore cohort retention: labels, start/return events, period, mode, brackets.

    Args:
        ws: the workspace.
        labels: labels to show at first (default: none, i.e. event cohorts).
        start_event / return_event: default 'App Launched' when present.
        debounce: seconds to wait after the last change before computing (0 = at once).

    Attributes:
        result: the current :class:`RetentionResult` or :class:`LabelRetention` (None on error).
        effects: ``{label: LabelEffect}`` of the comparison panel.
    """

    result = traitlets.Any(None, allow_none=True)
    generation = traitlets.Int(0)

    def __init__(self, ws: Any, *, labels: list[str] | None = None, start_event: str | None = None,
                 return_event: str | None = None, debounce: float = 0.3):  # fmt: skip
        super().__init__()
        _css(self, "explorer")
        self.ws = ws
        self.effects: dict[str, Any] = {}
        self.error_line = ErrorLine("el-cre-error")
        self._debouncer = Debouncer(debounce, self._computed)
        events = event_names(ws)
        default = "App Launched" if "App Launched" in events else (events[0] if events else None)
        self.labels = _css(w.SelectMultiple(options=labels_in_use(ws), value=tuple(labels or ()),
                                            description="labels", rows=3), "labels")  # fmt: skip
        self.start_event = _css(w.Dropdown(options=events, value=start_event or default,
                                           description="start"), "start")  # fmt: skip
        self.return_event = _css(w.Dropdown(options=events, value=return_event or default,
                                            description="return"), "return")  # fmt: skip
        self.period = _css(w.ToggleButtons(options=["day", "week", "month"], value="day"), "period")
        self.periods = _css(
            w.BoundedIntText(value=8, min=1, max=400, description="periods"), "periods"
        )
        self.mode = _css(w.Dropdown(options=[("on period N", "on"), ("on or after N", "on-or-after")],
                                    value="on", description="mode"), "mode")  # fmt: skip
        self.cohort = _css(w.Dropdown(options=[("first time", "first"), ("recurring", "recurring")],
                                      value="first", description="cohort"), "cohort")  # fmt: skip
        self.window = _css(w.Dropdown(options=["calendar", "rolling"], value="calendar",
                                      description="window"), "window")  # fmt: skip
        self.brackets = _css(
            w.Text(value="", placeholder="e.g. 1,4,8,15", description="brackets"), "brackets"
        )
        self.timezone = _css(
            w.Combobox(
                value="UTC",
                options=_ZONES,
                description="time zone",
                ensure_option=False,
                continuous_update=False,
            ),  # fmt: skip
            "timezone",
        )
        self.day = _css(w.BoundedIntText(value=7, min=0, max=3650, description="effect day"), "day")
        self.status = _css(w.HTML(value=""), "status")
        self.heatmap = _css(w.HTML(value=""), "heatmap")
        self.curves = _css(w.Image(format="png", value=b""), "curves")
        self.comparison = _css(w.HTML(value=""), "comparison")
        for c in (self.labels, self.start_event, self.return_event, self.period, self.periods,
                  self.mode, self.cohort, self.window, self.brackets, self.day,
                  self.timezone):  # fmt: skip
            c.observe(self._changed, names="value")
        self.children = [
            w.HBox([self.labels, w.VBox([self.start_event, self.return_event])]),
            w.HBox([self.period, self.periods]),
            w.HBox([self.mode, self.cohort, self.window, self.timezone]),
            w.HBox([self.brackets, self.day]),
            self.status,
            self.error_line,
            self.heatmap,
            self.curves,
            self.comparison,
        ]
        self._refresh()

    # ------------------------------------------------------------------ public
    @property
    def error(self) -> str:
        """The error shown (``""`` when none)."""
        return self.error_line.text

    def spec(self) -> RetentionSpec:
        """The spec the inputs describe (raises the current input error)."""
        text = self.brackets.value.strip()
        brackets = None
        if text:
            try:
                brackets = tuple(int(x) for x in text.replace(" ", "").split(","))
            except ValueError:
                raise ValidationError(
                    "brackets", text, "must be comma-separated whole numbers"
                ) from None
        return RetentionSpec(
            self.start_event.value or "", self.return_event.value, period=self.period.value,
            periods=int(self.periods.value), mode=self.mode.value, cohort=self.cohort.value,
            window=self.window.value, brackets=brackets, timezone=self.timezone.value.strip(),
        )  # fmt: skip

    def wait(self, timeout: float = 60) -> Any:
        """Wait for a pending computation (tests); return the result."""
        self._debouncer.wait(timeout)
        return self.result

    # ---------------------------------------------------------------- internals
    @guarded(_error_line)
    def _changed(self, _change: Any) -> None:
        self._refresh()

    def _refresh(self) -> None:
        try:
            spec = self.spec()
        except Exception as exc:
            self._debouncer.cancel()
            self.result = None
            self.status.value = ""
            self.error_line.show(exc)
            return
        self.error_line.clear()
        self.status.value = "<i>computing…</i>"
        labels = list(self.labels.value)
        day = int(self.day.value)
        self._debouncer.request(lambda: self._compute(spec, labels, day))

    def _compute(
        self, spec: RetentionSpec, labels: list[str], day: int
    ) -> tuple[Any, dict[str, Any]]:
        opts = {k: v for k, v in spec.to_dict().items()
                if k in ("period", "periods", "mode", "cohort", "window", "brackets", "timezone")}  # fmt: skip
        if opts["brackets"] is not None:
            opts["brackets"] = tuple(opts["brackets"])
        if labels:
            return_event = spec.return_event
            if return_event is None:  # RetentionSpec defaults it to start_event
                raise ValidationError("return_event", return_event, "must be an event name")
            res = label_retention(self.ws, labels, return_event, **opts)
            effects = {lab: label_effect(self.ws, lab, day=day, return_event=return_event)
                       for lab in labels if not res[lab].empty}  # fmt: skip
            return res, effects
        return retention(self.ws, spec=spec), {}

    def _computed(self, value: Any, error: BaseException | None) -> None:
        if error is not None:
            self.result = None
            self.status.value = ""
            self.heatmap.value = ""
            self.comparison.value = ""
            self.curves.value = b""
            self.error_line.show(error)
            return
        res, effects = value
        self.effects = effects
        self.heatmap.value = res._repr_html_()
        self.curves.value = _png(res.plot())
        self.comparison.value = "".join(e._repr_html_() for e in effects.values())
        self.status.value = (
            f"<span class='el-cre-done'>{len(getattr(res, 'results', [None]))} table(s)</span>"
        )
        self.result = res
        self.generation += 1

    def __repr__(self) -> str:
        return f"CohortRetentionExplorer({self.spec().start_event!r}, labels={list(self.labels.value)})"
