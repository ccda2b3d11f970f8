"""Baseline behaviour: sessions, page views and the product funnel, day by day.

For each user and local day ``d`` the number of sessions is
``Poisson(rate * weekend_factor(d))`` (plus one guaranteed session on the signup day),
zero before signup and from the churn day on. A session is an 'App Launched' at a
local time near the user's preferred hour (with probability ``focus``) or anywhere in
the waking day, followed by Poisson(0.6) 'Page Viewed' events and possibly the funnel
'Product Viewed' (35%) -> 'Added to Cart' (30%) -> 'Charged' (35%). Every draw is a
hash of (seed, user, day, session, field), so any day can be generated on its own and
gives the same rows as inside a longer run. Sessions never cross local midnight.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from engagelab.schema import EVENT_SCHEMA, TS_TYPE
from engagelab.simulate import _rng
from engagelab.simulate._catalog import HOUR_WEIGHTS, PAGES, PRODUCTS, local_to_utc_us
from engagelab.simulate._population import ZONES, Population

__all__ = [
    "EVENT_NAMES",
    "SIM_EVENT_SCHEMA",
    "baseline_events",
    "empty_events",
    "events_table",
    "session_seconds",
]

SIM_EVENT_SCHEMA = pa.schema(
    list(EVENT_SCHEMA)
    + [
        pa.field("url", pa.string()),
        pa.field("product", pa.string()),
        pa.field("category", pa.string()),
        pa.field("revenue", pa.float64()),
        pa.field("campaign_id", pa.string()),
        pa.field("variant", pa.string()),
        pa.field("channel", pa.string()),
        pa.field("labels", pa.list_(pa.string())),
        pa.field("message_key", pa.string()),
    ]
)

EVENT_NAMES = (
    "App Launched",
    "Page Viewed",
    "Product Viewed",
    "Added to Cart",
    "Charged",
    "Notification Delivered",
    "Notification Viewed",
    "Notification Clicked",
)
LAUNCH, PAGE, PRODUCT, CART, CHARGE = 0, 1, 2, 3, 4
_NAMES = pa.array(EVENT_NAMES)
_URLS = pa.array([p for p, _ in PAGES])
_URL_W = np.array([w for _, w in PAGES])
_URL_CDF = np.cumsum(_URL_W) / _URL_W.sum()
_PRODUCT_NAMES = pa.array([p for p, _, _ in PRODUCTS])
_PRODUCT_CATS = pa.array([c for _, c, _ in PRODUCTS])
_PRICES = np.array([p for _, _, p in PRODUCTS])
_HOUR_CDF = np.cumsum(HOUR_WEIGHTS) / HOUR_WEIGHTS.sum()
_STREAM_DAY, _STREAM_SESSION = 2, 3
_MAX_SESSIONS = 40
PAGE_VIEWS_MEAN = 0.6
FUNNEL = (0.35, 0.30, 0.35)
_HOUR_SD = 0.6


def session_seconds(
    pref: np.ndarray, focus: np.ndarray, u1: np.ndarray, u2: np.ndarray, z: np.ndarray
) -> np.ndarray:
    """Local seconds after midnight of a session start.

    With probability ``focus`` (decided by ``u1``) the time is normal around the middle
    of the preferred hour (sd 0.6 h, wrapped around midnight); otherwise the hour follows
    the background :data:`HOUR_WEIGHTS` and the minute is uniform (from ``u2``).
    """
    focused = u1 < focus
    around = np.mod(pref + 0.5 + _HOUR_SD * z, 24.0)
    background_u = np.where(focused, 0.0, (u1 - focus) / np.maximum(1.0 - focus, 1e-12))
    hour = np.minimum(np.searchsorted(_HOUR_CDF, background_u, side="right"), 23)
    background = hour + u2
    return np.where(focused, around, background) * 3600.0


class _Batch:
    """Per-user arrays of the users alive at some point of a batch of days."""

    def __init__(self, pop: Population, day0: int, day1: int, key: np.uint64):
        n = pop.config.n_users
        self.users = np.flatnonzero((pop.signup_day < day1) & (pop.churn_day > day0))
        base = pop.cached("day_base", lambda: _rng.pack(np.arange(n), 0, 0, _STREAM_DAY) ^ key)
        self.base = base[self.users]
        self.signup = pop.signup_day[self.users]
        self.churn = pop.churn_day[self.users]
        self.lam = {
            False: pop.rate,
            True: pop.cached("lam_weekend", lambda: pop.rate * pop.weekend_factor),
        }
        self.p0 = {
            False: pop.cached("p0_weekday", lambda: np.exp(-pop.rate))[self.users],
            True: np.exp(-self.lam[True][self.users]),
        }

    def day_counts(self, day: int, weekend: bool) -> tuple[np.ndarray, np.ndarray]:
        """(users, session counts) of one local day, for users with at least one session."""
        u = _rng.uniform(_rng.mix64(self.base ^ np.uint64((day & 0xFFFF) << 16)))
        first = self.signup == day
        alive = (self.signup <= day) & (self.churn > day)
        sel = np.flatnonzero(((u > self.p0[weekend]) & alive) | first)
        users = self.users[sel]
        count = (
            np.minimum(_rng.poisson(u[sel], self.lam[weekend][users]), _MAX_SESSIONS) + first[sel]
        )
        return users, count


def baseline_events(pop: Population, day0: int, day1: int) -> pa.Table:
    """All baseline events of local days ``day0 <= d < day1`` (days from ``start``)."""
    cfg = pop.config
    key = _rng.seed_key(cfg.seed, "baseline")
    batch = _Batch(pop, day0, day1, key)
    users, days, counts = [], [], []
    for day in range(day0, day1):
        weekday = (cfg.start_date.toordinal() + day) % 7  # 0 = Sunday
        uu, cc = batch.day_counts(day, weekday in (0, 6))
        users.append(uu)
        counts.append(cc)
        days.append(np.full(uu.size, day, dtype=np.int64))
    if not users:
        return empty_events()
    uu, dd, count = np.concatenate(users), np.concatenate(days), np.concatenate(counts)

    # Sessions.
    s_user = np.repeat(uu, count)
    s_day = np.repeat(dd, count)
    s_slot = np.arange(s_user.size) - np.repeat(np.cumsum(count) - count, count)
    s_key = _rng.mix64(_rng.pack(s_user, s_day, s_slot, _STREAM_SESSION) ^ key)
    h1, h2 = _rng.field_key(s_key, 1), _rng.field_key(s_key, 2)
    t0 = session_seconds(
        pop.preferred_hour[s_user],
        pop.focus[s_user],
        _rng.uniform32(h1, True),
        _rng.uniform32(h1, False),
        _rng.normal(s_key),
    )
    npv = _rng.poisson(_rng.uniform32(h2, True), np.full(s_user.size, PAGE_VIEWS_MEAN), cap=20)
    f = _rng.uniform32(h2, False)
    funnel = (f < FUNNEL[0]).astype(np.int64)
    funnel += f < FUNNEL[0] * FUNNEL[1]
    funnel += f < FUNNEL[0] * FUNNEL[1] * FUNNEL[2]
    product = np.zeros(s_user.size, dtype=np.int64)
    shop = np.flatnonzero(funnel > 0)
    product[shop] = np.floor(_rng.uniform32(_rng.field_key(s_key[shop], 3), True) * len(PRODUCTS))
    n_ev = 1 + npv + funnel

    # Events.
    e_sess = np.repeat(np.arange(s_user.size), n_ev)
    e_first = np.repeat(np.cumsum(n_ev) - n_ev, n_ev)
    pos = np.arange(e_sess.size) - e_first
    e_npv = npv[e_sess]
    kind = np.where(pos == 0, LAUNCH, np.where(pos <= e_npv, PAGE, PRODUCT + pos - e_npv - 1))
    e_key = _rng.field_key(s_key[e_sess], 100 + pos)
    # Gaps in whole microseconds, summed as integers: exact, so an event's time does not
    # depend on how many events precede it in the batch.
    gap = np.round(1e6 * (5.0 - 60.0 * np.log1p(-_rng.uniform32(e_key, True)))).astype(np.int64)
    gap[pos == 0] = 0
    csum = np.cumsum(gap)
    delta = csum - csum[e_first]
    span = delta[np.cumsum(n_ev) - 1] / 1e6
    t0 = np.minimum(t0, 86_399.0 - span)
    s_utc = local_to_utc_us(ZONES, cfg.start_date, pop.zone[s_user], s_day, t0)
    ts = s_utc[e_sess] + delta

    is_page = kind == PAGE
    low = _rng.uniform32(e_key, False)
    page = np.searchsorted(_URL_CDF, low, side="right")
    page = np.minimum(page, len(PAGES) - 1)
    in_funnel = kind >= PRODUCT
    e_product = product[e_sess]
    is_charge = kind == CHARGE
    qty = 1 + (low < 0.2).astype(np.int64) + (low < 0.05)
    revenue = np.round(_PRICES[e_product] * qty, 2)
    return events_table(
        user=pop.ids(s_user[e_sess]),
        kind=kind,
        ts=ts,
        event_id=_rng.hex16(e_key),
        url=_URLS.take(pa.array(page, mask=~is_page)),
        product=_PRODUCT_NAMES.take(pa.array(e_product, mask=~in_funnel)),
        category=_PRODUCT_CATS.take(pa.array(e_product, mask=~in_funnel)),
        revenue=pa.array(revenue, mask=~is_charge),
    )


def events_table(
    *, user: pa.Array, kind: np.ndarray, ts: np.ndarray, event_id: pa.Array, **columns: pa.Array
) -> pa.Table:
    """Assemble an events table with the full :data:`SIM_EVENT_SCHEMA` (absent columns null)."""
    n = len(user)
    arrays = {
        "user_id": user,
        "event": _NAMES.take(pa.array(kind)),
        "ts": pa.array(ts, type=TS_TYPE),
        "event_id": event_id,
        **columns,
    }
    out = []
    for field in SIM_EVENT_SCHEMA:
        arr = arrays.get(field.name)
        out.append(pa.nulls(n, field.type) if arr is None else arr.cast(field.type))
    return pa.Table.from_arrays(out, schema=SIM_EVENT_SCHEMA)


def empty_events() -> pa.Table:
    """An events table with no rows and the full schema."""
    return SIM_EVENT_SCHEMA.empty_table()
