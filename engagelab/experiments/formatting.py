"""How p-values and probabilities are written for people, the same on every surface.

The text repr and HTML of :class:`~engagelab.experiments.ExperimentResult`, the
``engagelab experiment analyze`` table, the SRM check and the winner reasons all go
through these two functions, so a figure reads the same wherever it is shown:

- :func:`format_p`: a p-value, never ``0``. A p-value below the smallest float
  (about 1e-308, where ``p`` itself underflows) is written from its ``log10_p``;
  with no finite logarithm to go on it is ``< 1e-300``.
- :func:`format_probability`: a probability such as P(beat control) or P(best), with
  four decimals, never ``1`` or ``0``: ``> 0.9999`` and ``< 0.0001`` at the ends.

Both write ``n/a`` for a missing (NaN or None) value.

Example:
    >>> format_p(0.0, -791.504), format_p(0.0312), format_p(1e-320), format_p(0.0)
    ('3.13e-792', '0.0312', '1.00e-320', '< 1e-300')
    >>> format_probability(0.99999), format_probability(0.97314), format_probability(1e-7)
    ('> 0.9999', '0.9731', '< 0.0001')
"""

from __future__ import annotations

import math
from typing import Any

__all__ = [
    "PROBABILITY_COLUMNS",
    "PROBABILITY_DIGITS",
    "P_COLUMNS",
    "format_p",
    "format_probability",
]

#: Decimals of a probability; the ends are written ``> 0.9999`` / ``< 0.0001``.
PROBABILITY_DIGITS = 4
#: p-value columns of an analysis and the log10 column each is written from.
P_COLUMNS = {"p_value": "log10_p", "p_adjusted": "log10_p_adjusted", "seq_p": "log10_seq_p"}
#: probability columns of an analysis (written ``> 0.9999`` rather than 1).
PROBABILITY_COLUMNS = ("bayes_p_beat_control", "bayes_p_best")


def _finite(x: Any) -> float | None:
    if x is None or isinstance(x, bool):
        return None
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if not math.isnan(v) else None


def format_p(p: Any, log10_p: Any = None) -> str:
    """A p-value as text: three significant digits down to 0.001, then ``m.mme-N``.

    ``log10_p`` (when finite) is used in preference to ``p``, so a p-value that
    underflowed to 0 still prints its true size.

    >>> format_p(0.5), format_p(0.000123), format_p(float("nan")), format_p(None, -3.5)
    ('0.5', '1.23e-4', 'n/a', '3.16e-4')
    """
    lp = _finite(log10_p)
    if lp is None or math.isinf(lp):
        pv = _finite(p)
        if pv is None and lp is None:
            return "n/a"
        if pv is None or pv <= 0:
            return "< 1e-300"
        lp = math.log10(min(pv, 1.0))
    lp = min(lp, 0.0)
    if lp >= -3:
        return f"{10**lp:.3g}"
    exp = math.floor(lp)
    mant = 10 ** (lp - exp)
    if mant >= 9.995:
        mant, exp = 1.0, exp + 1
    return f"{mant:.2f}e{exp}"


def format_probability(p: Any) -> str:
    """A probability as text with four decimals; ``> 0.9999`` / ``< 0.0001`` at the ends.

    A value that would round to 1.0000 (or 0.0000) is written as a bound instead, so
    a probability is never shown as certainty.

    >>> format_probability(0.5), format_probability(0.99995), format_probability(1.0)
    ('0.5000', '> 0.9999', '> 0.9999')
    >>> format_probability(0.0), format_probability(float("nan"))
    ('< 0.0001', 'n/a')
    """
    v = _finite(p)
    if v is None:
        return "n/a"
    top = 1 - 10.0**-PROBABILITY_DIGITS
    if v >= 1 - 0.5 * 10.0**-PROBABILITY_DIGITS:
        return f"> {top:.{PROBABILITY_DIGITS}f}"
    if v < 0.5 * 10.0**-PROBABILITY_DIGITS:
        return f"< {10.0**-PROBABILITY_DIGITS:.{PROBABILITY_DIGITS}f}"
    return f"{v:.{PROBABILITY_DIGITS}f}"
