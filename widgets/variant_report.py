"""``VariantReport``: pick experiments and metrics, read lifts, SRM, sequential status and a winner.

The widget is thin: it calls :func:`engagelab.experiments.analyze` on the data
(a DataFrame, a CSV/Parquet path, or SQL run on a workspace) with the picked
experiments, metrics, correction and α, and renders what the core returns: a table of
the comparisons, a forest plot, a sample-ratio-mismatch banner, the always-valid
(sequential) status of each comparison and the recommendation of
:func:`engagelab.experiments.choose_winner` together with the rule that produced it.

Colours are direction-aware: a significant change in the metric's good direction (up,
or down for a ``lower_is_better`` metric) is a win (green, row class ``el-vr-win``), a
significant change the other way a loss (red, ``el-vr-loss``), the rest neutral (grey,
``el-vr-neutral``); :attr:`VariantReport.verdicts` lists them. Rates of proportion
metrics and relative lifts show as percentages, p-values never wrap, and the forest plot
is shown at its natural size.

Example (headless)::

    >>> import pandas as pd
    >>> df = pd.DataFrame({"arm": ["A"] * 1000 + ["B"] * 1000,
    ...                    "clicked": [1] * 100 + [0] * 900 + [1] * 150 + [0] * 850})
    >>> r = VariantReport(df, arm_col="arm", control="A", metrics=["clicked:proportion"], plot=False)
    >>> r.winner.variant, r.winner.rule
    ('B', 'statistical')
    >>> r.rule.value = "clevertap"
    >>> r.winner.reason
    'highest clicked: 0.15'
    >>> from engagelab.experiments import Experiment
    >>> VariantReport(df, Experiment(control="A", metrics=("clicked:proportion",)), plot=False).winner.variant
    'B'
"""

from __future__ import annotations

import html
import io
from collections.abc import Sequence
from typing import Any, cast

import ipywidgets as w
import numpy as np
import pandas as pd

from engagelab.errors import ValidationError
from engagelab.experiments import Experiment, Metric, analyze, choose_winner
from engagelab.experiments.formatting import format_p
from engagelab.experiments.result import ExperimentResult
from engagelab.experiments.winner import Winner
from engagelab.storage.catalog import run_query

from ._format import COLOURS, percent
from ._guard import ErrorLine, guarded

__all__ = ["VariantReport"]


def _error_line(self: VariantReport) -> ErrorLine:
    return self.error_line


def _css(widget: w.Widget, name: str) -> w.Widget:
    widget.add_class(f"el-vr-{name}")
    return widget


