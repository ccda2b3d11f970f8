"""How the widgets write numbers for people: durations in readable units, rates and lifts
as percentages with sensible digits, p-values, column names in words, and the colour of
a significant result (direction-aware).

>>> duration_text(3), duration_text(45), duration_text(200), duration_text(11_407)
('3 days', '6.4 weeks (45 days)', '6.6 months (200 days)', '31.2 years (11,407 days)')
>>> percent(0.05), percent(0.123456), percent(-0.0004), percent(0.5, signed=True)
('5.00%', '12.3%', '-0.040%', '+50.0%')
>>> p_text(0.0312), p_text(0.000001), p_text(0.5)
('0.031', '<0.001', '0.50')
>>> words("ci_low"), words("uplift_revenue_per_user")
('CI low', 'Uplift revenue per user')
>>> verdict(lift=-0.02, significant=True, lower_is_better=False)
'loss'
>>> verdict(lift=-0.02, significant=True, lower_is_better=True)
'win'
"""

from __future__ import annotations

import math
from typing import Any

__all__ = [
    "COLOURS",
    "duration_text",
    "percent",
    "p_text",
    "verdict",
    "words",
]

#: text colour of each verdict (win green, loss red, not significant neutral)
COLOURS = {"win": "#1a7f37", "loss": "#b00020", "neutral": "#555555"}

_ACRONYMS = {"ci": "CI", "id": "ID", "srm": "SRM", "p": "p", "n": "n", "ttl": "TTL"}


def duration_text(days: float) -> str:
    """A duration in days as days, weeks, months or years (the day count in brackets)."""
    d = float(days)
    if d < 14:
        n = math.ceil(d)
        return f"{n} day" if n == 1 else f"{n} days"
    exact = f"{math.ceil(d):,} days"
    if d < 90:
        return f"{d / 7:.1f} weeks ({exact})"
    if d < 730:
        return f"{d / 30.4375:.1f} months ({exact})"
    return f"{d / 365.25:.1f} years ({exact})"


def percent(x: Any, *, signed: bool = False) -> str:
    """A fraction as a percentage with three significant digits (at least two decimals
    below 10 %); ``"—"`` for a missing value."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "—"
    v = 100.0 * float(x)
    a = abs(v)
    decimals = 1 if a >= 10 else 2 if a >= 0.1 or a == 0 else 3
    text = f"{v:+.{decimals}f}%" if signed else f"{v:.{decimals}f}%"
    return text


def p_text(p: Any) -> str:
    """A p-value with two significant digits, ``<0.001`` below that."""
    if p is None or (isinstance(p, float) and math.isnan(p)):
        return "—"
    p = float(p)
    if p < 0.001:
        return "<0.001"
    return f"{p:.2g}" if p < 0.1 else f"{p:.2f}"


def words(name: str) -> str:
    """A snake_case column name as words: ``ci_low`` -> ``CI low``."""
    parts = [_ACRONYMS.get(p, p) for p in str(name).split("_") if p]
    if not parts:
        return str(name)
    first = parts[0] if parts[0] in _ACRONYMS.values() else parts[0].capitalize()
    return " ".join([first, *parts[1:]])


def verdict(*, lift: Any, significant: bool, lower_is_better: bool = False) -> str:
    """``'win'``, ``'loss'`` or ``'neutral'``: a significant change in the metric's good
    direction is a win, in the other direction a loss; anything not significant is neutral."""
    if not significant or lift is None or (isinstance(lift, float) and math.isnan(lift)):
        return "neutral"
    if float(lift) == 0:
        return "neutral"
    better = float(lift) < 0 if lower_is_better else float(lift) > 0
    return "win" if better else "loss"
