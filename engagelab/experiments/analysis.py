"""``analyze``: many experiments x metrics x arms in one call, on sufficient statistics.

Each arm is compared with the control arm. Estimates per arm:

- proportion / mean: ``Σy / n``, per-user variance ``(Σy² - (Σy)²/n) / (n - 1)``
  (``p(1-p)`` for proportions);
- ratio: ``Σnum / Σden`` with the delta-method variance
  ``(var_num - 2 R cov + R² var_den) / (n mean_den²)``;
- CUPED: ``ȳ - θ (x̄_arm - x̄)`` with ``θ`` the within-arm regression slope of ``y``
  on the covariate and ``x̄`` the covariate mean, both over the control and the
  compared arm only (``cuped_theta="per_comparison"``, the default: the slope of an
  OLS of ``y`` on a treatment dummy and the covariate over that pair), or over all
  arms (``cuped_theta="pooled"``); variance ``var_y - 2θ cov + θ² var_x``. The
  ``arms`` table and P(best), which put every arm on one scale, use the all-arms θ;
- CUPED ratio: the same on the delta-method linearisations of the ratio and of the
  pre-period ratio ``Σcovariate / Σdenominator_covariate`` (see
  :mod:`engagelab.experiments._ratio`).

Tests: ``auto`` picks the unpooled z test for proportions (Fisher's exact test
when an arm has fewer than 30 users or an expected cell below 5), Welch's t for
means and CUPED, and the z test for ratios. ``z``, ``pooled_z``, ``welch``,
``fisher`` and ``barnard`` can be forced. Relative lift intervals use the delta
method. p-values are adjusted across all arms x metrics of an experiment.

Example:
    >>> import pandas as pd
    >>> df = pd.DataFrame({"arm": ["A"] * 1000 + ["B"] * 1000,
    ...                    "clicked": [1] * 100 + [0] * 900 + [1] * 150 + [0] * 850})
    >>> r = analyze(df, arm_col="arm", control="A", metrics=["clicked:proportion"])
    >>> row = r.to_pandas().iloc[0]
    >>> round(float(row.abs_lift), 3), bool(row.significant), row.test
    (0.05, True, 'z')
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, overload

import numpy as np
import pandas as pd
from scipy import stats

from engagelab.errors import ValidationError
from engagelab.experiments import _stats
from engagelab.experiments._ratio import cuped_theta, moments
from engagelab.experiments.assignment import SRMResult, srm_check
from engagelab.experiments.bayes import bayes_summary
from engagelab.experiments.metrics import Metric, aggregate, cross
from engagelab.experiments.result import ExperimentResult
from engagelab.experiments.segmented import MAX_SEGMENTS, SegmentedResult, segment_analysis
from engagelab.experiments.sequential import always_valid, group_sequential_bounds
from engagelab.experiments.spec import REL_CIS, TESTS, Experiment, as_experiment

__all__ = ["REL_CIS", "TESTS", "analyze", "analyze_aggregates", "analyze_by", "analyze_spec"]


def _arm_stats(
    row: Mapping[str, Any], m: Metric, theta: float, xbar_all: float
) -> dict[str, float]:
    n = float(row["n"])
    s, ss = row[f"sum:{m.column}"], row[f"sumsq:{m.column}"]
    mean = s / n if n > 0 else math.nan  # an arm with no users in a segment
    var = (ss - s * s / n) / (n - 1) if n > 1 else math.nan
    out = {"n": n, "successes": s, "estimate": mean, "var": max(var, 0.0) if n > 1 else math.nan}
    if m.kind == "ratio":
        k = moments(
            row, m.column or m.name, m.denominator or "", m.covariate, m.denominator_covariate
        )
        if math.isnan(k.var_l):
            out.update(estimate=math.nan, var=math.nan)
            return out
        out.update(estimate=k.ratio, var=k.var_l)
        if theta != 0:
            out.update(
                estimate=k.ratio - theta * (k.cov_ratio - xbar_all),
                var=max(k.var_l - 2 * theta * k.cov_lk + theta**2 * k.var_k, 0.0),
            )
    elif m.covariate:
        x, xx, cp = (
            row[f"sum:{m.covariate}"],
            row[f"sumsq:{m.covariate}"],
            cross(row, m.column or m.name, m.covariate),
        )
        if n > 1:
            var_x = (xx - x * x / n) / (n - 1)
            cov = (cp - s * x / n) / (n - 1)
            out.update(
                estimate=mean - theta * (x / n - xbar_all),
                var=max(out["var"] - 2 * theta * cov + theta**2 * var_x, 0.0),
            )
    elif m.kind == "proportion":
        out["var"] = mean * (1 - mean)
    out["se2"] = out["var"] / n if n > 0 else math.nan
    return out


def _theta(recs: Sequence[Mapping[str, Any]], m: Metric) -> tuple[float, float, str]:
    """CUPED slope, all-arms covariate mean (or ratio) and a note when no adjustment is made.

    ``θ`` is the pooled within-arm regression slope (the covariate's coefficient in an
    OLS of the outcome on arm dummies and the covariate).
    """
    y, x = m.column or m.name, m.covariate or ""
    if m.kind == "ratio":
        return cuped_theta(recs, y, m.denominator or "", x, m.denominator_covariate)
    sxx = sxy = xs_all = n_all = 0.0
    for r in recs:
        n, xs, s = float(r["n"]), float(r[f"sum:{x}"]), float(r[f"sum:{y}"])
        if n == 0:
            continue
        sxx += float(r[f"sumsq:{x}"]) - xs * xs / n
        sxy += float(cross(r, y, x)) - s * xs / n
        xs_all, n_all = xs_all + xs, n_all + n
    return (sxy / sxx if sxx > 0 else 0.0), (xs_all / n_all if n_all else math.nan), ""


def _note(m: Metric, c: dict, t: dict, arm: str, control: str) -> str:
    if c["n"] < 2 or t["n"] < 2:
        return (
            f"fewer than 2 users in arm {arm if t['n'] < 2 else control!r}: no inference possible"
        )
    if m.kind == "ratio" and (math.isnan(c["estimate"]) or math.isnan(t["estimate"])):
        return f"denominator {m.denominator!r} sums to 0 in an arm: ratio undefined, no inference possible"
    if c["var"] == 0 and t["var"] == 0:
        return "no variance in either arm (every value identical): no inference possible"
    return ""


def _compare(
    m: Metric, c: dict, t: dict, test: str, alpha: float, alternative: str, rel_ci: str = "delta"
) -> dict[str, Any]:
    diff = t["estimate"] - c["estimate"]
    se = math.sqrt(c["se2"] + t["se2"])
    plain_prop = m.kind == "proportion" and not m.covariate
    if test == "auto":
        if plain_prop:
            small = min(c["n"], t["n"]) < 30
            tot_s, tot = c["successes"] + t["successes"], c["n"] + t["n"]
            exp_min = min(tot_s, tot - tot_s) * min(c["n"], t["n"]) / tot
            test = "fisher" if small or exp_min < 5 else "z"
        else:
            test = "z" if m.kind == "ratio" else "welch"
    if test in ("pooled_z", "fisher", "barnard") and not plain_prop:
        raise ValidationError(
            "test", test, f"applies to proportion metrics without a covariate, not {m.name!r}"
        )
    if test == "welch" and m.kind == "ratio":
        raise ValidationError("test", test, f"is not defined for ratio metric {m.name!r}; use 'z'")
    alt = {"two-sided": "two-sided", "greater": "greater", "less": "less"}[alternative]
    # intervals match the test: two-sided at 1 - alpha, or one-sided (open towards the
    # alternative) so that "p < alpha" and "the interval excludes 0" always agree
    tail = alpha / 2 if alternative == "two-sided" else alpha
    crit = stats.norm.isf(tail)
    if test == "welch":
        _, df, logp, _ = _stats.welch(
            c["estimate"], c["var"], c["n"], t["estimate"], t["var"], t["n"], alt
        )
        crit = float(stats.t.isf(tail, df)) if np.isfinite(df) else crit
    elif test == "pooled_z":
        _, logp = _stats.pooled_z(c["successes"], c["n"], t["successes"], t["n"], alt)
    elif test in ("fisher", "barnard"):
        sc, nc, st, nt = (int(round(v)) for v in (c["successes"], c["n"], t["successes"], t["n"]))
        exact = _stats.fisher if test == "fisher" else _stats.barnard
        logp = exact(sc, nc, st, nt, alternative=alt)
    else:
        _, logp = _stats.z_test(diff, se, alt)
    logp = float(logp)
    rel, rlo, rhi = (_stats.fieller if rel_ci == "fieller" else _stats.relative_lift)(
        c["estimate"], c["se2"], t["estimate"], t["se2"], crit
    )
    lo, hi = diff - crit * se, diff + crit * se
    if alternative == "greater":
        hi = rhi = math.inf
    elif alternative == "less":
        lo = rlo = -math.inf
    return {
        "test": test,
        "abs_lift": diff,
        "abs_ci_low": lo,
        "abs_ci_high": hi,
        "rel_lift": float(rel),
        "rel_ci_low": float(rlo),
        "rel_ci_high": float(rhi),
        "p_value": math.exp(logp),
        "log10_p": logp / _stats.LN10,
        "_logp": logp,
        "_se": se,
    }


def analyze_aggregates(
    agg: pd.DataFrame, experiment: Experiment | None = None, **options: Any
) -> ExperimentResult:
    """Analyse per-arm sufficient statistics (the output of
    :func:`~engagelab.experiments.metrics.aggregate`) as :func:`analyze` does.

    ``experiment`` is an :class:`~engagelab.experiments.Experiment`; or give its fields
    as keywords (``control=``, ``metrics=``, ...), the form ``analyze`` has always taken;
    keywords given with an experiment override its fields.
    """
    return analyze_spec(agg, as_experiment(experiment, options))


def analyze_spec(agg: pd.DataFrame, spec: Experiment) -> ExperimentResult:
    """:func:`analyze_aggregates` on a built spec."""
    rows, arm_rows, srms = comparison_rows(agg, spec)
    return ExperimentResult.build(
        rows,
        arm_rows,
        srms,
        alpha=spec.alpha,
        correction=spec.correction,
        sequential=spec.sequential.always_valid,
        group_sequential=spec.sequential.information is not None,
    )


def comparison_rows(  # noqa: C901
    agg: pd.DataFrame | Sequence[Mapping[str, Any]], spec: Experiment, *, bayes: bool = True
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[Any, SRMResult]]:
    """The comparison rows, arm rows and SRM checks of :func:`analyze_spec`, before
    the multiple-comparison adjustment; ``agg`` may also be its records (dicts), and
    ``bayes=False`` leaves out the Bayesian columns."""
    ms, alpha, test, rel_ci = list(spec.metrics), spec.alpha, spec.test, spec.rel_ci
    alternative, arms, weights, seq = spec.alternative, spec.arms, spec.weights, spec.sequential
    sequential, tuning_n = seq.always_valid, seq.tuning_n
    bayes_draws, seed = spec.bayes_draws, spec.seed
    gs_bound = None
    if seq.information is not None:
        bounds = group_sequential_bounds(seq.information, alpha, seq.spending, seq.rho)
        gs_bound = bounds[(seq.look or len(bounds)) - 1]
    control = spec.control
    rows: list[dict[str, Any]] = []
    arm_rows: list[dict[str, Any]] = []
    srms: dict[Any, SRMResult] = {}
    groups: dict[Any, list[dict[str, Any]]] = {}
    records = agg.to_dict("records") if isinstance(agg, pd.DataFrame) else agg
    for r in records:  # once: per-group to_dict costs ~10 ms each in pandas 3
        groups.setdefault(r["experiment"], []).append({str(k): v for k, v in r.items()})
    for exp in sorted(groups):
        recs: dict[str, dict[str, Any]] = {str(r["arm"]): r for r in groups[exp]}
        present = list(recs)
        if control not in present:
            raise ValidationError(
                "control",
                control,
                "must be one of the arms present: " + ", ".join(repr(a) for a in present),
            )
        order = [control] + sorted(a for a in present if a != control)
        if arms is not None:
            missing = [a for a in arms if str(a) not in present]
            if missing:
                raise ValidationError(
                    "arms", list(arms), f"arm {missing[0]!r} has zero users in experiment {exp!r}"
                )
        srm = _srm(recs, order, weights)
        srms[exp] = srm
        for m in ms:
            if m.kind == "proportion":
                s_ = np.array([float(recs[a][f"sum:{m.column}"]) for a in order])
                ss_ = np.array([float(recs[a][f"sumsq:{m.column}"]) for a in order])
                if (np.abs(s_ - ss_) > 1e-9 * np.maximum(1.0, np.abs(s_))).any():
                    raise ValidationError(
                        f"metrics[{m.name!r}].column",
                        m.column,
                        "must hold only 0/1 (or boolean) values for a proportion metric",
                    )
            theta, xbar, cuped_note = (
                _theta([recs[a] for a in order], m) if m.covariate else (0.0, 0.0, "")
            )
            st = {a: _arm_stats(recs[a], m, theta, xbar) for a in order}
            bay = _bayes(m, st, order, bayes_draws, seed) if bayes else None
            for i, a in enumerate(order):
                arm_rows.append(
                    {
                        "experiment": exp,
                        "metric": m.name,
                        "arm": a,
                        "n": int(st[a]["n"]),
                        "estimate": st[a]["estimate"],
                        "bayes_p_best": _prob("p_best", bay["p_best"][i]) if bay else math.nan,
                    }
                )
            pairwise = bool(m.covariate) and spec.cuped_theta == "per_comparison"
            for i, a in enumerate(order[1:], start=1):
                c, t, th, c_note, bay_i, j = st[control], st[a], theta, cuped_note, bay, i
                if pairwise and len(order) > 2:  # with two arms the pair is all arms
                    th, xb, c_note = _theta([recs[control], recs[a]], m)
                    c = _arm_stats(recs[control], m, th, xb)
                    t = _arm_stats(recs[a], m, th, xb)
                    bay_i = (
                        _bayes(m, {control: c, a: t}, [control, a], bayes_draws, seed)
                        if bayes
                        else None
                    )
                    j = 1
                row = {
                    "experiment": exp,
                    "metric": m.name,
                    "kind": m.kind + (" (CUPED)" if m.covariate else ""),
                    "arm": a,
                    "control": control,
                    "n_control": int(c["n"]),
                    "n_arm": int(t["n"]),
                    "control_estimate": c["estimate"],
                    "arm_estimate": t["estimate"],
                }
                if m.covariate:
                    row |= {"cuped_theta": th, "cuped_theta_scope": spec.cuped_theta}
                note = _note(m, c, t, a, control)
                if not note:
                    row |= _compare(m, c, t, test, alpha, alternative, rel_ci)
                    if c["estimate"] == 0:
                        note = "control estimate is 0: relative lift undefined"
                    note = "; ".join(x for x in (c_note, note) if x)
                    if gs_bound is not None:
                        z = row["abs_lift"] / row["_se"] if row["_se"] > 0 else math.nan
                        row |= {
                            "gs_z": z,
                            "gs_bound": gs_bound,
                            "gs_reject": bool(abs(z) >= gs_bound),
                        }
                    if sequential:
                        lp, lo, hi = always_valid(
                            row["abs_lift"], row["_se"] ** 2, c["n"] + t["n"], alpha, tuning_n
                        )
                        row |= {
                            "seq_p": math.exp(float(lp)),
                            "log10_seq_p": float(lp) / _stats.LN10,
                            "seq_ci_low": float(lo),
                            "seq_ci_high": float(hi),
                        }
                    if bay_i:
                        row |= {f"bayes_{k}": _prob(k, v[j]) for k, v in bay_i.items()}
                    # P(best) ranks every arm at once: always from the all-arms fit
                    row["bayes_p_best"] = _prob("p_best", bay["p_best"][i]) if bay else math.nan
                row |= {"srm_p": srm.p_value, "note": note, "_lower": m.lower_is_better}
                rows.append(row)
    return rows, arm_rows, srms


def _prob(key: str, v: Any) -> float:
    """A Bayesian summary as a float; probabilities clipped to [0, 1] (rounding in the
    exact Beta sums can overshoot 1 by an ulp)."""
    return min(max(float(v), 0.0), 1.0) if key.startswith("p_") else float(v)


def _bayes(m: Metric, st: dict, order: list[str], draws: int, seed: int) -> dict | None:
    if any(st[a]["n"] < 2 or not np.isfinite(st[a]["estimate"]) for a in order):
        return None
    if m.kind == "proportion" and not m.covariate:
        args = [(st[a]["successes"], st[a]["n"]) for a in order]
        return bayes_summary(args, "proportion", 0, m.lower_is_better, draws=draws, seed=seed)
    if all(st[a]["se2"] == 0 for a in order):
        return None
    args = [(st[a]["estimate"], math.sqrt(st[a]["se2"])) for a in order]
    return bayes_summary(args, "normal", 0, m.lower_is_better, draws=draws, seed=seed)


def _srm(recs: Mapping[str, Mapping[str, Any]], order: list[str], weights) -> SRMResult:
    counts = {a: int(recs[a]["n"]) for a in order}
    if weights is None:
        w = None
    elif isinstance(weights, Mapping):
        unknown = [k for k in weights if str(k) not in counts]
        if unknown:
            raise ValidationError(
                "weights", dict(weights), f"arm {unknown[0]!r} has zero users (not in the data)"
            )
        missing = [a for a in order if a not in {str(k) for k in weights}]
        if missing:
            raise ValidationError(
                "weights", dict(weights), f"must give a weight for arm {missing[0]!r}"
            )
        w = [float({str(k): v for k, v in weights.items()}[a]) for a in order]
    else:
        if len(weights) != len(order):
            raise ValidationError(
                "weights",
                list(weights),
                f"must have one weight per arm ({len(order)}: control first)",
            )
        w = list(weights)
    if len(order) < 2:
        raise ValidationError("control", order[0], "is the only arm: nothing to compare")
    return srm_check(counts, w)


@overload
def analyze(
    data: Any,
    experiment: Experiment | None = None,
    *,
    by: None = None,
    max_segments: int = ...,
    **options: Any,
) -> ExperimentResult: ...


@overload
def analyze(
    data: Any,
    experiment: Experiment | None = None,
    *,
    by: str,
    max_segments: int = ...,
    **options: Any,
) -> SegmentedResult: ...


def analyze(
    data: Any,
    experiment: Experiment | None = None,
    *,
    by: str | None = None,
    max_segments: int = 200,
    **options: Any,
) -> ExperimentResult | SegmentedResult:
    """Analyse experiments x metrics x arms in one call.

    Args:
        data: a pandas/polars DataFrame, a CSV or Parquet path, a DuckDB relation, a
            DuckDB SQL query or a Spark DataFrame (aggregated on its SparkSession by
            the same SQL transpiled with sqlglot), with one row per user.
        experiment: an :class:`~engagelab.experiments.Experiment`: the arm column and
            control arm, the metrics and covariates, the test, correction, alpha and the
            sequential options (see its fields).
        options: the experiment's fields as keywords, instead of ``experiment`` (or
            overriding its fields): ``arm_col``, ``control``, ``metrics``,
            ``experiment_col``, ``covariate``, ``denominator_covariate``, ``alpha``,
            ``correction``, ``test``, ``alternative``, ``rel_ci``, ``cuped_theta``
            (``per_comparison``, the default, or ``pooled``), ``weights``,
            ``arms``, ``bayes_draws``, ``seed``, and the sequential options flat:
            ``sequential`` (true: always-valid p-values and confidence sequences),
            ``tuning_n``, ``gs_information``, ``gs_look``, ``gs_spending``, ``gs_rho``. Both forms
            give the same result.
        by: a column of ``data`` to analyse per segment: returns a
            :class:`~engagelab.experiments.segmented.SegmentedResult` with every
            comparison in every segment (each segment analysed as if alone) and, per
            segment, the z test of "this segment's effect differs from the rest's" with
            Benjamini-Hochberg flags across segments (``differs``). Missing values form
            the segment ``"(missing)"``; more than ``max_segments`` (200) distinct
            values is an error.
        max_segments: the most segments ``by`` may produce.

    With a one-sided ``alternative`` the intervals are one-sided too (``abs_ci_high`` /
    ``rel_ci_high`` is ``inf`` for ``greater``, the lows ``-inf`` for ``less``), so a
    p-value below ``alpha`` always means an interval that excludes 0. ``rel_ci="fieller"``
    gives Fieller's interval of the relative lift: asymmetric, better when the control
    estimate is noisy, excluding 0 exactly when the z or Welch test of the difference
    rejects, unbounded when the control estimate is not significantly different from 0.
    A group-sequential design (``Sequential(information=...)``) adds ``gs_z``,
    ``gs_bound`` (the Lan-DeMets boundary of this look) and ``gs_reject``.

    Example:
        >>> import pandas as pd
        >>> from engagelab.experiments import Experiment
        >>> df = pd.DataFrame({"arm": ["A"] * 1000 + ["B"] * 1000,
        ...                    "clicked": [1] * 100 + [0] * 900 + [1] * 150 + [0] * 850})
        >>> exp = Experiment(control="A", metrics=("clicked:proportion",), correction="none")
        >>> by_spec = analyze(df, exp).to_pandas()
        >>> by_keywords = analyze(df, arm_col="arm", control="A", metrics=["clicked:proportion"],
        ...                       correction="none").to_pandas()
        >>> by_spec.equals(by_keywords), round(float(by_spec.p_value.iloc[0]), 5)
        (True, 0.0007)

    Returns:
        An :class:`~engagelab.experiments.result.ExperimentResult` (a
        :class:`~engagelab.experiments.segmented.SegmentedResult` with ``by``).
    """
    exp = as_experiment(experiment, options)
    if by is not None:
        return analyze_by(data, exp, by, max_segments=max_segments)
    agg = aggregate(data, list(exp.metrics), exp.arm_col, exp.experiment_col)
    if agg.empty:
        raise ValidationError("data", "<empty>", "must contain at least one user")
    return analyze_aggregates(agg, exp)


def analyze_by(
    data: Any,
    spec: Experiment,
    by: str,
    *,
    max_segments: int = MAX_SEGMENTS,
    agg: pd.DataFrame | None = None,
) -> SegmentedResult:
    """Per-segment analysis of ``data`` by the column ``by``: what ``analyze(..., by=)``
    returns (see :mod:`engagelab.experiments.segmented`).

    ``agg`` (the output of ``aggregate(..., segment_col=by)``) replaces ``data``.
    """
    return segment_analysis(
        data, spec, by, analyze_spec=analyze_spec, comparison_rows=comparison_rows,
        max_segments=max_segments, agg=agg,
    )  # fmt: skip