class VariantReport(w.VBox):
    """A variant report over one or many experiments (campaigns).

    Args:
        data: a DataFrame, a CSV/Parquet path, or (with ``ws``) a DuckDB SQL query over the
            workspace's ``events``/``profiles``; one row per user.
        experiment: an :class:`~engagelab.experiments.Experiment` (the arm column, control,
            metrics, covariates, correction, alpha, weights), or give those as keywords
            (keywords given with an experiment override its fields). The report always
            adds the always-valid (sequential) results.
        arm_col: column with each user's arm (variant).
        control: the control arm's value.
        metrics: :class:`~engagelab.experiments.Metric` objects or strings
            ``"NAME:proportion|mean[:COVARIATE]"`` / ``"NAME:ratio:DENOMINATOR[:COV[:DEN_COV]]"``.
        experiment_col: column naming the experiment or campaign (several can be picked).
        covariate: CUPED pre-period covariate for string metrics that name none (for a
            ratio: the numerator of its pre-period ratio).
        denominator_covariate: denominator of the pre-period ratio of string ratio metrics.
        ws: a :class:`~engagelab.Workspace` on which ``data`` (SQL) runs.
        alpha, correction: significance level and multiple-comparison correction.
        rule: winner rule, ``"statistical"`` (default) or ``"clevertap"``.
        guardrails: metric names the winner must not be significantly worse on.
        weights: intended allocation for the SRM check.
        plot: draw the forest plot.

    Attributes:
        experiment: the :class:`~engagelab.experiments.Experiment` analysed (the
            experiments, metrics, correction and α picked in the widget replace its own).
        result: the current :class:`~engagelab.experiments.ExperimentResult` (None on error).
        winners: experiment -> :class:`~engagelab.experiments.Winner`.
        verdicts: per row of ``result.table``: ``'win'``, ``'loss'`` or ``'neutral'``.
    """

    def __init__(
        self,
        data: Any,
        experiment: Experiment | None = None,
        *,
        arm_col: str | None = None,
        control: Any = None,
        metrics: Sequence[Metric | str] | None = None,
        experiment_col: str | None = None,
        covariate: str | None = None,
        denominator_covariate: str | None = None,
        ws: Any = None,
        alpha: float | None = None,
        correction: str | None = None,
        rule: str = "statistical",
        guardrails: Sequence[str] = (),
        weights: Any = None,
        plot: bool = True,
    ):
        super().__init__()
        given = dict(arm_col=arm_col, control=control, metrics=metrics,
                     experiment_col=experiment_col, covariate=covariate,
                     denominator_covariate=denominator_covariate, alpha=alpha,
                     correction=correction, weights=weights)  # fmt: skip
        spec = Experiment.from_options(
            experiment, **{k: v for k, v in given.items() if v is not None}
        )
        self.experiment = spec.replace(sequential=spec.sequential.replace(always_valid=True))
        arm_col, experiment_col = self.experiment.arm_col, self.experiment.experiment_col
        _css(self, "report")
        if ws is not None:
            if not isinstance(data, str):
                raise ValidationError(
                    "data", type(data).__name__, "must be a SQL string when ws is given"
                )
            data = run_query(ws, data)
        if isinstance(data, str) and data.lower().endswith((".csv", ".parquet", ".pq")):
            data = (
                pd.read_parquet(data)
                if data.lower().endswith((".parquet", ".pq"))
                else pd.read_csv(data)
            )
        if not isinstance(data, pd.DataFrame):
            raise ValidationError(
                "data",
                type(data).__name__,
                "must be a DataFrame, a CSV/Parquet path or SQL with ws=",
            )
        for col in (arm_col, experiment_col):
            if col is not None and col not in data.columns:
                raise ValidationError("arm_col" if col == arm_col else "experiment_col", col,
                                      "must be a column of the data: " + ", ".join(map(str, data.columns)))  # fmt: skip
        e = self.experiment
        self.data, self.arm_col, self.control = data, e.arm_col, e.control
        self.experiment_col, self.covariate, self.weights = e.experiment_col, e.covariate, e.weights
        self._metrics = {m.name: m for m in e.metrics}
        self._plot = plot
        self._ready = False
        self.result: ExperimentResult | None = None
        self.winners: dict[str, Winner] = {}
        self.verdicts: list[str] = []
        self.error_line = ErrorLine("el-vr-error")

        exps = sorted(map(str, data[experiment_col].dropna().unique())) if experiment_col else []
        self.experiments = _css(w.SelectMultiple(options=exps, value=tuple(exps), description="experiments",
                                                 rows=min(max(len(exps), 2), 6)), "experiments")  # fmt: skip
        self.experiments.layout.display = None if experiment_col else "none"
        names = list(self._metrics)
        self.metrics = _css(w.SelectMultiple(options=names, value=tuple(names), description="metrics",
                                             rows=min(max(len(names), 2), 6)), "metrics")  # fmt: skip
        self.correction = _css(w.Dropdown(options=["holm", "hochberg", "bonferroni", "bh", "by", "none"],
                                          value=e.correction, description="correction"), "correction")  # fmt: skip
        self.alpha = _css(
            w.BoundedFloatText(value=e.alpha, min=0.0, max=1.0, step=0.01, description="α"), "alpha"
        )
        self.rule = _css(
            w.Dropdown(options=["statistical", "clevertap"], value=rule, description="winner rule"),
            "rule",
        )
        self.guardrails = _css(w.SelectMultiple(options=names, value=tuple(guardrails), description="guardrails",
                                                rows=min(max(len(names), 2), 6)), "guardrails")  # fmt: skip
        self.primary = _css(
            w.Dropdown(options=names, value=names[0], description="primary"), "primary"
        )
        self.srm_banner = _css(w.HTML(value=""), "srm")
        self.table = _css(w.HTML(value=""), "table")
        self.plot_image = _css(w.Image(format="png"), "plot")
        self.sequential = _css(w.HTML(value=""), "sequential")
        self.recommendation = _css(w.HTML(value=""), "recommendation")
        self.refresh_button = _css(w.Button(description="Refresh"), "refresh")

        for x in (self.experiments, self.metrics, self.correction, self.alpha, self.rule,
                  self.guardrails, self.primary):  # fmt: skip
            x.observe(self._changed, names="value")
        self.refresh_button.on_click(self._refresh_clicked)
        self.children = [
            w.HBox(
                [
                    w.VBox([self.experiments, self.metrics]),
                    w.VBox([self.correction, self.alpha, self.refresh_button]),
                    w.VBox([self.rule, self.primary, self.guardrails]),
                ]
            ),  # fmt: skip
            self.error_line,
            self.srm_banner,
            self.recommendation,
            self.table,
            self.plot_image,
            self.sequential,
        ]
        self._ready = True
        self.refresh()

    # ------------------------------------------------------------------ public
    @property
    def winner(self) -> Winner:
        """The recommendation for the only (or first) experiment shown."""
        if not self.winners:
            raise ValidationError("winner", None, "none: the report has no valid result")
        return next(iter(self.winners.values()))

    def analyze(self) -> ExperimentResult:
        """Run :func:`~engagelab.experiments.analyze` for the current picks."""
        if not self.metrics.value:
            raise ValidationError("metrics", [], "pick at least one metric")
        df = self.data
        if self.experiment_col:
            if not self.experiments.value:
                raise ValidationError("experiments", [], "pick at least one experiment")
            df = df[df[self.experiment_col].astype(str).isin(self.experiments.value)]
        picked = self.experiment.replace(
            metrics=tuple(self._metrics[m] for m in self.metrics.value),
            alpha=self.alpha.value,
            correction=self.correction.value,
        )
        return analyze(df, picked)

    @guarded(_error_line)
    def refresh(self) -> None:
        """Analyse again and redraw everything."""
        self.error_line.clear()
        self.result, self.winners, self.verdicts = None, {}, []
        for x in (self.srm_banner, self.table, self.sequential, self.recommendation):
            x.value = ""
        self.plot_image.value = b""
        self.plot_image.layout.display = "none"
        res = self.analyze()
        self.result = res
        self.verdicts = verdicts(res)
        self.srm_banner.value = self._srm_html(res)
        self.table.value = self._table_html(res)
        self.sequential.value = self._sequential_html(res)
        primary = (
            self.primary.value
            if self.primary.value in self.metrics.value
            else self.metrics.value[0]
        )
        guards = [g for g in self.guardrails.value if g in self.metrics.value and g != primary]
        for exp in dict.fromkeys(res.table["experiment"]):
            self.winners[str(exp)] = choose_winner(res, rule=self.rule.value, metric=primary,
                                                   experiment=exp, guardrails=guards)  # fmt: skip
        self.recommendation.value = self._recommendation_html(primary)
        if self._plot:
            png, (width, height) = forest_png(res, self.verdicts)
            self.plot_image.value = png
            self.plot_image.layout.width, self.plot_image.layout.height = (
                f"{width}px",
                f"{height}px",
            )
            self.plot_image.layout.display = None

    # ------------------------------------------------------------------ rendering
    def _table_html(self, res: ExperimentResult) -> str:
        t = res.table
        kinds = {name: m.kind for name, m in self._metrics.items()}
        head = ("experiment", "metric", "comparison", "users", "control", "variant",
                "lift (relative)", "lift (absolute)", f"p adjusted ({res.correction})", "result")  # fmt: skip
        rows = []
        for r, verdict in zip(t.itertuples(), self.verdicts, strict=True):
            rate = kinds.get(str(r.metric)) == "proportion"
            value = percent if rate else _num
            colour = COLOURS[verdict]
            word = {"win": "significant win", "loss": "significant loss",
                    "neutral": "not significant"}[verdict]  # fmt: skip
            cells = [
                html.escape(str(r.experiment)), html.escape(str(r.metric)),
                f"{html.escape(str(r.arm))} vs {html.escape(str(r.control))}",
                f"{int(cast(int, r.n_arm)):,} / {int(cast(int, r.n_control)):,}",
                value(r.control_estimate), value(r.arm_estimate),
                _interval(cast(float, r.rel_lift), cast(float, r.rel_ci_low),
                          cast(float, r.rel_ci_high), _pct_signed),
                _interval(cast(float, r.abs_lift), cast(float, r.abs_ci_low),
                          cast(float, r.abs_ci_high), _points if rate else _num_signed),
                html.escape(format_p(r.p_adjusted, r.log10_p_adjusted)),
                f"<b style='color:{colour}'>{word}</b>",
            ]  # fmt: skip
            rows.append(
                f"<tr class='el-vr-row el-vr-{verdict}' style='color:{colour}'>"
                + "".join(f"<td style='white-space:nowrap;padding:2px 8px'>{c}</td>" for c in cells)
                + "</tr>"
            )
        caption = (
            f"<caption style='text-align:left'>{1 - res.alpha:.0%} confidence intervals; "
            f"significant = adjusted p &lt; α = {res.alpha:g} ({html.escape(res.correction)}); "
            "<span style='color:#1a7f37'>green</span>: better in the metric's good direction, "
            "<span style='color:#b00020'>red</span>: worse</caption>"
        )
        ths = "".join(f"<th style='white-space:nowrap;padding:2px 8px'>{h}</th>" for h in head)
        return (
            f"<table class='el-vr-result'>{caption}<thead><tr>{ths}</tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table>"
        )

    @staticmethod
    def _srm_html(res: ExperimentResult) -> str:
        parts = []
        for exp, s in res.srm.items():
            bad = s.mismatch()
            style = "background:#b00020;color:white" if bad else "background:#e6f4ea;color:#1a5e20"
            obs = ", ".join(f"{a}: {n:,}" for a, n in zip(s.arms, s.observed, strict=True))
            p = format_p(s.p_value, s.log10_p)
            text = (f"SAMPLE RATIO MISMATCH in {exp!r}: {obs} (p = {p}); do not trust these results"
                    if bad else f"sample ratio OK in {exp!r}: {obs} (SRM p = {p})")  # fmt: skip
            cls = "el-vr-srm-alarm" if bad else "el-vr-srm-ok"
            parts.append(f"<div class='{cls}' style='{style};padding:6px;font-weight:bold;margin:2px 0'>"
                         f"{'⚠ ' if bad else ''}{html.escape(text)}</div>")  # fmt: skip
        return "".join(parts)

    @staticmethod
    def _sequential_html(res: ExperimentResult) -> str:
        t = res.table
        rows = []
        for r in t.itertuples():
            p = float(cast(float, r.seq_p))
            shown = format_p(p, getattr(r, "log10_seq_p", None))
            if not np.isfinite(p):
                status = "no inference possible"
            elif p < res.alpha:
                status = f"can stop: always-valid p = {shown} < α"
            else:
                status = f"keep running: always-valid p = {shown}"
            ci = (f"[{r.seq_ci_low:+.4g}, {r.seq_ci_high:+.4g}]"
                  if np.isfinite(cast(float, r.seq_ci_low)) else "—")  # fmt: skip
            rows.append(f"<tr><td>{html.escape(str(r.experiment))}</td><td>{html.escape(str(r.metric))}</td>"
                        f"<td>{html.escape(str(r.arm))} vs {html.escape(str(r.control))}</td>"
                        f"<td>{ci}</td><td>{html.escape(status)}</td></tr>")  # fmt: skip
        return ("<b>Sequential status</b> (always-valid p-values and confidence sequences: safe to look every day)"
                "<table class='el-vr-seq-table'><tr><th>experiment</th><th>metric</th><th>comparison</th>"
                "<th>confidence sequence</th><th>status</th></tr>" + "".join(rows) + "</table>")  # fmt: skip

    def _recommendation_html(self, primary: str) -> str:
        out = []
        for exp, win in self.winners.items():
            out.append(f"<div class='el-vr-winner'><b>Recommendation for {html.escape(exp)}</b> "
                       f"(primary metric {html.escape(primary)}): send <b>{html.escape(win.variant)}</b> "
                       f"— rule <code>{html.escape(win.rule)}</code>: {html.escape(win.reason)}</div>")  # fmt: skip
        return "".join(out)

    # ------------------------------------------------------------------ callbacks
    def _changed(self, change: dict) -> None:
        if self._ready:
            self.refresh()

    def _refresh_clicked(self, _button: Any) -> None:
        self.refresh()


