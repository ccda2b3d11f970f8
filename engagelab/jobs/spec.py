"""Job specs: what to run (a notebook), with which parameters, when, and what to do on failure.

A :class:`JobSpec` is a frozen value that round-trips through YAML and is validated when
built; every error names the field. Parameters are declared in a schema
(:class:`Param`) so values are checked *before* a kernel starts (papermill itself does
not type-check them), and converted to what papermill can inject: dates, datetimes and
decimals become ISO / decimal text.

Example:
    >>> spec = JobSpec.from_yaml('''
    ... name: daily-report
    ... notebook: report.ipynb
    ... params:
    ...   days: {type: int, default: 7, description: window length}
    ...   since: {type: date, required: true}
    ... schedule: {cron: "30 2 * * *", timezone: Europe/Berlin}
    ... ''')
    >>> spec.schedule.cron, spec.retries.retry_on
    ('30 2 * * *', ('dead_kernel', 'crashed'))
    >>> spec.resolve_params({"since": "2026-03-01", "days": "3"})
    {'days': 3, 'since': '2026-03-01'}
    >>> spec.resolve_params({"days": "many", "since": "2026-03-01"})
    Traceback (most recent call last):
    ...
    engagelab.errors.ValidationError: params.days == 'many', must be an integer
    >>> JobSpec.from_yaml(spec.to_yaml()) == spec
    True
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from engagelab.errors import SpecError, ValidationError
from engagelab.validate import check_choice, check_number, check_str, check_timezone

__all__ = [
    "FAILURE_CLASSES",
    "PARAM_TYPES",
    "CatchUp",
    "JobSpec",
    "Notify",
    "Param",
    "Retries",
    "Schedule",
    "is_secret_like",
    "parse_duration",
]

PARAM_TYPES = ("str", "int", "float", "bool", "date", "datetime", "decimal", "list", "dict")
#: Outcome classes of a failed attempt (see :mod:`engagelab.jobs.execute`).
FAILURE_CLASSES = ("cell_error", "dead_kernel", "timeout", "crashed", "bad_parameters")
INJECTED = ("logical_date", "run_key", "attempt")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_SECRET = re.compile(
    r"(^|_)(password|passwd|pwd|passphrase|token|secret|secrets|key|apikey|api_key|"
    r"credential|credentials|auth|private)($|_)",
    re.IGNORECASE,
)
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def is_secret_like(name: str) -> bool:
    """True for parameter names that look like credentials (never allowed as parameters).

    >>> [is_secret_like(n) for n in ("api_token", "password", "days", "key", "keyword")]
    [True, True, False, True, False]
    """
    return bool(_SECRET.search(name))


def parse_duration(name: str, value: Any, *, allow_none: bool = True) -> float | None:
    """Seconds from a number or text like ``'90s'``, ``'15m'``, ``'2h'``, ``'3d'``.

    >>> parse_duration("timeout", "2h"), parse_duration("timeout", 30)
    (7200.0, 30.0)
    """
    if value is None and allow_none:
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(check_number(name, value, low=0, low_open=True))
    m = _DURATION.match(value) if isinstance(value, str) else None
    if not m or float(m.group(1)) <= 0:
        raise ValidationError(
            name, value, "must be a positive duration such as 30, '15m', '2h', '3d'"
        )
    return float(m.group(1)) * _UNITS[m.group(2)]


@dataclass(frozen=True)
class Param:
    """One declared notebook parameter: its type, whether required, default and description."""

    type: str = "str"
    required: bool = False
    default: Any = None
    description: str = ""

    def convert(self, name: str, value: Any) -> Any:  # noqa: C901
        """Check ``value`` (typed, or text from the command line) and return its injected form."""
        field_ = f"params.{name}"
        t = self.type
        text = isinstance(value, str)
        try:
            if t == "str":
                if not text:
                    raise ValueError
                return value
            if t == "int":
                if isinstance(value, bool):
                    raise ValueError
                if text:
                    return int(value.strip())
                if isinstance(value, int):
                    return value
                raise ValueError
            if t == "float":
                if isinstance(value, bool):
                    raise ValueError
                out = float(value.strip()) if text else value
                if not isinstance(out, int | float):
                    raise ValueError
                return float(out)
            if t == "bool":
                if isinstance(value, bool):
                    return value
                if text and value.strip().lower() in ("true", "false", "1", "0", "yes", "no"):
                    return value.strip().lower() in ("true", "1", "yes")
                raise ValueError
            if t == "date":
                if isinstance(value, dt.datetime):
                    raise ValueError
                day = value if isinstance(value, dt.date) else dt.date.fromisoformat(value.strip())
                return day.isoformat()
            if t == "datetime":
                moment = (
                    value if isinstance(value, dt.datetime) else dt.datetime.fromisoformat(value)
                )
                return moment.isoformat()
            if t == "decimal":
                if isinstance(value, bool | float):
                    raise ValueError
                number = decimal.Decimal(value.strip() if text else value)
                if not number.is_finite():
                    raise ValueError
                return str(number)
            if t == "list":
                out = json.loads(value) if text else value
                if not isinstance(out, list | tuple):
                    raise ValueError
                return list(out)
            out = json.loads(value) if text else value
            if not isinstance(out, Mapping):
                raise ValueError
            return dict(out)
        except (ValueError, TypeError, AttributeError, decimal.InvalidOperation):
            article = "an" if t[0] in "aeiou" or t == "int" else "a"
            word = {"int": "integer", "str": "string", "bool": "boolean"}.get(t, t)
            hint = {"date": " (YYYY-MM-DD)", "datetime": " (ISO 8601)", "list": " (JSON)",
                    "dict": " (JSON object)"}.get(t, "")  # fmt: skip
            raise ValidationError(field_, value, f"must be {article} {word}{hint}") from None


@dataclass(frozen=True)
class Schedule:
    """When the job runs: a 5-field cron expression read in an IANA time zone.

    A cron that can never fire (``0 2 30 2 *``) is refused; one that fires more than once
    a day is refused by :func:`~engagelab.jobs.add_job` (runs are keyed by logical date).
    """

    cron: str
    timezone: str = "UTC"

    def __post_init__(self) -> None:
        from croniter import CroniterBadDateError, croniter

        check_str("schedule.cron", self.cron)
        if len(self.cron.split()) != 5 or not croniter.is_valid(self.cron):
            raise SpecError("schedule.cron", self.cron, "must be a 5-field cron expression")
        try:
            croniter(self.cron, dt.datetime(2000, 1, 1)).get_next(dt.datetime)
        except CroniterBadDateError:
            raise SpecError("schedule.cron", self.cron,
                            "never fires (no calendar date matches its day and month)") from None  # fmt: skip
        check_timezone("schedule.timezone", self.timezone)

    def fires_per_day(self) -> tuple[str, ...]:
        """Two local fire times of one day if the cron fires more than once a day, else ().

        >>> Schedule("0 9,18 * * *").fires_per_day(), Schedule("30 2 * * 1-5").fires_per_day()
        (('09:00', '18:00'), ())
        """
        from croniter import croniter

        it = croniter(self.cron, dt.datetime(2026, 1, 1))
        prev = it.get_next(dt.datetime)
        for _ in range(400):  # a daily cron: one fire a day for a year; sub-daily: found at once
            t = it.get_next(dt.datetime)
            if t.date() == prev.date():
                return (prev.strftime("%H:%M"), t.strftime("%H:%M"))
            prev = t
        return ()

    def check_daily(self) -> None:
        """Refuse a cron that fires more than once a day (runs are keyed by logical date)."""
        times = self.fires_per_day()
        if times:
            raise SpecError("schedule.cron", self.cron,
                            f"fires more than once a day ({times[0]} and {times[1]}); runs are keyed "
                            "by logical date, so a job runs at most once a day: use a daily cron")  # fmt: skip


@dataclass(frozen=True, init=False)
class CatchUp:
    """What a (re)started scheduler does with missed slots.

    ``none``: run a slot only within ``max_staleness`` (default 1 hour) of its time;
    ``latest``: run only the most recent missed slot; ``all``: run every missed slot,
    oldest first. ``max_staleness`` (seconds or ``'3d'``) drops slots older than that;
    it is stored in seconds.

    >>> CatchUp("all", max_staleness="3d").max_staleness
    259200.0
    """

    policy: str = "latest"
    max_staleness: float | None = None

    # an explicit __init__: the constructor takes duration text, the field holds seconds
    def __init__(self, policy: str = "latest", max_staleness: float | str | None = None) -> None:
        check_choice("catch_up.policy", policy, ["none", "latest", "all"])
        object.__setattr__(self, "policy", policy)
        object.__setattr__(
            self, "max_staleness", parse_duration("catch_up.max_staleness", max_staleness)
        )


@dataclass(frozen=True)
class Retries:
    """How many extra attempts, after which failure classes, with exponential backoff."""

    count: int = 0
    backoff: float = 30.0
    factor: float = 2.0
    retry_on: tuple[str, ...] = ("dead_kernel", "crashed")

    def __post_init__(self) -> None:
        if isinstance(self.count, bool) or not isinstance(self.count, int) or self.count < 0:
            raise SpecError("retries.count", self.count, "must be an integer >= 0")
        object.__setattr__(self, "backoff", parse_duration("retries.backoff", self.backoff)
                           if self.backoff else 0.0)  # fmt: skip
        check_number("retries.factor", self.factor, low=1)
        object.__setattr__(self, "retry_on", tuple(self.retry_on))
        for c in self.retry_on:
            check_choice(
                "retries.retry_on", c, [c for c in FAILURE_CLASSES if c != "bad_parameters"]
            )

    def delay(self, attempt: int) -> float:
        """Seconds to wait before attempt ``attempt + 1`` (``attempt`` >= 1)."""
        return self.backoff * self.factor ** (attempt - 1)


@dataclass(frozen=True)
class Notify:
    """Where to report finished runs: a webhook URL (JSON POST) and/or an e-mail address."""

    on: tuple[str, ...] = ("failure",)
    webhook: str | None = None
    email: str | None = None
    smtp: str = "localhost:25"
    sender: str = "engagelab@localhost"

    def __post_init__(self) -> None:
        object.__setattr__(self, "on", tuple(self.on))
        for o in self.on:
            check_choice("notify.on", o, ["failure", "success"])
        if self.webhook is not None and not re.match(r"^https?://", str(self.webhook)):
            raise SpecError("notify.webhook", self.webhook, "must be an http(s) URL")
        if self.email is not None and "@" not in str(self.email):
            raise SpecError("notify.email", self.email, "must be an e-mail address")
        if not re.match(r"^[^:\s]+:\d+$", str(self.smtp)):
            raise SpecError("notify.smtp", self.smtp, "must be host:port")


@dataclass(frozen=True)
class JobSpec:
    """A scheduled, parameterised notebook.

    Args:
        name: the job's name (letters, digits, ``_ . -``).
        notebook: the notebook's path (relative paths are relative to the workspace).
        params: declared parameters, name -> :class:`Param` (or its dict).
        fixed: parameter values always passed (checked against ``params`` if declared).
        schedule: a :class:`Schedule`; None for jobs run only on demand.
        start: the first logical date the job may run (``YYYY-MM-DD``); default: the day
            the job was added (earlier slots are never caught up). ``engagelab run`` /
            ``run_job`` refuse an earlier date unless given ``--backfill`` / ``backfill=True``.
        catch_up: a :class:`CatchUp` policy for missed slots.
        retries: a :class:`Retries` policy (by default none; infrastructure failures only).
        cell_timeout: seconds (or ``'10m'``) a cell may run; None for no limit.
        timeout: wall-clock seconds for one attempt; the runner kills it after that.
        output_dir: where executed notebooks go (default ``outputs/runs`` in the workspace).
        html_report: also write an HTML report of each attempt (costs seconds).
        notify: a :class:`Notify` hook, or None.
        secret_env: names of environment variables the notebook may read (never parameters).
        kernel_name: the Jupyter kernel to run in.
        stale_after: seconds without a heartbeat after which a run's lease counts as dead.
        description: free text.
    """

    name: str
    notebook: str
    params: Mapping[str, Param] = field(default_factory=dict)
    fixed: Mapping[str, Any] = field(default_factory=dict)
    schedule: Schedule | None = None
    start: str | None = None
    catch_up: CatchUp = field(default_factory=CatchUp)
    retries: Retries = field(default_factory=Retries)
    cell_timeout: float | None = None
    timeout: float | None = None
    output_dir: str | None = None
    html_report: bool = False
    notify: Notify | None = None
    secret_env: tuple[str, ...] = ()
    kernel_name: str = "python3"
    stale_after: float = 60.0
    description: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME.match(self.name):
            raise SpecError("name", self.name, "must be 1-100 letters, digits, '_', '.' or '-'")
        check_str("notebook", self.notebook)
        s = object.__setattr__
        s(self, "params", {k: _param(k, v) for k, v in dict(self.params or {}).items()})
        s(self, "schedule", _sub(Schedule, "schedule", self.schedule))
        if self.start is not None:
            try:
                s(self, "start", dt.date.fromisoformat(str(self.start)).isoformat())
            except ValueError:
                raise SpecError("start", self.start, "must be a date (YYYY-MM-DD)") from None
        s(self, "catch_up", _sub(CatchUp, "catch_up", self.catch_up) or CatchUp())
        s(self, "retries", _sub(Retries, "retries", self.retries) or Retries())
        s(self, "notify", _sub(Notify, "notify", self.notify))
        s(self, "cell_timeout", parse_duration("cell_timeout", self.cell_timeout))
        s(self, "timeout", parse_duration("timeout", self.timeout))
        s(self, "stale_after", parse_duration("stale_after", self.stale_after, allow_none=False))
        if not isinstance(self.html_report, bool):
            raise SpecError("html_report", self.html_report, "must be true or false")
        s(self, "secret_env", tuple(self.secret_env or ()))
        for v in self.secret_env:
            if not isinstance(v, str) or not _IDENT.match(v):
                raise SpecError("secret_env", v, "must be environment-variable names")
        fixed = dict(self.fixed or {})
        for k in fixed:
            _check_name(f"fixed.{k}", k)
        s(self, "fixed", {k: self.params[k].convert(k, v) if k in self.params else _plain(k, v)
                          for k, v in fixed.items()})  # fmt: skip

    # ------------------------------------------------------------ parameters
    def resolve_params(self, given: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Defaults, then fixed values, then ``given``: validated and made injectable.

        Raises:
            ValidationError: unknown or secret-like names, overriding a fixed value,
                wrong types, missing required parameters.
        """
        given = dict(given or {})
        out: dict[str, Any] = {}
        for k, p in self.params.items():
            if p.default is not None:
                out[k] = p.convert(k, p.default)
        out.update(self.fixed)
        for k, v in given.items():
            _check_name(f"params.{k}", k)
            if k in self.fixed:
                raise ValidationError(f"params.{k}", v, "is fixed by the job spec")
            if k not in self.params:
                known = ", ".join(sorted(self.params)) or "none"
                raise ValidationError(
                    f"params.{k}", v, f"is not a declared parameter (known: {known})"
                )
            out[k] = self.params[k].convert(k, v)
        for k, p in self.params.items():
            if p.required and k not in out:
                raise ValidationError(f"params.{k}", None, "is required")
        return out

    # ------------------------------------------------------------ serialisation
    def to_dict(self) -> dict[str, Any]:
        """A plain dict (YAML/JSON-ready) that :meth:`from_dict` reads back."""
        d = dataclasses.asdict(self)
        for k in ("secret_env",):
            d[k] = list(d[k])
        if d["notify"]:
            d["notify"]["on"] = list(d["notify"]["on"])
        d["retries"]["retry_on"] = list(d["retries"]["retry_on"])
        d["params"] = {k: dataclasses.asdict(v) for k, v in self.params.items()}
        d["fixed"] = dict(self.fixed)
        return d

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> JobSpec:
        """Build from a dict such as :meth:`to_dict` returns; unknown keys are errors."""
        if not isinstance(data, Mapping):
            raise SpecError("job", data, "must be a mapping")
        known = {f.name for f in dataclasses.fields(cls)}
        for k in data:
            if k not in known:
                raise SpecError(
                    k, data[k], "is not a job spec field (known: " + ", ".join(sorted(known)) + ")"
                )
        for k in ("name", "notebook"):
            if k not in data:
                raise SpecError(k, None, "is required")
        return cls(**dict(data))

    def to_yaml(self) -> str:
        """The spec as YAML text."""
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    @classmethod
    def from_yaml(cls, text: str) -> JobSpec:
        """Read a spec from YAML text."""
        from engagelab.validate import load_yaml

        return cls.from_dict(load_yaml(text, "job spec") or {})

    def replace(self, **changes: Any) -> JobSpec:
        """A copy with some fields changed (specs are immutable)."""
        return dataclasses.replace(self, **changes)

    def fingerprint(self) -> str:
        """A short hash of the spec (changes when anything in it changes)."""
        return hashlib.sha256(
            json.dumps(self.to_dict(), sort_keys=True, default=str).encode()
        ).hexdigest()[:16]


