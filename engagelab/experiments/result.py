"""The result of :func:`~engagelab.experiments.analyze`: one object for many experiments.

``to_pandas()`` gives one row per experiment x metric x non-control arm;
``arms`` one row per arm (estimate, Bayesian probability to be best); ``srm`` the
sample-ratio check of each experiment. Bayesian columns start with ``bayes_`` and
sequential (always-valid) columns with ``seq_``; they are never mixed with the
frequentist ``p_value`` / ``p_adjusted``.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd

from engagelab.experiments._stats import LN10, adjust_logp
from engagelab.experiments.assignment import SRMResult
from engagelab.experiments.formatting import format_p, format_probability

__all__ = ["COLUMNS", "ExperimentResult", "SRM_THRESHOLD", "build_table"]

SRM_THRESHOLD = 0.001
COLUMNS = [
    "experiment",
    "metric",
    "kind",
    "arm",
    "control",
    "n_control",
    "n_arm",
    "control_estimate",
    "arm_estimate",
    "abs_lift",
    "abs_ci_low",
    "abs_ci_high",
    "rel_lift",
    "rel_ci_low",
    "rel_ci_high",
    "test",
    "p_value",
    "log10_p",
    "p_adjusted",
    "log10_p_adjusted",
    "significant",
    "direction",
    "gs_z",
    "gs_bound",
    "gs_reject",
    "seq_p",
    "log10_seq_p",
    "seq_ci_low",
    "seq_ci_high",
    "bayes_p_beat_control",
    "bayes_p_best",
    "bayes_expected_loss",
    "bayes_ci_low",
    "bayes_ci_high",
    "bayes_rel_ci_low",
    "bayes_rel_ci_high",
    "cuped_theta",
    "cuped_theta_scope",
    "srm_p",
    "note",
]


#: Colours of a comparison's verdict (forest plots) and its table row's style.
_MARK_COLOUR = {"win": "#1a7f37", "loss": "#b00020", "neutral": "#555555"}
_ROW_STYLE = {
    "win": " style='background:#e6f4ea;color:#1a5e20;font-weight:bold'",
    "loss": " style='background:#fdecea;color:#b00020;font-weight:bold'",
    "neutral": "",
}


@dataclass(frozen=True, repr=False)
class ExperimentResult:
    """Comparisons of every arm with control, for every experiment and metric.

    Attributes:
        table: the comparison rows (see :data:`COLUMNS`).
        arms: one row per experiment x metric x arm.
        srm: sample-ratio-mismatch check per experiment.
        alpha: significance level; correction: the multiple-comparison correction.
    """

    table: pd.DataFrame
    arms: pd.DataFrame
    srm: Mapping[str, SRMResult]
    alpha: float
    correction: str
    sequential: bool

    @classmethod
    def build(
        cls,
        rows: list[dict],
        arm_rows: list[dict],
        srms: dict,
        *,
        alpha: float,
        correction: str,
        sequential: bool,
        group_sequential: bool = False,
    ) -> ExperimentResult:
        df = build_table(
            rows, alpha=alpha, correction=correction, sequential=sequential,
            group_sequential=group_sequential,
        )  # fmt: skip
        return cls(df, pd.DataFrame(arm_rows), dict(srms), alpha, correction, sequential)

    def to_pandas(self) -> pd.DataFrame:
        """The comparison table (a copy), one row per experiment x metric x arm."""
        return self.table.drop(columns=["_lower", "_se"]).copy()

    def to_dicts(self) -> list[dict[str, Any]]:
        """The comparison rows as JSON-ready dictionaries.

        NaN (undefined) and the infinite open end of a one-sided interval become None,
        which strict JSON can carry.
        """
        df = self.to_pandas().astype(object)
        return [
            {
                str(k): (None if isinstance(v, float) and not math.isfinite(v) else v)
                for k, v in r.items()
            }
            for r in df.where(df.notna(), None).to_dict("records")
        ]

    def srm_alarms(self, threshold: float = SRM_THRESHOLD) -> dict[str, SRMResult]:
        """Experiments whose arm sizes do not match the intended split."""
        return {k: v for k, v in self.srm.items() if v.p_value < threshold}

    def _banner_text(self) -> list[str]:
        out = []
        for exp, s in self.srm_alarms().items():
            obs = ", ".join(f"{a}={n:,}" for a, n in zip(s.arms, s.observed, strict=True))
            out.append(
                f"SAMPLE RATIO MISMATCH in {exp!r}: {obs} (p = {format_p(s.p_value, s.log10_p)}); "
                "assignment or logging is broken, do not trust these results"
            )
        return out

    def __repr__(self) -> str:
        lines = [
            f"ExperimentResult({len(self.table)} comparisons, alpha={self.alpha:g}, correction={self.correction})"
        ]
        lines += ["  !! " + b for b in self._banner_text()]
        for rec in self.table.to_dict("records"):
            r = SimpleNamespace(**{str(k): v for k, v in rec.items()})
            if r.note and not np.isfinite(r.abs_lift if r.abs_lift is not None else np.nan):
                lines.append(f"  {r.experiment} | {r.metric} | {r.arm} vs {r.control}: {r.note}")
                continue
            mark = " *" if r.significant else ""
            rel = (
                ""
                if not np.isfinite(r.rel_lift)
                else f" ({_ci(r.rel_lift, r.rel_ci_low, r.rel_ci_high, True)})"
            )
            lines.append(
                f"  {r.experiment} | {r.metric} | {r.arm} vs {r.control}: {r.control_estimate:.4g} -> "
                f"{r.arm_estimate:.4g}, lift {r.abs_lift:+.4g}{rel}, p{_is(format_p(r.p_value, r.log10_p))}, "
                f"p_adj{_is(format_p(r.p_adjusted, r.log10_p_adjusted))}{mark}"
                + self._sequential_text(r)
                + (
                    f", CUPED θ={r.cuped_theta:.4g} ({r.cuped_theta_scope.replace('_', ' ')})"
                    if r.cuped_theta_scope and np.isfinite(r.cuped_theta)
                    else ""
                )
                + (
                    f", P(beat control){_is(format_probability(r.bayes_p_beat_control))} [Bayesian]"
                    if np.isfinite(r.bayes_p_beat_control)
                    else ""
                )
                + (f"; note: {r.note}" if r.note else "")
            )
        return "\n".join(lines)

    def _sequential_text(self, r: SimpleNamespace) -> str:
        """The always-valid p-value and confidence sequence, and the group-sequential
        look (``|z|`` against this look's bound), as a suffix of one repr line."""
        out = ""
        if self.sequential and np.isfinite(getattr(r, "log10_seq_p", np.nan)):
            out += (
                f", seq_p{_is(format_p(r.seq_p, r.log10_seq_p))} "
                f"(confidence sequence {_ci(r.abs_lift, r.seq_ci_low, r.seq_ci_high, False)})"
            )
        if np.isfinite(getattr(r, "gs_z", np.nan)):
            out += f", group-sequential |z| {abs(r.gs_z):.3f} vs bound {r.gs_bound:.3f}: " + (
                "stop, reject" if r.gs_reject else "continue"
            )
        return out

    def _display_frame(self) -> pd.DataFrame:
        t = self.table
        out = pd.DataFrame(
            {
                "": np.where(t["significant"], "★", ""),
                "experiment": t["experiment"],
                "metric": t["metric"],
                "arm": t["arm"] + " vs " + t["control"],
                "n": t["n_arm"].map("{:,}".format) + " / " + t["n_control"].map("{:,}".format),
                "estimate": [
                    _num(a) + " vs " + _num(c)
                    for a, c in zip(t["arm_estimate"], t["control_estimate"], strict=True)
                ],
                "abs lift [CI]": [
                    _ci(v, lo, hi, False)
                    for v, lo, hi in zip(
                        t["abs_lift"], t["abs_ci_low"], t["abs_ci_high"], strict=True
                    )
                ],
                "rel lift [CI]": [
                    _ci(v, lo, hi, True)
                    for v, lo, hi in zip(
                        t["rel_lift"], t["rel_ci_low"], t["rel_ci_high"], strict=True
                    )
                ],
                "p": [
                    format_p(p, lp) if np.isfinite(lp) else "—"
                    for p, lp in zip(t["p_value"], t["log10_p"], strict=True)
                ],
                f"p adj ({self.correction})": [
                    format_p(p, lp) if np.isfinite(lp) else "—"
                    for p, lp in zip(t["p_adjusted"], t["log10_p_adjusted"], strict=True)
                ],
                "P(beat ctrl) [Bayes]": [
                    format_probability(v) if np.isfinite(v) else "—"
                    for v in t["bayes_p_beat_control"]
                ],
                "SRM p": [
                    format_p(s.p_value, s.log10_p) if (s := self.srm.get(e)) else format_p(p)
                    for e, p in zip(t["experiment"], t["srm_p"], strict=True)
                ],
                "note": t["note"],
            }
        )
        if (t["cuped_theta_scope"] != "").any():
            out.insert(
                len(out.columns) - 1,
                "CUPED θ",
                [
                    f"{th:.4g} ({sc.replace('_', ' ')})" if sc and np.isfinite(th) else "—"
                    for th, sc in zip(t["cuped_theta"], t["cuped_theta_scope"], strict=True)
                ],
            )
        if "gs_reject" in t.columns:
            out.insert(
                10,
                "group-sequential",
                [
                    "—"
                    if not np.isfinite(z)
                    else ("stop: reject" if r else "continue") + f" (|z| {abs(z):.2f} vs {b:.2f})"
                    for z, b, r in zip(t["gs_z"], t["gs_bound"], t["gs_reject"], strict=True)
                ],
            )
        if self.sequential:
            out.insert(
                10,
                "always-valid p",
                [
                    format_p(v, lv) if np.isfinite(lv) else "—"
                    for v, lv in zip(t["seq_p"], t["log10_seq_p"], strict=True)
                ],
            )
            out.insert(
                11,
                "confidence sequence",
                [
                    _ci(v, lo, hi, False)
                    for v, lo, hi in zip(
                        t["abs_lift"], t["seq_ci_low"], t["seq_ci_high"], strict=True
                    )
                ],
            )
        return out

    def _repr_html_(self) -> str:
        banners = "".join(
            "<div class='el-srm-banner' style='background:#b00020;color:white;padding:8px;"
            f"font-weight:bold;margin-bottom:6px'>⚠ {html.escape(b)}</div>"
            for b in self._banner_text()
        )
        df = self._display_frame()
        head = "".join(f"<th>{html.escape(c)}</th>" for c in df.columns)
        body = []
        for mark, r in zip(self.verdicts(), df.itertuples(index=False), strict=True):
            style = _ROW_STYLE[mark]
            cls = {"win": "el-significant el-win", "loss": "el-significant el-loss"}.get(mark, "")
            body.append(
                f"<tr class='{cls}'{style}>"
                + "".join(f"<td>{html.escape(str(v))}</td>" for v in r)
                + "</tr>"
            )
        caption = (
            f"<caption>alpha = {self.alpha:g}; ★ = significant after {self.correction} correction "
            "(<span style='color:#1a5e20'>green</span>: better in the metric's good direction, "
            "<span style='color:#b00020'>red</span>: worse); "
            "Bayesian columns are labelled [Bayes]</caption>"
        )
        return f"{banners}<table class='el-experiment-result'>{caption}<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"

    def verdicts(self) -> list[str]:
        """Per row of :attr:`table`: ``'win'`` (significant and better in the metric's good
        direction, which knows ``lower_is_better``), ``'loss'`` (significant and worse) or
        ``'neutral'``."""
        return [
            "neutral" if not bool(sig) or d not in ("better", "worse")
            else ("win" if d == "better" else "loss")
            for sig, d in zip(self.table["significant"], self.table["direction"], strict=True)
        ]  # fmt: skip

    def plot(self, relative: bool = True, ax: Any = None):
        """Forest plot of the lift of every comparison with its interval (wins green, losses
        red, the rest grey); returns the Figure."""
        from engagelab.figures import new_figure

        t = self.table
        col, lo, hi = (
            ("rel_lift", "rel_ci_low", "rel_ci_high")
            if relative
            else ("abs_lift", "abs_ci_low", "abs_ci_high")
        )
        if ax is None:
            fig = new_figure(figsize=(7, 0.45 * max(len(t), 2) + 1.2))
            ax = fig.add_subplot(1, 1, 1)
        else:
            fig = ax.figure
        y = np.arange(len(t))[::-1]
        est = t[col].to_numpy(float)
        err = np.vstack([est - t[lo].to_numpy(float), t[hi].to_numpy(float) - est])
        err[~np.isfinite(err)] = 0.0  # the open end of a one-sided interval is not drawn
        colors = [_MARK_COLOUR[m] for m in self.verdicts()]
        for yi, e, el, eh, c in zip(y, est, err[0], err[1], colors, strict=True):
            if np.isfinite(e):
                ax.errorbar(e, yi, xerr=[[el], [eh]], fmt="o", color=c, capsize=3)
        ax.axvline(0, color="#999999", lw=1, ls="--")
        ax.set_yticks(y)
        ax.set_yticklabels(
            [f"{r.experiment} · {r.metric} · {r.arm} vs {r.control}" for r in t.itertuples()]
        )
        ax.set_xlabel(
            ("relative" if relative else "absolute")
            + f" lift, {1 - self.alpha:.0%} CI (green: win, red: loss)"
        )
        if self.srm_alarms():
            ax.set_title("SAMPLE RATIO MISMATCH: " + ", ".join(self.srm_alarms()), color="#b00020")
        fig.tight_layout()
        return fig


def build_table(
    rows: list[dict],
    *,
    alpha: float,
    correction: str,
    sequential: bool,
    group_sequential: bool = False,
    first: Sequence[str] = (),
) -> pd.DataFrame:
    """The comparison table from the rows of the analysis: p-values adjusted within
    each experiment (and each value of the ``first`` columns, which lead the table),
    significance, direction; optional column groups dropped when unused."""
    df = pd.DataFrame(rows)
    for c in COLUMNS + ["_logp", "_lower", "_se"]:
        if c not in df.columns:
            df[c] = np.nan
    logp = df["_logp"].to_numpy(float)
    adj = np.full(len(df), np.nan)
    for idx in df.groupby([*first, "experiment"], sort=False).indices.values():
        adj[idx] = adjust_logp(logp[idx], correction)
    df["log10_p_adjusted"] = adj / LN10
    df["p_adjusted"] = np.exp(adj)
    df["significant"] = (df["p_adjusted"] < alpha).fillna(False).astype(bool)
    better = np.where(df["_lower"].astype(bool), df["abs_lift"] < 0, df["abs_lift"] > 0)
    df["direction"] = np.where(df["abs_lift"].isna(), "", np.where(better, "better", "worse"))
    zero_ctrl = df["control_estimate"] == 0
    df.loc[
        zero_ctrl,
        ["rel_lift", "rel_ci_low", "rel_ci_high", "bayes_rel_ci_low", "bayes_rel_ci_high"],
    ] = np.nan
    if not sequential:
        df = df.drop(columns=["seq_p", "log10_seq_p", "seq_ci_low", "seq_ci_high"])
    if not group_sequential:
        df = df.drop(columns=["gs_z", "gs_bound", "gs_reject"])
    df["note"] = df["note"].fillna("")
    df["cuped_theta_scope"] = [v if isinstance(v, str) else "" for v in df["cuped_theta_scope"]]
    cols = [*first, *[c for c in COLUMNS if c in df.columns], "_lower", "_se"]
    return df[cols].reset_index(drop=True)


def _is(text: str) -> str:
    """``=value``, or `` > bound`` / `` < bound`` for a formatted bound."""
    return f" {text}" if text[:1] in "<>" else f"={text}"


def _num(v: float) -> str:
    return "—" if not np.isfinite(v) else f"{v:.4g}"


def _ci(v: float, lo: float, hi: float, pct: bool) -> str:
    """``value [low, high]``; an open end of a one-sided interval shows as ``-∞`` / ``+∞``."""
    if not np.isfinite(v):
        return "—"

    def f(x: float) -> str:
        if np.isinf(x):
            return "+∞" if x > 0 else "-∞"
        return f"{x:+.2%}" if pct else f"{x:+.4g}"

    return f"{f(v)} [{f(lo)}, {f(hi)}]"
