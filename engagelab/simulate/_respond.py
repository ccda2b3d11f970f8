"""How simulated users answer messages: delivery, views, clicks, conversions, retention.

For a message on ``channel`` (rates from :data:`CHANNEL_RATES`):

* delivered with probability ``deliver[channel]`` if the user is reachable on the
  channel (address present, not opted out), else never;
* viewed, given delivered, with probability
  ``view[channel] * hour_factor * (CHURNED_VIEW_FACTOR if the user has churned)``, where
  ``hour_factor = HOUR_FLOOR + (1 - HOUR_FLOOR) * exp(-d**2 / (2 * HOUR_SIGMA**2))`` and
  ``d`` is the circular distance in hours between the local send time and the middle
  of the user's preferred hour;
* clicked, given viewed, with probability ``min(1, click[channel] * multiplier)``, the
  multiplier planted for (campaign_id, variant) (1 when none is planted);
* converted ('Charged'), given clicked, with probability ``config.conversion_rate``;
* for every label with a planted effect ``e`` (combined ``1 - prod(1 - e)``), a
  delivered message adds an 'App Launched' on each local day ``1..retention_days``
  after the send with that probability.

Every draw is a hash of (seed, message_key, field): the answer to a message does not
depend on the other messages in the batch, and re-sending the same key gives the same
answer.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from engagelab.errors import ValidationError
from engagelab.simulate import _rng
from engagelab.simulate._behaviour import empty_events, events_table, session_seconds
from engagelab.simulate._catalog import CHANNEL_RATES, PRODUCTS, local_to_utc_us
from engagelab.simulate._population import ZONES, Population

__all__ = ["CHURNED_VIEW_FACTOR", "HOUR_FLOOR", "HOUR_SIGMA", "MESSAGE_COLUMNS", "respond"]

MESSAGE_COLUMNS = (
    "user_id",
    "campaign_id",
    "variant",
    "channel",
    "send_ts",
    "labels",
    "message_key",
)
HOUR_FLOOR = 0.35
HOUR_SIGMA = 2.0
CHURNED_VIEW_FACTOR = 0.3
DELIVERED, VIEWED, CLICKED = 5, 6, 7
LAUNCH, CHARGE = 0, 4
_PRICES = np.array([p for _, _, p in PRODUCTS])
_PRODUCT_NAMES = pa.array([p for p, _, _ in PRODUCTS])
_PRODUCT_CATS = pa.array([c for _, c, _ in PRODUCTS])
_EPOCH_DAY_US = 86_400 * 1_000_000


def hour_factor(local_hour: np.ndarray, preferred_hour: np.ndarray) -> np.ndarray:
    """Multiplier on the view probability for a send at ``local_hour`` (float hours).

    >>> float(hour_factor(np.array([20.5]), np.array([20]))[0])
    1.0
    >>> round(float(hour_factor(np.array([8.5]), np.array([20]))[0]), 3)
    0.35
    """
    d = np.abs(np.mod(local_hour - (preferred_hour + 0.5) + 12.0, 24.0) - 12.0)
    return HOUR_FLOOR + (1.0 - HOUR_FLOOR) * np.exp(-(d**2) / (2.0 * HOUR_SIGMA**2))


def _user_index(pop: Population, user_id: pd.Series) -> np.ndarray:
    """0-based index of each id, -1 for ids that are not users of this world."""
    s = user_id.astype("string")
    ok = s.str.fullmatch(r"u\d{7}").fillna(False).to_numpy(dtype=bool)
    out = np.full(len(s), -1, dtype=np.int64)
    if ok.any():
        num = s[ok].str.slice(1).astype("int64").to_numpy() - 1
        out[np.flatnonzero(ok)] = np.where((num >= 0) & (num < pop.config.n_users), num, -1)
    return out


def _local_time(
    pop: Population, user: np.ndarray, send_us: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(local day index from ``start``, local hour as a float) of each send, via zoneinfo."""
    start_day = pop.config.start_date.toordinal() - 719_163  # days since 1970-01-01
    day = np.empty(user.size, dtype=np.int64)
    hour = np.empty(user.size, dtype=np.float64)
    zone = pop.zone[user]
    for z in np.unique(zone):
        m = zone == z
        local = pd.DatetimeIndex(pd.to_datetime(send_us[m], unit="us", utc=True)).tz_convert(
            ZONES[z]
        )
        local_us = local.tz_localize(None).as_unit("us").asi8
        d = np.floor_divide(local_us, _EPOCH_DAY_US)
        day[m] = d - start_day
        hour[m] = (local_us - d * _EPOCH_DAY_US) / 3.6e9
    return day, hour


