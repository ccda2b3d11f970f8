"""Experiment design: sample size, minimum detectable effect, power and duration.

Every arm is compared with the control arm (the first one). With ``arms > 2`` the
significance level of each comparison is divided by the number of comparisons
(Bonferroni) unless ``correction="none"``: planning with Bonferroni is conservative
for the Holm/Hochberg corrections the analysis uses by default.

Formulas (``method=``), for a comparison of arm *i* with control *c*, total sample
``N`` split by weights ``w`` and an absolute effect ``d``:

- ``"unpooled"`` (default): normal approximation with unpooled variances,
  ``se = sqrt(v_c/(N w_c) + v_i/(N w_i))`` with ``v = p(1-p)`` (proportions) or
  ``v = sd**2`` (means); power ``= Phi(|d|/se - z) [+ Phi(-|d|/se - z)]``.
- ``"pooled"`` (proportions): pooled variance under H0, unpooled under H1
  (Fleiss without continuity correction; what ``statsmodels`` ``power_proportions_2indep`` uses).
- ``"arcsine"`` (proportions): Cohen's ``h = 2 asin(sqrt p_i) - 2 asin(sqrt p_c)`` with
  ``se = sqrt(1/(N w_c) + 1/(N w_i))`` (``statsmodels`` ``NormalIndPower`` with ``h``).
- ``"t"`` (means): noncentral t with ``n_c + n_i - 2`` degrees of freedom
  (``statsmodels`` ``TTestIndPower``).

Ratio metrics (``metric="ratio"``, e.g. revenue per order) take the per-user means,
variances and covariance of the numerator ``Y`` and the denominator ``N``
(``ratio={"numerator_mean": ..., "denominator_mean": ..., "numerator_var": ...,
"denominator_var": ..., "covariance": ...}``); the baseline is ``R = μ_Y / μ_N`` and
the per-user variance is the delta method's
``v = (var_Y - 2 R cov + R² var_N) / μ_N²`` (the analysis' linearisation), used as a
mean metric's ``sd**2``.

CUPED (``cuped_rho``, the correlation of the outcome with its pre-period covariate,
``0 <= rho < 1``) multiplies every per-user variance by ``1 - rho**2``, so the
sample size shrinks by that factor (``unpooled`` and ``t`` only).

Example:
    >>> d = sample_size(metric="proportion", baseline=0.05, mde=0.10, relative=True)
    >>> d.n_per_arm, d.total_n
    ((31231, 31231), 62462)
    >>> d.effect_text
    'detects 5.000% -> 5.500% (+10.0% relative)'
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from scipy import optimize, stats

from engagelab.errors import ValidationError
from engagelab.validate import check_choice, check_int, check_number

__all__ = [
    "DesignResult",
    "MAX_ARMS",
    "METHODS",
    "RATIO_KEYS",
    "minimum_detectable_effect",
    "power",
    "sample_size",
]

METHODS = {
    "proportion": ("unpooled", "pooled", "arcsine"),
    "mean": ("unpooled", "t"),
    "ratio": ("unpooled",),
}
#: The keys of a ratio metric's moments (``ratio=`` of the design functions).
RATIO_KEYS = (
    "numerator_mean",
    "denominator_mean",
    "numerator_var",
    "denominator_var",
    "covariance",
)
FORMULAS = {
    "unpooled": "normal approximation, unpooled variance: se = sqrt(v_c/n_c + v_i/n_i)",
    "pooled": "normal approximation, pooled variance under H0 and unpooled under H1 (Fleiss, no continuity correction)",
    "arcsine": "arcsine transform, Cohen's h = 2 asin(sqrt p_i) - 2 asin(sqrt p_c), se = sqrt(1/n_c + 1/n_i)",
    "t": "noncentral t with n_c + n_i - 2 degrees of freedom, common standard deviation",
}


@dataclass(frozen=True)
class DesignResult:
    """The outcome of a design calculation (sample size, MDE or power).

    Attributes:
        metric: ``"proportion"``, ``"mean"`` or ``"ratio"``.
        method: formula name (see :data:`FORMULAS` in this module's docstring).
        formula: the formula in words.
        baseline: control mean (rate for proportions).
        target: baseline + absolute effect.
        mde_abs: absolute effect ``target - baseline``.
        mde_rel: relative effect ``mde_abs / baseline``.
        sd: standard deviation per user (means; for ratios the delta method's), before
            the CUPED reduction.
        alpha: family-wise significance level.
        alpha_per_comparison: level of each arm-vs-control test after the correction.
        power: power of each comparison.
        alternative: ``"two-sided"`` or ``"one-sided"``.
        arms: number of arms (control included).
        weights: allocation weights, control first.
        correction: ``"bonferroni"`` or ``"none"``.
        n_per_arm: users per arm (rounded up), control first.
        total_n: sum of ``n_per_arm``.
        days: duration in days from ``daily_traffic`` (or ``None``).
        cuped_rho: correlation with the CUPED covariate (0: no CUPED); every variance
            was multiplied by ``1 - cuped_rho**2``.
    """

    metric: str
    method: str
    formula: str
    baseline: float
    target: float
    mde_abs: float
    mde_rel: float
    sd: float | None
    alpha: float
    alpha_per_comparison: float
    power: float
    alternative: str
    arms: int
    weights: tuple[float, ...]
    correction: str
    n_per_arm: tuple[int, ...]
    total_n: int
    days: int | None = None
    cuped_rho: float = 0.0

    @property
    def effect_text(self) -> str:
        """The effect in natural units, e.g. ``'detects 5.000% -> 5.500% (+10.0% relative)'``."""
        if self.metric == "proportion":
            a, b = f"{self.baseline:.3%}", f"{self.target:.3%}"
        else:
            a, b = f"{self.baseline:.4g}", f"{self.target:.4g}"
        rel = f" ({self.mde_rel:+.1%} relative)" if math.isfinite(self.mde_rel) else ""
        return f"detects {a} -> {b}{rel}"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dictionary (tuples become lists)."""
        d = asdict(self)
        d["weights"], d["n_per_arm"] = list(self.weights), list(self.n_per_arm)
        d["effect_text"] = self.effect_text
        return d

    def to_pandas(self):
        """One row per arm: arm index, weight and n."""
        import pandas as pd

        return pd.DataFrame(
            {"arm": range(self.arms), "weight": self.weights, "n": self.n_per_arm}
        ).assign(role=["control"] + ["treatment"] * (self.arms - 1))

    def __repr__(self) -> str:
        days = f", {self.days} days" if self.days is not None else ""
        return (
            f"DesignResult({self.metric}, {self.effect_text}, alpha={self.alpha:g}"
            f" ({self.alternative}, {self.correction}), power={self.power:.3f}: "
            f"n_per_arm={list(self.n_per_arm)}, total={self.total_n}{days}; method={self.method}"
            + (f", CUPED rho={self.cuped_rho:g})" if self.cuped_rho else ")")
        )

    def _repr_html_(self) -> str:
        rows = [
            ("effect", self.effect_text),
            ("n per arm", ", ".join(f"{n:,}" for n in self.n_per_arm)),
            ("total n", f"{self.total_n:,}"),
            ("duration", "-" if self.days is None else f"{self.days} days"),
            (
                "alpha",
                f"{self.alpha:g} {self.alternative} ({self.correction}: {self.alpha_per_comparison:.4g} per comparison)",
            ),
            ("power", f"{self.power:.3f}"),
            ("method", f"{self.method}: {self.formula}"),
        ]
        if self.cuped_rho:
            rows.append(
                ("CUPED", f"rho = {self.cuped_rho:g}: variance x {1 - self.cuped_rho**2:.4g}")
            )
        body = "".join(
            f"<tr><th style='text-align:left'>{k}</th><td>{v}</td></tr>" for k, v in rows
        )
        return f"<table class='el-design'>{body}</table>"


@dataclass(frozen=True)
class _Setup:
    metric: str
    method: str
    baseline: float
    sd: float | None
    alpha_c: float
    alternative: str
    weights: tuple[float, ...]
    factor: float = 1.0  # CUPED: 1 - rho**2
    rho: float = 0.0


def _variance(s: _Setup, mean: float) -> float:
    if s.metric != "proportion":
        return float(s.sd or 0.0) ** 2 * s.factor
    return mean * (1.0 - mean) * s.factor


def _power_one(s: _Setup, total: float, d: float, w_i: float) -> float:
    """Power of the comparison of an arm with weight ``w_i`` against control, total sample ``total``."""
    w_c = s.weights[0]
    n_c, n_i = total * w_c, total * w_i
    p1, p2 = s.baseline, s.baseline + d
    two = s.alternative == "two-sided"
    z = stats.norm.isf(s.alpha_c / 2 if two else s.alpha_c)
    if s.method == "t":
        df = n_c + n_i - 2
        if df <= 0:
            return 0.0
        nc = abs(d) / math.sqrt(_variance(s, p1)) / math.sqrt(1 / n_c + 1 / n_i)
        crit = stats.t.isf(s.alpha_c / 2 if two else s.alpha_c, df)
        pw = stats.nct.sf(crit, df, nc)
        low = stats.nct.cdf(-crit, df, nc) if two else 0.0
        if not math.isfinite(low):  # scipy's nct loses the far tail for large nc; it is ~0 there
            low = stats.norm.cdf(-crit - nc)
        return float(pw + low)
    if s.method == "arcsine":
        eff = abs(2 * math.asin(math.sqrt(p2)) - 2 * math.asin(math.sqrt(p1)))
        se0 = se1 = math.sqrt(1 / n_c + 1 / n_i)
    else:
        eff = abs(d)
        se1 = math.sqrt(_variance(s, p1) / n_c + _variance(s, p2) / n_i)
        if s.method == "pooled":
            pbar = (n_c * p1 + n_i * p2) / (n_c + n_i)
            se0 = math.sqrt(pbar * (1 - pbar) * (1 / n_c + 1 / n_i))
        else:
            se0 = se1
    pw = stats.norm.cdf((eff - z * se0) / se1)
    if two:
        pw += stats.norm.cdf((-eff - z * se0) / se1)
    return float(pw)


def _min_power(s: _Setup, total: float, d: float) -> float:
    return min(_power_one(s, total, d, w) for w in s.weights[1:])


#: The most arms (control included) an experiment design takes.
MAX_ARMS = 26


def _ratio_moments(ratio: Any, baseline: Any) -> tuple[float, float]:
    """Baseline ``R`` and the delta-method per-user sd of a ratio metric."""
    if not isinstance(ratio, Mapping):
        raise ValidationError(
            "ratio", ratio, "must give the ratio's moments: " + ", ".join(RATIO_KEYS)
        )
    extra = sorted(set(ratio) - set(RATIO_KEYS))
    if extra:
        raise ValidationError(
            f"ratio.{extra[0]}", ratio[extra[0]], "is not one of " + ", ".join(RATIO_KEYS)
        )
    for k in RATIO_KEYS:
        if k not in ratio:
            raise ValidationError(f"ratio.{k}", None, "must be given (a number)")
        check_number(f"ratio.{k}", ratio[k])
    my, mn = float(ratio["numerator_mean"]), float(ratio["denominator_mean"])
    vy, vn, cov = (float(ratio[k]) for k in ("numerator_var", "denominator_var", "covariance"))
    if mn == 0:
        raise ValidationError("ratio.denominator_mean", mn, "must be non-zero")
    check_number("ratio.numerator_var", vy, low=0)
    check_number("ratio.denominator_var", vn, low=0)
    if cov * cov > vy * vn * (1 + 1e-12):
        raise ValidationError(
            "ratio.covariance",
            cov,
            f"must satisfy cov**2 <= numerator_var * denominator_var ({vy * vn:g})",
        )
    r = my / mn
    if baseline is not None and not math.isclose(float(baseline), r, rel_tol=1e-9, abs_tol=1e-12):
        raise ValidationError(
            "baseline", baseline, f"must be numerator_mean / denominator_mean = {r:g} (or omitted)"
        )
    v = (vy - 2 * r * cov + r * r * vn) / (mn * mn)
    if v <= 0:
        raise ValidationError("ratio", dict(ratio), "gives a delta-method variance <= 0")
    return r, math.sqrt(v)


def _setup(
    metric, baseline, sd, alpha, alternative, arms, weights, correction, method,
    cuped_rho=0.0, ratio=None,
) -> _Setup:  # fmt: skip
    check_choice("metric", metric, METHODS)
    method = METHODS[metric][0] if method is None else method
    check_choice("method", method, METHODS[metric])
    check_number("cuped_rho", cuped_rho, low=0, high=1, high_open=True)
    if cuped_rho and method not in ("unpooled", "t"):
        raise ValidationError(
            "cuped_rho", cuped_rho, f"applies with method 'unpooled' or 't', not {method!r}"
        )
    if ratio is not None and metric != "ratio":
        raise ValidationError("ratio", ratio, "is only for metric 'ratio'")
    if metric == "ratio":
        if sd is not None:
            raise ValidationError("sd", sd, "is not used for ratio metrics (give ratio= moments)")
        baseline, sd = _ratio_moments(ratio, baseline)
    elif baseline is None:
        raise ValidationError("baseline", baseline, "must be given (the control rate or mean)")
    check_number("alpha", alpha, low=0, high=1, low_open=True, high_open=True)
    check_choice("alternative", alternative, ("two-sided", "one-sided"))
    check_int("arms", arms, low=2, high=MAX_ARMS)
    check_choice("correction", correction, ("bonferroni", "none"))
    if metric == "proportion":
        check_number("baseline", baseline, low=0, high=1, low_open=True, high_open=True)
    else:
        check_number("baseline", baseline)
        if sd is None:
            raise ValidationError("sd", sd, "must be given (a number > 0) for mean metrics")
        check_number("sd", sd, low=0, low_open=True)
    if weights is None:
        weights = (1.0 / arms,) * arms
    if not isinstance(weights, Sequence) or len(weights) != arms:
        raise ValidationError("weights", weights, f"must be a list of {arms} numbers (one per arm)")
    for i, w in enumerate(weights):
        check_number(f"weights[{i}]", w, low=0, high=1, low_open=True)
    if abs(sum(weights) - 1.0) > 1e-6:
        raise ValidationError("weights", list(weights), "must sum to 1")
    k = arms - 1 if correction == "bonferroni" else 1
    return _Setup(
        metric,
        method,
        float(baseline),
        sd,
        alpha / k,
        alternative,
        tuple(float(w) for w in weights),
        1.0 - float(cuped_rho) ** 2,
        float(cuped_rho),
    )


def _effect(s: _Setup, mde: Any, relative: bool) -> float:
    check_number("mde", mde)
    if mde == 0:
        raise ValidationError("mde", mde, "must be non-zero")
    d = mde * s.baseline if relative else float(mde)
    if relative and s.baseline == 0:
        raise ValidationError("baseline", s.baseline, "must be non-zero for a relative mde")
    if s.metric == "proportion" and not 0 < s.baseline + d < 1:
        raise ValidationError(
            "mde", mde, f"must keep baseline + effect inside (0, 1), got {s.baseline + d:g}"
        )
    return d


def _result(
    s: _Setup,
    d: float,
    total: float,
    pw: float,
    alpha: float,
    correction: str,
    daily_traffic,
    traffic_fraction,
) -> DesignResult:
    n = tuple(math.ceil(total * w - 1e-9) for w in s.weights)
    days = None
    if daily_traffic is not None:
        check_number("daily_traffic", daily_traffic, low=0, low_open=True)
        check_number("traffic_fraction", traffic_fraction, low=0, high=1, low_open=True)
        days = math.ceil(sum(n) / (daily_traffic * traffic_fraction) - 1e-9)
    rel = d / s.baseline if s.baseline != 0 else math.nan
    return DesignResult(
        s.metric,
        s.method,
        FORMULAS[s.method],
        s.baseline,
        s.baseline + d,
        d,
        rel,
        None if s.sd is None else float(s.sd),
        alpha,
        s.alpha_c,
        pw,
        s.alternative,
        len(s.weights),
        s.weights,
        correction,
        n,
        sum(n),
        days,
        s.rho,
    )


def sample_size(
    metric: str = "proportion",
    *,
    baseline: float | None = None,
    mde: float,
    relative: bool = False,
    sd: float | None = None,
    alpha: float = 0.05,
    power: float = 0.8,
    alternative: str = "two-sided",
    arms: int = 2,
    weights: Sequence[float] | None = None,
    correction: str = "bonferroni",
    method: str | None = None,
    daily_traffic: float | None = None,
    traffic_fraction: float = 1.0,
    cuped_rho: float = 0.0,
    ratio: Mapping[str, float] | None = None,
) -> DesignResult:
    """Users needed per arm to detect ``mde`` with the given power.

    Args:
        metric: ``"proportion"``, ``"mean"`` or ``"ratio"``.
        baseline: control rate (proportions) or mean; for ratios
            ``numerator_mean / denominator_mean`` (may be omitted).
        mde: minimum detectable effect, absolute unless ``relative=True``.
        relative: read ``mde`` as a fraction of ``baseline``.
        sd: standard deviation per user (means only).
        alpha: family-wise significance level in (0, 1).
        power: desired power of each comparison in (0, 1).
        alternative: ``"two-sided"`` or ``"one-sided"``.
        arms: number of arms, control included.
        weights: allocation weights, control first; equal by default; must sum to 1.
        correction: ``"bonferroni"`` (divide alpha by ``arms - 1``) or ``"none"``.
        method: formula name; default ``"unpooled"``.
        daily_traffic: eligible users per day, to compute ``days``.
        traffic_fraction: share of the daily traffic that enters the experiment.
        cuped_rho: correlation of the outcome with its CUPED covariate, ``0 <= rho < 1``:
            the variance (so the sample size) is multiplied by ``1 - rho**2``.
        ratio: a ratio metric's per-user moments: ``numerator_mean``,
            ``denominator_mean``, ``numerator_var``, ``denominator_var``,
            ``covariance`` (delta-method variance, see the module docstring).

    Returns:
        A :class:`DesignResult`.

    Example:
        >>> sample_size("mean", baseline=10.0, sd=4.0, mde=0.5, arms=3, daily_traffic=2000).days
        2
    """
    s = _setup(
        metric,
        baseline,
        sd,
        alpha,
        alternative,
        arms,
        weights,
        correction,
        method,
        cuped_rho,
        ratio,
    )
    check_number("power", power, low=0, high=1, low_open=True, high_open=True)
    d = _effect(s, mde, relative)
    lo, hi = 4.0 / min(s.weights), 1e3
    while _min_power(s, hi, d) < power:
        hi *= 10
        if hi > 1e15:
            raise ValidationError("mde", mde, "is too small: more than 1e15 users would be needed")
    if _min_power(s, lo, d) >= power:
        total = lo
    else:
        total = optimize.brentq(
            lambda n: _min_power(s, n, d) - power, lo, hi, xtol=1e-9, rtol=1e-12
        )
    n_total = sum(math.ceil(total * w - 1e-9) for w in s.weights)
    return _result(
        s, d, total, _min_power(s, n_total, d), alpha, correction, daily_traffic, traffic_fraction
    )


def _total_from(s: _Setup, total_n, n_per_arm) -> float:
    if (total_n is None) == (n_per_arm is None):
        raise ValidationError("total_n", total_n, "give exactly one of total_n and n_per_arm")
    if n_per_arm is not None:
        check_int("n_per_arm", n_per_arm, low=2)
        return n_per_arm / s.weights[0]
    check_int("total_n", total_n, low=2 * len(s.weights))
    return float(total_n)


def power(
    metric: str = "proportion",
    *,
    baseline: float | None = None,
    mde: float,
    relative: bool = False,
    total_n: int | None = None,
    n_per_arm: int | None = None,
    sd: float | None = None,
    alpha: float = 0.05,
    alternative: str = "two-sided",
    arms: int = 2,
    weights: Sequence[float] | None = None,
    correction: str = "bonferroni",
    method: str | None = None,
    cuped_rho: float = 0.0,
    ratio: Mapping[str, float] | None = None,
) -> DesignResult:
    """Power of each arm-vs-control comparison for a given sample.

    ``n_per_arm`` is the size of the control arm; ``total_n`` the size of all arms.

    Example:
        >>> round(power("proportion", baseline=0.05, mde=0.005, n_per_arm=31231).power, 3)
        0.8
    """
    s = _setup(
        metric,
        baseline,
        sd,
        alpha,
        alternative,
        arms,
        weights,
        correction,
        method,
        cuped_rho,
        ratio,
    )
    d = _effect(s, mde, relative)
    total = _total_from(s, total_n, n_per_arm)
    return _result(s, d, total, _min_power(s, total, d), alpha, correction, None, 1.0)


def minimum_detectable_effect(
    metric: str = "proportion",
    *,
    baseline: float | None = None,
    total_n: int | None = None,
    n_per_arm: int | None = None,
    sd: float | None = None,
    alpha: float = 0.05,
    power: float = 0.8,
    alternative: str = "two-sided",
    arms: int = 2,
    weights: Sequence[float] | None = None,
    correction: str = "bonferroni",
    method: str | None = None,
    direction: str = "increase",
    cuped_rho: float = 0.0,
    ratio: Mapping[str, float] | None = None,
) -> DesignResult:
    """Smallest effect detectable with the given power and sample, in natural units.

    Example:
        >>> minimum_detectable_effect("proportion", baseline=0.05, n_per_arm=31231).effect_text
        'detects 5.000% -> 5.500% (+10.0% relative)'
    """
    s = _setup(
        metric,
        baseline,
        sd,
        alpha,
        alternative,
        arms,
        weights,
        correction,
        method,
        cuped_rho,
        ratio,
    )
    check_number("power", power, low=0, high=1, low_open=True, high_open=True)
    check_choice("direction", direction, ("increase", "decrease"))
    total = _total_from(s, total_n, n_per_arm)
    sign = 1.0 if direction == "increase" else -1.0
    if metric == "proportion":
        hi = (1 - s.baseline if sign > 0 else s.baseline) * (1 - 1e-9)
    else:
        hi = float(s.sd or 0.0) * 1e6
    if _min_power(s, total, sign * hi) < power:
        raise ValidationError(
            "total_n", round(total), f"is too small: no effect reaches power {power:g}"
        )
    d = optimize.brentq(
        lambda x: _min_power(s, total, sign * x) - power,
        1e-15 * max(1.0, abs(s.baseline)),
        hi,
        xtol=1e-14,
        rtol=1e-12,
    )
    return _result(s, sign * d, total, power, alpha, correction, None, 1.0)
