"""``plan``: who gets what, when, and why not — the vectorised dry run of a campaign.

One row per qualifying user; the columns (what ``send`` reads is marked *):

* ``user_id`` *, ``decision`` * (``send``, ``control``, ``suppressed``;
  ``deferred``/``excluded`` for the two phases of a test-then-winner campaign),
  ``reason`` * (a code for every user not sent), ``variant`` *;
* ``send_at`` * (UTC), ``send_at_local`` (the user's wall clock), ``timezone`` *,
  ``to`` * (the channel address), ``message_key`` *;
* ``note``: how the time was set (``next_day``, ``best_time``, ``dnd_hold``,
  ``throttled``);
* ``best_time_slot``, ``best_time_reason``, ``best_time_propensity``: the best-time
  hook's local slot, its reason and, for explored users, the propensity (None / NaN
  without a hook);
* ``event_properties`` *: JSON text of the trigger event's properties that the
  templates read (``event.<name>``; the user's latest qualifying occurrence), None for
  campaigns without ``event.*``; see :func:`event_context`;
* ``would_be``: for a control user, the first later check that would have suppressed
  them had they been in a sent arm (None: they would have been sent);
* ``origin_at`` *: where the message's TTL counts from in the send queue (the trigger of a
  triggered / inaction campaign; NaT otherwise: its due time).

Eligibility comes first: ``opted_out`` and ``unreachable`` are decided before anyone is
assigned, so the global and campaign control groups are drawn among the users the
channel reaches (a holdout of reachable users, comparable with the sent arms). The checks
after assignment (time zone, best time, DND, TTL, cut-off, gap and caps) apply to both
arms alike: a sent user is suppressed, a control user records ``would_be``, so a
comparison of sent-or-would-be-sent with control is intention-to-treat. Template checks
(``missing_variable``, ``invalid_header``) depend on the variant and the throttle on the
sent queue, so they apply to the sent arms only.

Reason codes, in the order they are checked: ``opted_out`` (the channel's opt-out flag,
or an :data:`engagelab.schema.UNSUBSCRIBED` event for the channel or every channel by the
planning instant), ``no_ad_consent``
(remarketing audiences: the profile's ``ad_consent`` is not true, missing counts as no
consent; their ``opted_out`` also covers ``unsubscribed``), ``unreachable``,
``global_control``, ``control``, ``missing_variable`` (a template reads a property
this user lacks, without a default), ``invalid_header`` (a header value would not be
one clean line: a subject rendered from a profile value with a newline or another
control character, or a malformed recipient address), ``tz_passed``, ``best_time_drop`` (the best-time
hook dropped the user; ``best_time_reason`` says why), ``dnd_drop``, ``ttl_expired``,
``cut_off``, ``min_gap``, ``frequency_cap`` (the campaign's caps and the workspace's
``frequency_caps:``, unless ``ignore_caps`` / ``ignore_workspace_caps``),
``throttled_to_later``. ``opted_out`` and
``unreachable`` follow the channel's rule in :data:`engagelab.schema.REACH_RULES` (e.g.
in-app reaches app users, push opted-out or not; a web pop-up reaches web users only).

Message keys identify the *occurrence*, not the run: (campaign, occurrence, user, step),
where the occurrence of a one-time campaign is the campaign itself (it happens once), of a
recurring one the cron fire time, of an on-date one the planned time on the logical date
and of a triggered / inaction one the user's trigger time. So any number of plans, sends,
jobs or CLI runs of one occurrence, under any run keys, share the keys, and the ledger
delivers each once. A recurring campaign planned for a day its cron does not fire on plans
nobody (``Plan.note`` says why).
"""

from __future__ import annotations

import calendar
import datetime as dt
import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, cast

import duckdb
import numpy as np
import pandas as pd

from engagelab.campaigns import timing
from engagelab.campaigns.global_control import get_global_control
from engagelab.campaigns.options import campaign_caps, check_send_times, send_time_policy
from engagelab.campaigns.release import unsubscribed_users
from engagelab.campaigns.result import Plan
from engagelab.campaigns.spec import TRIGGER_TYPES, Campaign
from engagelab.delivery import ledger as L
from engagelab.errors import ValidationError
from engagelab.experiments import buckets, campaign_split, global_control
from engagelab.schema import (
    AD_CONSENT,
    AUDIENCE_OPTOUTS,
    CHANNEL_REACH,
    CORE_PROFILE_COLUMNS,
    REACH_RULES,
    REMARKETING_CHANNELS,
)
from engagelab.segments.audience import segment_sql
from engagelab.validate import check_datetime

if TYPE_CHECKING:
    from engagelab.storage.core import Core

__all__ = [
    "HEADER_FIELDS",
    "REASONS",
    "event_context",
    "event_variables",
    "fire_note",
    "message_keys",
    "occurrences",
    "plan",
    "reach_fields",
]