def _check(messages: pd.DataFrame) -> None:
    if not isinstance(messages, pd.DataFrame):
        raise ValidationError("messages", type(messages).__name__, "must be a pandas DataFrame")
    missing = [c for c in MESSAGE_COLUMNS if c not in messages.columns]
    if missing:
        raise ValidationError(
            "messages columns", missing, "must include " + ", ".join(MESSAGE_COLUMNS)
        )
    bad = sorted(set(messages["channel"].dropna().unique()) - set(CHANNEL_RATES))
    if bad or messages["channel"].isna().any():
        raise ValidationError(
            "channel", bad[0] if bad else None, "must be one of " + ", ".join(CHANNEL_RATES)
        )
    if messages["message_key"].isna().any():
        raise ValidationError("message_key", None, "must be a non-empty string on every message")
    if messages["send_ts"].isna().any():
        raise ValidationError("send_ts", None, "must be a UTC timestamp on every message")


def respond(
    pop: Population, variant_effects: Mapping[str, Mapping[str, float]], messages: pd.DataFrame
) -> pa.Table:
    """The events users produce in answer to ``messages`` (see the module docstring)."""
    _check(messages)
    cfg = pop.config
    user_all = _user_index(pop, messages["user_id"])
    rows = np.flatnonzero(user_all >= 0)
    if rows.size == 0:
        return empty_events()
    msg = messages.iloc[rows]
    user = user_all[rows]
    send = pd.DatetimeIndex(pd.to_datetime(msg["send_ts"], utc=True)).as_unit("us").asi8
    text = {c: _strings(msg[c]) for c in ("campaign_id", "variant", "channel", "message_key")}
    key = _rng.string_key(_rng.seed_key(cfg.seed, "respond"), text["message_key"])
    h1, h2, h3, h4 = (_rng.field_key(key, f) for f in (1, 2, 3, 4))
    channel = text["channel"].to_numpy(zero_copy_only=False)
    rates = np.zeros((rows.size, 3))
    reachable = np.zeros(rows.size, dtype=bool)
    for ch in np.unique(channel):
        m = channel == ch
        rates[m] = CHANNEL_RATES[ch]
        reachable[m] = pop.reachable(ch)[user[m]]
    day, hour = _local_time(pop, user, send)
    churned = day >= pop.churn_day[user]
    mult = np.ones(rows.size)
    if variant_effects:
        campaign = text["campaign_id"].fill_null("").to_numpy(zero_copy_only=False)
        variant = text["variant"].fill_null("").to_numpy(zero_copy_only=False)
        for c, effects in variant_effects.items():
            in_campaign = campaign == c
            for v, factor in effects.items():
                mult[in_campaign & (variant == v)] = factor
    p_view = (
        rates[:, 1]
        * hour_factor(hour, pop.preferred_hour[user])
        * np.where(churned, CHURNED_VIEW_FACTOR, 1.0)
    )
    delivered = reachable & (_rng.uniform32(h1, True) < rates[:, 0])
    viewed = delivered & (_rng.uniform32(h1, False) < p_view)
    clicked = viewed & (_rng.uniform32(h2, True) < np.minimum(1.0, rates[:, 2] * mult))
    converted = clicked & (_rng.uniform32(h2, False) < cfg.conversion_rate)

    t_deliv = send + np.round((2.0 - 20.0 * np.log1p(-_rng.uniform32(h3, True))) * 1e6).astype(
        np.int64
    )
    t_view = t_deliv + np.round((1.0 - 1200.0 * np.log1p(-_rng.uniform32(h3, False))) * 1e6).astype(
        np.int64
    )
    t_click = t_view + np.round((3.0 - 40.0 * np.log1p(-_rng.uniform32(h4, True))) * 1e6).astype(
        np.int64
    )
    t_conv = t_click + np.round((30.0 - 480.0 * np.log1p(-_rng.uniform32(h4, False))) * 1e6).astype(
        np.int64
    )

    parts: list[
        tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]
    ] = []  # (msg row, kind, ts, id key)
    for mask, code, when in (
        (delivered, DELIVERED, t_deliv),
        (viewed, VIEWED, t_view),
        (clicked, CLICKED, t_click),
        (converted, CHARGE, t_conv),
    ):
        rows_k = np.flatnonzero(mask)
        parts.append(
            (
                rows_k,
                np.full(rows_k.size, code),
                when[rows_k],
                _rng.field_key(key[rows_k], 50 + code),
            )
        )
    labels = _label_array(msg["labels"])
    parts.append(_retention(pop, cfg.label_effects, labels, user, key, day, delivered))

    i = np.concatenate([p[0] for p in parts])
    kind = np.concatenate([p[1] for p in parts])
    ts = np.concatenate([p[2] for p in parts])
    ids = np.concatenate([p[3] for p in parts])
    order = np.lexsort((ts, i))
    i, kind, ts, ids = i[order], kind[order], ts[order], ids[order]

    notif = kind >= DELIVERED
    charge = kind == CHARGE
    product = np.floor(_rng.uniform32(_rng.field_key(key[i], 5), True) * len(PRODUCTS)).astype(
        np.int64
    )
    revenue = np.round(
        _PRICES[product] * (1 + (_rng.uniform32(_rng.field_key(key[i], 5), False) < 0.2)), 2
    )
    take = pa.array(i, mask=~notif)

    return events_table(
        user=pop.ids(user[i]),
        kind=kind,
        ts=ts,
        event_id=_rng.hex16(ids),
        product=_PRODUCT_NAMES.take(pa.array(product, mask=~charge)),
        category=_PRODUCT_CATS.take(pa.array(product, mask=~charge)),
        revenue=pa.array(revenue, mask=~charge),
        campaign_id=text["campaign_id"].take(take),
        variant=text["variant"].take(take),
        channel=text["channel"].take(take),
        labels=labels.take(take),
        message_key=text["message_key"].take(take),
    )


