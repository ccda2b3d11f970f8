"""Winner rules for "test on X%, then send the winner to the rest".

Three rules, each returning a :class:`Winner` that records the rule and the reason:

- ``"clevertap"`` (faithful to the platform): the arm with the highest rate of the
  chosen metric wins: click rate, or view (open) rate for e-mail. Ties go to the
  first arm in order (variant A). No statistics.
- ``"statistical"`` (frequentist): among arms significantly better than control on
  the primary metric after the multiple-comparison correction (named in the reason),
  the one with the largest lift. An arm significantly worse than control on any
  guardrail metric is never chosen. If no arm qualifies, the control (or, with
  ``fallback="clevertap"``, the CleverTap rule's pick) is returned with the reason.
- ``"bayesian"`` (only when asked for): an arm other than control whose Bayesian
  probability to be best reaches ``threshold``, labelled as such. Looking at P(best)
  as a fallback of the frequentist rule would double its false-winner rate.

Whatever the rule, a sample-ratio mismatch (SRM p below 0.001) blocks a winner: the
arms were not assigned as intended, so their comparison is not trustworthy.

Example:
    >>> import pandas as pd
    >>> from engagelab.experiments import analyze
    >>> df = pd.DataFrame({"variant": ["A"] * 500 + ["B"] * 500,
    ...                    "clicked": [1] * 50 + [0] * 450 + [1] * 50 + [0] * 450})
    >>> choose_winner(analyze(df, arm_col="variant", control="A", metrics=["clicked:proportion"]))
    Winner(variant='A', rule='clevertap', reason="tie on clicked (0.1) between 'A', 'B': first variant wins")
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from engagelab.errors import ValidationError
from engagelab.experiments.formatting import format_p, format_probability
from engagelab.experiments.result import SRM_THRESHOLD, ExperimentResult
from engagelab.validate import check_choice, check_number

__all__ = ["RULES", "Winner", "choose_winner"]

#: The winner rules :func:`choose_winner` knows.
RULES = ("clevertap", "statistical", "bayesian")


@dataclass(frozen=True)
class Winner:
    """The chosen arm, the rule that chose it and why."""

    variant: str
    rule: str
    reason: str

    def to_dict(self) -> dict[str, str]:
        """JSON-ready form."""
        return {"variant": self.variant, "rule": self.rule, "reason": self.reason}


def _pick_metric(result: ExperimentResult, metric: str | None, channel: str | None) -> str:
    names = list(dict.fromkeys(result.arms["metric"]))
    if metric is not None:
        if metric not in names:
            raise ValidationError(
                "metric",
                metric,
                "must be one of the analysed metrics: " + ", ".join(repr(n) for n in names),
            )
        return metric
    keys = ("view", "open") if channel == "email" else ("click",)
    for n in names:
        if any(k in n.lower() for k in keys):
            return n
    if len(names) == 1:
        return names[0]
    raise ValidationError(
        "metric",
        metric,
        "must be given: no metric name contains " + " or ".join(repr(k) for k in keys),
    )


def _experiment(result: ExperimentResult, experiment: str | None) -> str:
    exps = list(dict.fromkeys(result.arms["experiment"]))
    if experiment is None:
        if len(exps) != 1:
            raise ValidationError(
                "experiment",
                experiment,
                "must be given when the result holds several: " + ", ".join(map(repr, exps)),
            )
        return exps[0]
    if experiment not in exps:
        raise ValidationError(
            "experiment", experiment, "must be one of " + ", ".join(map(repr, exps))
        )
    return experiment


def _clevertap(result: ExperimentResult, exp: str, metric: str, exclude: str | None) -> Winner:
    arms = result.arms[(result.arms["experiment"] == exp) & (result.arms["metric"] == metric)]
    if exclude is not None:
        arms = arms[arms["arm"] != exclude]
    arms = arms[np.isfinite(arms["estimate"].to_numpy(float))]
    if arms.empty:
        raise ValidationError("metric", metric, "has no arm with a defined rate")
    order = sorted(arms["arm"])  # variant A first
    rates = dict(zip(arms["arm"], arms["estimate"], strict=True))
    best = max(rates[a] for a in order)
    tied = [a for a in order if np.isclose(rates[a], best, rtol=1e-12, atol=0)]
    if len(tied) > 1:
        return Winner(
            tied[0],
            "clevertap",
            f"tie on {metric} ({best:.4g}) between {', '.join(map(repr, tied))}: first variant wins",
        )
    return Winner(tied[0], "clevertap", f"highest {metric}: {best:.4g}")


def choose_winner(
    result: ExperimentResult,
    rule: str = "clevertap",
    *,
    metric: str | None = None,
    channel: str | None = None,
    experiment: str | None = None,
    guardrails: Sequence[str] = (),
    threshold: float = 0.95,
    fallback: str = "control",
    exclude_control: bool = False,
) -> Winner:
    """Choose the arm to send to the rest of the audience.

    Args:
        result: an :class:`ExperimentResult` from :func:`analyze`.
        rule: ``"clevertap"``, ``"statistical"`` (frequentist) or ``"bayesian"``.
        metric: primary metric; default: a metric whose name contains ``click``
            (``view``/``open`` when ``channel="email"``).
        channel: the campaign channel (``"email"`` switches the default to views).
        experiment: which experiment of the result (needed when there are several).
        guardrails: metrics on which the winner must not be significantly worse.
        threshold: with ``rule="bayesian"``, the probability to be best an arm needs.
        fallback: ``"control"`` or ``"clevertap"`` when the statistical rule finds none.
        exclude_control: never pick the control arm with the CleverTap rule.
    """
    check_choice("rule", rule, RULES)
    check_choice("fallback", fallback, ("control", "clevertap"))
    check_number("threshold", threshold, low=0, high=1, low_open=True)
    exp = _experiment(result, experiment)
    m = _pick_metric(result, metric, channel)
    t = result.table[result.table["experiment"] == exp]
    control = str(t["control"].iloc[0])
    srm = result.srm.get(exp)
    if srm is not None and srm.p_value < SRM_THRESHOLD:
        return Winner(
            control,
            rule,
            f"sample ratio mismatch, p = {format_p(srm.p_value, srm.log10_p)} "
            f"(observed {dict(zip(srm.arms, srm.observed, strict=True))}): no winner; "
            f"keeping {control!r}",
        )
    if rule == "clevertap":
        return _clevertap(result, exp, m, control if exclude_control else None)
    names = set(result.arms["metric"])
    for g in guardrails:
        if g not in names:
            raise ValidationError("guardrails", list(guardrails), f"metric {g!r} was not analysed")
    bad = t[t["metric"].isin(list(guardrails)) & t["significant"] & (t["direction"] == "worse")]
    blocked = set(bad["arm"])
    if rule == "bayesian":
        return _bayesian(result, exp, m, control, threshold, blocked)
    prim = t[(t["metric"] == m) & ~t["arm"].isin(blocked)]
    sig = prim[prim["significant"] & (prim["direction"] == "better")]
    if not sig.empty:
        lift = np.where(sig["_lower"].astype(bool), -sig["abs_lift"], sig["abs_lift"])
        r = sig.iloc[int(np.argmax(lift))]
        return Winner(
            str(r["arm"]),
            "statistical",
            f"significantly better than {control!r} on {m} after {result.correction} correction "
            f"(lift {r['abs_lift']:+.4g}, adjusted p {format_p(r['p_adjusted'], r['log10_p_adjusted'])})"
            + (f"; excluded by guardrails: {sorted(blocked)}" if blocked else ""),
        )
    why = (
        f"no arm significantly better than {control!r} on {m} after {result.correction} correction"
    )
    if blocked:
        why += f" (guardrails excluded {sorted(blocked)})"
    if fallback == "clevertap":
        w = _clevertap(result, exp, m, None)
        if w.variant in blocked:
            return Winner(control, "statistical", why + "; keeping control")
        return Winner(w.variant, "statistical+clevertap", why + "; fell back to " + w.reason)
    return Winner(control, "statistical", why + "; keeping control")


def _bayesian(
    result: ExperimentResult,
    exp: str,
    metric: str,
    control: str,
    threshold: float,
    blocked: set[str],
) -> Winner:
    arms = result.arms[(result.arms["experiment"] == exp) & (result.arms["metric"] == metric)]
    ok = (arms["bayes_p_best"] >= threshold) & (arms["arm"].astype(str) != control)
    top = arms[ok & ~arms["arm"].isin(blocked)]
    if top.empty:
        return Winner(
            control,
            "bayesian",
            f"no arm with Bayesian P(best) on {metric} >= {threshold:g}; keeping {control!r}",
        )
    r = top.sort_values("bayes_p_best", ascending=False).iloc[0]
    return Winner(
        str(r["arm"]),
        "bayesian",
        f"Bayesian P(best) on {metric} = {format_probability(r['bayes_p_best'])} >= {threshold:g}",
    )
