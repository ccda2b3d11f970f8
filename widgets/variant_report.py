"""``VariantReport``: pick experiments and metrics, read lifts, SRM, sequential status and a winner.

The widget is thin: it calls :func:`engagelab.experiments.analyze` on the data
(a DataFrame, a CSV/Parquet path, or SQL run on a workspace) with the picked
experiments, metrics, correction and α, and renders what the core returns: the
result's HTML table, its forest plot, a sample-ratio-mismatch banner, the
always-valid (sequential) status of each comparison and the recommendation of
:func:`engagelab.experiments.choose_winner` together with the rule that produced it.

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
from typing import Any

import ipywidgets as w
import numpy as np
import pandas as pd
from engagelab.widgets._guard import ErrorLine, guarded

from engagelab.errors import ValidationError
from engagelab.experiments import Experiment, Metric, analyze, choose_winner
from engagelab.experiments.result import ExperimentResult
from engagelab.experiments.winner import Winner

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
            data = ws.sql(data)
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
        self.result, self.winners = None, {}
        for x in (self.srm_banner, self.table, self.sequential, self.recommendation):
            x.value = ""
        self.plot_image.value = b""
        res = self.analyze()
        self.result = res
        self.srm_banner.value = self._srm_html(res)
        self.table.value = res._repr_html_()
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
            buf = io.BytesIO()
            res.plot().savefig(buf, format="png", dpi=80)
            self.plot_image.value = buf.getvalue()

    # ------------------------------------------------------------------ rendering
    @staticmethod
    def _srm_html(res: ExperimentResult) -> str:
        parts = []
        for exp, s in res.srm.items():
            bad = s.mismatch()
            style = "background:#b00020;color:white" if bad else "background:#e6f4ea;color:#1a5e20"
            obs = ", ".join(f"{a}: {n:,}" for a, n in zip(s.arms, s.observed, strict=True))
            text = (f"SAMPLE RATIO MISMATCH in {exp!r}: {obs} (p = {s.p_value:.3g}); do not trust these results"
                    if bad else f"sample ratio OK in {exp!r}: {obs} (SRM p = {s.p_value:.3g})")  # fmt: skip
            cls = "el-vr-srm-alarm" if bad else "el-vr-srm-ok"
            parts.append(f"<div class='{cls}' style='{style};padding:6px;font-weight:bold;margin:2px 0'>"
                         f"{'⚠ ' if bad else ''}{html.escape(text)}</div>")  # fmt: skip
        return "".join(parts)

    @staticmethod
    def _sequential_html(res: ExperimentResult) -> str:
        t = res.table
        rows = []
        for r in t.itertuples():
            p = float(r.seq_p)
            if not np.isfinite(p):
                status = "no inference possible"
            elif p < res.alpha:
                status = f"can stop: always-valid p = {p:.3g} < α"
            else:
                status = f"keep running: always-valid p = {p:.3g}"
            ci = (f"[{r.seq_ci_low:+.4g}, {r.seq_ci_high:+.4g}]"
                  if np.isfinite(r.seq_ci_low) else "—")  # fmt: skip
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
