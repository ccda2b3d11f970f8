"""SMS encoding and segment counting (GSM 03.38 7-bit default alphabet vs UCS-2).

A message that uses only the GSM-7 default alphabet (and its extension table) is sent
in 7-bit septets: 160 per single message, 153 per segment of a concatenated message
(the user-data header takes 7). Extension characters (``^ { } \\ [ ~ ] | €`` and form
feed) take two septets, an escape and the character, and a pair is never split across
segments. Anything else forces UCS-2: 70 UTF-16 code units in one message, 67 per
segment; characters outside the Basic Multilingual Plane (most emoji) take two units
and are never split.

Example:
    >>> sms_info("Hello!")
    SmsInfo(encoding='GSM-7', units=6, segments=1)
    >>> sms_info("x" * 161)
    SmsInfo(encoding='GSM-7', units=161, segments=2)
    >>> sms_info("€" * 80)        # extension characters count double
    SmsInfo(encoding='GSM-7', units=160, segments=1)
    >>> sms_info("Grüße 😀")       # ü and ß are GSM-7, the emoji is not
    SmsInfo(encoding='UCS-2', units=8, segments=1)
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["GSM7_BASIC", "GSM7_EXTENSION", "SmsInfo", "sms_info"]

#: The GSM 03.38 default alphabet (the escape character itself excluded).
GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
#: Characters of the extension table: each takes two septets (escape + character).
GSM7_EXTENSION = frozenset("^{}\\[~]|€\f")


@dataclass(frozen=True)
class SmsInfo:
    """How an SMS text is sent: ``encoding``, its length in ``units`` (septets for GSM-7,
    UTF-16 code units for UCS-2) and the number of ``segments``."""

    encoding: str
    units: int
    segments: int


def sms_info(text: str) -> SmsInfo:
    """Encoding, length and segment count of ``text``."""
    if all(c in GSM7_BASIC or c in GSM7_EXTENSION for c in text):
        sizes = [2 if c in GSM7_EXTENSION else 1 for c in text]
        return SmsInfo("GSM-7", sum(sizes), _segments(sizes, 160, 153))
    sizes = [2 if ord(c) > 0xFFFF else 1 for c in text]
    return SmsInfo("UCS-2", sum(sizes), _segments(sizes, 70, 67))


def _segments(sizes: list[int], single: int, part: int) -> int:
    total = sum(sizes)
    if total == 0:
        return 0
    if total <= single:
        return 1
    count, used = 1, 0
    for s in sizes:
        if used + s > part:  # a two-unit character is never split across segments
            count += 1
            used = 0
        used += s
    return count