REASONS = (
    "opted_out",
    "no_ad_consent",
    "unreachable",
    "global_control",
    "control",
    "missing_variable",
    "invalid_header",
    "tz_passed",
    "best_time_drop",
    "dnd_drop",
    "ttl_expired",
    "cut_off",
    "min_gap",
    "frequency_cap",
    "throttled_to_later",
)
_US = 1_000_000


def reach_fields(channel: str) -> tuple[str, str | None]:
    """(primary profile field that makes a user reachable, opt-out flag or None) for
    ``channel``; the full rule, with fallback fields, is
    :data:`engagelab.schema.REACH_RULES`."""
    return CHANNEL_REACH[channel]


def _reach_address(fields: tuple[str, ...], pcols: set[str]) -> str:
    """SQL of a user's address on a channel: the first of the reach rule's ``fields``
    that is set and not blank (NULL: unreachable), as text, unchanged."""
    have = [f for f in fields if f in pcols] or [fields[0]]
    if len(have) == 1:
        return f"CAST(p.{_q(have[0])} AS VARCHAR)"
    parts = ", ".join(
        f"CASE WHEN trim(CAST(p.{_q(f)} AS VARCHAR)) <> '' THEN CAST(p.{_q(f)} AS VARCHAR) END"
        for f in have
    )
    return f"coalesce({parts})"


def message_keys(
    campaign_id: str, occurrence: str | pd.Series, user_ids: pd.Series, step: str
) -> np.ndarray:
    """Message key of each user: the first 32 hex digits of sha256(campaign, occurrence,
    user, step), ``occurrence`` one text for all users or one per user (see the module doc).

    >>> import hashlib
    >>> k = message_keys("c1", "once", pd.Series(["u1"]), "main")[0]
    >>> k == hashlib.sha256(b"c1\\x1fonce\\x1fu1\\x1fmain").hexdigest()[:32]
    True
    """
    n = len(user_ids)
    occ = (
        np.full(n, occurrence, dtype=object)
        if isinstance(occurrence, str)
        else pd.Series(occurrence).astype(str).to_numpy(dtype=object)
    )
    con = duckdb.connect()
    try:
        con.register("u", pd.DataFrame({"uid": user_ids.astype(str).to_numpy(), "occ": occ}))
        out = con.execute(
            "SELECT left(sha256($c || occ || chr(31) || uid || $s), 32) AS k FROM u",
            {"c": campaign_id + "\x1f", "s": "\x1f" + step},
        ).fetchnumpy()["k"]
    finally:
        con.close()
    return np.asarray(out, dtype=object)


def occurrences(c: Campaign, base: pd.Series) -> str | pd.Series:
    """The occurrence each planned user belongs to: ``'once'`` for a one-time campaign,
    else the planned base time (UTC microseconds) of the user's occurrence."""
    if c.schedule.type == "one_time":
        return "once"
    return pd.Series(pd.to_datetime(base, utc=True)).dt.as_unit("us").astype("int64").astype(str)


def fire_note(c: Campaign, ld: dt.datetime) -> str:
    """Why a recurring campaign plans nobody for ``ld`` ("" when its cron fires that day).

    >>> from engagelab.campaigns import Campaign, Schedule, Variant
    >>> c = Campaign(id="mwf", channel="push", variants=(Variant("A", {"title": "t", "body": "b"}),),
    ...              schedule=Schedule("recurring", cron="0 18 * * 1,3,5", timezone="UTC"))
    >>> fire_note(c, dt.datetime(2026, 2, 3, tzinfo=dt.UTC))
    "recurring schedule '0 18 * * 1,3,5' does not fire on 2026-02-03 (Tuesday, UTC): nothing to send"
    >>> fire_note(c, dt.datetime(2026, 2, 4, tzinfo=dt.UTC))
    ''
    """
    s = c.schedule
    if s.type != "recurring":
        return ""
    tz = _zone(s.timezone)
    day = ld.astimezone(tz).date()
    if _base_time(c, ld).astimezone(tz).date() == day:
        return ""
    return (
        f"recurring schedule {s.cron!r} does not fire on {day.isoformat()} "
        f"({day.strftime('%A')}, {s.timezone}): nothing to send"
    )


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _audience_flags_sql(pcols: set[str], types: Mapping[str, str]) -> str:
    """Remarketing audiences: ``optout`` is any of ``optout_email``, ``unsubscribed``;
    ``no_ad_consent`` is ``ad_consent`` not true (a missing or non-bool column: no consent)."""

    def flag(name: str) -> str | None:
        ok = name in pcols and (name in CORE_PROFILE_COLUMNS or types.get(name) == "bool")
        return f"coalesce(p.{_q(name)}, false)" if ok else None

    flags = [f for f in map(flag, AUDIENCE_OPTOUTS) if f]
    consent = flag(AD_CONSENT)
    return (
        f"({' OR '.join(flags) or 'false'}) AS optout, "
        f"{'NOT ' + consent if consent else 'true'} AS no_ad_consent"
    )


