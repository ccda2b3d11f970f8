"""Vectorised send-time rules: user time zones, do-not-disturb, caps windows, throttle.

All functions take and return numpy/pandas arrays aligned with the users; times are
``datetime64[us, UTC]`` Series, local times are naive wall-clock Series.

Local wall-clock times that do not exist (the hour skipped when clocks spring forward)
move forward to the first valid instant; ambiguous ones (the repeated hour when clocks
fall back) take the first occurrence.

Example:
    >>> import pandas as pd
    >>> utc = pd.Series(pd.to_datetime(["2026-03-29 00:30"] * 2, utc=True))
    >>> tz = pd.Series(["Europe/Berlin", "America/New_York"])
    >>> to_local(utc, tz).astype(str).tolist()
    ['2026-03-29 01:30:00', '2026-03-28 20:30:00']
    >>> to_utc(pd.Series(pd.to_datetime(["2026-03-29 02:30"])), pd.Series(["Europe/Berlin"])).astype(str).tolist()
    ['2026-03-29 01:00:00+00:00']
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from engagelab.campaigns.options import DND, FrequencyCap

__all__ = ["apply_dnd", "calendar_start", "throttle", "to_local", "to_utc"]

_US = "datetime64[us]"


def _as_utc(s: pd.Series) -> pd.Series:
    """A UTC ``datetime64[us]`` Series with a fresh 0..n-1 index (no per-row objects)."""
    idx = pd.DatetimeIndex(s)
    idx = idx.tz_localize("UTC") if idx.tz is None else idx.tz_convert("UTC")
    return pd.Series(idx.as_unit("us"))


def _groups(tz: pd.Series) -> dict[str, np.ndarray]:
    codes, uniques = pd.factorize(tz, sort=False)
    order = np.argsort(codes, kind="stable")
    bounds = np.flatnonzero(np.diff(codes[order])) + 1
    return {str(uniques[codes[idx[0]]]): idx for idx in np.split(order, bounds) if idx.size}


def to_local(utc: pd.Series, tz: pd.Series) -> pd.Series:
    """Naive local wall-clock time of each UTC instant in its row's time zone."""
    utc = _as_utc(utc)
    out = np.empty(len(utc), dtype=_US)
    for zone, idx in _groups(tz.reset_index(drop=True)).items():
        part = pd.DatetimeIndex(utc.iloc[idx]).tz_convert(zone).tz_localize(None)
        out[idx] = part.as_unit("us").to_numpy()
    return pd.Series(out)


def to_utc(local: pd.Series, tz: pd.Series) -> pd.Series:
    """UTC instant of each naive local wall-clock time in its row's time zone."""
    local = pd.Series(pd.to_datetime(local.to_numpy())).dt.as_unit("us")
    out = np.empty(len(local), dtype=_US)
    for zone, idx in _groups(tz.reset_index(drop=True)).items():
        part = pd.DatetimeIndex(local.iloc[idx])
        loc = part.tz_localize(
            zone, nonexistent="shift_forward", ambiguous=np.ones(len(part), bool)
        )
        out[idx] = loc.tz_convert("UTC").tz_localize(None).as_unit("us").to_numpy()
    return pd.Series(pd.to_datetime(out).tz_localize("UTC"))


def _minutes(local: pd.Series) -> tuple[np.ndarray, np.ndarray, pd.Series]:
    day = local.dt.floor("D")
    mins = ((local - day) / pd.Timedelta(minutes=1)).to_numpy()
    return local.dt.day_of_week.to_numpy(), mins, day


def apply_dnd(
    utc: pd.Series, tz: pd.Series, windows: Sequence[DND]
) -> tuple[pd.Series, np.ndarray, np.ndarray]:
    """Apply do-not-disturb windows in each user's local time.

    Returns ``(send_at_utc, held, dropped)``: held sends move to the end of their window
    (repeatedly, if that end falls inside another window); dropped ones keep their time.

    >>> import pandas as pd
    >>> t = pd.Series(pd.to_datetime(["2026-01-05 23:00", "2026-01-05 12:00"], utc=True))
    >>> out, held, dropped = apply_dnd(t, pd.Series(["UTC", "UTC"]), [DND("22:00", "08:00")])
    >>> out.astype(str).tolist(), held.tolist()
    (['2026-01-06 08:00:00+00:00', '2026-01-05 12:00:00+00:00'], [True, False])
    """
    utc = _as_utc(utc)
    tz = tz.reset_index(drop=True)
    n = len(utc)
    held = np.zeros(n, bool)
    dropped = np.zeros(n, bool)
    if not windows or n == 0:
        return utc, held, dropped
    local = to_local(utc, tz)
    for _ in range(len(windows) + 2):
        wd, mins, day = _minutes(local)
        moved = np.zeros(n, bool)
        new_local = local.copy()
        for w in windows:
            s, e = w.minutes
            days = np.isin(wd, w.weekday_numbers)
            prev_days = np.isin((wd - 1) % 7, w.weekday_numbers)
            if s < e:
                inside = days & (mins >= s) & (mins < e)
                end = day + pd.Timedelta(minutes=e)
            else:
                late = days & (mins >= s)
                early = prev_days & (mins < e)
                inside = late | early
                end = day + pd.to_timedelta(np.where(late, 1440 + e, e), unit="m")
            inside &= ~dropped
            if w.action == "drop":
                dropped |= inside
            else:
                take = inside & ~moved
                new_local[take] = end[take]
                moved |= take
        if not moved.any():
            break
        held |= moved
        local = new_local
    out = utc.copy()
    idx = np.flatnonzero(held & ~dropped)
    if idx.size:
        out.iloc[idx] = to_utc(
            local.iloc[idx].reset_index(drop=True), tz.iloc[idx].reset_index(drop=True)
        ).to_numpy()
    return out, held & ~dropped, dropped


