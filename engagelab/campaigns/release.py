"""Checks of a queued campaign message at its release (the dispatcher's hand-over).

A message waits in the queue between planning and its due time; what changed meanwhile
is checked again, per claimed message, before the provider sees it (see
:class:`engagelab.campaigns.Dispatcher`). A message that fails a check is ``suppressed``
on the ledger with its reason code and a 'Notification Suppressed' event, like
``expired`` and ``dnd_drop``. In the order checked:

* ``opted_out``: the user opted out of the channel since planning: the channel's opt-out
  flag of their profile (:data:`engagelab.schema.REACH_RULES`; remarketing audiences:
  :data:`engagelab.schema.AUDIENCE_OPTOUTS`, as planning decides it) is now true, or an
  :data:`~engagelab.schema.UNSUBSCRIBED` event for the channel (or for every channel)
  arrived by the time of release;
* ``cut_off``: the campaign's ``delivery.cut_off`` has passed;
* ``min_gap`` and ``frequency_cap``: the campaign's caps and the workspace's
  (``frequency_caps:`` in ``engagelab.yaml``, see
  :func:`~engagelab.campaigns.options.workspace_caps`), counted against the messages
  that actually went (ledger ``handed`` / ``sent``), not those planned or queued: with a
  cap of one a day and two campaigns queued for one user, the first released goes and
  the second is suppressed. The check and the suppression are one write transaction
  holding the caps lock. Rounds of one dispatcher hand runs over one after another, so a
  run released later in the round sees what an earlier one sent; two dispatchers releasing
  messages to the same user in the same instant may both pass (a claim in flight is not
  counted, so that a failed hand-over does not use up a slot).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from engagelab.campaigns import timing
from engagelab.campaigns.options import campaign_caps, gap_cap
from engagelab.campaigns.spec import Campaign
from engagelab.delivery import handover as H
from engagelab.delivery import ledger as L
from engagelab.schema import (
    AUDIENCE_OPTOUTS,
    CORE_PROFILE_COLUMNS,
    REACH_RULES,
    REMARKETING_CHANNELS,
    UNSUBSCRIBED,
)

if TYPE_CHECKING:
    from engagelab.storage.core import Core

__all__ = ["RELEASE_REASONS", "check_release", "opted_out_users", "unsubscribed_users"]

#: The reason codes of the release checks, in the order they are checked.
RELEASE_REASONS = ("opted_out", "cut_off", "min_gap", "frequency_cap")
#: The ledger states that count against a cap at release: what went to a provider.
SENT_STATES = ("handed", "sent")
_US = 1_000_000


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _has_rows(ws: Core, table: str) -> bool:
    """True once ``table`` holds a batch (an empty view has untyped columns)."""
    return bool(ws.store.catalog().batches.get(table, 0))


def _optout_flags(ws: Core, channel: str) -> list[str]:
    """The profile flags that block ``channel`` (the rule planning applies)."""
    cols = ws.columns("profiles")
    if channel in REMARKETING_CHANNELS:
        names: tuple[str | None, ...] = AUDIENCE_OPTOUTS
    else:
        names = (REACH_RULES[channel].optout,)
    return [
        n
        for n in names
        if n and (n in CORE_PROFILE_COLUMNS or (n in cols and cols.get(n) == "bool"))
    ]


def unsubscribed_users(ws: Core, channel: str, at: Any, users: list[str] | None = None) -> set[str]:
    """Users with an :data:`~engagelab.schema.UNSUBSCRIBED` event for ``channel`` (or one
    without a channel: every channel) at or before ``at`` (of ``users`` only, when given)."""
    if not _has_rows(ws, "events"):
        return set()
    cols = ws.columns("events")
    params: dict[str, Any] = {"e": UNSUBSCRIBED, "at": pd.Timestamp(at)}
    where = "event = $e AND ts <= $at"
    if "channel" in cols:
        where += " AND (channel IS NULL OR channel = $ch)"
        params["ch"] = channel
    if users is not None:
        if not users:
            return set()
        where += " AND user_id IN (SELECT unnest($ids))"
        params["ids"] = list(users)
    got = ws.sql(f"SELECT DISTINCT user_id FROM events WHERE {where}", params)
    return set(got["user_id"].astype(str))


def opted_out_users(ws: Core, channel: str, users: list[str], at: Any) -> set[str]:
    """Of ``users``, those opted out of ``channel`` now: the profile's opt-out flag (as
    planning decides ``opted_out``) or an unsubscribe event by ``at``."""
    if not users:
        return set()
    out = unsubscribed_users(ws, channel, at, users)
    flags = _optout_flags(ws, channel) if _has_rows(ws, "profiles") else []
    if flags:
        cond = " OR ".join(f"coalesce(p.{_q(f)}, false)" for f in flags)
        got = ws.sql(
            f"SELECT p.user_id FROM profiles AS p WHERE p.user_id IN (SELECT unnest($ids)) "
            f"AND ({cond})",
            {"ids": list(users)},
        )
        out |= set(got["user_id"].astype(str))
    return out


def _cap_reasons(
    conn: Any, c: Campaign, rows: dict[str, np.ndarray], at_us: int, caps: Any,
    gap: float | None,
) -> np.ndarray:  # fmt: skip
    """Reason per row (None: may go) from the caps and the minimum gap, counted against
    the messages of these users that went (``handed`` / ``sent``), as if sent at ``at_us``."""
    n = len(rows["message_key"])
    reason = np.full(n, None, dtype=object)
    spans = [k.seconds if k.kind == "rolling" else 32 * 86400 for k in caps]
    span = max(spans + [int((gap or 0) * 3600)]) * _US
    users = rows["user_id"]
    hist = L.history(
        conn, at_us - span, at_us + span, users=[str(u) for u in users], statuses=SENT_STATES
    )
    hist = hist[~hist["key"].isin(set(rows["message_key"].tolist()))]
    if hist.empty:
        return reason
    t = np.full(n, at_us, dtype=np.int64)
    tz = pd.Series(rows["timezone"], dtype=object)
    if gap:
        h = hist[hist["campaign_id"] == c.id]
        hit = timing.cap_conflicts(
            users, t, tz, c.channel, h["user_id"].to_numpy(), h["t"].to_numpy(),
            h["channel"].to_numpy(), [gap_cap(gap)],
        )  # fmt: skip
        reason[hit] = "min_gap"
    if caps:
        over = timing.cap_conflicts(
            users, t, tz, c.channel, hist["user_id"].to_numpy(), hist["t"].to_numpy(),
            hist["channel"].to_numpy(), caps,
        )  # fmt: skip
        reason[over & (reason == None)] = "frequency_cap"  # noqa: E711
    return reason


def check_release(
    ws: Core, c: Campaign, rows: dict[str, np.ndarray], owner: str, at_us: int, fp: str
) -> tuple[np.ndarray, dict[str, int]]:
    """Run the release checks on the claimed ``rows`` (owned by ``owner``) at ``at_us``:
    suppress those that fail on the ledger (event batch ``fp``; the caller appends the
    events). Returns (the rows that may go, suppressed per reason)."""
    n = len(rows["message_key"])
    reason = np.full(n, None, dtype=object)
    if not n:
        return np.ones(0, bool), {}
    users = [str(u) for u in rows["user_id"]]
    at = pd.Timestamp(at_us, unit="us", tz="UTC")
    out = opted_out_users(ws, c.channel, users, at)
    if out:
        reason[np.fromiter((u in out for u in users), bool, n)] = "opted_out"
    opt = c.delivery
    if opt.cut_off is not None and at > pd.Timestamp(opt.cut_off):
        reason[reason == None] = "cut_off"  # noqa: E711
    caps = campaign_caps(c, ws)
    gap = opt.min_gap_hours
    live = reason == None  # noqa: E711
    if not (live.any() and (caps or gap)) and live.all():
        return live, {}
    with H.connection(ws) as conn, conn.begin():
        if live.any() and (caps or gap):
            L.lock_caps(conn)
            reason[live] = _cap_reasons(
                conn, c, {k: v[live] for k, v in rows.items()}, at_us, caps, gap
            )
        sup = reason != None  # noqa: E711
        if sup.any():
            stamp = H.stamp(conn)
            H.executemany(
                conn,
                "UPDATE el_campaign_ledger SET status = 'suppressed', reason = ?, "
                f'event_batch = ?, lease_us = NULL, updated_at = ? WHERE "key" = ? {H.MINE}',
                [(r, fp, stamp, k, owner)
                 for r, k in zip(reason[sup], rows["message_key"][sup], strict=True)],
            )  # fmt: skip
    counts: dict[str, int] = {}
    for r in reason[sup]:
        counts[str(r)] = counts.get(str(r), 0) + 1
    return ~sup, counts