def _candidates(
    ws: Core, c: Campaign, ld: dt.datetime, trigger: tuple[str, dict[str, Any]] | None = None
) -> pd.DataFrame:
    """Users the schedule picks for the logical date, with a base UTC send time (those of
    the ``trigger`` SQL instead of the schedule's window when given)."""
    s = c.schedule
    rule = REACH_RULES[c.channel]
    optout = rule.optout
    cols = ws.engine.refresh().columns
    pcols = set(cols.get("profiles", {})) | set(CORE_PROFILE_COLUMNS)
    idents = list(
        dict.fromkeys(i for v in c.variants for i in getattr(v.content, "identifiers", ()))
    )
    # remarketing audiences match on any of their identifiers (e-mail and/or phone)
    addr = (
        "coalesce("
        + ", ".join(f"nullif(trim(CAST(p.{_q(i)} AS VARCHAR)), '')" for i in idents)
        + ")"
        if idents
        else _reach_address(rule.fields, pcols)
    )
    sel = f"p.user_id, p.timezone, {addr} AS address, " + (
        _audience_flags_sql(pcols, cols.get("profiles", {}))
        if c.channel in REMARKETING_CHANNELS
        else f"coalesce(p.{_q(optout)}, false) AS optout, false AS no_ad_consent"
        if optout and optout in pcols
        else "false AS optout, false AS no_ad_consent"
    )
    for name in sorted({x for vs in _required(c).values() for x in vs}):
        root, prop = name.split(".", 1)
        if root == "profile":
            sel += f", (p.{_q(prop)} IS NULL) AS {_q('missing:' + name)}"
    for name in sorted({x for vs in _header_variables(c).values() for x in vs}):
        root, prop = name.split(".", 1)
        if root == "profile":
            sel += (
                f", coalesce(regexp_matches(CAST(p.{_q(prop)} AS VARCHAR), '[[:cntrl:]]'), false)"
                f" AS {_q('badheader:' + name)}"
            )
    if c.audience is None:
        src = "profiles AS p"
    else:
        seg_sql = segment_sql(ws, c.audience, ld)
        src = f"profiles AS p SEMI JOIN ({seg_sql}) AS seg ON p.user_id = seg.user_id"
    params: dict[str, Any] = {}
    if s.type in ("one_time", "recurring", "on_date"):
        where = ""
        if s.type == "on_date":
            if s.date_property is None or s.date_property not in pcols:
                raise ValidationError(
                    "schedule.date_property", s.date_property, "is not a profiles column"
                )
            d = f"CAST(timezone($tz, p.{_q(s.date_property)}) AS DATE) + INTERVAL ({int(s.offset_days)}) DAY"
            params["tz"] = s.timezone
            day = ld.astimezone(_zone(s.timezone)).date()
            params["day"] = day
            if s.anniversary:
                # 29 February comes round on 28 February in years without it
                params["feb28"] = (day.month, day.day) == (2, 28) and not calendar.isleap(day.year)
                where = (
                    f" WHERE (month({d}) = month($day) AND day({d}) = day($day))"
                    f" OR ($feb28 AND month({d}) = 2 AND day({d}) = 29)"
                )
            else:
                where = f" WHERE CAST({d} AS DATE) = $day"
        df = ws.sql(f"SELECT {sel} FROM {src}{where}", params)
        df["base"] = pd.Timestamp(_base_time(c, ld))
        df["event_properties"] = None
        return df
    if trigger is not None:
        trig, params = trigger
    else:
        prev = L.previous_run(ws, c.id, ld)
        since = prev["logical_date"] if prev else ld - dt.timedelta(days=1)
        trig, params = _trigger_sql(c, set(cols.get("events", {})), since, ld)
    return ws.sql(
        f"SELECT {sel}, t.base, t.event_properties FROM {src} "
        f"JOIN ({trig}) AS t ON t.user_id = p.user_id",
        params,
    )


def event_variables(c: Campaign) -> list[str]:
    """The trigger-event properties the campaign's templates read (``event.<name>``)."""
    return sorted(
        {
            x.split(".", 1)[1]
            for v in c.variants
            if hasattr(v.content, "template_variables")
            for x in v.content.template_variables()
            if x.startswith("event.")
        }
    )