def _strings(column: pd.Series) -> pa.Array:
    """A message column as a pyarrow string array (non-strings rendered with ``str``)."""
    try:
        return pa.array(column, type=pa.string(), from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return pa.array(
            [None if v is None or (np.ndim(v) == 0 and pd.isna(v)) else str(v) for v in column],
            type=pa.string(),
        )


def _label_array(labels: pd.Series) -> pa.ListArray:
    """The labels column as list<string>; a bare string counts as a one-label list."""
    try:
        return pa.array(labels, type=pa.list_(pa.string()), from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        pass
    out: list[list[str] | None] = []
    for lab in labels:
        if lab is None or (np.ndim(lab) == 0 and not isinstance(lab, str) and pd.isna(lab)):
            out.append(None)
        elif isinstance(lab, str):
            out.append([lab])
        else:
            out.append([str(x) for x in lab])
    return pa.array(out, type=pa.list_(pa.string()))


def _label_probability(effects: Mapping[str, float], labels: pa.ListArray) -> np.ndarray:
    """Per message ``1 - prod(1 - effect)`` over its distinct labels with a planted effect."""
    p = np.zeros(len(labels))
    if not effects or len(labels) == 0:
        return p
    names = pa.array(list(effects), type=pa.string())
    flat = pc.index_in(pc.list_flatten(labels), value_set=names).to_numpy(zero_copy_only=False)
    parent = pc.list_parent_indices(labels).to_numpy()
    hit = ~np.isnan(flat.astype(np.float64))
    pair = np.unique(parent[hit].astype(np.int64) * len(names) + flat[hit].astype(np.int64))
    log_stay = np.log1p(-np.array(list(effects.values())))
    stay = np.bincount(pair // len(names), weights=log_stay[pair % len(names)], minlength=p.size)
    return np.maximum(-np.expm1(stay), 0.0)


def _retention(
    pop: Population,
    effects: Mapping[str, float],
    labels: pa.ListArray,
    user: np.ndarray,
    key: np.ndarray,
    day: np.ndarray,
    delivered: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Extra 'App Launched' events planted by label effects on retention."""
    p = _label_probability(effects, labels)
    rows = np.flatnonzero(delivered & (p > 0))
    horizon = pop.config.retention_days
    if rows.size == 0:
        empty = np.empty(0, dtype=np.int64)
        return empty, empty, empty, np.empty(0, dtype=np.uint64)
    k = np.arange(1, horizon + 1)
    m = np.repeat(rows, horizon)
    kk = np.tile(k, rows.size)
    h = _rng.field_key(key[m], 1000 + kk)
    hit = _rng.uniform32(h, True) < p[m]
    m, kk, h = m[hit], kk[hit], h[hit]
    g = _rng.field_key(h, 1)
    u = user[m]
    sec = session_seconds(
        pop.preferred_hour[u],
        pop.focus[u],
        _rng.uniform32(h, False),
        _rng.uniform32(g, True),
        _rng.normal(_rng.field_key(h, 2)),
    )
    ts = local_to_utc_us(ZONES, pop.config.start_date, pop.zone[u], day[m] + kk, sec)
    return m, np.full(m.size, LAUNCH), ts, _rng.field_key(h, 3)
