"""``engagelab experiment design|analyze``: experiment design and analysis from the shell.

``design`` solves whichever problem its options pose (``--mde`` -> sample size,
``--n-per-arm``/``--total-n`` -> minimum detectable effect, both -> power) and prints
per-arm and total n, the effect in natural units and the formula used. ``analyze``
reads a CSV or Parquet file with one row per user and prints one row per arm x metric
(n, estimates, absolute and relative lift with CI, p-value, adjusted p-value,
P(beat control), SRM p-value). Bad input prints one line naming the field and exits 1.
``analyze --by COL`` prints one row per segment x arm x metric, each segment analysed
on its own, with its lift minus the rest's and the Benjamini-Hochberg ``diff_q``.

CUPED: ``--covariate COL`` adjusts every proportion and mean metric by ``COL`` and
every ratio metric by the pre-period mean of ``COL``; ``--covariate NUM,DEN`` makes a
ratio metric's covariate the pre-period ratio ``ΣNUM / ΣDEN`` (e.g.
``--metric revenue:ratio:orders --covariate revenue_pre,orders_pre``; proportion and
mean metrics use ``NUM``). A metric can name its own covariates instead:
``NAME:mean:COV`` or ``NAME:ratio:DENOMINATOR:COV[:DEN_COV]``.
"""

from __future__ import annotations

import argparse
import math
from typing import Any

from engagelab.experiments.formatting import P_COLUMNS, format_p, format_probability

__all__ = ["analyze_table", "register"]

ANALYZE_COLUMNS = [
    "metric", "arm", "control", "n_control", "n_arm", "control_estimate", "arm_estimate",
    "abs_lift", "abs_ci_low", "abs_ci_high", "rel_lift", "rel_ci_low", "rel_ci_high", "test",
    "p_value", "p_adjusted", "significant", "seq_p", "seq_ci_low", "seq_ci_high", "gs_z",
    "gs_bound", "gs_reject", "bayes_p_beat_control", "cuped_theta", "cuped_theta_scope", "srm_p",
    "note",
]  # fmt: skip


def _weights(text: str | None) -> list[float] | None:
    from engagelab.errors import ValidationError

    if text is None:
        return None
    try:
        return [float(x) for x in text.split(",")]
    except ValueError:
        raise ValidationError(
            "--weights", text, "must be comma-separated numbers, control first"
        ) from None


def _covariates(text: str | None) -> tuple[str | None, str | None]:
    from engagelab.errors import ValidationError

    if text is None:
        return None, None
    parts = [p.strip() for p in text.split(",")]
    if len(parts) > 2 or not all(parts):
        raise ValidationError(
            "--covariate", text, "must be COL or NUM_COL,DEN_COL (a ratio's pre-period ratio)"
        )
    return parts[0], (parts[1] if len(parts) == 2 else None)


def _ratio(args: argparse.Namespace) -> dict[str, float] | None:
    """The ratio moments given as ``--numerator-mean`` ... ``--covariance`` (None: none)."""
    from engagelab.experiments.design import RATIO_KEYS

    given = {k: getattr(args, k) for k in RATIO_KEYS if getattr(args, k) is not None}
    return given or None


def cmd_design(args: argparse.Namespace) -> int:
    from engagelab.cli._common import emit
    from engagelab.experiments.api import design_experiment

    out = design_experiment(
        metric=args.metric, baseline=args.baseline, mde=args.mde, relative=args.relative,
        sd=args.sd, alpha=args.alpha, power=args.power, alternative=args.alternative,
        arms=args.arms, weights=_weights(args.weights), correction=args.correction,
        method=args.method, n_per_arm=args.n_per_arm, total_n=args.total_n,
        daily_traffic=args.daily_traffic, traffic_fraction=args.traffic_fraction,
        cuped_rho=args.cuped_rho, ratio=_ratio(args),
    )  # fmt: skip
    if args.format == "json":
        emit(out, "json")
        return 0
    rows = {
        "solved for": out["solved_for"],
        "effect": out["effect_text"],
        "n per arm": ", ".join(f"{n:,}" for n in out["n_per_arm"]),
        "total n": f"{out['total_n']:,}",
        "duration": "-" if out["days"] is None else f"{out['days']} days",
        "alpha": f"{out['alpha']:g} {out['alternative']} ({out['correction']}: "
        f"{out['alpha_per_comparison']:.4g} per comparison)",
        "power": f"{out['power']:.3f}",
        "method": f"{out['method']}: {out['formula']}",
    }
    if out["cuped_rho"]:
        rows["CUPED"] = f"rho = {out['cuped_rho']:g}: variance x {1 - out['cuped_rho'] ** 2:.4g}"
    if out["metric"] == "ratio":
        rows["ratio"] = f"baseline {out['baseline']:.4g}, delta-method sd per user {out['sd']:.4g}"
    emit(rows, "table")
    return 0


