"""Turn per-user slots into send times on a logical date; exploration; the campaign hook.

Example:
    >>> import tempfile
    >>> import pandas as pd
    >>> from engagelab import Workspace
    >>> from engagelab.simulate.worlds import simulate_into
    >>> ws = Workspace.create(tempfile.mkdtemp() + "/ws")
    >>> _ = simulate_into(ws, n_users=200, days=21, seed=2)
    >>> users = ws.sql("SELECT user_id, timezone FROM profiles ORDER BY user_id LIMIT 5")
    >>> plan = send_times(ws, users, "2026-01-22", BestTimeOptions(), now="2026-01-21T12:00Z")
    >>> list(plan.columns)
    ['user_id', 'send_at_utc', 'slot_local', 'reason', 'propensity', 'confidence']
    >>> bool(plan["send_at_utc"].notna().all())
    True
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import pandas as pd

from engagelab.besttime.model import _LABELS, BestTimeModel, fit
from engagelab.besttime.options import BestTimeOptions
from engagelab.errors import ValidationError
from engagelab.validate import check_datetime

if TYPE_CHECKING:
    from engagelab.storage.core import Core

__all__ = [
    "campaign_answer",
    "exploration_draw",
    "local_to_utc",
    "policy",
    "register_policy",
    "send_times",
]


def _date(value: Any) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value))
    except ValueError:
        raise ValidationError("logical_date", value, "must be a date 'YYYY-MM-DD'") from None


def _uniform(user_ids: np.ndarray, salt: str) -> np.ndarray:
    """A uniform [0, 1) draw per user id, a pure function of (salt, id)."""
    out = np.empty(len(user_ids))
    for i, u in enumerate(user_ids):
        h = hashlib.blake2b(f"{salt}:{u}".encode(), digest_size=8).digest()
        out[i] = int.from_bytes(h, "big") / 2.0**64
    return out


def exploration_draw(
    user_ids: np.ndarray, logical_date: dt.date, options: BestTimeOptions
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(explored?, uniform random allowed minute, propensity of that minute's local hour).

    A user is explored with probability ``explore_share``; an explored user's minute is
    uniform over the allowed minutes of the window, so the probability of landing in
    local hour ``h`` is (allowed minutes in ``h``) / (allowed minutes).
    """
    allowed = np.flatnonzero(options.allowed_minutes())
    salt = f"besttime:{options.seed}:{logical_date.isoformat()}"
    explored = _uniform(user_ids, salt + ":explore") < options.explore_share
    pick = np.minimum(
        (_uniform(user_ids, salt + ":minute") * allowed.size).astype(np.int64), allowed.size - 1
    )
    minute = allowed[pick]
    per_hour = np.bincount(allowed // 60, minlength=24) / allowed.size
    return explored, minute, per_hour[minute // 60]


def local_to_utc(day: dt.date | np.ndarray, minute: np.ndarray, timezone: np.ndarray) -> pd.Series:
    """UTC instants of local ``minute`` (of the day) on ``day`` in each ``timezone``.

    DST-correct: a local time that does not exist (spring forward) moves forward to the
    first valid instant; an ambiguous one (fall back) takes its first occurrence.
    """
    n = len(minute)
    days = np.broadcast_to(
        np.asarray(
            np.datetime64(day, "D") if isinstance(day, dt.date) else day, dtype="datetime64[D]"
        ),
        (n,),
    )
    wall = days.astype("datetime64[us]") + minute.astype(np.int64) * np.timedelta64(
        60_000_000, "us"
    )
    out = np.full(n, np.datetime64("NaT"), dtype="datetime64[us]")
    tz = pd.Series(timezone, dtype=object)
    for zone, rows in tz.groupby(tz, sort=False).indices.items():
        local = pd.DatetimeIndex(wall[rows]).tz_localize(
            str(zone), ambiguous=np.ones(len(rows), dtype=bool), nonexistent="shift_forward"
        )
        out[rows] = local.tz_convert("UTC").tz_localize(None).to_numpy()
    return pd.Series(pd.DatetimeIndex(out).tz_localize("UTC"))


def send_times(
    ws: Core,
    users: pd.DataFrame,
    logical_date: Any,
    options: BestTimeOptions | None = None,
    *,
    now: Any = None,
    model: BestTimeModel | None = None,
) -> pd.DataFrame:
    """Each user's send time on ``logical_date`` (their local calendar date).

    Args:
        ws: the workspace whose history the model learns from.
        users: DataFrame with ``user_id`` and ``timezone``.
        logical_date: the campaign's logical date.
        options: :class:`BestTimeOptions`.
        now: when the plan is made (default: the current time); history after
            ``min(now, logical_date 00:00 UTC)`` is not used, and slots before ``now``
            have passed.
        model: a model already fitted for these users (skips fitting).

    Returns:
        ``user_id, send_at_utc, slot_local, reason, propensity, confidence`` in the order of
        ``users``. ``reason`` is one of chosen, fallback_no_history,
        fallback_little_history, outside_window, exploration, invalid_timezone,
        passed_next_day, passed_drop; ``send_at_utc`` is NaT for dropped users and users
        with an invalid time zone; ``propensity`` is the probability of the logged local
        hour for explored users (NaN otherwise).
    """
    o = options if options is not None else BestTimeOptions()
    day = _date(logical_date)
    now_t = pd.Timestamp(
        cast(
            dt.datetime, check_datetime("now", now if now is not None else dt.datetime.now(dt.UTC))
        )
    )
    if not isinstance(users, pd.DataFrame) or not {"user_id", "timezone"} <= set(users.columns):
        raise ValidationError(
            "users", type(users).__name__, "must be a DataFrame with user_id and timezone"
        )
    if model is None:
        cutoff = min(now_t, pd.Timestamp(day).tz_localize("UTC"))
        model = fit(ws, o, at=cutoff.to_pydatetime(), users=users[["user_id", "timezone"]])
    # weekday-dependent (hour-of-week) slots are those of the logical date's weekday
    slots = model.slots(day).set_index("user_id")
    ids = users["user_id"].astype(str).to_numpy(dtype=object)
    missing = [u for u in dict.fromkeys(ids) if u not in slots.index]
    if missing:
        raise ValidationError("users", missing[0], "is not a user the model was fitted for")
    s = slots.loc[ids]
    minute = s["slot_minute"].to_numpy().copy()
    reason = s["reason"].to_numpy().copy()
    propensity = np.full(len(ids), np.nan)
    ok_tz = minute >= 0
    if o.explore_share > 0:
        explored, rand_minute, prop = exploration_draw(ids, day, o)
        explored &= ok_tz
        minute[explored] = rand_minute[explored]
        reason[explored] = "exploration"
        propensity[explored] = prop[explored]
    tz = s["timezone"].to_numpy(dtype=object)
    send = pd.Series(pd.NaT, index=range(len(ids)), dtype="datetime64[us, UTC]")
    rows = np.flatnonzero(ok_tz)
    if rows.size:
        send.iloc[rows] = local_to_utc(day, minute[rows], tz[rows]).to_numpy()
        passed = np.zeros(len(ids), dtype=bool)
        passed[rows] = (send.iloc[rows] < now_t).to_numpy()
        if passed.any():
            p = np.flatnonzero(passed)
            if o.passed == "next_day":
                nxt = day + dt.timedelta(days=1)
                if model.weekly:  # the next day's weekday has its own slot
                    chosen = p[reason[p] != "exploration"]
                    later = model.slots(nxt).set_index("user_id")["slot_minute"]
                    minute[chosen] = later.loc[ids[chosen]].to_numpy()
                send.iloc[p] = local_to_utc(nxt, minute[p], tz[p]).to_numpy()
                reason[p] = "passed_next_day"
            else:
                send.iloc[p] = pd.NaT
                reason[p] = "passed_drop"
    return pd.DataFrame(
        {
            "user_id": ids,
            "send_at_utc": send.to_numpy(),
            "slot_local": _LABELS[minute],
            "reason": reason,
            "propensity": propensity,
            "confidence": s["confidence"].to_numpy(),
        }
    )


def campaign_answer(times: pd.DataFrame) -> pd.DataFrame:
    """:func:`send_times` output in the campaigns' send-time contract (see
    :func:`engagelab.campaigns.register_send_time_policy`).

    Returns:
        ``user_id, send_at, reason, propensity, slot, confidence``: ``send_at`` is the UTC
        send time, NaT for users to drop (``reason`` ``passed_drop`` or
        ``invalid_timezone``); ``slot`` the local ``'HH:MM'`` chosen; ``propensity`` the
        probability of the logged local hour for explored users (NaN otherwise).

    Example:
        >>> times = pd.DataFrame({"user_id": ["a", "b"], "slot_local": ["19:00", "09:00"],
        ...     "send_at_utc": pd.to_datetime(["2026-01-15 18:00", None], utc=True),
        ...     "reason": ["chosen", "passed_drop"], "propensity": float("nan"),
        ...     "confidence": [0.8, 0.1]})
        >>> campaign_answer(times)[["user_id", "send_at", "reason"]].values.tolist()
        [['a', Timestamp('2026-01-15 18:00:00+0000', tz='UTC'), 'chosen'], ['b', NaT, 'passed_drop']]
        >>> list(campaign_answer(times).columns)
        ['user_id', 'send_at', 'reason', 'propensity', 'slot', 'confidence']
    """
    return pd.DataFrame(
        {
            "user_id": times["user_id"],
            "send_at": times["send_at_utc"],
            "reason": times["reason"],
            "propensity": times["propensity"],
            "slot": times["slot_local"],
            "confidence": times["confidence"],
        }
    )


def policy(
    options: BestTimeOptions | None = None, ws: Core | None = None, *, now: Any = None
) -> Callable[[pd.DataFrame, Any], pd.DataFrame]:
    """A campaign send-time policy ``fn(users, logical_date) -> DataFrame`` (the contract
    of :func:`engagelab.campaigns.register_send_time_policy`: ``user_id``, ``send_at``
    (NaT: drop the user), ``reason``, ``propensity``, ``slot``).

    ``users`` needs ``user_id`` and ``timezone``. The workspace is ``ws`` or, when
    ``None``, :func:`engagelab.current_workspace` at call time; ``now`` (what has passed)
    defaults to the logical date, as in campaign plans. A campaign can instead carry the
    options itself: ``Delivery(best_time=BestTimeOptions(...))``.
    """
    o = options if options is not None else BestTimeOptions()

    def best_time(users: pd.DataFrame, logical_date: Any) -> pd.DataFrame:
        from engagelab.storage.core import Core

        # like campaign plans, "now" defaults to the logical date so plans are reproducible
        when = now if now is not None else check_datetime("logical_date", logical_date)
        if ws is not None:
            return campaign_answer(send_times(ws, users, logical_date, o, now=when))
        with Core.open() as w:
            return campaign_answer(send_times(w, users, logical_date, o, now=when))

    best_time.options = o  # type: ignore[attr-defined]
    return best_time


def register_policy(
    name: str = "best_time", options: BestTimeOptions | None = None, ws: Core | None = None
) -> None:
    """Register :func:`policy` as a send-time policy named ``name`` (for
    ``Delivery(send_time_policy=name)``)."""
    from engagelab.besttime.policies import register_send_time_policy

    register_send_time_policy(name, policy(options, ws))
