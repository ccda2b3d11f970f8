"""The dispatcher of campaign messages: :class:`engagelab.delivery.dispatcher.Dispatcher`
with the campaigns' source, which turns claimed ledger rows back into messages.

A claimed message is found in its run's audience snapshot (stored with the run on its
first attempt, like a rerun of ``send`` uses it), rendered with the run's campaign spec
and handed to the channel's configured provider (``engagelab.yaml`` / environment, as for
``send``) on the same path as ``send``: :func:`engagelab.campaigns.send.hand_over`.
Before that, each claimed message is checked again at its release: do-not-disturb
(held or ``dnd_drop``), then opt-outs, the cut-off and frequency caps counted against what
actually went (:mod:`engagelab.campaigns.release`); a message that fails is suppressed with
its reason and a 'Notification Suppressed' event, and never reaches the provider.

Example:
    >>> from engagelab.campaigns import Dispatcher  # doctest: +SKIP
    >>> Dispatcher(ws).run_until_idle()  # doctest: +SKIP
    DispatchResult(released 12: sent 12, failed 0, requeued 0; suppressed 0; 2 rounds, 0.05 s)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import sqlalchemy as sa

from engagelab.campaigns.release import check_release
from engagelab.campaigns.send import (
    HANDOFF_UNIT,
    _append,
    _arrays,
    _events,
    _take,
    _unsnapshot,
    hand_over,
)
from engagelab.campaigns.spec import Campaign
from engagelab.campaigns.timing import apply_dnd
from engagelab.clock import Clock
from engagelab.delivery import dispatcher as D
from engagelab.delivery import handover as H
from engagelab.delivery import ledger as L
from engagelab.delivery.throttle import Rate
from engagelab.schema import NOTIFICATION_SUPPRESSED

if TYPE_CHECKING:
    from engagelab.storage.core import Core

__all__ = ["CampaignSource", "DispatchResult", "Dispatcher"]

DispatchResult = D.DispatchResult


class CampaignSource:
    """Renders and hands over claimed campaign messages (see the module docs).

    Args:
        provider: one provider for every run (default: the channel's configured provider,
            the outbox file of the run unless configured otherwise).
        retries: extra provider calls for transient failures within a round.
    """

    def __init__(self, provider: Any = None, *, retries: int = 2):
        self.provider, self.retries = provider, retries
        self._runs: dict[str, tuple[Campaign, pd.DataFrame]] = {}

    def _run(self, ws: Core, run_key: str) -> tuple[Campaign, pd.DataFrame]:
        got = self._runs.get(run_key)
        if got is None:
            with ws.state.read() as conn:
                row = conn.execute(
                    sa.select(L.runs.c.spec, L.runs.c.snapshot).where(L.runs.c.run_key == run_key)
                ).first()
            if row is None:
                raise LookupError(f"no run {run_key!r} in the state database")
            frame = _unsnapshot(row.snapshot)
            frame = frame[frame["decision"] == "send"].set_index("message_key", drop=False)
            got = (Campaign.from_json(row.spec), frame)
            if len(self._runs) > 32:
                self._runs.clear()
            self._runs[run_key] = got
        return got

    def throttle_rate(self, ws: Core, run_key: str) -> tuple[str, Rate] | None:
        """The throttle bucket of the run's campaign (``campaign:<id>`` and its rate), or
        None (read from the run's spec, without its snapshot)."""
        with ws.state.read() as conn:
            spec = conn.execute(
                sa.select(L.runs.c.spec).where(L.runs.c.run_key == run_key)
            ).scalar_one_or_none()
        c = Campaign.from_json(spec) if spec is not None else None
        thr = c.delivery.throttle if c is not None else None
        if c is None or thr is None:
            return None
        return f"campaign:{c.id}", Rate(thr[0], "minute" if thr[1] == 60 else "5 minutes")

    def deliver(
        self, ws: Core, run_key: str, keys: list[str], owner: str, *, lease_seconds: float,
        handed_us: int, fp: str,
    ) -> tuple[int, int, int, dict[str, int]]:  # fmt: skip
        c, frame = self._run(ws, run_key)
        if frame.index.is_unique:  # one hash lookup over all keys, rows taken by position
            pos = frame.index.get_indexer(pd.Index(keys, dtype=object))
            present = [k for k, p in zip(keys, pos.tolist(), strict=True) if p >= 0]
            picked = frame.iloc[pos[pos >= 0]]
        else:
            present = [k for k in keys if k in frame.index]
            picked = frame.loc[present]
        failed = 0
        if len(present) < len(keys):  # not in the run's audience: cannot be rendered
            missing = sorted(set(keys) - set(present))
            with H.connection(ws) as conn, conn.begin():
                stamp = H.stamp(conn)
                H.executemany(
                    conn,
                    "UPDATE el_campaign_ledger SET status = 'failed', error = ?, "
                    f'updated_at = ?, lease_us = NULL WHERE "key" = ? {H.MINE}',
                    [(f"not in the snapshot of run {run_key!r}", stamp, k, owner)
                     for k in missing],
                )  # fmt: skip
            failed = len(missing)
            if not present:
                return 0, failed, 0, {}
        ttl = int(c.delivery.ttl_hours * 3600 * 1_000_000) if c.delivery.ttl_hours else None
        rows = _arrays(picked.reset_index(drop=True), ttl)
        held, dropped = self._dnd(ws, c, rows, owner, handed_us, fp)
        sup = {"dnd_drop": dropped} if dropped else {}
        if held or dropped:
            keep = ~np.isin(rows["message_key"], np.array(list(self._gone), dtype=object))
            rows = _take(rows, keep)
            if not keep.any():
                return 0, failed, held, sup
        # what changed since planning: opt-outs, the cut-off, caps against what went
        rfp = fp + "#r#s"
        keep, late = check_release(ws, c, rows, owner, handed_us, rfp)
        if late:
            self._events_for(ws, c, rfp, handed_us)
            for k, v in late.items():
                sup[k] = sup.get(k, 0) + v
            rows = _take(rows, keep)
            if not keep.any():
                return 0, failed, held, sup
        if self.provider is None:
            from engagelab.delivery.registry import provider_for

            prov = provider_for(c.channel, ws, {"run_key": run_key})
        else:
            prov = self.provider
        prov.open()
        try:
            with H.connection(ws) as conn:
                # the keys are sorted: the mark may update by key range (checked against
                # the count, per key when another claim of this owner lies in the range)
                span = (rows["message_key"][0], rows["message_key"][-1])
                ok, bad = hand_over(
                    ws, conn, prov, c, rows, fp, owner, lease_seconds=lease_seconds,
                    retries=self.retries, handed_us=handed_us, span=span,
                )  # fmt: skip
            return ok, bad + failed, held, sup
        finally:
            prov.close()

    def _dnd(
        self, ws: Core, c: Campaign, rows: dict[str, np.ndarray], owner: str, at_us: int,
        fp: str,
    ) -> tuple[int, int]:  # fmt: skip
        """Re-check the campaign's do-not-disturb windows at the user's local time of
        release: a held message goes back to the queue, due at its window's end; a
        dropped one is suppressed (``dnd_drop``) with its event. Returns (held, dropped);
        the keys of both are left in ``self._gone``."""
        self._gone: set[str] = set()
        dnd = c.delivery.dnd
        n = len(rows["message_key"])
        if not dnd or not n:
            return 0, 0
        at = pd.Series(pd.to_datetime(np.full(n, at_us, dtype=np.int64), unit="us", utc=True))
        new, held, dropped = apply_dnd(at, pd.Series(rows["timezone"], dtype=object), dnd)
        if not held.any() and not dropped.any():
            return 0, 0
        keys = rows["message_key"]
        new_us = new.dt.as_unit("us").astype("int64").to_numpy()
        sup_fp = fp + "#s"
        with H.connection(ws) as conn, conn.begin():
            stamp = H.stamp(conn)
            H.executemany(
                conn,
                "UPDATE el_campaign_ledger SET status = 'queued', due_us = ?, owner = NULL, "
                f'lease_us = NULL, updated_at = ? WHERE "key" = ? {H.MINE}',
                [(int(u), stamp, k, owner) for u, k in zip(new_us[held], keys[held], strict=True)],
            )
            H.executemany(
                conn,
                "UPDATE el_campaign_ledger SET status = 'suppressed', reason = 'dnd_drop', "
                f'event_batch = ?, lease_us = NULL, updated_at = ? WHERE "key" = ? {H.MINE}',
                [(sup_fp, stamp, k, owner) for k in keys[dropped]],
            )
        if dropped.any():
            self._events_for(ws, c, sup_fp, at_us)
        self._gone = set(keys[held | dropped].tolist())
        return int(held.sum()), int(dropped.sum())

    def suppressed(self, ws: Core, run_key: str, fp: str, at_us: int) -> None:
        c, _frame = self._run(ws, run_key)
        self._events_for(ws, c, fp, at_us)

    def _events_for(self, ws: Core, c: Campaign, fp: str, at_us: int) -> None:
        with ws.state.read() as conn:
            rows = conn.execute(
                sa.select(
                    L.ledger.c.user_id, L.ledger.c.variant, L.ledger.c.send_at,
                    L.ledger.c.key, L.ledger.c.reason,
                )
                .where(L.ledger.c.event_batch == fp)
                .order_by(L.ledger.c.key)
            ).fetchall()  # fmt: skip
        if not rows:
            return
        df = pd.DataFrame(rows, columns=["user_id", "variant", "send_at", "message_key", "reason"])
        # stamped when the dispatcher turned them down (the clock's time of the round)
        df["send_at"] = pd.to_datetime(at_us, unit="us", utc=True)
        _append(ws, fp, _events(NOTIFICATION_SUPPRESSED, df, c, reason=df["reason"].to_numpy()))


class Dispatcher(D.Dispatcher):
    """The dispatcher of campaign messages (:class:`engagelab.delivery.dispatcher.Dispatcher`
    with a :class:`CampaignSource`).

    Args:
        ws: the workspace.
        clock: what "now" is for due times and expiry (default: the system clock).
        owner: the owner token of this dispatcher's claims (default: host, pid, random).
        lease_seconds: how long a claim holds before another dispatcher takes it over.
        batch: messages claimed per round.
        poll_seconds: the pause of ``run_forever`` when nothing is due.
        provider: one provider for every message (default: the configured ones).
        throttle: the workspace-wide rates (default: the ``throttle:`` section of the
            workspace configuration; False: no throttles, campaign rates included).
        triggers: plan the active triggered and inaction campaigns on the events that land,
            every round (:class:`engagelab.campaigns.live.LiveTriggers`).
    """

    def __init__(
        self,
        ws: Core,
        clock: Clock | None = None,
        owner: str | None = None,
        *,
        lease_seconds: float = 60.0,
        batch: int = HANDOFF_UNIT,
        poll_seconds: float = 1.0,
        provider: Any = None,
        retries: int = 2,
        throttle: Any = None,
        triggers: bool = True,
    ):
        from engagelab.campaigns.live import LiveTriggers

        super().__init__(
            ws, CampaignSource(provider, retries=retries), clock, owner,
            lease_seconds=lease_seconds, batch=batch, poll_seconds=poll_seconds,
            throttle=throttle,
            feeders=(LiveTriggers(),) if triggers else (),
        )  # fmt: skip