def _trigger_sql(
    c: Campaign,
    ev_cols: set[str],
    lo: dt.datetime | None,
    hi: dt.datetime | None,
    user_id: str | None = None,
) -> tuple[str, dict[str, Any]]:
    """SQL of the users a triggered / inaction campaign picks for events in ``(lo, hi]``:
    ``user_id``, ``base`` (the planned UTC send time) and ``event_properties`` (JSON text
    of the properties templates read, from the user's latest qualifying occurrence; ties
    on ``ts`` go to the larger ``event_id``; NULL when templates read none)."""
    s = c.schedule
    params: dict[str, Any] = {"e": s.event}
    filt = ""
    for i, (k, v) in enumerate(sorted(s.filters.items())):
        if k not in ev_cols:
            raise ValidationError(f"schedule.filters.{k}", v, "is not an events column")
        filt += f" AND a.{_q(k)} = $f{i}"
        params[f"f{i}"] = v
    if user_id is not None:
        filt += " AND a.user_id = $uid"
        params["uid"] = user_id
    props = event_variables(c)
    if props:
        order = "(a.ts, a.event_id)"  # event_id is a core column: ties go to the larger
        packed = ", ".join(f"{_q(p)} := a.{_q(p)}" for p in props)
        evp = f"to_json(arg_max(struct_pack({packed}), {order}))"
    else:
        evp = "CAST(NULL AS VARCHAR)"
    if s.type == "triggered":
        base = "min(a.ts)"
        cond = ""
    else:
        w = dt.timedelta(hours=float(cast(float, s.within_hours)))
        lo = lo - w if lo is not None else None
        hi = hi - w if hi is not None else None
        params |= {"b": s.not_event, "w_us": int(w.total_seconds() * _US)}
        base = "max(a.ts) + to_microseconds($w_us)"
        cond = (
            " AND NOT EXISTS (SELECT 1 FROM events AS b WHERE b.user_id = a.user_id "
            "AND b.event = $b AND b.ts > a.ts AND b.ts <= a.ts + to_microseconds($w_us))"
        )
    if lo is not None:
        filt += " AND a.ts > $lo"
        params["lo"] = lo
    if hi is not None:
        filt += " AND a.ts <= $hi"
        params["hi"] = hi
    sql = (
        f"SELECT a.user_id, {base} AS base, {evp} AS event_properties FROM events AS a "
        f"WHERE a.event = $e{filt}{cond} GROUP BY a.user_id"
    )
    return sql, params


def _required(c: Campaign) -> dict[str, set[str]]:
    """Per variant, the variables its templates read without a default."""
    return {
        v.name: v.content.required_variables()
        for v in c.variants
        if hasattr(v.content, "required_variables") and v.content.required_variables()
    }


#: Template fields that become message headers (one line each).
HEADER_FIELDS = ("email.subject",)
#: A plain recipient address: one "@", no spaces, angle brackets, commas, semicolons or
#: control characters (what the SMTP provider accepts as a recipient).
_ADDRESS = r"^[^@\s<>\x00-\x1f\x7f,;]+@[^@\s<>\x00-\x1f\x7f,;]+$"


def _header_variables(c: Campaign) -> dict[str, set[str]]:
    """Per variant, the variables its header fields (:data:`HEADER_FIELDS`) read."""
    out: dict[str, set[str]] = {}
    for v in c.variants:
        if not hasattr(v.content, "template_fields"):
            continue
        used = {
            x for f, vs in v.content.template_fields().items() if f in HEADER_FIELDS for x in vs
        }
        if used:
            out[v.name] = used
    return out


def _bad_header(value: Any) -> bool:
    return isinstance(value, str) and any(ord(ch) < 32 or ord(ch) == 127 for ch in value)


def _invalid_header(c: Campaign, df: pd.DataFrame) -> np.ndarray:
    """True for users whose message would carry an invalid header value: a header field
    rendered from a value with a newline or another control character (header injection),
    or, for e-mail, a recipient that is not a plain address (suppressed as
    ``invalid_header``)."""
    out = np.zeros(len(df), bool)
    if not len(df):
        return out
    if c.channel == "email" and "address" in df.columns:
        addr = df["address"].astype("string")
        good = addr.str.strip().str.fullmatch(_ADDRESS).fillna(True).to_numpy(bool)
        out |= ~good
    variant = df["variant"].to_numpy(dtype=object)
    for name, used in _header_variables(c).items():
        rows = variant == name
        if not rows.any():
            continue
        bad = np.zeros(len(df), bool)
        for var in sorted(used):
            col = "badheader:" + var
            if col in df.columns:
                bad |= df[col].fillna(False).to_numpy(bool)
        props = sorted(v.split(".", 1)[1] for v in used if v.startswith("event."))
        if props and "event_properties" in df.columns:
            for i in np.flatnonzero(rows & ~bad):
                ev = event_context(df["event_properties"].iat[int(i)]) or {}
                bad[i] = any(_bad_header(ev.get(p)) for p in props)
        out |= rows & bad
    return out