def cmd_analyze(args: argparse.Namespace) -> int:
    import os

    from engagelab.cli._common import emit
    from engagelab.errors import ValidationError
    from engagelab.experiments.api import analyze_experiment

    path = args.data
    if not path.lower().endswith((".csv", ".parquet", ".pq", ".csv.gz")):
        raise ValidationError("--data", path, "must be a .csv or .parquet file")
    if not os.path.exists(path):
        raise ValidationError("--data", path, "file not found")
    cov, den_cov = _covariates(args.covariate)
    out = analyze_experiment(
        path, arm_col=args.arm_col, control=args.control, metrics=args.metric,
        covariate=cov, denominator_covariate=den_cov, correction=args.correction, alpha=args.alpha,
        experiment_col=args.experiment_col, weights=_weights(args.weights),
        sequential=args.sequential, rel_ci=args.rel_ci,
        gs_information=_fractions(args.gs_information), gs_look=args.gs_look,
        gs_spending=args.gs_spending, gs_rho=args.gs_rho, cuped_theta=args.cuped_theta,
        by=args.by,
    )  # fmt: skip
    if args.format == "json":
        emit(out, "json")
        return 0
    for exp, s in out["srm"].items():
        if s["mismatch"]:
            print(
                f"!! SAMPLE RATIO MISMATCH in {exp!r}: observed {s['observed']} vs expected "
                f"{[round(e, 1) for e in s['expected']]} (p = {format_p(s['p_value'], s['log10_p'])}); "
                "do not trust these results"
            )
    emit(analyze_table(out, with_experiment=bool(args.experiment_col)), "table")
    notes = [f"alpha = {out['alpha']:g}; p_adjusted by {out['correction']}"]
    if args.by:
        notes[0] += f" within each {args.by} segment"
        notes.append(
            "diff_from_rest: the segment's lift minus the rest's (z test); "
            "diff_q: Benjamini-Hochberg across segments; differs: diff_q < alpha"
        )
    if args.sequential:
        notes.append("seq_p and seq_ci are always-valid (safe to look at any time)")
    if args.gs_information:
        notes.append("gs_z vs gs_bound: the group-sequential test of this look")
    if not args.by:
        notes.append("bayes_p_beat_control is Bayesian (not a p-value)")
    print("; ".join(notes))
    return 0


