"""``BestTimeExplorer``: when does a segment engage, which slots were chosen, and does it help.

The widget is thin: its inputs make :class:`~engagelab.besttime.BestTimeOptions`; the core
fits (:func:`~engagelab.besttime.fit`), draws the local hour x weekday activity
(:func:`~engagelab.besttime.activity_heatmap`) and evaluates against baselines
(:func:`~engagelab.besttime.evaluate`, on a button since it takes a while). Every error
(an unknown event, an inverted window, no data) shows on the widget's error line, and
clears the results of other settings; while a refit is pending the old results are
marked out of date.

"Now" is the data's end (:func:`engagelab.storage.catalog.reference_time`, just after
the last event), as in every widget: the fit, the heatmap and relative saved segments
("did X in the last 7 days") are evaluated at that time, which the widget states.

Example (headless)::

    >>> import tempfile
    >>> from engagelab import Workspace
    >>> from engagelab.simulate.worlds import simulate_into
    >>> ws = Workspace.create(tempfile.mkdtemp() + "/ws")
    >>> _ = simulate_into(ws, n_users=300, days=21, seed=3)
    >>> ex = BestTimeExplorer(ws, debounce=0)
    >>> ex.error, len(ex.slots) == 300
    ('', True)
    >>> ex.latest.value = "07:00"
    >>> ex.error
    "ValidationError: window == ('08:00', '07:00'), must be (earliest, latest) with earliest < latest"
"""

from __future__ import annotations

import datetime as dt
import html
from typing import Any

import ipywidgets as w
import pandas as pd
import traitlets

from engagelab.besttime import BestTimeOptions, activity_heatmap, evaluate, fit
from engagelab.besttime.explore import WEEKDAYS
from engagelab.storage.catalog import reference_time, user_timezones

from ._guard import Debouncer, ErrorLine, StaleNote, guarded

__all__ = ["BestTimeExplorer"]

EVERYONE = "(everyone)"


def _css(widget: w.Widget, name: str) -> w.Widget:
    widget.add_class(f"el-bt-{name}")
    return widget


def _error_line(self: BestTimeExplorer) -> ErrorLine:
    return self.error_line


def heatmap_html(grid: pd.DataFrame) -> str:
    """A local weekday x hour table with cells shaded by count."""
    top = max(int(grid.to_numpy().max()), 1)
    head = "".join(f"<th style='font-weight:normal'>{h}</th>" for h in grid.columns)
    rows = []
    for day, values in grid.iterrows():
        cells = "".join(
            f"<td title='{day} {h:02d}:00 — {int(v)}' style='background:rgba(33,102,172,{v / top:.2f});"
            f"width:14px;height:14px'></td>"
            for h, v in values.items()
        )
        rows.append(f"<tr><th>{html.escape(str(day))}</th>{cells}</tr>")
    return (
        f"<table class='el-bt-heat'><caption>events by local hour and weekday (max {top})</caption>"
        f"<tr><th></th>{head}</tr>{''.join(rows)}</table>"
    )


def bars_html(counts: pd.Series, caption: str) -> str:
    """Horizontal bars of a small count series."""
    total = max(int(counts.sum()), 1)
    rows = "".join(
        f"<tr><td>{html.escape(str(k))}</td><td><div style='background:#2166ac;height:10px;"
        f"width:{200 * v / total:.0f}px'></div></td><td>{int(v)} ({100 * v / total:.1f}%)</td></tr>"
        for k, v in counts.items()
    )
    return f"<table><caption>{html.escape(caption)}</caption>{rows}</table>"


