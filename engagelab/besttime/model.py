"""Per-user best send time: CleverTap-faithful buckets or an empirical-Bayes hour model.

Example:
    >>> import tempfile
    >>> from engagelab import Workspace
    >>> from engagelab.simulate.worlds import simulate_into
    >>> ws = Workspace.create(tempfile.mkdtemp() + "/ws")
    >>> _ = simulate_into(ws, n_users=300, days=28, seed=5)
    >>> model = fit(ws, BestTimeOptions(mode="bayes", window=("07:00", "23:00")))
    >>> slots = model.slots()
    >>> sorted(slots.columns)[:4]
    ['confidence', 'n_events', 'reason', 'slot_local']
    >>> bool(slots["slot_minute"].between(7 * 60, 23 * 60).all())
    True
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import html
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa

from engagelab.besttime import _bayes
from engagelab.besttime._data import History, connect, history, user_table
from engagelab.besttime.options import (
    CLEVERTAP_DEFAULT_SLOT,
    BestTimeOptions,
    format_minute,
    parse_time,
)
from engagelab.errors import ValidationError
from engagelab.validate import check_datetime

if TYPE_CHECKING:
    from engagelab.storage.core import Core

__all__ = ["REASONS", "BestTimeModel", "fit", "latest_event_time", "choose"]

#: 'HH:MM' of every minute of the day, and None at index -1 (no slot).
_LABELS = np.array([format_minute(m) for m in range(1440)] + [None], dtype=object)

REASONS = (
    "chosen",
    "fallback_no_history",
    "fallback_little_history",
    "outside_window",
    "invalid_timezone",
)
_R = {r: i for i, r in enumerate(REASONS)}
_ARROW_REASONS = pa.array(REASONS, pa.large_string())
_ARROW_LABELS = pa.array(_LABELS[:-1].tolist(), pa.large_string())


def _strings(codes: np.ndarray, names: pa.Array) -> pd.api.extensions.ExtensionArray:
    """``names[codes]`` as a pandas string array (negative code: missing), built in Arrow:
    a million rows cost no Python string objects."""
    idx = pa.array(codes.astype(np.int32), mask=codes < 0)
    return pd.array(pa.DictionaryArray.from_arrays(idx, names).cast(pa.large_string()), dtype="str")


def check_events(ws: Core, events: tuple[str, ...], con: Any = None) -> None:
    """Raise if an event name never occurs in the workspace."""
    own = con is None
    con = con or connect(ws)
    try:
        seen = {
            r[0]
            for r in con.execute(
                "SELECT DISTINCT event FROM events WHERE event IN (SELECT unnest($e))",
                {"e": list(events)},
            ).fetchall()
        }
    finally:
        if own:
            con.close()
    for name in events:
        if name not in seen:
            raise ValidationError("events", name, "is not an event name found in this workspace")


def latest_event_time(ws: Core, events: tuple[str, ...]) -> dt.datetime:
    """Just after the last of ``events`` in the workspace (the default fit cutoff)."""
    last = ws.engine.scalar(
        "SELECT max(ts) FROM events WHERE event IN (SELECT unnest($e))", {"e": list(events)}
    )
    if last is None:
        raise ValidationError("events", list(events), "have no occurrences in this workspace")
    return pd.Timestamp(last).tz_convert("UTC").to_pydatetime() + dt.timedelta(microseconds=1)


def _smooth(p: np.ndarray) -> np.ndarray:
    """Circular (0.5, 1, 0.5) smoothing over hours: score of a send near the hour's middle.

    >>> _smooth(np.array([[1.0, 0.0, 0.0, 2.0]]))
    array([[2. , 0.5, 1. , 2.5]])
    """
    k = p.shape[-1]
    if k <= 24:  # one small matrix product (BLAS) beats strided slices
        return p @ _circulant(k)
    half = 0.5 * p
    out = p.copy()
    out[..., 1:] += half[..., :-1]
    out[..., 0] += half[..., -1]
    out[..., :-1] += half[..., 1:]
    out[..., -1] += half[..., 0]
    return out


def _circulant(k: int) -> np.ndarray:
    """``(k, k)`` matrix of the circular (0.5, 1, 0.5) smoothing: ``p @ S``."""
    eye = np.eye(k)
    return eye + 0.5 * (np.roll(eye, 1, axis=1) + np.roll(eye, -1, axis=1))


def choose(
    score: np.ndarray, width: int, offset: int, allowed: np.ndarray, restrict: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Pick a local minute per row of ``score`` (bins of ``width`` minutes).

    The best bin (ties -> earliest) is sent at ``bin * width + offset`` if that minute is
    allowed, else at the bin's nearest allowed minute. A best bin with no allowed minute
    is replaced by the best allowed bin when ``restrict`` (bayes) or by the allowed
    minute nearest its send minute (clevertap). Returns (minute, moved).
    """
    k = score.shape[1]
    # scores from parallel float sums differ in the last bits between runs; rounding makes
    # equal scores equal, so ties go to the earliest bin on every run and every machine
    score = np.round(score, 10)
    nearest = _nearest_allowed(allowed)
    bin_ok = np.asarray(allowed.reshape(k, width).any(axis=1), dtype=bool)
    best = np.argmax(score, axis=1)
    moved = ~bin_ok[best]
    if restrict and moved.any():
        masked = np.where(bin_ok[None, :], score[moved], -np.inf)
        best = best.copy()
        best[moved] = np.argmax(masked, axis=1)
    if not restrict:
        return nearest[best * width + offset], moved
    bin_minute = np.full(k, -1, dtype=np.int64)
    for i in np.flatnonzero(bin_ok):
        cand = np.flatnonzero(allowed[i * width : (i + 1) * width])
        bin_minute[i] = i * width + cand[np.argmin(np.abs(cand - offset))]
    minute = bin_minute[best]
    return minute, moved


