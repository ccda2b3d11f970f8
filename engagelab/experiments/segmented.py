"""Per-segment effects: ``analyze(..., by="country")``.

One scan aggregates the sufficient statistics per experiment x segment x arm. Then,
for every segment:

- the segment's own analysis: exactly what :func:`~engagelab.experiments.analyze`
  gives on that segment's users alone (same metrics, tests, intervals, CUPED θ
  estimated within the segment, the multiple-comparison ``correction`` across the
  segment's arms x metrics, its own SRM check), without the Bayesian columns
  (``overall``, the analysis of all users, keeps them);
- the same estimate on the rest of the users (the complement), and the test of
  "this segment's effect differs from the rest's": ``Δ = lift_segment - lift_rest``
  with ``se = sqrt(se_segment² + se_rest²)`` (the two are independent samples) and a
  two-sided z test, whatever ``alternative`` the comparisons use;
- Benjamini-Hochberg FDR control of those tests across the segments of each
  comparison (experiment x metric x arm): ``diff_q`` is the BH-adjusted p-value
  (:func:`~engagelab.experiments.adjust_pvalues` with ``"bh"``) and ``differs`` flags
  ``diff_q < alpha``, so the expected share of false flags among the flags is at
  most ``alpha``.

Users whose segment value is missing (NULL/NaN) form the segment named
:data:`MISSING` (``"(missing)"``); a real segment value spelled the same is an error.
At most ``max_segments`` (default 200) segments are analysed; more is an error (the
flags of hundreds of tiny segments carry little information, and a user-id column
passed by mistake would otherwise produce millions of rows). An arm with no users in
a segment gives rows with a note and no inference.

Example:
    >>> import pandas as pd
    >>> from engagelab.experiments import Experiment
    >>> ten, twenty = [1] * 100 + [0] * 900, [1] * 200 + [0] * 800
    >>> df = pd.DataFrame({"country": ["DE"] * 2000 + ["FR"] * 2000,
    ...                    "arm": (["A"] * 1000 + ["B"] * 1000) * 2,
    ...                    "clicked": ten + ten + ten + twenty})
    >>> from engagelab.experiments import analyze
    >>> r = analyze(df, Experiment(control="A", metrics=("clicked:proportion",)), by="country")
    >>> cols = ["segment", "abs_lift", "rest_abs_lift", "diff_from_rest", "differs"]
    >>> r.to_pandas()[cols].round(3).values.tolist()
    [['DE', 0.0, 0.1, -0.1, True], ['FR', 0.1, 0.0, 0.1, True]]
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from engagelab.errors import ValidationError
from engagelab.experiments import _stats
from engagelab.experiments.assignment import SRMResult
from engagelab.experiments.formatting import format_p
from engagelab.experiments.metrics import aggregate
from engagelab.experiments.result import ExperimentResult, _ci, _is, _num, build_table
from engagelab.experiments.spec import Experiment
from engagelab.validate import check_int

__all__ = ["MAX_SEGMENTS", "MISSING", "SEGMENT_COLUMNS", "SegmentedResult", "segment_analysis"]

#: The most segments one ``by`` analysis takes by default.
MAX_SEGMENTS = 200
#: The name of the segment of users whose ``by`` value is missing.
MISSING = "(missing)"
#: The columns added to the comparison columns of each segment.
SEGMENT_COLUMNS = [
    "rest_n",
    "rest_abs_lift",
    "diff_from_rest",
    "diff_ci_low",
    "diff_ci_high",
    "diff_z",
    "diff_p",
    "diff_log10_p",
    "diff_q",
    "differs",
]


@dataclass(frozen=True, repr=False)
class SegmentedResult:
    """The effect of every comparison in every segment, and which segments differ.

    Attributes:
        table: one row per segment x experiment x metric x non-control arm: the
            columns of :data:`~engagelab.experiments.result.COLUMNS` (``p_adjusted``
            within the segment) after ``segment``, then :data:`SEGMENT_COLUMNS`.
        overall: the plain analysis of all users (an ``ExperimentResult``, with the
            Bayesian columns, which the per-segment rows leave out).
        srm: the sample-ratio check of every experiment in every segment
            (segment -> experiment -> ``SRMResult``).
        by: the segment column; alpha: level of the intervals and FDR level of
            ``differs``; correction: the correction within each segment.
    """

    table: pd.DataFrame
    overall: ExperimentResult
    srm: Mapping[str, Mapping[str, SRMResult]]
    by: str
    alpha: float
    correction: str

    def to_pandas(self) -> pd.DataFrame:
        """The per-segment table (a copy)."""
        return self.table.copy()

    def to_dicts(self) -> list[dict[str, Any]]:
        """The rows as JSON-ready dictionaries (NaN and infinite ends become None)."""
        df = self.table.astype(object)
        return [
            {
                str(k): (None if isinstance(v, float) and not math.isfinite(v) else v)
                for k, v in r.items()
            }
            for r in df.where(df.notna(), None).to_dict("records")
        ]

    def flagged(self) -> pd.DataFrame:
        """The rows whose segment effect differs from the rest's (FDR-controlled)."""
        return self.table[self.table["differs"]].copy()

    def __repr__(self) -> str:
        t = self.table
        lines = [
            f"SegmentedResult(by={self.by!r}: {self.table['segment'].nunique()} segments, {len(t)} rows, "
            f"{int(t['differs'].sum())} differ from the rest at FDR {self.alpha:g})"
        ]
        for rec in t.to_dict("records"):
            r = SimpleNamespace(**{str(k): v for k, v in rec.items()})
            head = f"  {r.segment} | {r.experiment} | {r.metric} | {r.arm} vs {r.control}: "
            if not np.isfinite(r.abs_lift):
                lines.append(head + (r.note or "no estimate"))
                continue
            diff = (
                f", vs rest {r.diff_from_rest:+.4g} (q{_is(format_p(r.diff_q))})"
                + (" DIFFERS" if r.differs else "")
                if np.isfinite(r.diff_from_rest)
                else ""
            )
            lines.append(
                head + f"lift {r.abs_lift:+.4g}, p{_is(format_p(r.p_value, r.log10_p))}" + diff
            )
        return "\n".join(lines)

    def _display_frame(self) -> pd.DataFrame:
        t = self.table
        return pd.DataFrame(
            {
                "": np.where(t["differs"], "◆", ""),
                "segment": t["segment"],
                "experiment": t["experiment"],
                "metric": t["metric"],
                "arm": t["arm"] + " vs " + t["control"],
                "n": t["n_arm"].map("{:,}".format) + " / " + t["n_control"].map("{:,}".format),
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
                "rest lift": [_num(v) for v in t["rest_abs_lift"]],
                "segment − rest [CI]": [
                    _ci(v, lo, hi, False)
                    for v, lo, hi in zip(
                        t["diff_from_rest"], t["diff_ci_low"], t["diff_ci_high"], strict=True
                    )
                ],
                "q (BH)": [format_p(q) if np.isfinite(q) else "—" for q in t["diff_q"]],
                "note": t["note"],
            }
        )

    def _repr_html_(self) -> str:
        df = self._display_frame()
        head = "".join(f"<th>{html.escape(c)}</th>" for c in df.columns)
        body = []
        for flag, r in zip(self.table["differs"], df.itertuples(index=False), strict=True):
            style = " style='background:#fff4e5;font-weight:bold'" if flag else ""
            body.append(
                f"<tr class='{'el-differs' if flag else ''}'{style}>"
                + "".join(f"<td>{html.escape(str(v))}</td>" for v in r)
                + "</tr>"
            )
        caption = (
            f"<caption>by {html.escape(self.by)}: each segment analysed on its own "
            f"(alpha = {self.alpha:g}, {html.escape(self.correction)} within the segment); "
            f"◆ = the segment's lift differs from the rest's (Benjamini-Hochberg FDR "
            f"{self.alpha:g} across segments)</caption>"
        )
        return (
            f"<table class='el-segmented-result'>{caption}<thead><tr>{head}</tr></thead>"
            f"<tbody>{''.join(body)}</tbody></table>"
        )