class BestTimeExplorer(w.VBox):
    """Explore best send times for a segment: heatmap, chosen slots, fallbacks, lookup, evaluation.

    Args:
        ws: the workspace.
        mode: ``'bayes'`` or ``'clevertap'``.
        window: initial local delivery window.
        granularity: initial bayes histogram, ``'hour'`` or ``'hour_of_week'`` (then the
            ``slots on`` weekday picks which day's slots are shown).
        debounce: seconds to wait after the last change before refitting (0 = at once).

    Attributes:
        model: the fitted :class:`~engagelab.besttime.BestTimeModel` (None on error).
        slots: its per-user slots (DataFrame).
        heatmap: the activity table behind the heatmap.
        evaluation: the last :class:`~engagelab.besttime.BestTimeEvaluation` (after Evaluate).
        at: the "now" of the fit, the heatmap and saved segments: just after the data's end.
        stale_note: says when the results shown are for other settings (``.stale``).
    """

    generation = traitlets.Int(0)

    def __init__(self, ws: Any, *, mode: str = "bayes", window: tuple[str, str] = ("08:00", "22:00"),
                 granularity: str = "hour", debounce: float = 0.3):  # fmt: skip
        super().__init__()
        _css(self, "explorer")
        self.ws = ws
        self.at = reference_time(ws)
        self.model: Any = None
        self.slots = pd.DataFrame()
        self.heatmap = pd.DataFrame()
        self.evaluation: Any = None
        self.error_line = ErrorLine("el-bt-error")
        saved = [EVERYONE] + list(ws.segments()["name"]) if len(ws.segments()) else [EVERYONE]
        self.segment = _css(
            w.Dropdown(options=saved, value=EVERYONE, description="segment"), "segment"
        )
        self.mode = _css(
            w.Dropdown(options=["bayes", "clevertap"], value=mode, description="mode"), "mode"
        )
        self.granularity = _css(
            w.Dropdown(
                options=["hour", "hour_of_week"], value=granularity, description="histogram"
            ),
            "granularity",
        )
        self.weekday = _css(
            w.Dropdown(options=list(WEEKDAYS), value="Mon", description="slots on"), "weekday"
        )
        self.events = _css(w.Text(value="App Launched", description="events"), "events")
        self.earliest = _css(w.Text(value=window[0], description="earliest"), "earliest")
        self.latest = _css(w.Text(value=window[1], description="latest"), "latest")
        self.lookup = _css(w.Text(value="", placeholder="user id", description="user"), "lookup")
        self.lookup_out = _css(w.HTML(), "lookup-out")
        self.evaluate_button = _css(w.Button(description="Evaluate"), "evaluate")
        self.summary_html = _css(w.HTML(), "summary")
        self.heat_html = _css(w.HTML(), "heatmap")
        self.slots_html = _css(w.HTML(), "slots")
        self.reasons_html = _css(w.HTML(), "reasons")
        self.eval_html = _css(w.HTML(), "eval")
        self.at_html = _css(w.HTML(
            f"<i>as of {self.at:%Y-%m-%d %H:%M:%S} UTC, just after the workspace's last event "
            "(relative segments and the fit count back from here)</i>"), "at")  # fmt: skip
        self.stale_note = StaleNote("el-bt-stale", (self.summary_html, self.heat_html,
                                                    self.slots_html, self.reasons_html))  # fmt: skip
        self._debouncer = Debouncer(debounce, self._show)
        for c in (self.segment, self.mode, self.events, self.earliest, self.latest,
                  self.granularity):  # fmt: skip
            c.observe(self._changed, names="value")
        self.weekday.observe(self._weekday_changed, names="value")
        self.lookup.observe(self._lookup, names="value")
        self.evaluate_button.on_click(self._evaluate)
        self.children = [
            w.HBox([self.segment, self.mode, self.events]),
            w.HBox([self.granularity, self.weekday]),
            w.HBox([self.earliest, self.latest, self.evaluate_button]),
            self.at_html, self.error_line, self.stale_note, self.summary_html, self.heat_html,
            w.HBox([self.slots_html, self.reasons_html]),
            w.HBox([self.lookup, self.lookup_out]), self.eval_html,
        ]  # fmt: skip
        self._changed()

    # ----------------------------------------------------------------- state
    @property
    def error(self) -> str:
        """The error shown (``""`` when none)."""
        return self.error_line.text

    def options(self) -> BestTimeOptions:
        """The options the inputs describe (raises on invalid input)."""
        events = tuple(e.strip() for e in self.events.value.split(",") if e.strip())
        granularity = self.granularity.value
        if self.mode.value == "clevertap":
            events, granularity = events[:1], "hour"
        return BestTimeOptions(
            mode=self.mode.value,
            window=(self.earliest.value, self.latest.value),
            events=events,
            granularity=granularity,
        )

    def day(self) -> dt.date:
        """A date on the chosen weekday (slots of hour-of-week models depend on it)."""
        return dt.date(2024, 1, 1) + dt.timedelta(days=WEEKDAYS.index(self.weekday.value))

    def _users(self) -> pd.DataFrame | None:
        if self.segment.value == EVERYONE:
            return None
        ids = self.ws.user_ids(self.ws.load_segment(self.segment.value), at=self.at)
        prof = user_timezones(self.ws)
        return prof[prof["user_id"].isin(set(ids))].reset_index(drop=True)

    @property
    def stale(self) -> bool:
        """True while the results shown are for other settings (a refit is pending)."""
        return self.stale_note.stale

    def _clear_results(self) -> None:
        self.model, self.slots, self.heatmap = None, pd.DataFrame(), pd.DataFrame()
        for out in (self.summary_html, self.heat_html, self.slots_html, self.reasons_html,
                    self.lookup_out):  # fmt: skip
            out.value = ""
        self.stale_note.clear()

    def wait(self, timeout: float | None = 30) -> bool:
        """Block until the newest refit has been shown (for tests)."""
        return self._debouncer.wait(timeout)

    # ------------------------------------------------------------- callbacks
    @guarded(_error_line)
    def _changed(self, _change: Any = None) -> None:
        self.evaluation, self.eval_html.value = None, ""  # it was for the old settings
        try:
            opts = self.options()  # validation errors show at once
            users = self._users()
            seg = (
                None if self.segment.value == EVERYONE else self.ws.load_segment(self.segment.value)
            )
        except Exception:
            self._clear_results()
            raise
        self.error_line.clear()
        if self.model is not None:
            self.stale_note.mark("the settings changed; refitting…")
        at = self.at

        def work() -> tuple[Any, pd.DataFrame]:
            return (fit(self.ws, opts, at=at, users=users),
                    activity_heatmap(self.ws, seg, opts.events, at=at))  # fmt: skip

        self._debouncer.request(work)

    def _show(self, result: Any, error: BaseException | None) -> None:
        if error is not None:
            self._clear_results()
            self.error_line.show(error)
            self.generation += 1
            return
        self.error_line.clear()
        self.stale_note.clear()
        self.model, self.heatmap = result
        self._show_slots()
        self.generation += 1

    @guarded(_error_line)
    def _weekday_changed(self, _change: Any = None) -> None:
        if self.model is not None:
            self._show_slots()

    def _show_slots(self) -> None:
        self.slots = self.model.slots(self.day())
        s = self.model.summary()
        self.summary_html.value = (
            f"<b>{s['users']:,}</b> users, <b>{s['events']:,}</b> events ({html.escape(s['history'])}); "
            f"prior strength α = {s['alpha']}"
            + (
                ""
                if self.model.beta is None
                else f", weekday prior strength β = {self.model.beta:.3g}"
            )
        )
        self.heat_html.value = heatmap_html(self.heatmap)
        chosen = self.slots[self.slots["slot_minute"] >= 0]
        self.slots_html.value = bars_html(
            chosen["slot_local"].value_counts().sort_index(), "chosen slots (local)"
        )
        self.reasons_html.value = bars_html(
            self.slots["reason"].value_counts(), "reasons (share on fallback and why)"
        )
        self._lookup()

    @guarded(_error_line)
    def _lookup(self, _change: Any = None) -> None:
        uid = self.lookup.value.strip()
        if not uid or self.slots.empty:
            self.lookup_out.value = ""
            return
        row = self.slots[self.slots["user_id"] == uid]
        if row.empty:
            self.lookup_out.value = f"<i>{html.escape(uid)}: not in this segment</i>"
            return
        r = row.iloc[0]
        conf = "" if pd.isna(r["confidence"]) else f", confidence {r['confidence']:.2f}"
        self.lookup_out.value = (
            f"<span class='el-bt-lookup-text'>{html.escape(uid)}: {r['slot_local']} "
            f"{html.escape(str(r['timezone']))} ({r['reason']}, {int(r['n_events'])} events{conf})</span>"
        )

    @guarded(_error_line)
    def _evaluate(self, _button: Any = None) -> None:
        self.error_line.clear()
        self.eval_html.value = "<i>evaluating…</i>"
        try:
            ev = evaluate(self.ws, self.options())
        except Exception:
            self.eval_html.value = ""
            raise
        self.evaluation = ev
        table = ev.compare("hit_rate")
        self.eval_html.value = (
            "<b>hit rate</b> (engaged within ±1 h of the slot in the evaluation weeks), by history size"
            + table.round(3).to_html(classes="el-bt-eval-table")
        )