def _missing(c: Campaign, df: pd.DataFrame) -> np.ndarray:
    """True for users whose variant reads a variable they lack without a default (their
    message cannot be rendered: suppressed as ``missing_variable``)."""
    out = np.zeros(len(df), bool)
    required = _required(c)
    if not required:
        return out
    variant = df["variant"].to_numpy(dtype=object)
    for name, needs in required.items():
        rows = variant == name
        if not rows.any():
            continue
        miss = np.zeros(len(df), bool)
        for var in sorted(needs):
            if var.startswith("profile."):
                miss |= df["missing:" + var].fillna(True).to_numpy(bool)
        props = sorted(v.split(".", 1)[1] for v in needs if v.startswith("event."))
        if props:
            for i in np.flatnonzero(rows & ~miss):
                ev = event_context(df["event_properties"].iat[int(i)]) or {}
                miss[i] = any(ev.get(p) is None for p in props)
        out |= rows & miss
    return out


def event_context(value: Any) -> dict[str, Any] | None:
    """The trigger event's properties of one plan row, from its ``event_properties``
    (JSON text, or None for campaigns whose templates read no ``event.*``), to render with
    ``content.render({"profile": ..., "event": event_context(row.event_properties)})``.

    >>> event_context('{"product": "Shoes", "price": 59.9}')
    {'product': 'Shoes', 'price': 59.9}
    >>> event_context(None) is None
    True
    """
    if value is None or (isinstance(value, float) and value != value):
        return None
    if not isinstance(value, str):
        raise ValidationError("event_properties", value, "must be JSON text or None")
    out = json.loads(value)
    if not isinstance(out, dict):
        raise ValidationError("event_properties", value[:40], "must be a JSON object")
    return out


def _zone(name: str) -> Any:
    import zoneinfo

    return zoneinfo.ZoneInfo(name)


def _base_time(c: Campaign, ld: dt.datetime) -> dt.datetime:
    s = c.schedule
    if s.type == "one_time":
        return s.at or ld
    tz = _zone(s.timezone)
    if s.type == "recurring":
        from croniter import croniter

        start = ld.astimezone(tz) - dt.timedelta(microseconds=1)
        return croniter(s.cron, start).get_next(dt.datetime).astimezone(dt.UTC)
    h, m = (int(x) for x in s.time.split(":"))
    local = ld.astimezone(tz).date()
    naive = dt.datetime(local.year, local.month, local.day) + dt.timedelta(hours=h, minutes=m)
    return timing.to_utc(pd.Series([naive]), pd.Series([s.timezone])).iloc[0].to_pydatetime()


def _assign(ws: Core, c: Campaign, df: pd.DataFrame, phase: str, winner: str | None) -> None:
    """Variants, control groups and winner-test phases, among the users still eligible
    (``decision == 'send'``); users suppressed before keep their decision and reason."""
    uid = df["user_id"]
    decision = df["decision"].to_numpy(dtype=object).copy()
    reason = df["reason"].to_numpy(dtype=object).copy()
    if c.respect_global_control:
        frac, salt = get_global_control(ws)
        if frac > 0 and len(df):
            g = global_control(uid, salt, frac) & (decision == "send")
            decision[g], reason[g] = "control", "global_control"
    variants = list(c.variant_names)
    if len(df):
        arm = campaign_split(uid, c.id, variants, c.weights, c.control_percent / 100.0)
    else:
        arm = np.array([], dtype=object)
    ctrl = (arm == "control") & (decision == "send")
    decision[ctrl], reason[ctrl] = "control", "control"
    # numpy takes None as an object scalar; its stubs do not list it
    df["variant"] = np.where(arm == "control", None, arm)  # type: ignore[call-overload]
    if c.winner_test is not None and len(df):
        test = buckets(uid, c.id + ":test") < round(c.winner_test.test_share * 10_000)
        live = decision == "send"
        if phase == "test":
            decision[live & ~test], reason[live & ~test] = "deferred", "awaiting_winner"
        else:
            decision[live & test], reason[live & test] = "excluded", "in_test_group"
            df.loc[~test, "variant"] = winner
    # object columns: None stays None (pandas would infer text with NaN)
    df["decision"] = pd.Series(decision, index=df.index, dtype=object)
    df["reason"] = pd.Series(reason, index=df.index, dtype=object)


def _suppress(df: pd.DataFrame, mask: np.ndarray, reason: str) -> None:
    """Suppress the users of ``mask`` still to be sent with ``reason``; control users of
    ``mask`` get it as ``would_be`` (the first reason that would have suppressed them)."""
    if not mask.any():  # the common case: skip comparing a million decisions
        return
    decision = df["decision"].to_numpy()
    m = mask & (decision == "send")
    df.loc[m, "decision"] = "suppressed"
    df.loc[m, "reason"] = reason
    w = mask & (decision == "control") & df["would_be"].isna().to_numpy()
    df.loc[w, "would_be"] = reason