def analyze_table(out: dict[str, Any], *, with_experiment: bool = False) -> Any:
    """The table ``experiment analyze`` prints, from :func:`analyze_experiment` output.

    p-values are written by :func:`~engagelab.experiments.formatting.format_p` from
    their log10 (never ``0``), probabilities by
    :func:`~engagelab.experiments.formatting.format_probability` (never ``1``); other
    numbers with four significant digits; a missing value is blank.
    """
    import pandas as pd

    rows = out["rows"]
    df = pd.DataFrame(rows)
    cols = [c for c in ANALYZE_COLUMNS if c in df.columns]
    if "cuped_theta_scope" in df.columns and not df["cuped_theta_scope"].astype(bool).any():
        cols = [c for c in cols if not c.startswith("cuped_")]  # no metric has a covariate
    segmented = "segment" in df.columns
    if segmented:  # per-segment rows carry no Bayesian columns, and their own SRM p
        cols = [c for c in cols if not c.startswith("bayes_")]
        cols = ["segment", *cols, *[c for c in SEGMENT_COLUMNS if c in df.columns]]
    if with_experiment:
        cols = ["experiment", *cols]
    table = df[cols].copy()
    p_columns = {**P_COLUMNS, "diff_p": "diff_log10_p", "diff_q": ""}
    for c in table.columns:
        if c in p_columns:
            logs = df[p_columns[c]] if p_columns[c] in df.columns else [None] * len(df)
            table[c] = [
                "" if _missing(v) and _missing(lv) else format_p(v, lv)
                for v, lv in zip(df[c], logs, strict=True)
            ]
        elif c == "srm_p" and segmented:
            table[c] = ["" if _missing(v) else format_p(v) for v in df[c]]
        elif c == "srm_p":
            srm = out["srm"]
            table[c] = [
                format_p(srm[e]["p_value"], srm[e]["log10_p"])
                if e in srm
                else ("" if _missing(v) else format_p(v))
                for e, v in zip(df["experiment"], df[c], strict=True)
            ]
        elif c == "bayes_p_beat_control":
            table[c] = ["" if _missing(v) else format_probability(v) for v in df[c]]
        elif c in _FLAG_WORDS:
            yes, no = _FLAG_WORDS[c]
            table[c] = ["" if v is None else (yes if v else no) for v in df[c]]
        elif all(isinstance(v, float) or v is None for v in table[c]):
            table[c] = ["" if _missing(v) else _num(v) for v in table[c]]
    return table


#: How the boolean columns print (true, false).
_FLAG_WORDS = {"gs_reject": ("reject", "continue"), "differs": ("yes", "")}
#: The per-segment columns ``experiment analyze --by`` adds after the comparison columns.
SEGMENT_COLUMNS = ["rest_abs_lift", "diff_from_rest", "diff_ci_low", "diff_ci_high", "diff_p",
                   "diff_q", "differs"]  # fmt: skip


def _missing(v: Any) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def _num(v: float) -> str:
    if math.isinf(v):
        return "+inf" if v > 0 else "-inf"
    return f"{v:.4g}"


def _fractions(text: str | None) -> list[float] | None:
    from engagelab.errors import ValidationError

    if text is None:
        return None
    try:
        return [float(x) for x in text.split(",")]
    except ValueError:
        raise ValidationError(
            "--gs-information", text, "must be comma-separated increasing fractions in (0, 1]"
        ) from None