_KEY = ["experiment", "arm"]


def _segments(agg: pd.DataFrame, by: str, max_segments: int) -> list[str]:
    seg = agg["segment"]
    if seg.isna().any():
        if (seg == MISSING).any():
            raise ValidationError(
                "by",
                by,
                f"has both missing values and the value {MISSING!r}, the name of the "
                "missing-value segment: rename that value or fill the missing ones",
            )
        agg["segment"] = seg.where(seg.notna(), MISSING)
    names = sorted(str(s) for s in agg["segment"].unique())
    if len(names) > max_segments:
        raise ValidationError(
            "by",
            by,
            f"has {len(names)} distinct values, more than max_segments={max_segments}: "
            "group them into fewer segments (or raise max_segments)",
        )
    if len(names) < 2:
        raise ValidationError(
            "by", by, f"must split the users into at least 2 segments, got {names}"
        )
    return names


def _records(
    keys: list[tuple[str, str]], sums: np.ndarray, cols: list[str]
) -> list[dict[str, Any]]:
    """Aggregate rows from the sums of ``cols`` per (experiment, arm) key, keeping the
    experiments with at least one user; an arm without users is a row of zeros."""
    present = {e for (e, _), n in zip(keys, sums[:, 0], strict=True) if n > 0}
    out = []
    for (e, a), v in zip(keys, sums.tolist(), strict=True):
        if e in present:
            out.append(
                {"experiment": e, "arm": a, "n": int(round(v[0]))}
                | dict(zip(cols, v[1:], strict=True))
            )
    return out