def plan(  # noqa: C901
    ws: Core,
    campaign: Campaign,
    logical_date: Any,
    *,
    now: Any = None,
    run_key: str | None = None,
    phase: str | None = None,
    trigger: tuple[str, dict[str, Any]] | None = None,
) -> Plan:
    """Plan ``campaign`` for ``logical_date`` without sending anything (the dry run).

    Args:
        ws: the workspace.
        campaign: the :class:`~engagelab.campaigns.Campaign`.
        logical_date: the run's logical date (UTC instant, date or ISO text).
        now: the planning instant used for "local time already passed" (default:
            the logical date, so plans are reproducible).
        run_key: the run's key (default ``"<campaign id>@<logical date ISO>"``);
            message keys derive from it.
        phase: ``'test'`` or ``'winner'`` for a test-then-winner campaign (default:
            ``'winner'`` once a test run exists, else ``'test'``).
        trigger: triggered / inaction campaigns: (SQL, parameters) of the candidates
            (``user_id``, ``base``, ``event_properties``) to plan instead of the events of
            the schedule's window (what the live trigger feed,
            :mod:`engagelab.campaigns.live`, plans from). A user's rows at several
            ``base`` times are several occurrences, all planned; frequency caps, the
            minimum gap and send-time hooks see one row per user, so give one row per
            user when they apply.
    """
    if not isinstance(campaign, Campaign):
        raise ValidationError("campaign", type(campaign).__name__, "must be a Campaign")
    ld = cast(dt.datetime, check_datetime("logical_date", logical_date))
    now_t = check_datetime("now", now, allow_none=True) or ld
    run_key = L.check_run_key(run_key or f"{campaign.id}@{ld.isoformat()}")
    check_templates(ws, campaign)
    phase, winner = _phase(ws, campaign, ld, phase)
    c, opt = campaign, campaign.delivery
    if trigger is not None and c.schedule.type not in TRIGGER_TYPES:
        raise ValidationError(
            "trigger", c.schedule.type, "is only for triggered / inaction campaigns"
        )
    df = (
        _candidates(ws, c, ld, trigger)
        .drop_duplicates("user_id" if trigger is None else ["user_id", "base"])
        .sort_values("user_id", ignore_index=True)
    )
    note_text = fire_note(c, ld)
    if note_text:  # not a fire day of the cron: this logical date has no occurrence
        df = df.iloc[:0].copy()
    zones = df["timezone"].astype(object)
    good = {z for z in zones.dropna().unique() if isinstance(z, str) and _valid_tz(z)}
    ok_tz = zones.isin(good).to_numpy(dtype=bool)
    # the send-time hook sees invalid zones as they are (it may drop those users)
    hook_zones = zones.where(zones.notna(), opt.default_timezone)
    df["timezone"] = df["timezone"].where(ok_tz, opt.default_timezone)
    base = pd.Series(pd.to_datetime(df["base"], utc=True)).dt.as_unit("us")
    # eligibility first: control groups are drawn among the users the channel reaches
    df["decision"] = np.full(len(df), "send", dtype=object)
    df["reason"] = np.full(len(df), None, dtype=object)
    df["would_be"] = np.full(len(df), None, dtype=object)
    optout = df["optout"].fillna(False).astype(bool).to_numpy()
    if len(df):  # an unsubscribe event (by the planning instant) opts out like the flag
        unsub = unsubscribed_users(ws, c.channel, now_t)
        if unsub:
            optout = optout | df["user_id"].astype(str).isin(unsub).to_numpy(dtype=bool)
    _suppress(df, optout, "opted_out")
    _suppress(df, df["no_ad_consent"].fillna(True).astype(bool).to_numpy(), "no_ad_consent")
    addr = df["address"]
    _suppress(
        df,
        (addr.isna() | (addr.astype("string").str.strip() == "")).fillna(True).to_numpy(bool),
        "unreachable",
    )
    _assign(ws, c, df, phase, winner)
    _suppress(df, _missing(c, df), "missing_variable")
    _suppress(df, _invalid_header(c, df), "invalid_header")
    send = base.copy()
    note = np.full(len(df), None, dtype=object)
    if opt.user_timezone and len(df):
        wall = timing.to_local(base, pd.Series([c.schedule.timezone] * len(df)))
        send = timing.to_utc(wall, df["timezone"])
        passed = (send < pd.Timestamp(now_t)).to_numpy()
        if opt.if_passed == "drop":
            _suppress(df, passed, "tz_passed")
        elif passed.any():
            wall2 = wall.where(~passed, wall + pd.Timedelta(days=1))
            send = timing.to_utc(wall2, df["timezone"])
            note[passed] = "next_day"
    bt = _send_time_hook(ws, c, df, hook_zones, send, ld, now_t)
    if bt is not None:
        placed = bt["send_at"].notna().to_numpy()
        _suppress(df, ~placed, "best_time_drop")
        send = send.where(~placed, bt["send_at"].dt.as_unit("us"))
        note[placed & (bt["reason"].notna().to_numpy())] = "best_time"
    planned = send.copy()
    if opt.dnd and len(df):
        send, held, dropped = timing.apply_dnd(send, df["timezone"], opt.dnd)
        _suppress(df, dropped, "dnd_drop")
        note[held] = "dnd_hold"
    if opt.ttl_hours:
        _suppress(
            df, (send - planned > pd.Timedelta(hours=opt.ttl_hours)).to_numpy(), "ttl_expired"
        )
    if opt.cut_off is not None:
        _suppress(df, (send > pd.Timestamp(opt.cut_off)).to_numpy(), "cut_off")
    df["send_at"] = send
    df["message_key"] = (
        message_keys(c.id, occurrences(c, df["base"]), df["user_id"], phase)
        if len(df)
        else np.array([], dtype=object)
    )
    _caps(ws, c, df, run_key)
    if opt.throttle is not None and len(df):
        live = np.flatnonzero(df["decision"].to_numpy() == "send")
        later = timing.throttle(df["send_at"].iloc[live], *opt.throttle)
        late = np.zeros(len(df), bool)
        new_us = _us(later)
        moved = new_us > _us(df["send_at"].iloc[live])
        over = np.zeros(live.size, bool)
        if opt.cut_off is not None:
            over |= new_us > _us(pd.Series([pd.Timestamp(opt.cut_off)]))[0]
        if opt.ttl_hours:
            over |= new_us - _us(planned.iloc[live]) > int(opt.ttl_hours * 3600 * _US)
        late[live[over]] = True
        df.loc[df.index[live], "send_at"] = later.to_numpy()
        df["send_at"] = pd.to_datetime(df["send_at"], utc=True).dt.as_unit("us")
        note[live[moved & ~over]] = "throttled"
        _suppress(df, late, "throttled_to_later")
    df["note"] = note
    if bt is None:
        df["best_time_slot"] = None
        df["best_time_reason"] = None
        df["best_time_propensity"] = np.nan
    else:
        df["best_time_slot"] = bt["slot"].to_numpy()
        df["best_time_reason"] = bt["reason"].to_numpy()
        df["best_time_propensity"] = bt["propensity"].to_numpy(dtype=float)
    df["send_at_local"] = (
        timing.to_local(df["send_at"], df["timezone"])
        if len(df)
        else pd.Series([], dtype="datetime64[us]")
    )
    df["to"] = df["address"].where(df["address"].notna(), None)
    # where a message's TTL counts from in the send queue: the trigger (the event, or the
    # end of the inaction window) for triggered / inaction campaigns, else its due time
    df["origin_at"] = base if c.schedule.type in TRIGGER_TYPES else pd.NaT
    df["origin_at"] = pd.to_datetime(df["origin_at"], utc=True).dt.as_unit("us")
    cols = [
        "user_id",
        "decision",
        "reason",
        "variant",
        "send_at",
        "send_at_local",
        "timezone",
        "to",
        "message_key",
        "note",
        "best_time_slot",
        "best_time_reason",
        "best_time_propensity",
        "event_properties",
        "would_be",
        "origin_at",
    ]
    return Plan(c, ld, run_key, phase, winner, df[cols].reset_index(drop=True), note_text)


