"""The users of a simulated world: latent traits (the truth) and their profiles table.

Every trait of user ``i`` is drawn from hashes of ``(seed, i, field)``, so user ``i`` is
the same person in a world of 100 users and in a world of a million.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from engagelab.schema import PROFILE_SCHEMA, REACH_RULES, TS_TYPE
from engagelab.simulate import _rng
from engagelab.simulate._catalog import (
    CITIES,
    FIRST_NAMES,
    HOUR_WEIGHTS,
    LAST_NAMES,
    SIGNUP_SOURCES,
    local_to_utc_us,
)
from engagelab.simulate._config import WorldConfig

__all__ = ["LEVELS", "NEVER", "SIM_PROFILE_SCHEMA", "ZONES", "Population", "user_ids"]

#: Engagement levels, indexed by ``Population.level``.
LEVELS = ("heavy", "regular", "sparse")
#: Median sessions per day, log-sd, daily churn hazard, share with a push token, share 'pro'.
_LEVEL_PARAMS = {
    "median_rate": np.array([0.8, 0.12, 0.025]),
    "rate_sd": np.array([0.35, 0.5, 0.6]),
    "hazard": np.array([0.002, 0.006, 0.015]),
    "push": np.array([0.85, 0.6, 0.45]),
    "pro": np.array([0.35, 0.15, 0.05]),
}
NEVER_CHURN_SHARE = 0.25
#: ``churn_day`` of users who never churn.
NEVER = np.iinfo(np.int32).max
ZONES: list[str] = sorted({c.timezone for c in CITIES})
_CITY_ZONE = np.array([ZONES.index(c.timezone) for c in CITIES])

SIM_PROFILE_SCHEMA = pa.schema(
    list(PROFILE_SCHEMA)
    + [
        pa.field("name", pa.string()),
        pa.field("city", pa.string()),
        pa.field("country", pa.string()),
        pa.field("plan", pa.string()),
        pa.field("age", pa.int64()),
        pa.field("signup_source", pa.string()),
        pa.field("ad_consent", pa.bool_()),  # consented to ad matching (remarketing)
    ]
)
#: Share of simulated users who consented to ads matched on their identifiers.
AD_CONSENT_SHARE = 0.7

_STREAM_USER = 1
OPTOUTS = ("optout_email", "optout_sms", "optout_push", "optout_web_push")
_KM_PER_DEGREE = 111.32


def _id_chars(index: np.ndarray) -> np.ndarray:
    n = np.asarray(index, dtype=np.int64) + 1
    chars = np.empty((n.size, 8), dtype=np.uint8)
    chars[:, 0] = ord("u")
    for pos in range(7, 0, -1):
        chars[:, pos] = 48 + n % 10
        n = n // 10
    return chars


def user_ids(index: np.ndarray) -> pa.Array:
    """Ids ``'u0000001'``... for 0-based user indices (``'u'`` and 7 digits).

    >>> user_ids(np.array([0, 41])).to_pylist()
    ['u0000001', 'u0000042']
    """
    return _rng.fixed_width_strings(_id_chars(index))


def _choice(u: np.ndarray, weights: np.ndarray) -> np.ndarray:
    cdf = np.cumsum(weights) / np.sum(weights)
    return np.minimum(np.searchsorted(cdf, u, side="right"), len(weights) - 1)


@dataclasses.dataclass
class Population:
    """Latent per-user traits, as numpy arrays indexed by user (0-based)."""

    config: WorldConfig
    city: np.ndarray
    zone: np.ndarray
    latitude: np.ndarray
    longitude: np.ndarray
    preferred_hour: np.ndarray
    focus: np.ndarray
    level: np.ndarray
    rate: np.ndarray
    weekend_factor: np.ndarray
    signup_day: np.ndarray
    churn_day: np.ndarray
    hazard: np.ndarray
    draws: dict[str, np.ndarray]
    _cache: dict[str, np.ndarray] = dataclasses.field(default_factory=dict, repr=False)

    def cached(self, name: str, build: Callable[[], np.ndarray]) -> np.ndarray:
        """A derived per-user array, built once."""
        if name not in self._cache:
            self._cache[name] = build()
        return self._cache[name]

    @classmethod
    def generate(cls, config: WorldConfig) -> Population:
        """Draw every user's traits from the config's seed."""
        n = config.n_users
        idx = np.arange(n, dtype=np.uint64)
        key = _rng.seed_key(config.seed, "users")
        base = _rng.mix64(_rng.pack(idx, 0xFFFF, 0, _STREAM_USER) ^ key)

        def u(field: int) -> np.ndarray:
            return _rng.uniform(_rng.field_key(base, field))

        def z(field: int) -> np.ndarray:
            return _rng.normal(_rng.field_key(base, field))

        city = _choice(u(1), np.array([c.weight for c in CITIES]))
        lat0 = np.array([c.latitude for c in CITIES])[city]
        lon0 = np.array([c.longitude for c in CITIES])[city]
        jitter_km = 4.0
        latitude = lat0 + z(2) * jitter_km / _KM_PER_DEGREE
        longitude = lon0 + z(3) * jitter_km / (_KM_PER_DEGREE * np.cos(np.radians(lat0)))
        preferred_hour = _choice(u(4), HOUR_WEIGHTS).astype(np.int64)
        focus = 0.45 + 0.35 * u(5)
        lu = u(6)
        level = np.where(
            lu < config.heavy_share, 0, np.where(lu < 1.0 - config.sparse_share, 1, 2)
        ).astype(np.int64)
        p = _LEVEL_PARAMS
        rate = p["median_rate"][level] * np.exp(p["rate_sd"][level] * z(7)) * config.activity
        weekend_factor = np.exp(0.35 * z(8))
        is_new = u(9) < config.new_user_share
        signup_day = np.where(
            is_new,
            np.floor(u(10) * config.days),
            -1 - np.floor(u(10) * 730),
        ).astype(np.int64)
        hazard = p["hazard"][level] * config.churn * (u(11) >= NEVER_CHURN_SHARE)
        hazard = np.minimum(hazard, 0.999)
        with np.errstate(divide="ignore", invalid="ignore"):
            life = np.floor(np.log1p(-u(12)) / np.log1p(-hazard))
        active_from = np.maximum(signup_day, 0)
        churn_day = np.where(
            hazard > 0,
            np.minimum(active_from + 1 + np.nan_to_num(life, posinf=NEVER), NEVER),
            NEVER,
        ).astype(np.int64)
        draws = {
            name: u(f)
            for f, name in enumerate(
                (
                    "email",
                    "phone",
                    "push",
                    "webpush",
                    "o_email",
                    "o_sms",
                    "o_push",
                    "o_web",
                    "plan",
                    "age",
                    "source",
                    "first",
                    "last",
                    "created",
                    "digits",
                    "web",
                    "ad",
                ),
                start=20,
            )
        }
        draws["push"] = draws["push"] < p["push"][level]
        draws["pro"] = draws["plan"] < p["pro"][level]
        return cls(
            config,
            city,
            _CITY_ZONE[city],
            latitude,
            longitude,
            preferred_hour,
            focus,
            level,
            rate,
            weekend_factor,
            signup_day,
            churn_day,
            hazard,
            draws,
        )

    @functools.cached_property
    def _id_words(self) -> np.ndarray:
        return _id_chars(np.arange(self.config.n_users)).view(np.uint64).ravel()

    def ids(self, index: np.ndarray) -> pa.Array:
        """The user-id strings of 0-based user indices (a fast gather of precomputed ids)."""
        words = self._id_words[np.asarray(index, dtype=np.int64)]
        return _rng.fixed_width_strings(words.view(np.uint8).reshape(-1, 8))

    def truth(self) -> pd.DataFrame:
        """The planted per-user truth as a DataFrame (one row per user)."""
        churn = self.churn_day.astype(np.float64)
        churn[self.churn_day >= NEVER] = np.nan
        return pd.DataFrame(
            {
                "user_id": user_ids(np.arange(self.config.n_users)).to_pandas(),
                "timezone": np.array(ZONES, dtype=object)[self.zone],
                "city": np.array([c.name for c in CITIES], dtype=object)[self.city],
                "country": np.array([c.country for c in CITIES], dtype=object)[self.city],
                "preferred_hour": self.preferred_hour,
                "focus": self.focus,
                "engagement": pd.Categorical(
                    np.array(LEVELS, dtype=object)[self.level], categories=list(LEVELS)
                ),
                "sessions_per_day": self.rate,
                "weekend_factor": self.weekend_factor,
                "signup_day": self.signup_day,
                "churn_day": churn,
                "churn_hazard": self.hazard,
            }
        )

    def profiles(self) -> pa.Table:
        """The ``profiles`` table (:data:`SIM_PROFILE_SCHEMA`)."""
        cfg, d = self.config, self.draws
        n = cfg.n_users
        idx = np.arange(n)
        ids = user_ids(idx)
        fi = pa.array(np.floor(d["first"] * len(FIRST_NAMES)).astype(np.int64))
        li = pa.array(np.floor(d["last"] * len(LAST_NAMES)).astype(np.int64))
        first, last = pa.array(FIRST_NAMES).take(fi), pa.array(LAST_NAMES).take(li)
        number = pc.cast(pa.array(idx + 1), pa.string())
        email = pc.binary_join_element_wise(
            pa.array([f.lower() for f in FIRST_NAMES]).take(fi),
            ".",
            pa.array([x.lower() for x in LAST_NAMES]).take(li),
            number,
            "@example.com",
            "",
        )
        calling = pa.array([c.calling_code for c in CITIES]).take(pa.array(self.city))
        subscriber = pc.cast(
            pa.array(200_000_000 + np.floor(d["digits"] * 7e8).astype(np.int64)), pa.string()
        )
        phone = pc.binary_join_element_wise("+", calling, subscriber, "")
        key = _rng.seed_key(cfg.seed, "tokens")
        token_hash = _rng.mix64(idx.astype(np.uint64) ^ key)
        hex_a = _rng.hex16(token_hash)
        push_token = pc.binary_join_element_wise(hex_a, _rng.hex16(_rng.mix64(token_hash)), "")
        webpush = pc.binary_join_element_wise("https://push.example.com/sub/", hex_a, "")
        install = pc.binary_join_element_wise(
            "app-", _rng.hex16(_rng.mix64(token_hash ^ np.uint64(1))), ""
        )
        visitor = pc.binary_join_element_wise(
            "web-", _rng.hex16(_rng.mix64(token_hash ^ np.uint64(2))), ""
        )

        def present(values: pa.Array, mask: np.ndarray) -> pa.Array:
            return pc.if_else(pa.array(mask), values, pa.scalar(None, pa.string()))

        flags = self.flags()
        created = self._created_at_us(d["created"])
        age = 18 + np.floor(57 * d["age"] ** 1.4).astype(np.int64)
        columns = {
            "user_id": ids,
            "email": present(email, flags["email"]),
            "phone": present(phone, flags["phone"]),
            "push_token": present(push_token, flags["push_token"]),
            "webpush_subscription": present(webpush, flags["webpush_subscription"]),
            "app_install_id": present(install, flags["app_install_id"]),
            "web_visitor_id": present(visitor, flags["web_visitor_id"]),
            **{name: pa.array(flags[name]) for name in OPTOUTS},
            "timezone": pa.array(ZONES).take(pa.array(self.zone)),
            "latitude": pa.array(self.latitude),
            "longitude": pa.array(self.longitude),
            "created_at": pa.array(created, type=TS_TYPE),
            "name": pc.binary_join_element_wise(first, last, " "),
            "city": pa.array([c.name for c in CITIES]).take(pa.array(self.city)),
            "country": pa.array([c.country for c in CITIES]).take(pa.array(self.city)),
            "plan": pc.if_else(pa.array(d["pro"]), "pro", "free"),
            "age": pa.array(age),
            "signup_source": pa.array(SIGNUP_SOURCES).take(
                pa.array(np.floor(d["source"] * len(SIGNUP_SOURCES)).astype(np.int64))
            ),
            "ad_consent": pa.array(d["ad"] < AD_CONSENT_SHARE),
        }
        return pa.Table.from_arrays(
            [columns[f.name].cast(f.type) for f in SIM_PROFILE_SCHEMA], schema=SIM_PROFILE_SCHEMA
        )

    def flags(self) -> dict[str, np.ndarray]:
        """Boolean per-user profile flags: which addresses exist and which opt-outs are set.

        Every simulated user has the app (their sessions are 'App Launched'), so every
        user has an ``app_install_id``, push token or not; about half are also web users
        (``web_visitor_id``), every web push subscriber among them.
        """
        d = self.draws
        webpush = d["webpush"] < 0.25
        return {
            "email": d["email"] < 0.85,
            "phone": d["phone"] < 0.6,
            "push_token": d["push"],
            "webpush_subscription": webpush,
            "app_install_id": np.ones(self.config.n_users, dtype=bool),
            "web_visitor_id": webpush | (d["web"] < 0.4),
            "optout_email": d["o_email"] < 0.08,
            "optout_sms": d["o_sms"] < 0.10,
            "optout_push": d["o_push"] < 0.12,
            "optout_web_push": d["o_web"] < 0.05,
        }

    def reachable(self, channel: str) -> np.ndarray:
        """Users who have one of the channel's reach fields and have not opted out of it
        (per :data:`engagelab.schema.REACH_RULES`)."""
        rule = REACH_RULES[channel]
        flags = self.flags()
        everyone = np.ones(self.config.n_users, dtype=bool)  # user_id
        ok = np.zeros(self.config.n_users, dtype=bool)
        for name in rule.fields:
            ok |= flags.get(name, everyone)
        return ok & ~flags[rule.optout] if rule.optout else ok

    def _created_at_us(self, u: np.ndarray) -> np.ndarray:
        """Users who sign up during the period are created at local midnight of their
        signup day; earlier users at a random instant of their (negative) UTC signup day."""
        start = self.config.start_date
        new = np.flatnonzero(self.signup_day >= 0)
        # a day earlier than the UTC date, so before local midnight of ``start`` everywhere
        day_us = (start.toordinal() - 719_163 + self.signup_day - 1) * 86_400_000_000
        midnight = local_to_utc_us(
            ZONES, start, self.zone[new], self.signup_day[new], np.zeros(new.size)
        )
        later = (np.round(u * 86_399) * 1_000_000).astype(np.int64)
        out = day_us + later
        out[new] = midnight
        return out
