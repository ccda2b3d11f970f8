"""Result objects of campaigns: :class:`Plan` and :class:`SendResult`."""

from __future__ import annotations

import datetime as dt
import html
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

__all__ = ["Plan", "SendResult"]


@dataclass(frozen=True, repr=False)
class Plan:
    """The plan of one campaign run: one row per qualifying user (see :func:`~engagelab.campaigns.plan`)."""

    campaign: Any
    logical_date: dt.datetime
    run_key: str
    phase: str
    winner: str | None
    frame: pd.DataFrame
    #: why nobody is planned, when the logical date has no occurrence ("" otherwise)
    note: str = ""

    def to_pandas(self) -> pd.DataFrame:
        """The rows as a DataFrame (a copy)."""
        return self.frame.copy()

    @property
    def reach(self) -> int:
        """Number of messages the plan would send."""
        return int((self.frame["decision"] == "send").sum())

    def summary(self) -> pd.DataFrame:
        """Counts by decision and reason (reach and reasons of the dry run)."""
        f = self.frame.assign(reason=self.frame["reason"].fillna(""))
        out = f.groupby(["decision", "reason"], sort=True).size().rename("users").reset_index()
        return out.sort_values("users", ascending=False, ignore_index=True)

    def reasons(self) -> dict[str, int]:
        """Users per reason code (everyone not sent has one)."""
        return {str(k): int(v) for k, v in self.frame["reason"].value_counts().items()}

    def __repr__(self) -> str:
        f = self.frame
        counts = f["decision"].value_counts()
        parts = ", ".join(f"{k} {int(v):,}" for k, v in counts.items())
        return (
            f"Plan({self.campaign.id!r} @ {self.logical_date.isoformat()}, run {self.run_key!r}, "
            f"phase {self.phase}: {len(f):,} users: {parts or 'none'}"
            + (f"; {self.note}" if self.note else "")
            + ")"
        )

    def _repr_html_(self) -> str:
        head = html.escape(repr(self))
        return (
            f"<div class='el-plan'><p><b>{head}</b></p>{self.summary().to_html(index=False)}"
            f"<p>first rows</p>{self.frame.head(10).to_html(index=False)}</div>"
        )


@dataclass(frozen=True, repr=False)
class SendResult:
    """What one ``send`` call did."""

    run_key: str
    campaign_id: str
    attempt: int
    planned: int
    sent: int
    already_sent: int
    redelivered: int
    suppressed: int
    failed: int
    pending: int
    seconds: float
    reasons: dict[str, int] = field(default_factory=dict)
    #: messages another live sender held (claimed) when this call finished: it delivers them
    skipped: int = 0
    #: why nothing was planned, when the logical date has no occurrence
    note: str = ""
    #: messages of the plan waiting in the send queue (due later: the dispatcher sends them)
    queued: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}

    def to_pandas(self) -> pd.DataFrame:
        return pd.DataFrame([self.to_dict()])

    @property
    def done(self) -> bool:
        """True when nothing is left in doubt for this call (messages another live sender
        holds are its to finish: see ``skipped``)."""
        return self.pending == 0

    def __repr__(self) -> str:
        return (
            f"SendResult({self.run_key!r} attempt {self.attempt}: sent {self.sent:,} "
            f"(+{self.already_sent:,} earlier, {self.redelivered:,} re-delivered in doubt), "
            f"suppressed {self.suppressed:,}, failed {self.failed:,}, pending {self.pending:,}, "
            + (f"skipped {self.skipped:,} held by another sender, " if self.skipped else "")
            + (f"queued {self.queued:,} for later, " if self.queued else "")
            + f"{self.seconds:.1f} s"
            + (f"; {self.note}" if self.note else "")
            + ")"
        )

    def _repr_html_(self) -> str:
        return f"<div class='el-send'>{html.escape(repr(self))}</div>"
