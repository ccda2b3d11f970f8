"""A CLI-ready layer: plain functions taking plain values and returning JSON-ready dicts.

``engagelab experiment design ...`` maps onto :func:`design_experiment` and
``engagelab experiment analyze ...`` onto :func:`analyze_experiment`.

Example:
    >>> out = design_experiment(metric="proportion", baseline=0.05, mde=0.10, relative=True)
    >>> out["solved_for"], out["n_per_arm"], out["total_n"], out["method"]
    ('sample_size', [31231, 31231], 62462, 'unpooled')
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from engagelab.errors import ValidationError
from engagelab.experiments import design
from engagelab.experiments.formatting import (
    P_COLUMNS,
    PROBABILITY_COLUMNS,
    format_p,
    format_probability,
)

__all__ = ["analyze_experiment", "design_experiment"]


def design_experiment(
    *,
    metric: str = "proportion",
    baseline: float | None = None,
    mde: float | None = None,
    relative: bool = False,
    sd: float | None = None,
    alpha: float = 0.05,
    power: float = 0.8,
    alternative: str = "two-sided",
    arms: int = 2,
    weights: Sequence[float] | None = None,
    correction: str = "bonferroni",
    method: str | None = None,
    n_per_arm: int | None = None,
    total_n: int | None = None,
    daily_traffic: float | None = None,
    traffic_fraction: float = 1.0,
    cuped_rho: float = 0.0,
    ratio: Mapping[str, float] | None = None,
) -> dict[str, Any]:
    """Solve whichever design problem the arguments pose.

    ``mde`` without a sample size -> sample size (and duration with ``daily_traffic``);
    a sample size without ``mde`` -> minimum detectable effect; both -> power.
    ``cuped_rho`` plans for CUPED (variance x ``1 - rho**2``); ``metric="ratio"`` takes
    the moments of its numerator and denominator as ``ratio`` (see
    :mod:`engagelab.experiments.design`).
    """
    common: dict[str, Any] = dict(
        baseline=baseline,
        sd=sd,
        alpha=alpha,
        alternative=alternative,
        arms=arms,
        weights=weights,
        correction=correction,
        method=method,
        cuped_rho=cuped_rho,
        ratio=ratio,
    )
    has_n = n_per_arm is not None or total_n is not None
    if mde is None and not has_n:
        raise ValidationError(
            "mde", mde, "give mde (to get a sample size) or n_per_arm/total_n (to get the mde)"
        )
    if mde is not None and not has_n:
        res = design.sample_size(
            metric,
            mde=mde,
            relative=relative,
            power=power,
            daily_traffic=daily_traffic,
            traffic_fraction=traffic_fraction,
            **common,
        )
        solved = "sample_size"
    elif mde is None:
        res = design.minimum_detectable_effect(
            metric, n_per_arm=n_per_arm, total_n=total_n, power=power, **common
        )
        solved = "mde"
    else:
        res = design.power(
            metric, mde=mde, relative=relative, n_per_arm=n_per_arm, total_n=total_n, **common
        )
        solved = "power"
    return {"solved_for": solved, **res.to_dict()}


def analyze_experiment(
    data: Any,
    *,
    arm_col: str,
    control: Any,
    metrics: Sequence[str],
    covariate: str | None = None,
    denominator_covariate: str | None = None,
    correction: str = "holm",
    alpha: float = 0.05,
    experiment_col: str | None = None,
    weights: dict[str, float] | Sequence[float] | None = None,
    test: str = "auto",
    sequential: bool = False,
    rel_ci: str = "delta",
    gs_information: Sequence[float] | None = None,
    gs_look: int | None = None,
    gs_spending: str = "obf",
    gs_rho: float = 1.0,
    cuped_theta: str = "per_comparison",
    by: str | None = None,
    max_segments: int = 200,
) -> dict[str, Any]:
    """Analyse a CSV/Parquet file (or any ``analyze`` input) and return plain data.

    ``by`` (a column) analyses every segment of that column: the rows are then one per
    segment x arm x metric, with ``segment`` and the test of the segment's lift against
    the rest's (``diff_from_rest``, ``diff_p``, ``diff_q`` after Benjamini-Hochberg,
    ``differs``), and ``srm`` is the check of all users.

    ``gs_information`` (the planned looks as information fractions), ``gs_look`` and
    ``gs_spending`` (with ``gs_rho`` for the power family) add the group-sequential test of this look (``gs_z``, ``gs_bound``,
    ``gs_reject``); ``sequential`` adds always-valid p-values (``seq_p``, with
    ``log10_seq_p``) and confidence sequences. ``cuped_theta`` is ``per_comparison``
    (CUPED's θ from the control and the compared arm) or ``pooled`` (from all arms).

    Returns:
        ``{"rows": [...one dict per arm x metric...], "srm": {experiment: {...}},
        "srm_alarm": bool, "alpha": ..., "correction": ...}``. Each p-value and
        probability of a row comes with its text as printed (``p_value_text``,
        ``bayes_p_beat_control_text``, ...: ``3.13e-792``, ``> 0.9999``).
    """
    from engagelab.experiments.analysis import analyze  # pandas and statsmodels: not for design
    from engagelab.experiments.segmented import SegmentedResult
    from engagelab.experiments.spec import as_experiment

    spec = as_experiment(
        None,
        dict(
            arm_col=arm_col,
            control=control,
            metrics=list(metrics),
            covariate=covariate,
            denominator_covariate=denominator_covariate,
            correction=correction,
            alpha=alpha,
            experiment_col=experiment_col,
            weights=weights,
            test=test,
            sequential=sequential,
            rel_ci=rel_ci,
            gs_information=gs_information,
            gs_look=gs_look,
            gs_spending=gs_spending,
            gs_rho=gs_rho,
            cuped_theta=cuped_theta,
        ),
    )
    seg: SegmentedResult | None = None
    if by is None:
        res = analyze(data, spec)
    else:
        seg = analyze(data, spec, by=by, max_segments=max_segments)
        res = seg.overall
    srm = {
        k: {
            "arms": list(v.arms),
            "observed": list(v.observed),
            "expected": list(v.expected),
            "chi2": v.chi2,
            "p_value": v.p_value,
            "log10_p": v.log10_p,
            "p_text": format_p(v.p_value, v.log10_p),
            "mismatch": v.mismatch(),
        }
        for k, v in res.srm.items()
    }
    rows = res.to_dicts() if seg is None else seg.to_dicts()
    for r in rows:  # the figures as every surface prints them (never 0 or 1)
        for col, log_col in P_COLUMNS.items():
            if col in r:
                r[f"{col}_text"] = format_p(r[col], r.get(log_col))
        for col in PROBABILITY_COLUMNS:
            if col in r:
                r[f"{col}_text"] = format_probability(r[col])
        s = res.srm.get(str(r["experiment"]))
        r["srm_p_text"] = format_p(s.p_value, s.log10_p) if s else format_p(r.get("srm_p"))
        if seg is not None:
            r["diff_p_text"] = format_p(r["diff_p"], r["diff_log10_p"])
            r["diff_q_text"] = format_p(r["diff_q"])
    extra = {} if seg is None else {"by": by}
    return {
        **extra,
        "rows": rows,
        "srm": srm,
        "srm_alarm": any(s["mismatch"] for s in srm.values()),
        "alpha": alpha,
        "correction": correction,
    }
