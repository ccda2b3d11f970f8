"""The frozen :class:`Experiment` spec: what an analysis compares and how.

An experiment names its arms (the data column, the control, the arms that must be
present and their intended weights), its metrics and CUPED covariates, the test, the
multiple-comparison correction, alpha and the sequential options. It is validated when
built, deeply frozen and hashable, and round-trips through JSON and YAML;
:func:`~engagelab.experiments.analyze` and
:func:`~engagelab.experiments.analyze_aggregates` take it in place of their keywords.

Example:
    >>> exp = Experiment(control="A", metrics=("clicked:proportion", "revenue:mean:revenue_pre"),
    ...                  correction="bonferroni", sequential=Sequential(always_valid=True))
    >>> exp.metrics[1].covariate, exp.sequential.always_valid
    ('revenue_pre', True)
    >>> Experiment.from_yaml(exp.to_yaml()) == exp == Experiment.from_json(exp.to_json())
    True
    >>> exp.replace(alpha=1.5)
    Traceback (most recent call last):
    ...
    engagelab.errors.SpecError: alpha == 1.5, must be in (0, 1)
    >>> exp.alpha = 0.1
    Traceback (most recent call last):
    ...
    engagelab.errors.FrozenSpecError: Experiment is frozen: use experiment.replace(alpha=...) for a changed copy
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import yaml

from engagelab.errors import SpecError, ValidationError
from engagelab.experiments._stats import CORRECTIONS
from engagelab.experiments.metrics import Metric
from engagelab.frozen import FrozenDict, freeze, frozen, replace_spec, thaw
from engagelab.validate import check_choice, check_int, check_number

__all__ = [
    "ALTERNATIVES",
    "CUPED_THETAS",
    "REL_CIS",
    "SPENDINGS",
    "TESTS",
    "Experiment",
    "Sequential",
    "as_experiment",
    "parse_metrics",
]

TESTS = ("auto", "z", "pooled_z", "welch", "fisher", "barnard")
REL_CIS = ("delta", "fieller")
ALTERNATIVES = ("two-sided", "greater", "less")
SPENDINGS = ("obf", "pocock", "power")
CUPED_THETAS = ("per_comparison", "pooled")

#: The keyword form of ``analyze`` names the sequential options flat:
#: keyword -> field of :class:`Sequential`.
_SEQUENTIAL_KEYWORDS = {
    "tuning_n": "tuning_n",
    "gs_information": "information",
    "gs_look": "look",
    "gs_spending": "spending",
    "gs_rho": "rho",
}


def _checked(check: Callable[..., Any], *args: Any, **kw: Any) -> Any:
    """Run a check that raises :class:`ValidationError`, raising :class:`SpecError`
    instead (same field, value and message)."""
    try:
        return check(*args, **kw)
    except ValidationError as exc:
        if isinstance(exc, SpecError):
            raise
        raise SpecError(exc.field, exc.value, exc.allowed, message=str(exc)) from None


def parse_metrics(  # noqa: C901
    metrics: Any, covariate: str | None = None, denominator_covariate: str | None = None
) -> tuple[Metric, ...]:
    """Metrics from :class:`Metric` objects, their dicts or their text form
    (``"NAME:proportion|mean[:COVARIATE]"`` / ``"NAME:ratio:DENOMINATOR[:COV[:DEN_COV]]"``);
    text metrics that name no covariate take ``covariate`` (and ``denominator_covariate``).

    >>> [m.name for m in parse_metrics(["clicked:proportion", {"name": "revenue"}])]
    ['clicked', 'revenue']
    """
    if isinstance(metrics, Metric | str | Mapping):
        metrics = [metrics]
    if isinstance(metrics, Sequence) and not metrics:
        raise ValidationError("metrics", list(metrics), "must name at least one metric")
    if not isinstance(metrics, Sequence):
        raise ValidationError("metrics", metrics, "must be a list of metrics")
    for field, v in (("covariate", covariate), ("denominator_covariate", denominator_covariate)):
        if v is not None and (not isinstance(v, str) or not v):
            raise ValidationError(field, v, "must be a column name (text)")
    if denominator_covariate and not covariate:
        raise ValidationError(
            "denominator_covariate",
            denominator_covariate,
            "needs covariate (the numerator of the pre-period ratio)",
        )
    out: list[Metric] = []
    for i, m in enumerate(metrics):
        if isinstance(m, Metric):
            out.append(m)
        elif isinstance(m, str):
            out.append(Metric.parse(m, covariate, denominator_covariate))
        elif isinstance(m, Mapping):
            fields = {f.name for f in dataclasses.fields(Metric)}
            extra = sorted(set(m) - fields)
            if extra:
                raise ValidationError(
                    f"metrics[{i}].{extra[0]}",
                    m[extra[0]],
                    "is not a metric field: " + ", ".join(sorted(fields)),
                )
            if "name" not in m:
                raise ValidationError(f"metrics[{i}].name", None, "is required")
            out.append(Metric(**m))
        else:
            raise ValidationError(
                f"metrics[{i}]", m, "must be a Metric, its dict or its text form 'NAME:KIND'"
            )
    names = [m.name for m in out]
    if len(set(names)) != len(names):
        raise ValidationError("metrics", names, "must have distinct names")
    return tuple(out)


@frozen
@dataclass(frozen=True)
class Sequential:
    """Sequential-testing options: looking at results before the planned end.

    Args:
        always_valid: add always-valid p-values and confidence sequences (mSPRT):
            ``seq_p``, ``seq_ci_low``, ``seq_ci_high`` (safe to look at any time).
        tuning_n: sample size at which the confidence sequence is tightest.
        information: planned information fractions of all looks of a group-sequential
            design (e.g. ``(0.25, 0.5, 0.75, 1)``); adds ``gs_z``, ``gs_bound`` (the
            Lan-DeMets boundary of this look) and ``gs_reject``.
        look: which look this analysis is (1-based; default the last).
        spending: ``"obf"`` (O'Brien-Fleming type), ``"pocock"`` or ``"power"`` (the
            Kim-DeMets power family ``alpha * t**rho``).
        rho: exponent of the ``"power"`` spending function (> 0; 1 spends alpha
            linearly, 3 is close to O'Brien-Fleming).

    >>> Sequential(information=(0.5, 1.0), look=3)
    Traceback (most recent call last):
    ...
    engagelab.errors.SpecError: sequential.look == 3, must be an integer in [1, 2]
    """

    always_valid: bool = False
    tuning_n: float = 10_000
    information: tuple[float, ...] | None = None
    look: int | None = None
    spending: str = "obf"
    rho: float = 1.0

    def __post_init__(self) -> None:
        if not isinstance(self.always_valid, bool):
            raise SpecError("sequential.always_valid", self.always_valid, "must be true or false")
        _checked(check_number, "sequential.tuning_n", self.tuning_n, low=0, low_open=True)
        _checked(check_choice, "sequential.spending", self.spending, SPENDINGS)
        _checked(check_number, "sequential.rho", self.rho, low=0, low_open=True)
        if self.rho != 1.0 and self.spending != "power":
            raise SpecError("sequential.rho", self.rho, "applies to spending 'power' only")
        object.__setattr__(self, "rho", float(self.rho))
        info = self.information
        if info is not None:
            if isinstance(info, str) or not isinstance(info, Sequence):
                raise SpecError(
                    "sequential.information", info, "must be increasing fractions in (0, 1]"
                )
            t = tuple(
                float(_checked(check_number, f"sequential.information[{i}]", x, low=0, high=1))
                for i, x in enumerate(info)
            )
            if any(x <= 0 for x in t):
                raise SpecError(
                    "sequential.information", list(info), "must be increasing fractions in (0, 1]"
                )
            if not t or any(b <= a for a, b in zip(t, t[1:], strict=False)):
                raise SpecError(
                    "sequential.information", list(info), "must be increasing fractions in (0, 1]"
                )
            object.__setattr__(self, "information", t)
        if self.look is not None:
            if self.information is None:
                raise SpecError(
                    "sequential.look", self.look, "needs information (the planned looks)"
                )
            _checked(check_int, "sequential.look", self.look, low=1, high=len(self.information))

    def replace(self, **changes: Any) -> Sequential:
        """A copy with some options changed (validated again)."""
        return replace_spec(self, changes)

    def to_dict(self) -> dict[str, Any]:
        """Plain data (:meth:`Experiment.from_dict` reads it back)."""
        return {f.name: thaw(getattr(self, f.name)) for f in dataclasses.fields(self)}


@frozen
@dataclass(frozen=True)
class Experiment:
    """What an analysis compares and how.

    Args:
        control: the control arm's value (kept as text: arms are compared as text).
        metrics: :class:`Metric` objects, their dicts, or their text form
            ``"NAME:proportion|mean[:COVARIATE]"`` /
            ``"NAME:ratio:DENOMINATOR[:COVARIATE[:DENOMINATOR_COVARIATE]]"``; kept as
            :class:`Metric` objects.
        arm_col: the data column holding each user's arm.
        experiment_col: the data column naming the experiment (one analysis each), or
            None for one experiment.
        arms: arms that must be present (an absent arm is an error: zero users).
        weights: intended allocation for the sample-ratio check: a mapping arm -> weight,
            or weights with the control first then the other arms sorted; None: equal.
        covariate: CUPED pre-period covariate of the text metrics that name none (for a
            ratio: the numerator of its pre-period ratio); applied when the metrics are
            parsed.
        denominator_covariate: denominator of the pre-period ratio of text ratio
            metrics; needs ``covariate``.
        alpha: significance level (intervals are at ``1 - alpha``).
        correction: ``holm``, ``hochberg``, ``bonferroni``, ``bh``, ``by`` or ``none``,
            over all arms x metrics of each experiment.
        test: ``auto``, ``z``, ``pooled_z``, ``welch``, ``fisher`` or ``barnard``.
        alternative: ``two-sided``, ``greater`` or ``less`` (one-sided intervals too).
        rel_ci: interval of the relative lift, ``delta`` or ``fieller``.
        cuped_theta: how the CUPED slope θ is estimated: ``per_comparison`` (default:
            from the control and the compared arm only, so one arm's result never
            depends on another arm's data) or ``pooled`` (one θ from all arms, the
            within-arm slope of an OLS on arm dummies and the covariate). The output
            names it (``cuped_theta_scope``) and gives θ (``cuped_theta``).
        sequential: :class:`Sequential` options (``True`` means always-valid results
            with the default options; a mapping is read as :class:`Sequential` fields).
        bayes_draws: Monte Carlo draws for the Bayesian columns.
        seed: seed of those draws.
    """

    control: str
    metrics: tuple[Metric, ...]
    arm_col: str = "arm"
    experiment_col: str | None = None
    arms: tuple[str, ...] | None = None
    weights: Mapping[str, float] | tuple[float, ...] | None = None
    covariate: str | None = None
    denominator_covariate: str | None = None
    alpha: float = 0.05
    correction: str = "holm"
    test: str = "auto"
    alternative: str = "two-sided"
    rel_ci: str = "delta"
    cuped_theta: str = "per_comparison"
    sequential: Sequential = dataclasses.field(default_factory=Sequential)
    bayes_draws: int = 20_000
    seed: int = 20261127

    def __post_init__(self) -> None:
        c = self.control
        if c is None or isinstance(c, bool) or not isinstance(c, str | int | float):
            raise SpecError("control", c, "must be the control arm's value (text or a number)")
        object.__setattr__(self, "control", str(c))
        metrics = _checked(parse_metrics, self.metrics, self.covariate, self.denominator_covariate)
        object.__setattr__(self, "metrics", metrics)
        for name in ("arm_col", "experiment_col"):
            v = getattr(self, name)
            if (v is not None or name == "arm_col") and (not isinstance(v, str) or not v):
                raise SpecError(name, v, "must be a column name (text)")
        self._check_arms()
        _checked(check_number, "alpha", self.alpha, low=0, high=1, low_open=True, high_open=True)
        _checked(check_choice, "correction", self.correction, CORRECTIONS)
        _checked(check_choice, "test", self.test, TESTS)
        _checked(check_choice, "alternative", self.alternative, ALTERNATIVES)
        _checked(check_choice, "rel_ci", self.rel_ci, REL_CIS)
        _checked(check_choice, "cuped_theta", self.cuped_theta, CUPED_THETAS)
        seq = self.sequential
        if isinstance(seq, bool):
            seq = Sequential(always_valid=seq)
        elif isinstance(seq, Mapping):
            fields = {f.name for f in dataclasses.fields(Sequential)}
            extra = sorted(set(seq) - fields)
            if extra:
                raise SpecError(
                    f"sequential.{extra[0]}",
                    seq[extra[0]],
                    "is not a sequential option: " + ", ".join(sorted(fields)),
                )
            seq = Sequential(**seq)
        if not isinstance(seq, Sequential):
            raise SpecError(
                "sequential", seq, "must be Sequential options, their mapping, true or false"
            )
        object.__setattr__(self, "sequential", seq)
        _checked(check_int, "bayes_draws", self.bayes_draws, low=1000)
        _checked(check_int, "seed", self.seed, low=0)

    def _check_arms(self) -> None:
        arms = self.arms
        if arms is not None:
            if isinstance(arms, str) or not isinstance(arms, Sequence):
                raise SpecError("arms", arms, "must be a list of arm values")
            if any(a is None or isinstance(a, bool) for a in arms):
                raise SpecError("arms", list(arms), "must be arm values (text or numbers)")
            object.__setattr__(self, "arms", tuple(str(a) for a in arms))
        w = self.weights
        if w is None:
            return
        items: list[tuple[Any, Any]]
        if isinstance(w, Mapping):
            items = list(w.items())
        elif isinstance(w, Sequence) and not isinstance(w, str):
            items = list(enumerate(w))
        else:
            raise SpecError("weights", w, "must be a mapping arm -> weight or a list of weights")
        for k, v in items:
            _checked(check_number, f"weights[{k!r}]", v, low=0, low_open=True)
        if isinstance(w, Mapping):
            object.__setattr__(self, "weights", FrozenDict({str(k): v for k, v in items}))
        else:
            object.__setattr__(self, "weights", freeze(list(w)))

    # ----------------------------------------------------------------- building
    def replace(self, **changes: Any) -> Experiment:
        """A copy with some fields changed (experiments are frozen), validated again."""
        return replace_spec(self, changes)

    @classmethod
    def from_options(cls, base: Experiment | None = None, /, **options: Any) -> Experiment:
        """The experiment the keywords of ``analyze`` describe (on top of ``base``).

        The keywords are the fields of :class:`Experiment`, with the sequential options
        also accepted flat as ``analyze`` has always taken them: ``sequential`` (true
        or false: always-valid results), ``tuning_n``, ``gs_information``, ``gs_look``
        ``gs_spending`` and ``gs_rho``.

        >>> e = Experiment.from_options(control="A", metrics=["clicked:proportion"],
        ...                             sequential=True, gs_information=[0.5, 1])
        >>> e.sequential
        Sequential(always_valid=True, tuning_n=10000, information=(0.5, 1.0), look=None, spending='obf', rho=1.0)
        >>> Experiment.from_options(e, alpah=0.1)
        Traceback (most recent call last):
        ...
        engagelab.errors.SpecError: alpah == 0.1, is not an analysis option: alpha, alternative, arm_col, ...gs_look, ...
        """
        names = [f.name for f in dataclasses.fields(cls)]
        fields: dict[str, Any] = {n: getattr(base, n) for n in names} if base is not None else {}
        seq_given = {k: options.pop(k) for k in list(options) if k in _SEQUENTIAL_KEYWORDS}
        for k, v in options.items():
            if k not in names:
                allowed = sorted({*names, *_SEQUENTIAL_KEYWORDS})
                raise SpecError(k, v, "is not an analysis option: " + ", ".join(allowed))
            fields[k] = v
        for req in ("control", "metrics"):
            if req not in fields:
                raise SpecError(req, None, "is required")
        if seq_given:
            seq = fields.get("sequential", Sequential())
            if isinstance(seq, bool):
                seq = Sequential(always_valid=seq)
            elif isinstance(seq, Mapping):
                seq = Sequential(**seq)
            try:
                fields["sequential"] = seq.replace(
                    **{_SEQUENTIAL_KEYWORDS[k]: v for k, v in seq_given.items()}
                )
            except SpecError as exc:
                # name the keyword the caller wrote (gs_look), not the field (sequential.look)
                head, _, rest = exc.field.removeprefix("sequential.").partition("[")
                back = {v: k for k, v in _SEQUENTIAL_KEYWORDS.items()}
                field = back.get(head, head) + (f"[{rest}" if rest else "")
                raise SpecError(field, exc.value, exc.allowed) from None
        return cls(**fields)

    # ----------------------------------------------------------------- serialisation
    def to_dict(self) -> dict[str, Any]:
        """Plain data: :meth:`from_dict` builds an equal experiment from it."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if f.name == "metrics":
                v = [dataclasses.asdict(m) for m in v]
            elif f.name == "sequential":
                v = v.to_dict()
            out[f.name] = thaw(v)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Experiment:
        """An experiment from :meth:`to_dict` output; unknown keys are an error."""
        if not isinstance(data, Mapping):
            raise SpecError("experiment", type(data).__name__, "must be a mapping")
        names = sorted(f.name for f in dataclasses.fields(cls))
        extra = sorted(set(data) - set(names))
        if extra:
            raise SpecError(
                extra[0], data[extra[0]], "is not an experiment field: " + ", ".join(names)
            )
        for req in ("control", "metrics"):
            if req not in data:
                raise SpecError(req, None, "is required")
        return cls(**data)

    def to_json(self, **kw: Any) -> str:
        """JSON text (``kw`` go to :func:`json.dumps`)."""
        return json.dumps(self.to_dict(), sort_keys=True, **kw)

    @classmethod
    def from_json(cls, text: str) -> Experiment:
        """An experiment from :meth:`to_json` text."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise SpecError("experiment", text[:40], f"is not valid JSON ({exc.msg})") from None
        return cls.from_dict(data)

    def to_yaml(self) -> str:
        """YAML text (safe dump)."""
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    @classmethod
    def from_yaml(cls, text: str) -> Experiment:
        """An experiment from :meth:`to_yaml` text."""
        return cls.from_dict(yaml.safe_load(text))


def as_experiment(experiment: Experiment | None, options: Mapping[str, Any]) -> Experiment:
    """The experiment an ``analyze`` call describes: ``experiment`` (with ``options``
    overriding its fields), or the keyword form alone."""
    if experiment is not None and not isinstance(experiment, Experiment):
        raise SpecError(
            "experiment",
            type(experiment).__name__,
            "must be an Experiment (or give the options as keywords)",
        )
    if experiment is not None and not options:
        return experiment
    return Experiment.from_options(experiment, **options)