def register(
    subparsers: Any, common: argparse.ArgumentParser, wsopt: argparse.ArgumentParser
) -> None:
    """Add ``experiment design`` and ``experiment analyze``."""
    p = subparsers.add_parser("experiment", parents=[common], help="design and analyse A/B/n tests")
    sub = p.add_subparsers(dest="experiment_cmd", required=True, metavar="ACTION")

    d = sub.add_parser(
        "design", parents=[common],
        help="sample size (given --mde), MDE (given --n-per-arm/--total-n) or power (given both)",
    )  # fmt: skip
    d.add_argument("--metric", default="proportion", help="proportion (default), mean or ratio")
    d.add_argument(
        "--baseline", type=float, help="control rate or mean (ratios: from their moments)"
    )
    d.add_argument(
        "--cuped-rho", type=float, default=0.0, metavar="RHO",
        help="correlation with the CUPED covariate, 0 <= RHO < 1: variance x (1 - RHO^2)",
    )  # fmt: skip
    for flag, what in (
        ("numerator-mean", "mean per user of the ratio's numerator"),
        ("denominator-mean", "mean per user of the ratio's denominator"),
        ("numerator-var", "variance per user of the numerator"),
        ("denominator-var", "variance per user of the denominator"),
        ("covariance", "covariance per user of numerator and denominator"),
    ):
        d.add_argument(f"--{flag}", type=float, help=f"ratio metrics: {what}")
    d.add_argument("--sd", type=float, help="standard deviation per user (mean metrics)")
    d.add_argument(
        "--mde", type=float, help="minimum detectable effect (absolute unless --relative)"
    )
    d.add_argument(
        "--relative", action="store_true", help="read --mde as a fraction of the baseline"
    )
    d.add_argument("--alpha", type=float, default=0.05)
    d.add_argument("--power", type=float, default=0.8)
    d.add_argument("--alternative", default="two-sided", help="two-sided (default) or one-sided")
    d.add_argument("--arms", type=int, default=2, help="number of arms, control included")
    d.add_argument("--weights", help="allocation weights, control first, e.g. 0.5,0.25,0.25")
    d.add_argument("--correction", default="bonferroni", help="bonferroni (default) or none")
    d.add_argument(
        "--method", help="formula: unpooled (default), pooled, arcsine (proportions), t (means)"
    )
    d.add_argument("--n-per-arm", type=int, help="users in the control arm (solve for MDE/power)")
    d.add_argument("--total-n", type=int, help="users in all arms (solve for MDE/power)")
    d.add_argument(
        "--daily-traffic", type=float, help="eligible users per day (gives the duration)"
    )
    d.add_argument(
        "--traffic-fraction", type=float, default=1.0, help="share of daily traffic enrolled"
    )
    d.set_defaults(func=cmd_design)

    a = sub.add_parser("analyze", parents=[common], help="analyse a CSV/Parquet file of users")
    a.add_argument(
        "--data", required=True, metavar="FILE", help=".csv or .parquet, one row per user"
    )
    a.add_argument("--arm-col", required=True, metavar="COL")
    a.add_argument("--control", required=True, metavar="VALUE")
    a.add_argument(
        "--metric", action="append", required=True, metavar="NAME:KIND[:...]",
        help="NAME:proportion[:COV], NAME:mean[:COV] or NAME:ratio:DENOMINATOR[:COV[:DEN_COV]] "
        "(repeatable; COV = CUPED pre-period covariate)",
    )  # fmt: skip
    a.add_argument(
        "--covariate", metavar="COL[,DEN_COL]",
        help="CUPED pre-period covariate for metrics that name none; COL,DEN_COL gives ratio "
        "metrics the pre-period ratio COL/DEN_COL",
    )  # fmt: skip
    a.add_argument(
        "--cuped-theta", default="per_comparison", metavar="SCOPE",
        help="CUPED slope: per_comparison (default: control and the compared arm only) or "
        "pooled (one slope from all arms)",
    )  # fmt: skip
    a.add_argument(
        "--correction", default="holm", help="holm (default), hochberg, bonferroni, bh, by, none"
    )
    a.add_argument("--alpha", type=float, default=0.05)
    a.add_argument("--experiment-col", metavar="COL", help="column naming the experiment")
    a.add_argument("--weights", help="intended allocation for the SRM check, control first")
    a.add_argument("--sequential", action="store_true", help="add always-valid p-values")
    a.add_argument(
        "--rel-ci", default="delta", metavar="METHOD",
        help="relative-lift interval: delta (default) or fieller (asymmetric, matches the test)",
    )  # fmt: skip
    a.add_argument(
        "--gs-information", metavar="T1,T2,...",
        help="group-sequential design: the planned looks as information fractions, e.g. "
        "0.25,0.5,0.75,1 (adds gs_z, gs_bound, gs_reject)",
    )  # fmt: skip
    a.add_argument(
        "--gs-look", type=int, metavar="K", help="which planned look this is (default: the last)"
    )
    a.add_argument(
        "--gs-spending", default="obf", metavar="NAME",
        help="alpha spending of the group-sequential bounds: obf (default), pocock or power "
        "(alpha * t^RHO, with --gs-rho)",
    )  # fmt: skip
    a.add_argument(
        "--gs-rho", type=float, default=1.0, metavar="RHO",
        help="exponent of the power spending function (default 1)",
    )  # fmt: skip
    a.add_argument(
        "--by", metavar="COL",
        help="analyse every segment of COL (at most 200) and test whether its lift differs "
        "from the rest's (Benjamini-Hochberg across segments)",
    )  # fmt: skip
    a.set_defaults(func=cmd_analyze)
