"""``ExperimentDesigner``: plan an A/B/n test and see its sample size and duration live.

The widget is thin: its inputs become keyword arguments of
:func:`engagelab.experiments.sample_size`, and it shows what the core returns: users
per arm and in total, the duration from daily traffic, the effect in natural units
("detects 5.000% -> 5.500%"), the formula used and a power curve. Durations read in
days, weeks, months or years; a design that needs more than ``max_days`` of traffic is
called infeasible (with what to change) instead of showing an absurd day count. Errors
(a weight list that does not sum to 1, an MDE of zero, ...) show on the widget's error
line and clear the results of the previous inputs (numbers and power curve).
:meth:`ExperimentDesigner.from_spec` rebuilds the widget from an exported spec.

Example (headless; in a notebook the last line displays the widget)::

    >>> from engagelab.experiments import sample_size
    >>> d = ExperimentDesigner(baseline=0.05, mde=0.10, relative=True)
    >>> d.total_n == sample_size("proportion", baseline=0.05, mde=0.10, relative=True).total_n
    True
    >>> d.mde.value = 0.2
    >>> d.n_per_arm
    [8155, 8155]
    >>> d.spec["variants"], d.spec["design"]["method"]
    (['control', 'B'], 'unpooled')
"""

from __future__ import annotations

import html
import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import ipywidgets as w
import traitlets

from engagelab.errors import ValidationError
from engagelab.experiments import design as core_design

from ._format import duration_text
from ._guard import ErrorLine, guarded

__all__ = ["ExperimentDesigner"]


def _error_line(self: ExperimentDesigner) -> ErrorLine:
    return self.error_line


def _css(widget: w.Widget, name: str) -> w.Widget:
    widget.add_class(f"el-ed-{name}")
    return widget


def _names(text: str) -> list[str]:
    names = [t.strip() for t in text.split(",") if t.strip()]
    if len(names) < 2:
        raise ValidationError(
            "variants", text, "must name at least 2 arms, control first, comma-separated"
        )
    if len(set(names)) != len(names):
        raise ValidationError("variants", text, "must be distinct names")
    return names