def segment_analysis(
    data: Any,
    spec: Experiment,
    by: str,
    *,
    analyze_spec: Any,
    comparison_rows: Any,
    max_segments: int = MAX_SEGMENTS,
    agg: pd.DataFrame | None = None,
) -> SegmentedResult:
    """Per-segment analysis of ``data`` by the column ``by`` (see the module docstring);
    what :func:`engagelab.experiments.analysis.analyze_by` runs.

    ``analyze_spec`` and ``comparison_rows`` are the analysis functions of
    :mod:`engagelab.experiments.analysis` (passed in, so this module does not import the
    module that imports it); ``agg`` (the output of ``aggregate(..., segment_col=by)``)
    replaces ``data``.
    """
    check_int("max_segments", max_segments, low=2)
    if not isinstance(by, str) or not by:
        raise ValidationError("by", by, "must be a column name (text)")
    if agg is None:
        agg = aggregate(data, list(spec.metrics), spec.arm_col, spec.experiment_col, by)
    if agg.empty:
        raise ValidationError("data", "<empty>", "must contain at least one user")
    agg = agg.copy()
    names = _segments(agg, by, max_segments)
    cols = [c for c in agg.columns if c not in ("experiment", "segment", "arm", "n")]
    # the sufficient statistics as one array: segment x (experiment, arm) x (n, sums...)
    exps, arm_names = agg["experiment"].astype(str), agg["arm"].astype(str)
    keys = sorted(set(zip(exps, arm_names, strict=True)))
    where = {k: i for i, k in enumerate(keys)}
    seg_index = {name: i for i, name in enumerate(names)}
    cube = np.zeros((len(names), len(keys), len(cols) + 1))
    values = agg[["n", *cols]].to_numpy(float)
    for s, e, a, v in zip(agg["segment"].astype(str), exps, arm_names, values, strict=True):
        cube[seg_index[s], where[(e, a)]] = v
    total = cube.sum(axis=0)
    overall = analyze_spec(pd.DataFrame(_records(keys, total, cols)), spec)
    rows: list[dict[str, Any]] = []
    srms: dict[str, dict[str, SRMResult]] = {}
    others = np.ones(len(names), bool)
    for i, name in enumerate(names):
        others[i] = False
        rest = cube[others].sum(axis=0)  # summed, not total - segment: no cancellation
        others[i] = True
        seg_rows, _, srms[name] = comparison_rows(_records(keys, cube[i], cols), spec, bayes=False)
        rest_rows = {
            (r["experiment"], r["metric"], r["arm"]): r
            for r in comparison_rows(_records(keys, rest, cols), spec, bayes=False)[0]
        }
        for r in seg_rows:
            o = rest_rows.get((r["experiment"], r["metric"], r["arm"]), {})
            r |= {
                "segment": name,
                "rest_n": o.get("n_control", 0) + o.get("n_arm", 0),
                "rest_abs_lift": o.get("abs_lift", math.nan),
                "_se_rest": o.get("_se", math.nan),
            }
        rows += seg_rows
    table = build_table(
        rows,
        alpha=spec.alpha,
        correction=spec.correction,
        sequential=spec.sequential.always_valid,
        group_sequential=spec.sequential.information is not None,
        first=("segment",),
    )
    extra = pd.DataFrame(rows)[["rest_n", "rest_abs_lift", "_se_rest"]]
    table = _differences(pd.concat([table, extra], axis=1), spec.alpha)
    cols = [c for c in table.columns if not c.startswith("_") and c not in SEGMENT_COLUMNS]
    return SegmentedResult(
        table[cols + SEGMENT_COLUMNS].reset_index(drop=True),
        overall,
        srms,
        by,
        spec.alpha,
        spec.correction,
    )


def _differences(table: pd.DataFrame, alpha: float) -> pd.DataFrame:
    """Segment minus rest: z test on independent estimates, BH across segments."""
    diff = table["abs_lift"].to_numpy(float) - table["rest_abs_lift"].to_numpy(float)
    se = np.hypot(table["_se"].to_numpy(float), table["_se_rest"].to_numpy(float))
    ok = np.isfinite(diff) & np.isfinite(se) & (se > 0)
    diff = np.where(ok, diff, np.nan)
    z, logp = _stats.z_test(diff, np.where(ok, se, np.nan), "two-sided")
    crit = float(stats.norm.isf(alpha / 2))
    q = np.full(len(table), np.nan)
    for idx in table.groupby(["experiment", "metric", "arm"], sort=False).indices.values():
        q[idx] = _stats.adjust_logp(logp[idx], "bh")
    return table.assign(
        diff_from_rest=diff,
        diff_ci_low=diff - crit * se,
        diff_ci_high=diff + crit * se,
        diff_z=z,
        diff_p=np.exp(logp),
        diff_log10_p=logp / _stats.LN10,
        diff_q=np.exp(q),
        differs=np.nan_to_num(np.exp(q), nan=1.0) < alpha,
    )