def _check_name(field_: str, k: Any) -> None:
    if not isinstance(k, str) or not _IDENT.match(k):
        raise ValidationError(field_, k, "must be a Python identifier")
    if is_secret_like(k):
        raise ValidationError(
            field_, k, "looks like a secret: pass secrets through secret_env, never as parameters"
        )
    if k in INJECTED:
        raise ValidationError(field_, k, f"is set by the runner ({', '.join(INJECTED)})")


def _param(name: str, value: Any) -> Param:
    _check_name(f"params.{name}", name)
    if isinstance(value, Param):
        p = value
    elif isinstance(value, str):
        p = Param(type=value)
    elif isinstance(value, Mapping):
        extra = set(value) - {"type", "required", "default", "description"}
        if extra:
            raise SpecError(
                f"params.{name}",
                sorted(extra)[0],
                "is not a parameter field (type, required, default, description)",
            )
        p = Param(**dict(value))
    else:
        raise SpecError(f"params.{name}", value, "must be a type name or a mapping")
    check_choice(f"params.{name}.type", p.type, PARAM_TYPES)
    if not isinstance(p.required, bool):
        raise SpecError(f"params.{name}.required", p.required, "must be true or false")
    if p.default is not None:
        p = dataclasses.replace(p, default=p.convert(name, p.default))
    return p


def _plain(name: str, value: Any) -> Any:
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return str(value)
    try:
        json.dumps(value)
    except TypeError:
        raise ValidationError(f"fixed.{name}", value, "must be JSON-serialisable") from None
    return value


def _sub(cls: type, name: str, value: Any) -> Any:
    if value is None or isinstance(value, cls):
        return value
    if isinstance(value, Mapping):
        # YAML 1.1 reads a bare ``on:`` key as True
        value = {("on" if k is True else k): v for k, v in value.items()}
        names = {f.name for f in dataclasses.fields(cls)}
        for k in value:
            if k not in names:
                raise SpecError(
                    f"{name}.{k}",
                    value[k],
                    "is not a field (known: " + ", ".join(sorted(names)) + ")",
                )
        return cls(**dict(value))
    raise SpecError(name, value, "must be a mapping")
