"""Segments: serialisable audience definitions compiled to SQL (DuckDB dialect; Spark via sqlglot).

Build conditions with the helpers and combine them with ``&``, ``|`` and ``~``::

    >>> import datetime as dt
    >>> from engagelab.segments import Segment, did, prop
    >>> seg = Segment(did("Charged", at_least=2, within_days=30) & prop("city").matches("^Ber")
    ...               & ~did("Uninstalled"))
    >>> print(seg.describe())
    did 'Charged' ≥ 2 times in the last 30 days AND city matches '^Ber' AND did not do 'Uninstalled'
    >>> sql = seg.to_sql(at=dt.datetime(2026, 1, 31, tzinfo=dt.UTC))
    >>> sql.startswith('SELECT DISTINCT "p"."user_id" FROM "profiles" AS "p"')
    True

Semantics: the universe is ``profiles`` (event user ids without a profile are in no
segment); every condition is true or false for each profile, a filter on a missing
property being false (except ``not_exists``); ``~c`` is the complement within
profiles, so users with no events satisfy "did not do E". Regular expressions are
RE2 (linear time): backreferences and lookarounds are refused when the spec is built.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from engagelab.exports import lazy_exports

if TYPE_CHECKING:
    from engagelab.segments._values import Window
    from engagelab.segments.base import And, Condition, Not, Or
    from engagelab.segments.builders import (
        did,
        did_not,
        first_time,
        in_segment,
        last_time,
        near,
        not_in_segment,
        same_property,
        was_sent,
        window,
    )
    from engagelab.segments.events import Aggregate, ConstantProperty, DidEvent, FirstOrLast
    from engagelab.segments.filters import OPERATORS, Prop, PropertyFilter, prop
    from engagelab.segments.geo import EARTH_RADIUS_KM, Geofence
    from engagelab.segments.segment import SENT_EVENT, InSegment, Segment, SentLabel

#: Exported names, imported from their modules on first use.
_EXPORTS = {
    "Aggregate": "engagelab.segments.events",
    "And": "engagelab.segments.base",
    "Condition": "engagelab.segments.base",
    "ConstantProperty": "engagelab.segments.events",
    "DidEvent": "engagelab.segments.events",
    "EARTH_RADIUS_KM": "engagelab.segments.geo",
    "FirstOrLast": "engagelab.segments.events",
    "Geofence": "engagelab.segments.geo",
    "InSegment": "engagelab.segments.segment",
    "Not": "engagelab.segments.base",
    "OPERATORS": "engagelab.segments.filters",
    "Or": "engagelab.segments.base",
    "Prop": "engagelab.segments.filters",
    "PropertyFilter": "engagelab.segments.filters",
    "SENT_EVENT": "engagelab.segments.segment",
    "Segment": "engagelab.segments.segment",
    "SentLabel": "engagelab.segments.segment",
    "Window": "engagelab.segments._values",
    "did": "engagelab.segments.builders",
    "did_not": "engagelab.segments.builders",
    "first_time": "engagelab.segments.builders",
    "in_segment": "engagelab.segments.builders",
    "last_time": "engagelab.segments.builders",
    "near": "engagelab.segments.builders",
    "not_in_segment": "engagelab.segments.builders",
    "prop": "engagelab.segments.filters",
    "same_property": "engagelab.segments.builders",
    "was_sent": "engagelab.segments.builders",
    "window": "engagelab.segments.builders",
}

__all__ = [
    "EARTH_RADIUS_KM",
    "OPERATORS",
    "SENT_EVENT",
    "Aggregate",
    "And",
    "Condition",
    "ConstantProperty",
    "DidEvent",
    "FirstOrLast",
    "Geofence",
    "InSegment",
    "Not",
    "Or",
    "Prop",
    "PropertyFilter",
    "Segment",
    "SentLabel",
    "Window",
    "did",
    "did_not",
    "first_time",
    "in_segment",
    "last_time",
    "near",
    "not_in_segment",
    "prop",
    "same_property",
    "was_sent",
    "window",
]

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