def verdicts(res: ExperimentResult) -> list[str]:
    """``'win'``, ``'loss'`` or ``'neutral'`` for each row of ``res.table``: significant and
    better in the metric's good direction (``direction``, which knows ``lower_is_better``),
    significant and worse, or not significant."""
    return res.verdicts()


def forest_png(
    res: ExperimentResult, marks: Sequence[str], dpi: int = 80
) -> tuple[bytes, tuple[int, int]]:
    """A forest plot of the relative lifts (win green, loss red, neutral grey) as PNG bytes
    and its natural size in pixels."""
    from matplotlib.figure import Figure

    t = res.table
    size = (7.0, 0.45 * max(len(t), 2) + 1.2)
    fig = Figure(figsize=size)
    ax = fig.add_subplot(1, 1, 1)
    y = np.arange(len(t))[::-1]
    for yi, r, mark in zip(y, t.itertuples(), marks, strict=True):
        e = float(cast(float, r.rel_lift))
        lo, hi = float(cast(float, r.rel_ci_low)), float(cast(float, r.rel_ci_high))
        if not np.isfinite(e):
            continue
        err = [[e - lo if np.isfinite(lo) else 0.0], [hi - e if np.isfinite(hi) else 0.0]]
        ax.errorbar(
            100 * e, yi, xerr=100 * np.asarray(err), fmt="o", color=COLOURS[mark], capsize=3
        )
    ax.axvline(0, color="#999999", lw=1, ls="--")
    ax.set_yticks(y)
    ax.set_yticklabels(
        [f"{r.experiment} · {r.metric} · {r.arm} vs {r.control}" for r in t.itertuples()]
    )
    ax.xaxis.set_major_formatter("{x:+.0f}%")
    ax.set_xlabel(f"relative lift, {1 - res.alpha:.0%} CI (green: win, red: loss)")
    if res.srm_alarms():
        ax.set_title("SAMPLE RATIO MISMATCH: " + ", ".join(res.srm_alarms()), color="#b00020")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue(), (int(size[0] * dpi), int(size[1] * dpi))


def _num(v: Any) -> str:
    return "—" if v is None or not np.isfinite(float(v)) else f"{float(v):.4g}"


def _num_signed(v: float) -> str:
    return "—" if not np.isfinite(v) else f"{v:+.4g}"


def _pct_signed(v: float) -> str:
    return percent(v, signed=True)


def _points(v: float) -> str:
    """An absolute difference of two rates, in percentage points."""
    return "—" if not np.isfinite(v) else percent(v, signed=True).replace("%", " pp")


def _interval(v: float, lo: float, hi: float, fmt: Any) -> str:
    if not np.isfinite(v):
        return "—"

    def end(x: float) -> str:
        return ("+∞" if x > 0 else "-∞") if np.isinf(x) else fmt(x)

    return f"{fmt(v)} [{end(lo)}, {end(hi)}]"