def calendar_start(utc: pd.Series, tz: pd.Series, unit: str) -> tuple[pd.Series, pd.Series]:
    """(start, end) in UTC of the calendar day / week (Monday) / month holding each instant,
    in each row's local time zone."""
    local = to_local(utc, tz)
    day = local.dt.floor("D")
    if unit == "days":
        start, end = day, day + pd.Timedelta(days=1)
    elif unit == "weeks":
        start = day - pd.to_timedelta(local.dt.day_of_week, unit="D")
        end = start + pd.Timedelta(days=7)
    else:
        start = day - pd.to_timedelta(local.dt.day - 1, unit="D")
        end = start + pd.offsets.MonthBegin(1)
    return to_utc(start, tz), to_utc(pd.Series(end), tz)


def throttle(utc: pd.Series, per_minute: int, window_seconds: int = 60) -> pd.Series:
    """Delay sends so that no window of ``window_seconds`` (a minute) holds more than
    ``per_minute`` of them.

    Messages keep their order by planned time; message ``i`` (in that order) goes at
    ``max(planned_i, sent_{i - per_minute} + window)``.

    >>> import pandas as pd
    >>> t = pd.Series(pd.to_datetime(["2026-01-01 09:00"] * 5, utc=True))
    >>> throttle(t, 2).dt.strftime("%H:%M").tolist()
    ['09:00', '09:00', '09:01', '09:01', '09:02']
    """
    values = pd.DatetimeIndex(_as_utc(utc)).asi8
    order = np.argsort(values, kind="stable")
    t = values[order].copy()
    minute = int(window_seconds) * 1_000_000
    for k in range(per_minute, t.size, per_minute):
        block = slice(k, min(k + per_minute, t.size))
        prev = t[k - per_minute : k - per_minute + (block.stop - block.start)]
        t[block] = np.maximum(t[block], prev + minute)
    out = np.empty_like(t)
    out[order] = t
    return pd.Series(pd.to_datetime(out, unit="us", utc=True), index=utc.index)


def cap_conflicts(
    new_user: np.ndarray,
    new_t: np.ndarray,
    new_tz: pd.Series,
    new_channel: str,
    hist_user: np.ndarray,
    hist_t: np.ndarray,
    hist_channel: np.ndarray,
    caps: Sequence[FrequencyCap],
) -> np.ndarray:
    """True where sending at ``new_t`` (int64 µs UTC) would break one of ``caps`` given the
    already planned/sent history (user, time, channel).

    A rolling cap of N per W counts the existing messages within W before *or after*
    the new one: fewer than N guarantees no window of length W ever holds more than N.
    A calendar cap counts those in the same local day / week / month.
    """
    bad = np.zeros(new_user.size, bool)
    if not caps or new_user.size == 0 or hist_user.size == 0:
        return bad
    hist = pd.DataFrame({"user_id": hist_user, "t": hist_t, "channel": hist_channel})
    new = pd.DataFrame({"user_id": new_user, "t_new": new_t, "row": np.arange(new_user.size)})
    for cap in caps:
        if cap.channel != "*" and cap.channel != new_channel:
            continue
        h = hist if cap.channel == "*" else hist[hist["channel"] == cap.channel]
        if h.empty:
            continue
        if cap.kind == "calendar":
            lo, hi = calendar_start(
                pd.Series(pd.to_datetime(new_t, unit="us", utc=True)),
                new_tz.reset_index(drop=True),
                cap.unit,
            )
            new["lo"] = pd.to_datetime(lo).dt.as_unit("us").astype("int64").to_numpy()
            new["hi"] = pd.to_datetime(hi).dt.as_unit("us").astype("int64").to_numpy()
        else:
            w = cap.seconds * 1_000_000
            new["lo"] = new_t - w + 1
            new["hi"] = new_t + w
        m = new.merge(h[["user_id", "t"]], on="user_id", how="inner")
        m = m[(m["t"] >= m["lo"]) & (m["t"] < m["hi"])]
        counts = m.groupby("row").size()
        over = counts.index[counts.to_numpy() >= cap.max].to_numpy()
        bad[over] = True
    return bad
