"""Static tables of the simulated world: cities, names, products, pages, channel rates.

Also the wall-clock to UTC conversion, done with :mod:`zoneinfo` so daylight-saving
transitions are exact.

>>> CITIES[0].name, CITIES[0].timezone
('New York', 'America/New_York')
>>> import numpy as np
>>> off = utc_offsets(["Europe/Berlin"], dt.date(2026, 3, 29), 0, 1)
>>> off[0, 0, 1], off[0, 0, 3]  # 01:00 is CET (+1 h), 03:00 is CEST (+2 h)
(np.int32(3600), np.int32(7200))
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from typing import NamedTuple

import numpy as np

__all__ = [
    "CATEGORIES",
    "CHANNEL_RATES",
    "CITIES",
    "FIRST_NAMES",
    "HOUR_WEIGHTS",
    "LAST_NAMES",
    "PAGES",
    "PRODUCTS",
    "SIGNUP_SOURCES",
    "City",
    "utc_offsets",
]


class City(NamedTuple):
    name: str
    country: str
    timezone: str
    latitude: float
    longitude: float
    weight: float  # relative share of users
    calling_code: str


CITIES: tuple[City, ...] = (
    City("New York", "US", "America/New_York", 40.7128, -74.0060, 8.0, "1"),
    City("Los Angeles", "US", "America/Los_Angeles", 34.0522, -118.2437, 6.0, "1"),
    City("Chicago", "US", "America/Chicago", 41.8781, -87.6298, 4.0, "1"),
    City("Denver", "US", "America/Denver", 39.7392, -104.9903, 2.0, "1"),
    City("Toronto", "CA", "America/Toronto", 43.6532, -79.3832, 3.0, "1"),
    City("Mexico City", "MX", "America/Mexico_City", 19.4326, -99.1332, 4.0, "52"),
    City("São Paulo", "BR", "America/Sao_Paulo", -23.5505, -46.6333, 5.0, "55"),
    City("Buenos Aires", "AR", "America/Argentina/Buenos_Aires", -34.6037, -58.3816, 3.0, "54"),
    City("London", "GB", "Europe/London", 51.5074, -0.1278, 7.0, "44"),
    City("Paris", "FR", "Europe/Paris", 48.8566, 2.3522, 5.0, "33"),
    City("Berlin", "DE", "Europe/Berlin", 52.5200, 13.4050, 5.0, "49"),
    City("Madrid", "ES", "Europe/Madrid", 40.4168, -3.7038, 3.0, "34"),
    City("Rome", "IT", "Europe/Rome", 41.9028, 12.4964, 3.0, "39"),
    City("Amsterdam", "NL", "Europe/Amsterdam", 52.3676, 4.9041, 2.0, "31"),
    City("Stockholm", "SE", "Europe/Stockholm", 59.3293, 18.0686, 1.5, "46"),
    City("Istanbul", "TR", "Europe/Istanbul", 41.0082, 28.9784, 3.0, "90"),
    City("Lagos", "NG", "Africa/Lagos", 6.5244, 3.3792, 3.0, "234"),
    City("Johannesburg", "ZA", "Africa/Johannesburg", -26.2041, 28.0473, 2.0, "27"),
    City("Cairo", "EG", "Africa/Cairo", 30.0444, 31.2357, 3.0, "20"),
    City("Dubai", "AE", "Asia/Dubai", 25.2048, 55.2708, 2.0, "971"),
    City("Mumbai", "IN", "Asia/Kolkata", 19.0760, 72.8777, 6.0, "91"),
    City("Bengaluru", "IN", "Asia/Kolkata", 12.9716, 77.5946, 4.0, "91"),
    City("Singapore", "SG", "Asia/Singapore", 1.3521, 103.8198, 2.0, "65"),
    City("Jakarta", "ID", "Asia/Jakarta", -6.2088, 106.8456, 4.0, "62"),
    City("Tokyo", "JP", "Asia/Tokyo", 35.6762, 139.6503, 6.0, "81"),
    City("Sydney", "AU", "Australia/Sydney", -33.8688, 151.2093, 3.0, "61"),
    City("Auckland", "NZ", "Pacific/Auckland", -36.8485, 174.7633, 1.0, "64"),
)

FIRST_NAMES: tuple[str, ...] = (
    "Ada",
    "Aiko",
    "Amara",
    "Ana",
    "Arjun",
    "Ben",
    "Carla",
    "Chen",
    "Diego",
    "Elif",
    "Emma",
    "Farah",
    "Felix",
    "Grace",
    "Hana",
    "Ivan",
    "Jamal",
    "Julia",
    "Kenji",
    "Lars",
    "Leila",
    "Lucas",
    "Maya",
    "Mei",
    "Nadia",
    "Noah",
    "Olu",
    "Priya",
    "Rafael",
    "Sara",
    "Sofia",
    "Tariq",
    "Thandi",
    "Tom",
    "Valentina",
    "Wei",
    "Yusuf",
    "Zara",
)
LAST_NAMES: tuple[str, ...] = (
    "Adeyemi",
    "Andersson",
    "Bauer",
    "Costa",
    "Dubois",
    "Evans",
    "Fernandez",
    "Garcia",
    "Hassan",
    "Ito",
    "Jensen",
    "Kaya",
    "Khan",
    "Kim",
    "Lopez",
    "Martin",
    "Mensah",
    "Mokoena",
    "Muller",
    "Nakamura",
    "Novak",
    "Okafor",
    "Patel",
    "Rossi",
    "Santos",
    "Schmidt",
    "Silva",
    "Singh",
    "Smith",
    "Tanaka",
    "Nguyen",
    "Wang",
    "Williams",
    "Yilmaz",
)
SIGNUP_SOURCES: tuple[str, ...] = ("organic", "paid_search", "social", "referral", "email")

#: (name, category, price)
PRODUCTS: tuple[tuple[str, str, float], ...] = (
    ("Wireless Earbuds", "Electronics", 79.0),
    ("Smart Watch", "Electronics", 199.0),
    ("Phone Case", "Electronics", 19.0),
    ("USB-C Charger", "Electronics", 29.0),
    ("Bluetooth Speaker", "Electronics", 59.0),
    ("Mystery Novel", "Books", 14.0),
    ("Cookbook", "Books", 32.0),
    ("Travel Guide", "Books", 22.0),
    ("Running Shoes", "Sports", 119.0),
    ("Yoga Mat", "Sports", 35.0),
    ("Water Bottle", "Sports", 18.0),
    ("Denim Jacket", "Fashion", 89.0),
    ("T-Shirt", "Fashion", 25.0),
    ("Sneakers", "Fashion", 95.0),
    ("Sunglasses", "Fashion", 65.0),
    ("Coffee Maker", "Home", 149.0),
    ("Scented Candle", "Home", 16.0),
    ("Desk Lamp", "Home", 45.0),
    ("Throw Blanket", "Home", 39.0),
    ("Face Cream", "Beauty", 28.0),
    ("Shampoo", "Beauty", 12.0),
    ("Perfume", "Beauty", 85.0),
    ("Board Game", "Toys", 42.0),
    ("Puzzle", "Toys", 21.0),
)
CATEGORIES: tuple[str, ...] = tuple(sorted({c for _, c, _ in PRODUCTS}))

#: (url, weight) of 'Page Viewed' events.
PAGES: tuple[tuple[str, float], ...] = (
    ("/", 10.0),
    ("/search", 5.0),
    ("/offers", 3.0),
    ("/cart", 2.0),
    ("/account", 1.5),
    ("/help", 0.5),
    *((f"/category/{c.lower()}", 2.0) for c in CATEGORIES),
)

#: Relative weight of each local hour (0..23) as a preferred hour and as the hour of
#: unfocused sessions: quiet nights, morning, lunch and a strong evening peak.
HOUR_WEIGHTS = np.array(
    [
        0.5,
        0.3,
        0.15,
        0.1,
        0.1,
        0.2,
        0.8,
        2.0,
        2.5,
        1.5,
        1.2,
        1.3,
        2.2,
        1.8,
        1.0,
        1.0,
        1.1,
        1.5,
        2.2,
        3.0,
        3.5,
        3.2,
        2.2,
        1.0,
    ]
)

#: Per channel: (P(delivered | reachable), P(viewed | delivered) at the preferred hour,
#: P(clicked | viewed) before variant effects).
CHANNEL_RATES: dict[str, tuple[float, float, float]] = {
    "push": (0.92, 0.30, 0.20),
    "in_app": (0.95, 0.50, 0.15),
    "app_inbox": (0.98, 0.15, 0.20),
    "native_display": (0.98, 0.40, 0.10),
    "web_push": (0.85, 0.20, 0.15),
    "web_popup": (1.00, 0.60, 0.08),
    "web_exit_intent": (1.00, 0.50, 0.06),
    "email": (0.97, 0.35, 0.12),
    "sms": (0.98, 0.90, 0.08),
    "webhook": (1.00, 0.00, 0.00),
}


def utc_offsets(zones: list[str], start: dt.date, day0: int, ndays: int) -> np.ndarray:
    """UTC offsets in seconds, shape (zones, ndays, 24), of each local wall-clock hour.

    ``out[z, i, h]`` is the offset of ``zones[z]`` at local time ``h:00`` on the date
    ``start + day0 + i``, as :mod:`zoneinfo` gives it with ``fold=0``: an hour that
    does not exist (spring forward) gets the offset before the transition, an
    ambiguous hour (fall back) its first occurrence. All zones used here change
    offset on the hour, so the offset of ``h:mm`` equals that of ``h:00``.
    """
    out = np.empty((len(zones), ndays, 24), dtype=np.int32)
    first = start + dt.timedelta(days=day0)
    for z, name in enumerate(zones):
        tz = zoneinfo.ZoneInfo(name)
        for i in range(ndays):
            date = first + dt.timedelta(days=i)
            # Fast path: the same offset at 00:00, 12:00 and 23:00 means no transition
            # that day (transitions are months apart).
            lo = _offset(tz, date, 0)
            if lo == _offset(tz, date, 23) == _offset(tz, date, 12):
                out[z, i, :] = lo
                continue
            out[z, i, :] = [_offset(tz, date, h) for h in range(24)]
    return out


def _offset(tz: zoneinfo.ZoneInfo, date: dt.date, hour: int) -> int:
    off = dt.datetime(date.year, date.month, date.day, hour, tzinfo=tz).utcoffset()
    if off is None:  # pragma: no cover - a ZoneInfo always has an offset
        raise ValueError(f"no UTC offset for {tz}")
    return int(off.total_seconds())


_EPOCH_ORDINAL = dt.date(1970, 1, 1).toordinal()


def local_to_utc_us(
    zones: list[str],
    start: dt.date,
    zone: np.ndarray,
    day: np.ndarray,
    local_seconds: np.ndarray,
) -> np.ndarray:
    """UTC microseconds of wall-clock ``local_seconds`` after midnight of ``start + day``.

    ``zone`` indexes ``zones``; arrays are aligned. The offset of each local hour comes
    from :func:`utc_offsets`, computed only for the day range present.
    """
    day = np.asarray(day, dtype=np.int64)
    if day.size == 0:
        return np.empty(0, dtype=np.int64)
    d0 = int(day.min())
    table = utc_offsets(zones, start, d0, int(day.max()) - d0 + 1)
    secs = np.asarray(local_seconds, dtype=np.float64)
    hour = np.clip((secs // 3600).astype(np.int64), 0, 23)
    offset = table[np.asarray(zone, dtype=np.int64), day - d0, hour]
    midnight = (start.toordinal() - _EPOCH_ORDINAL + day) * 86400
    return ((midnight - offset) * 1_000_000 + np.round(secs * 1_000_000).astype(np.int64)).astype(
        np.int64
    )