def _send_time_hook(
    ws: Core,
    c: Campaign,
    df: pd.DataFrame,
    zones: pd.Series,
    send: pd.Series,
    ld: dt.datetime,
    now: dt.datetime,
) -> pd.DataFrame | None:
    """The best-time hook's validated answer aligned with ``df`` (None without a hook)."""
    opt = c.delivery
    policy = opt.send_time_policy
    if (opt.best_time is None and not policy) or not len(df):
        return None
    users = pd.DataFrame(
        {"user_id": df["user_id"], "timezone": zones.to_numpy(), "send_at": send.to_numpy()}
    )
    if opt.best_time is not None:
        from engagelab.besttime.delivery import campaign_answer, send_times

        day = ld.astimezone(_zone(c.schedule.timezone)).date()
        answer = campaign_answer(send_times(ws, users, day, opt.best_time, now=now))
        return check_send_times(answer, users, "delivery.best_time")
    fn = send_time_policy(str(policy))
    return check_send_times(fn(users, ld), users, f"send_time_policy {policy!r}")


def check_templates(ws: Core, c: Campaign) -> None:
    """Reject templates that read variables the workspace does not have (before any send)."""
    from engagelab.channels import known_variables

    # event.* reads the trigger event: only triggered / inaction campaigns have one (the
    # spec refuses event.* elsewhere); its properties are events columns
    known = known_variables(ws, event=c.schedule.type in TRIGGER_TYPES)
    for i, v in enumerate(c.variants):
        if hasattr(v.content, "validate_variables"):
            try:
                v.content.validate_variables(known)
            except ValidationError as exc:
                raise type(exc)(
                    f"variants[{i}].content.{exc.field}",
                    exc.value,
                    exc.allowed,
                    message=f"variants[{i}].content: {exc}",
                ) from None