def _nearest_allowed(allowed: np.ndarray) -> np.ndarray:
    """For each minute of the day, the nearest allowed minute (ties -> earlier)."""
    ok = np.flatnonzero(allowed)
    pos = np.searchsorted(ok, np.arange(1440))
    lo = ok[np.clip(pos - 1, 0, ok.size - 1)]
    hi = ok[np.clip(pos, 0, ok.size - 1)]
    m = np.arange(1440)
    return np.where(np.abs(m - lo) <= np.abs(hi - m), lo, hi)


@dataclasses.dataclass
class BestTimeModel:
    """A fitted best-time model: per-user scores over local hours (or buckets) and slots.

    Attributes:
        options: the options it was fitted with.
        history: the binned engagement history it was fitted on.
        alpha: fitted prior strength (bayes mode; ``None`` in clevertap mode).
        priors: ``(groups, 24)`` prior hour distributions (bayes mode; ``(groups, 168)``
            hour-of-week distributions with ``granularity='hour_of_week'``).
        score: ``(users, bins)`` score of each bin per user (higher = better): 12
            two-hour buckets (clevertap), 24 hours or 168 hours of the week (bayes).
        beta: fitted strength of the weekday-given-hour prior (hour of week only).
    """

    options: BestTimeOptions
    history: History
    alpha: float | None
    priors: np.ndarray | None
    group_codes: np.ndarray
    group_names: list[str]
    score: np.ndarray
    confidence: np.ndarray
    beta: float | None = None

    @property
    def weekly(self) -> bool:
        """True if slots depend on the weekday (``granularity='hour_of_week'``)."""
        return self.score.shape[1] == 168

    @property
    def cutoff(self) -> dt.datetime:
        """The end (exclusive) of the history the model saw."""
        return self.history.end

    @property
    def n_events(self) -> np.ndarray:
        """Raw number of engagement events of each user in the history."""
        return self.history.n_events

    def slots(self, day: Any = None) -> pd.DataFrame:
        """Per user: slot_minute (local minute of day, -1 if none), slot_local, reason,
        confidence, n_events, user_id, timezone.

        Args:
            day: the logical date (the users' local calendar date): needed with
                ``granularity='hour_of_week'``, whose slots depend on its weekday;
                ignored otherwise.
        """
        o = self.options
        allowed = o.allowed_minutes()
        bayes = o.mode == "bayes"
        width, offset = (60, 30) if bayes else (120, 0)
        weekday = None
        score = self.score
        if self.weekly:
            weekday = _weekday(day)
            score = score[:, weekday * 24 : (weekday + 1) * 24]
        minute, moved = choose(score, width, offset, allowed, restrict=bayes)
        n = self.n_events
        reason = np.where(moved, _R["outside_window"], _R["chosen"]).astype(np.int8)
        if bayes:
            reason[(n > 0) & (n < o.min_events)] = _R["fallback_little_history"]
        none = n == 0
        if none.any():
            minute[none] = self._fallback_minutes(allowed, weekday)[none]
            reason[none] = _R["fallback_no_history"]
        bad_tz = ~self.history.users["tz_ok"].to_numpy(dtype=bool)
        minute[bad_tz] = -1
        reason[bad_tz] = _R["invalid_timezone"]
        users = self.history.users
        return pd.DataFrame(
            {
                "user_id": users["user_id"].array,
                "timezone": users["timezone"].array,
                "slot_minute": minute.astype(np.int64),
                "slot_local": _strings(minute, _ARROW_LABELS),
                "reason": _strings(reason, _ARROW_REASONS),
                "confidence": np.where(bad_tz, np.nan, self.confidence),
                "n_events": n,
            }
        )

    def _fallback_minutes(self, allowed: np.ndarray, weekday: int | None) -> np.ndarray:
        o = self.options
        nearest = _nearest_allowed(allowed)
        rows = len(self.history.users)
        if o.fallback_slot is not None or o.mode == "clevertap":
            m = parse_time("fallback_slot", o.fallback_slot or CLEVERTAP_DEFAULT_SLOT) % 1440
            return np.full(rows, nearest[m])
        assert self.priors is not None
        prior = _smooth(self.priors)
        if weekday is not None:
            prior = prior[:, weekday * 24 : (weekday + 1) * 24]
        per_group, _ = choose(prior, 60, 30, allowed, restrict=True)
        return per_group[self.group_codes]

    def to_pandas(self) -> pd.DataFrame:
        """Same as :meth:`slots`."""
        return self.slots()

    def summary(self) -> dict[str, Any]:
        """Users, reasons, prior strength and history period (for weekday-dependent slots,
        the reasons of the slots on the cutoff's UTC date)."""
        s = self.slots(self.history.end.date() if self.weekly else None)
        return {
            "mode": self.options.mode,
            "users": len(s),
            "history": f"{self.history.start:%Y-%m-%d %H:%M} .. {self.history.end:%Y-%m-%d %H:%M} UTC",
            "events": int(self.history.idx.size),
            "alpha": None if self.alpha is None else round(self.alpha, 3),
            "granularity": self.options.granularity,
            "reasons": s["reason"].value_counts().to_dict(),
        }

    def __repr__(self) -> str:
        s = self.summary()
        beta = "" if self.beta is None else f", beta={round(self.beta, 3)}"
        return (
            f"BestTimeModel(mode={s['mode']!r}, granularity={s['granularity']!r}, "
            f"users={s['users']}, events={s['events']}, alpha={s['alpha']}{beta}, "
            f"reasons={s['reasons']})"
        )

    def _repr_html_(self) -> str:
        rows = "".join(
            f"<tr><th style='text-align:left'>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>"
            for k, v in self.summary().items()
        )
        return f"<table class='engagelab-besttime'><caption>Best-time model</caption>{rows}</table>"


