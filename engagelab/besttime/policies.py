"""Send-time policies: functions that choose each user's send time in a campaign plan.

A campaign names a policy in ``Delivery(send_time_policy=NAME)``; the plan calls the
function registered under that name in this process (a spec stays valid without it: the
name is checked when a plan is made). :func:`engagelab.besttime.policy` makes one from
the best-time model; ``Delivery(best_time=BestTimeOptions(...))`` needs no registration.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from engagelab.errors import ValidationError

__all__ = [
    "SEND_TIME_COLUMNS",
    "SEND_TIME_POLICIES",
    "check_send_times",
    "register_send_time_policy",
    "send_time_policy",
]


#: Registered send-time policies: name -> fn(users DataFrame, logical_date) -> send times.
SEND_TIME_POLICIES: dict[str, Callable[..., Any]] = {}

#: Columns of a send-time policy's answer (see :func:`register_send_time_policy`).
SEND_TIME_COLUMNS = ("user_id", "send_at", "reason", "propensity", "slot")


def register_send_time_policy(name: str, fn: Callable[..., Any]) -> None:
    """Register a send-time policy (the best-time delivery hook) under ``name``.

    ``fn(users, logical_date)`` gets a DataFrame with ``user_id``, ``timezone`` (the
    profile's zone; users without one get ``delivery.default_timezone``; an invalid
    zone is passed as is) and ``send_at`` (the planned UTC time), and returns a
    DataFrame with one row per user (any order):

    * ``user_id``;
    * ``send_at``: the UTC send time (tz-aware), or NaT to drop the user;
    * ``reason``: a non-empty text why (e.g. ``chosen``, ``fallback_no_history``,
      ``exploration``, ``passed_drop``, ``invalid_timezone``, ``no_slot``); the plan shows it
      as ``best_time_reason`` and suppresses dropped users with reason ``best_time_drop``;
    * ``propensity`` (optional): for exploration, the probability the random slot had
      (in (0, 1]); NaN otherwise;
    * ``slot`` (optional): the chosen local slot, e.g. ``'19:00'``.

    For compatibility a policy may instead return a sequence of UTC times, one per row
    (NaT keeps the planned time). :func:`check_send_times` validates the answer.

    Example:
        >>> import pandas as pd
        >>> def at_noon(users, logical_date):
        ...     return pd.DataFrame({"user_id": users["user_id"],
        ...                          "send_at": pd.Timestamp("2026-01-01 12:00", tz="UTC"),
        ...                          "reason": "noon"})
        >>> register_send_time_policy("noon", at_noon)
        >>> users = pd.DataFrame({"user_id": ["a"], "timezone": ["UTC"],
        ...                       "send_at": [pd.Timestamp("2026-01-01 09:00", tz="UTC")]})
        >>> check_send_times(at_noon(users, None), users, "noon")["send_at"].tolist()
        [Timestamp('2026-01-01 12:00:00+0000', tz='UTC')]
    """
    if not isinstance(name, str) or not name.strip():
        raise ValidationError("name", name, "must be a non-empty string")
    if not callable(fn):
        raise ValidationError("fn", fn, "must be callable")
    SEND_TIME_POLICIES[name] = fn


def send_time_policy(name: str) -> Callable[..., Any]:
    """The policy registered under ``name``."""
    if name not in SEND_TIME_POLICIES:
        raise ValidationError(
            "delivery.send_time_policy",
            name,
            "must be a send-time policy registered in this process with "
            "register_send_time_policy: "
            + (", ".join(sorted(SEND_TIME_POLICIES)) or "(none registered)"),
        )
    return SEND_TIME_POLICIES[name]


def check_send_times(result: Any, users: Any, name: str = "send_time_policy") -> Any:
    """A send-time policy's answer validated and aligned with ``users``.

    Returns a DataFrame in the order of ``users`` with ``send_at`` (UTC, NaT: drop),
    ``reason`` (text), ``propensity`` (float, NaN when not explored), ``slot`` (text or
    None). A legacy answer (a sequence of times, NaT keeping the planned time) becomes
    ``reason`` ``'best_time'`` with the planned time where NaT.

    Raises:
        ValidationError: the answer breaks the contract (names the column and the value).
    """
    import numpy as np
    import pandas as pd

    n = len(users)
    planned = pd.Series(pd.to_datetime(users["send_at"], utc=True).to_numpy(), index=range(n))
    if not isinstance(result, pd.DataFrame):
        try:
            got = pd.Series(pd.to_datetime(np.asarray(result), utc=True), index=range(n))
        except (TypeError, ValueError) as exc:
            raise ValidationError(
                name, type(result).__name__, f"must return a DataFrame of send times ({exc})"
            ) from None
        if len(got) != n:
            raise ValidationError(name, len(got), f"must return {n} send times, one per user")
        keep = got.isna()
        return pd.DataFrame(
            {
                "send_at": got.where(~keep, planned),
                "reason": pd.Series(
                    [None if k else "best_time" for k in keep], index=range(n), dtype="object"
                ),
                "propensity": np.full(n, np.nan),
                "slot": np.full(n, None, dtype=object),
            }
        )
    missing = [c for c in ("user_id", "send_at", "reason") if c not in result.columns]
    if missing:
        raise ValidationError(
            f"{name}.{missing[0]}", None, "is required: return user_id, send_at, reason"
        )
    ids = result["user_id"].astype(str)
    dup = ids[ids.duplicated()]
    if len(dup):
        raise ValidationError(f"{name}.user_id", dup.iloc[0], "must appear once")
    want = users["user_id"].astype(str)
    pos = pd.Index(ids).get_indexer(want)
    if (pos < 0).any():
        raise ValidationError(
            f"{name}.user_id", want.iloc[int(np.flatnonzero(pos < 0)[0])], "is missing an answer"
        )
    if len(ids) != n:
        extra = sorted(set(ids) - set(want))
        raise ValidationError(f"{name}.user_id", extra[0], "is not one of the planned users")
    r = result.iloc[pos].reset_index(drop=True)
    s = r["send_at"]
    if not isinstance(s.dtype, pd.DatetimeTZDtype) and (
        s.notna().any() or not (s.dtype == object or s.dtype.kind == "M")
    ):
        raise ValidationError(
            f"{name}.send_at", str(s.dtype), "must be tz-aware UTC times (NaT: drop)"
        )
    send = pd.Series(pd.to_datetime(s, utc=True).to_numpy(), index=range(n))
    reason = r["reason"].astype(object).to_numpy()
    bad = [x for x in reason if not isinstance(x, str) or not x.strip()]
    if bad:
        raise ValidationError(f"{name}.reason", bad[0], "must be a non-empty text for every user")
    if "propensity" in r.columns:
        prop = pd.to_numeric(r["propensity"], errors="coerce").to_numpy(dtype=float)
        wrong = ~np.isnan(prop) & ~((prop > 0) & (prop <= 1))
        if wrong.any():
            raise ValidationError(
                f"{name}.propensity", float(prop[wrong][0]), "must be in (0, 1] or NaN"
            )
    else:
        prop = np.full(n, np.nan)
    slot = (
        r["slot"].astype(object).where(r["slot"].notna(), None).to_numpy()
        if "slot" in r.columns
        else np.full(n, None, dtype=object)
    )
    return pd.DataFrame({"send_at": send, "reason": reason, "propensity": prop, "slot": slot})