def _weights(text: str, k: int) -> list[float] | None:
    if not text.strip():
        return None
    try:
        ws = [float(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise ValidationError("weights", text, "must be comma-separated numbers") from None
    if len(ws) != k:
        raise ValidationError("weights", text, f"must be {k} numbers (one per variant)")
    total = sum(ws)
    if total > 1.0 + 1e-6 and abs(total - 100.0) < 1e-6:  # percentages
        ws = [x / 100.0 for x in ws]
    return ws


class ExperimentDesigner(w.VBox):
    """Design an experiment: inputs on the left, sample size, duration and power curve live.

    Args:
        variants: arm names, control first.
        weights: allocation weights (fractions or percentages), control first; equal by default.
        metric: ``"proportion"`` or ``"mean"``.
        baseline: control rate (or mean); sd: standard deviation per user (means).
        mde: minimum detectable effect; relative: read it as a fraction of ``baseline``.
        alpha, power, alternative, correction, method: as in :func:`~engagelab.experiments.sample_size`.
        daily_traffic: eligible users per day (0: no duration).
        max_days: longest feasible duration; a longer design is shown as infeasible.
        plot: draw the power curve (turn off for speed in batch use).

    Attributes:
        result: the current :class:`~engagelab.experiments.DesignResult` (None on error).
        total_n, days: observable traits with the current answer (None on error).
        duration: the duration as shown ("6.4 weeks (45 days)"; "" without traffic or on error).
        feasible: False when the duration exceeds ``max_days``.
        spec: the experiment spec as a JSON-ready dict (raises the current error if invalid).
    """

    total_n = traitlets.Int(None, allow_none=True)
    days = traitlets.Int(None, allow_none=True)

    def __init__(
        self,
        *,
        variants: Sequence[str] = ("control", "B"),
        weights: Sequence[float] | None = None,
        metric: str = "proportion",
        baseline: float = 0.05,
        sd: float = 1.0,
        mde: float = 0.10,
        relative: bool = True,
        alpha: float = 0.05,
        power: float = 0.8,
        alternative: str = "two-sided",
        correction: str = "bonferroni",
        method: str | None = None,
        daily_traffic: float = 0.0,
        max_days: int = 365,
        plot: bool = True,
    ):
        super().__init__()
        if not isinstance(max_days, int) or isinstance(max_days, bool) or max_days < 1:
            raise ValidationError("max_days", max_days, "must be a whole number of days >= 1")
        self.max_days = max_days
        self.duration = ""
        self.feasible = True
        _css(self, "designer")
        self.result: core_design.DesignResult | None = None
        self._plot = plot
        self._ready = False
        self.error_line = ErrorLine("el-ed-error")

        def box(
            widget: w.Widget, name: str
        ) -> w.Widget:  # one Layout each: hiding sd must hide only sd
            widget.style.description_width = "130px"
            widget.layout = w.Layout(width="330px")
            return _css(widget, name)

        self.variants = box(w.Text(value=", ".join(variants), description="variants"), "variants")
        self.weights = box(w.Text(value="" if weights is None else ", ".join(f"{x:g}" for x in weights),
                                   placeholder="equal", description="weights"), "weights")  # fmt: skip
        self.metric = _css(w.ToggleButtons(options=["proportion", "mean"], value=metric,
                                           style={"button_width": "90px"}), "metric")  # fmt: skip
        self.baseline = box(w.FloatText(value=baseline, description="baseline"), "baseline")
        self.sd = box(w.FloatText(value=sd, description="standard deviation"), "sd")
        self.mde = box(w.FloatText(value=mde, description="MDE"), "mde")
        self.relative = _css(w.ToggleButtons(options=[("relative", True), ("absolute", False)],
                                             value=relative, style={"button_width": "80px"}), "relative")  # fmt: skip
        self.alpha = box(
            w.BoundedFloatText(value=alpha, min=0.0, max=1.0, step=0.01, description="α"), "alpha"
        )
        self.power = box(
            w.BoundedFloatText(value=power, min=0.0, max=1.0, step=0.05, description="power"),
            "power",
        )
        self.alternative = box(w.Dropdown(options=["two-sided", "one-sided"], value=alternative,
                                           description="sides"), "alternative")  # fmt: skip
        self.correction = box(w.Dropdown(options=["bonferroni", "none"], value=correction,
                                          description="correction"), "correction")  # fmt: skip
        self.method = box(
            w.Dropdown(options=list(core_design.METHODS[metric]), description="formula"), "method"
        )
        self.method.value = method or core_design.METHODS[metric][0]
        self.daily_traffic = box(
            w.FloatText(value=daily_traffic, description="daily traffic"), "traffic"
        )
        self.summary = _css(w.HTML(value=""), "summary")
        self.n_html = _css(w.HTML(value=""), "n")
        self.formula = _css(w.HTML(value=""), "formula")
        self.plot_image = _css(w.Image(format="png", layout=w.Layout(width="420px")), "plot")
        self.export_button = _css(
            w.Button(description="Export spec", tooltip="experiment spec as JSON"), "export"
        )
        self.spec_text = _css(
            w.Textarea(value="", disabled=True, layout=w.Layout(width="100%", height="160px")),
            "spec",
        )

        for x in (self.variants, self.weights, self.baseline, self.sd, self.mde, self.relative,
                  self.alpha, self.power, self.alternative, self.correction, self.method,
                  self.daily_traffic):  # fmt: skip
            x.observe(self._changed, names="value")
        self.metric.observe(self._metric_changed, names="value")
        self.export_button.on_click(self._export_clicked)
        inputs = w.VBox([self.variants, self.weights, self.metric, self.baseline, self.sd,
                         w.HBox([self.mde, self.relative]), self.alpha, self.power, self.alternative,
                         self.correction, self.method, self.daily_traffic])  # fmt: skip
        outputs = w.VBox([self.n_html, self.summary, self.formula, self.plot_image])
        self.children = [w.HBox([inputs, outputs]), self.error_line,
                         w.HBox([self.export_button]), self.spec_text]  # fmt: skip
        self._ready = True
        self._show_sd()
        self._recompute()

    # ------------------------------------------------------------------ public
    def kwargs(self) -> dict[str, Any]:
        """The keyword arguments of :func:`~engagelab.experiments.sample_size` the inputs describe."""
        names = _names(self.variants.value)
        return dict(
            metric=self.metric.value,
            baseline=self.baseline.value,
            sd=self.sd.value if self.metric.value == "mean" else None,
            mde=self.mde.value,
            relative=self.relative.value,
            alpha=self.alpha.value,
            power=self.power.value,
            alternative=self.alternative.value,
            arms=len(names),
            weights=_weights(self.weights.value, len(names)),
            correction=self.correction.value,
            method=self.method.value,
            daily_traffic=self.daily_traffic.value or None,
        )

    @classmethod
    def from_spec(cls, spec: dict[str, Any] | str, **options: Any) -> ExperimentDesigner:
        """A designer with every input taken from ``spec`` (:attr:`spec`, as a dict or its
        JSON text); ``options`` (``plot``, ``max_days``) are passed on."""
        data = json.loads(spec) if isinstance(spec, str) else dict(spec)
        if not isinstance(data, dict) or "variants" not in data:
            raise ValidationError(
                "spec", type(spec).__name__, "must be an exported experiment spec"
            )
        known = ("metric", "baseline", "sd", "mde", "relative", "alpha", "power", "alternative",
                 "correction", "method")  # fmt: skip
        kw = {k: data[k] for k in known if k in data and data[k] is not None}
        return cls(variants=data["variants"], weights=data.get("weights"),
                   daily_traffic=data.get("daily_traffic") or 0.0, **kw, **options)  # fmt: skip

    @property
    def n_per_arm(self) -> list[int] | None:
        """Users per arm, control first (None on error)."""
        return None if self.result is None else list(self.result.n_per_arm)

    @property
    def spec(self) -> dict[str, Any]:
        """The experiment spec: variants, weights, inputs and the design the core computed."""
        kw = self.kwargs()
        res = core_design.sample_size(**kw)
        names = _names(self.variants.value)
        return {
            "variants": names,
            "control": names[0],
            "weights": list(res.weights),
            **{k: v for k, v in kw.items() if k not in ("arms", "weights")},
            "design": res.to_dict(),
        }

    def export_spec(self, path: str | Path | None = None) -> str:
        """The spec as JSON text; also written to ``path`` when given."""
        text = json.dumps(self.spec, indent=2)
        if path is not None:
            Path(path).write_text(text + "\n")
        return text

    # ------------------------------------------------------------------ callbacks
    @guarded(_error_line)
    def _metric_changed(self, change: dict) -> None:
        self._ready = False
        try:
            self.method.options = list(core_design.METHODS[change["new"]])
            self.method.value = core_design.METHODS[change["new"]][0]
            self._show_sd()
        finally:
            self._ready = True
        self._recompute()

    def _show_sd(self) -> None:
        self.sd.layout.display = None if self.metric.value == "mean" else "none"

    def _changed(self, change: dict) -> None:
        if self._ready:
            self._recompute()

    @guarded(_error_line)
    def _export_clicked(self, _button: Any) -> None:
        self.spec_text.value = self.export_spec()

    def _recompute(self) -> None:
        try:
            res = core_design.sample_size(**self.kwargs())
        except Exception as exc:
            self.result = None
            self.total_n = None
            self.days = None
            self.duration, self.feasible = "", True
            self.n_html.value = "<b>n per arm: —</b>"
            self.summary.value = ""
            self.formula.value = ""
            self.plot_image.value = b""  # a curve for other inputs must not stay beside the error
            self.plot_image.layout.display = "none"
            self.error_line.show(exc)
            return
        self.error_line.clear()
        self.result = res
        names = _names(self.variants.value)
        self.n_html.value = (
            "<div class='el-ed-n-text'><b>"
            + " · ".join(
                f"{html.escape(a)}: {n:,}" for a, n in zip(names, res.n_per_arm, strict=True)
            )
            + f"</b><br>total: <b class='el-ed-total'>{res.total_n:,}</b> users"
            + self._duration_html(res.days)
            + "</div>"
        )
        self.summary.value = (
            f"{html.escape(res.effect_text)} with power {res.power:.3f} at α = {res.alpha:g} "
            f"{res.alternative} ({res.correction}: {res.alpha_per_comparison:.4g} per comparison)"
        )
        self.formula.value = (
            f"<i>formula: {html.escape(res.method)} — {html.escape(res.formula)}</i>"
        )
        self.total_n = res.total_n
        self.days = res.days
        if self._plot:
            self.plot_image.value = self._power_curve(res)
            self.plot_image.layout.display = None

    def _duration_html(self, days: int | None) -> str:
        self.duration, self.feasible = "", True
        if days is None:
            return ""
        self.duration = duration_text(days)
        if days <= self.max_days:
            return f" · duration: <b class='el-ed-duration'>{html.escape(self.duration)}</b>"
        self.feasible = False
        return (
            "<div class='el-ed-infeasible' style='color:#b00020'>&#9888; not feasible: this design "
            f"needs about {html.escape(self.duration)} of traffic, longer than the "
            f"{duration_text(self.max_days)} limit. Raise the MDE or the daily traffic, or "
            "accept a larger α or a lower power.</div>"
        )

    def _power_curve(self, res: core_design.DesignResult) -> bytes:
        """Power of each comparison against the control arm size, with the plan marked."""
        import numpy as np
        from matplotlib.figure import Figure

        kw = self.kwargs()
        kw.pop("power"), kw.pop("daily_traffic")
        n0 = res.n_per_arm[0]
        grid = np.unique(np.linspace(max(2, n0 * 0.1), n0 * 2.5, 40).astype(int))
        pw = [core_design.power(**kw, n_per_arm=int(n)).power for n in grid]
        fig = Figure(figsize=(4.6, 2.8))
        ax = fig.add_subplot(1, 1, 1)
        ax.plot(grid, pw, color="#1f5fa8")
        ax.axhline(res.power, color="#999999", ls="--", lw=1)
        ax.axvline(n0, color="#b00020", lw=1)
        ax.plot([n0], [res.power], "o", color="#b00020")
        ax.set_xlabel("users in control arm")
        ax.set_ylabel("power")
        ax.set_ylim(0, 1.02)
        ax.set_title(res.effect_text, fontsize=9)
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=80)
        return buf.getvalue()