def _us(s: pd.Series) -> np.ndarray:
    """int64 microseconds since the epoch of a UTC datetime Series."""
    return pd.to_datetime(s, utc=True).dt.as_unit("us").astype("int64").to_numpy()


def _valid_tz(name: Any) -> bool:
    from engagelab.validate import valid_timezone

    return valid_timezone(name)


_HISTORY_BY_USER_MAX = 200_000


def _caps(ws: Core, c: Campaign, df: pd.DataFrame, run_key: str) -> None:
    opt = c.delivery
    caps = campaign_caps(c, ws)
    if not caps and not opt.min_gap_hours:
        return
    # control users are checked too (their would_be reason): both arms alike
    live = np.flatnonzero(np.isin(df["decision"].to_numpy(), ["send", "control"]))
    if live.size == 0:
        return
    t = pd.to_datetime(df["send_at"].iloc[live]).dt.as_unit("us").astype("int64").to_numpy()
    span = (
        max(
            [cap.seconds if cap.kind == "rolling" else 32 * 86400 for cap in caps]
            + [int((opt.min_gap_hours or 0) * 3600)]
        )
        * _US
    )
    users = df["user_id"].iloc[live].to_numpy()
    # The ledger window holds every campaign's messages of the last month: filter it by
    # this audience unless the audience is so large that reading the window is cheaper.
    only = users.tolist() if live.size <= _HISTORY_BY_USER_MAX else None
    with ws.state.read() as conn:
        hist = L.history(
            conn, int(t.min()) - span, int(t.max()) + span, users=only, exclude_run=run_key
        )
    # this occurrence's own messages (sent under any run key) do not count against it
    hist = hist[~hist["key"].isin(set(df["message_key"].iloc[live].tolist()))]
    if hist.empty:
        return
    bad_gap = np.zeros(live.size, bool)
    if opt.min_gap_hours:
        h = hist[hist["campaign_id"] == c.id]
        bad_gap = timing.cap_conflicts(
            users,
            t,
            df["timezone"].iloc[live],
            c.channel,
            h["user_id"].to_numpy(),
            h["t"].to_numpy(),
            h["channel"].to_numpy(),
            [_gap_cap(opt.min_gap_hours)],
        )
    mask = np.zeros(len(df), bool)
    mask[live[bad_gap]] = True
    _suppress(df, mask, "min_gap")
    bad = timing.cap_conflicts(
        users,
        t,
        df["timezone"].iloc[live],
        c.channel,
        hist["user_id"].to_numpy(),
        hist["t"].to_numpy(),
        hist["channel"].to_numpy(),
        caps,
    )
    mask = np.zeros(len(df), bool)
    mask[live[bad]] = True
    _suppress(df, mask, "frequency_cap")


def _gap_cap(hours: float) -> Any:
    from engagelab.campaigns.options import gap_cap

    return gap_cap(hours)


def _phase(ws: Core, c: Campaign, ld: dt.datetime, phase: str | None) -> tuple[str, str | None]:
    if c.winner_test is None:
        if phase not in (None, "main"):
            raise ValidationError(
                "phase", phase, "must be None for a campaign without a winner test"
            )
        return "main", None
    if phase not in (None, "test", "winner"):
        raise ValidationError("phase", phase, "must be one of 'test', 'winner' or None")
    import sqlalchemy as sa

    with ws.state.read() as conn:
        test_run = conn.execute(
            sa.select(L.runs.c.logical_date).where(
                L.runs.c.campaign_id == c.id, L.runs.c.phase == "test"
            )
        ).first()
    if phase is None:
        phase = "winner" if test_run is not None else "test"
    if phase == "test":
        return "test", None
    if test_run is None:
        raise ValidationError("phase", phase, "needs a sent test run of this campaign first")
    started = (
        test_run.logical_date
        if test_run.logical_date.tzinfo
        else test_run.logical_date.replace(tzinfo=dt.UTC)
    )
    if ld < started + dt.timedelta(hours=c.winner_test.wait_hours):
        raise ValidationError(
            "logical_date",
            ld.isoformat(),
            f"must be at least {c.winner_test.wait_hours:g} h after the test run ({started.isoformat()})",
        )
    from engagelab.campaigns.report import choose_campaign_winner

    return "winner", choose_campaign_winner(ws, c).variant