def fit(
    ws: Core,
    options: BestTimeOptions | None = None,
    *,
    at: Any = None,
    users: pd.DataFrame | None = None,
) -> BestTimeModel:
    """Fit a best-time model on the engagement history before ``at``.

    Args:
        ws: the workspace.
        options: :class:`BestTimeOptions` (default: bayes mode, 'App Launched').
        at: cutoff: only events with ``ts < at`` and within ``lookback_days`` before it
            are used (default: just after the last engagement event).
        users: DataFrame with ``user_id`` and ``timezone`` (default: every profile).

    Raises:
        ValidationError: unknown event names, or no engagement event in the period.
    """
    o = options if options is not None else BestTimeOptions()
    if not isinstance(o, BestTimeOptions):
        raise ValidationError("options", type(o).__name__, "must be BestTimeOptions")
    con = connect(ws)
    try:
        check_events(ws, o.events, con)
        end = check_datetime("at", at) if at is not None else latest_event_time(ws, o.events)
        start = end - dt.timedelta(days=o.lookback_days)
        table = user_table(ws, users, o.prior_by)
        weekly = o.granularity == "hour_of_week"
        hist = history(
            ws, table, o.events, start, end, o.half_life_days if o.mode == "bayes" else None, con
        )
    finally:
        con.close()
    if hist.idx.size == 0:
        raise ValidationError(
            "events",
            list(o.events),
            f"have no occurrences for these users between {start:%Y-%m-%d %H:%M} and "
            f"{end:%Y-%m-%d %H:%M} UTC: nothing to learn send times from",
        )
    codes, names = pd.factorize(table["group"].astype(str))
    codes = codes.astype(np.int64)
    if o.mode == "clevertap":
        buckets = hist.counts.reshape(-1, 12, 2).sum(axis=2).astype(np.float64)
        n = hist.n_events
        return BestTimeModel(
            o, hist, None, None, codes, list(names), buckets, (n > 0).astype(float)
        )
    x = hist.weights
    priors = _bayes.group_priors(x, codes)
    nw = x.sum(axis=1)
    if len(names) <= 1 and not weekly:
        alpha, score = _one_group_scores(x, nw)
        return BestTimeModel(o, hist, alpha, priors, codes, list(names), score, nw / (nw + alpha))
    own = _bayes.loo_priors(x, codes)
    alpha = _bayes.fit_alpha(x, own)
    post = _bayes.posterior_mean(x, own, alpha, overwrite_prior=True)
    del own
    beta = None
    if weekly:
        assert hist.week_weights is not None
        y = hist.week_weights.reshape(len(x), 7, 24)
        base = _bayes.loo_conditionals(y, codes)
        beta = _bayes.fit_alpha(*_bayes.conditional_rows(y, base))
        post = _bayes.week_posterior_(post, y, base, beta)  # overwrites base
        priors = _week_priors(priors, y, codes)
    return BestTimeModel(
        o, hist, alpha, priors, codes, list(names), _smooth(post), nw / (nw + alpha), beta
    )


