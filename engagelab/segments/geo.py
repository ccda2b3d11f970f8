"""Geofence condition: the user is within ``radius_km`` of a point.

The distance is the haversine great-circle distance on a sphere of radius
6371.0088 km (the IUGG mean Earth radius), written with plain ``RADIANS``, ``SIN``,
``COS``, ``ASIN`` and ``SQRT`` so the same SQL runs on DuckDB and Spark.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from sqlglot import exp

from engagelab.errors import SpecError, ValidationError
from engagelab.segments._values import Window
from engagelab.segments.base import Condition, Context, E, P
from engagelab.segments.events import _event_name, _window, event_scan, in_users
from engagelab.segments.filters import _only
from engagelab.validate import check_number

__all__ = ["EARTH_RADIUS_KM", "Geofence", "haversine_sql"]

EARTH_RADIUS_KM = 6371.0088


def _num(name: str, value: Any, **bounds: Any) -> float:
    try:
        return check_number(name, value, **bounds)
    except ValidationError as err:
        raise SpecError(name, value, err.allowed) from None


def haversine_sql(lat: exp.Expr, lon: exp.Expr, lat0: float, lon0: float) -> exp.Expr:
    """Great-circle distance in km from ``(lat0, lon0)`` to the columns ``(lat, lon)``."""

    def rad(e: exp.Expr) -> exp.Expr:
        return exp.Radians(this=e)

    def half_sin_sq(d: exp.Expr) -> exp.Expr:
        s = exp.Sin(this=exp.Div(this=exp.paren(d), expression=exp.Literal.number(2)))
        return exp.Mul(this=s, expression=s.copy())

    lat0_l, lon0_l = exp.Literal.number(repr(float(lat0))), exp.Literal.number(repr(float(lon0)))
    dlat = exp.Sub(this=rad(lat.copy()), expression=rad(lat0_l.copy()))
    dlon = exp.Sub(this=rad(lon.copy()), expression=rad(lon0_l.copy()))
    cos_prod = exp.Mul(this=exp.Cos(this=rad(lat0_l)), expression=exp.Cos(this=rad(lat.copy())))
    a = exp.Add(
        this=half_sin_sq(dlat), expression=exp.Mul(this=cos_prod, expression=half_sin_sq(dlon))
    )
    # clamp rounding error above 1 (ASIN would fail); LEAST ignores NULLs in DuckDB, so
    # callers also require both coordinates to be present.
    clamped = exp.Anonymous(this="LEAST", expressions=[exp.Literal.number(1), a])
    c = exp.Mul(this=exp.Literal.number(2), expression=exp.Asin(this=exp.Sqrt(this=clamped)))
    return exp.Mul(this=exp.Literal.number(repr(EARTH_RADIUS_KM)), expression=c)


@dataclass(frozen=True, repr=False)
class Geofence(Condition):
    """Within ``radius_km`` of ``(latitude, longitude)``.

    ``source='profile'`` uses the profile's ``latitude``/``longitude``; ``source='events'``
    means some event (optionally named ``event``, inside ``window``) carried
    coordinates in the event columns ``latitude``/``longitude`` within the radius.

    >>> Geofence(52.52, 13.405, 10).describe()
    'within 10 km of (52.52, 13.405) by profile location'
    >>> Geofence(91, 0, 1)
    Traceback (most recent call last):
    ...
    engagelab.errors.SpecError: latitude == 91, must be in [-90, 90]
    """

    kind: ClassVar[str] = "geofence"
    latitude: float
    longitude: float
    radius_km: float
    source: str = "profile"
    event: str | None = None
    window: Window | None = None

    def __post_init__(self) -> None:
        _num("latitude", self.latitude, low=-90, high=90)
        _num("longitude", self.longitude, low=-180, high=180)
        _num("radius_km", self.radius_km, low=0, low_open=True)
        if self.source not in ("profile", "events"):
            raise SpecError("source", self.source, "must be one of 'profile', 'events'")
        if self.source == "profile" and (self.event is not None or self.window is not None):
            raise SpecError("source", self.source, "must be 'events' when event or window is given")
        if self.event is not None:
            _event_name("event", self.event)
        _window("window", self.window)

    def predicate(self, ctx: Context) -> exp.Expr:
        table, alias = ("profiles", P) if self.source == "profile" else ("events", E)
        for name in ("latitude", "longitude"):
            kind = ctx.kind_of(table, name)
            if kind not in (None, "number"):
                raise SpecError(
                    "column", name, f"must be numeric in {table} for a geofence, not {kind}"
                )
        lat, lon = ctx.column(table, "latitude", alias), ctx.column(table, "longitude", alias)
        dist = haversine_sql(lat, lon, self.latitude, self.longitude)
        near = exp.and_(
            exp.not_(exp.Is(this=lat.copy(), expression=exp.null())),
            exp.not_(exp.Is(this=lon.copy(), expression=exp.null())),
            exp.LTE(this=dist, expression=exp.Literal.number(repr(float(self.radius_km)))),
        )
        if self.source == "profile":
            return near
        return in_users(ctx, event_scan(ctx, self.event, (), self.window).where(near))

    def describe(self) -> str:
        where = f"within {self.radius_km:g} km of ({self.latitude:g}, {self.longitude:g})"
        if self.source == "profile":
            return where + " by profile location"
        what = "any event" if self.event is None else repr(self.event)
        return (
            where
            + f" by {what} location"
            + ("" if self.window is None else " " + self.window.describe())
        )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "kind": self.kind, "latitude": self.latitude, "longitude": self.longitude,
            "radius_km": self.radius_km, "source": self.source,
        }  # fmt: skip
        if self.event is not None:
            out["event"] = self.event
        if self.window is not None:
            out["window"] = self.window.to_dict()
        return out

    @classmethod
    def _from_fields(cls, data: Any) -> Condition:
        _only(data, {"latitude", "longitude", "radius_km", "source", "event", "window"}, "geofence")
        window = None if data.get("window") is None else Window.from_dict(data["window"])
        return cls(data.get("latitude"), data.get("longitude"), data.get("radius_km"),
                   data.get("source", "profile"), data.get("event"), window)  # fmt: skip