def _one_group_scores(x: np.ndarray, n: np.ndarray) -> tuple[float, np.ndarray]:
    """(alpha, smoothed posterior means) for one prior group without materialising the
    leave-one-out priors: with ``prior[u] = (total - x[u]) * c1[u] + c2[u]`` the posterior
    ``(x + alpha * prior) / (n + alpha)`` is affine in ``x[u]`` and smoothing is linear."""
    total, c1, c2 = _bayes.loo_coefficients(x)

    def prior_rows(rows: np.ndarray) -> np.ndarray:
        return (total[None, :] - x[rows]) * c1[rows, None] + c2[rows, None]

    alpha = _bayes.fit_alpha(x, prior_rows)
    denom = n + alpha
    score = _smooth(x)
    score *= ((1.0 - alpha * c1) / denom)[:, None]
    # the per-row multiples of two fixed vectors: smooth(total) and smooth(ones) = 2
    coef = np.stack([alpha * c1 / denom, alpha * c2 / denom], axis=1)
    score += coef @ np.vstack([_smooth(total[None, :])[0], np.full(x.shape[1], 2.0)])
    return alpha, score


def _week_priors(hour_priors: np.ndarray, y: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """``(groups, 168)``: each group's hour prior times its pooled weekday-given-hour shares."""
    g = hour_priors.shape[0]
    flat = y.reshape(len(y), -1)
    sums = _bayes._group_sums(flat, codes, g).reshape(g, 7, 24) + 1e-6
    cond = sums / sums.sum(axis=1, keepdims=True)
    return (hour_priors[:, None, :] * cond).reshape(g, 168)


def _weekday(day: Any) -> int:
    """Monday = 0 weekday of a logical date (required for weekday-dependent slots)."""
    if day is None:
        raise ValidationError(
            "day",
            None,
            "must be the logical date: slots depend on its weekday with granularity='hour_of_week'",
        )
    if isinstance(day, dt.datetime):
        return day.weekday()
    if isinstance(day, dt.date):
        return day.weekday()
    try:
        return dt.date.fromisoformat(str(day)[:10]).weekday()
    except ValueError:
        raise ValidationError("day", day, "must be a date 'YYYY-MM-DD'") from None
