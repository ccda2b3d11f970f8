"""Identifiers of remarketing audiences, normalised and SHA-256 hashed as the ad platforms
document (see :mod:`engagelab.delivery.remarketing` for the export files).

* e-mail: trimmed and lower-cased (both platforms);
* phone: E.164. Meta's Custom Audiences want digits only with the country code and no
  ``+`` (``"14155552671"``); Google Ads Customer Match wants E.164 with the ``+``
  (``"+14155552671"``). Spaces, dashes, brackets and a leading ``00`` are removed.
* first and last name (audience syncs, when asked for): lower-cased and trimmed; Meta also
  wants letters only (punctuation and spaces removed, accented letters kept as UTF-8).

Example:
    >>> hashed = hash_identifiers("google_ads", {"email": " Ada@Example.ORG", "phone": "+1 (415) 555-2671"})
    >>> hashed["email_sha256"][:16], hashed["phone_sha256"][:16]
    ('cfe00dde46ef9426', 'cb6880e416769253')
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from typing import Any

from engagelab.validate import check_choice

__all__ = [
    "FACEBOOK_API_SCHEMA",
    "IDENTIFIERS",
    "LAYOUTS",
    "SYNC_HEADERS",
    "hash_identifiers",
    "normalise",
    "normalise_email",
    "normalise_name",
    "normalise_phone",
    "sha256_hex",
]

#: CSV header of each identifier, per platform.
LAYOUTS: dict[str, dict[str, str]] = {
    "facebook_audience": {"email": "email", "phone": "phone"},
    "google_ads": {"email": "Email", "phone": "Phone"},
}
#: Meta Marketing API schema names of the same identifiers (users endpoint ``schema``).
FACEBOOK_API_SCHEMA = {"email": "EMAIL", "phone": "PHONE"}
#: Identifiers an audience sync can carry (names only next to an e-mail or phone).
IDENTIFIERS = ("email", "phone", "first_name", "last_name")
#: Headers of the audience sync files: Meta's Marketing API schema names (the customer-file
#: upload takes them too) and Google Ads Customer Match's upload template headers.
SYNC_HEADERS: dict[str, dict[str, str]] = {
    "facebook_audience": {
        "email": "EMAIL",
        "phone": "PHONE",
        "first_name": "FN",
        "last_name": "LN",
    },
    "google_ads": {
        "email": "Email",
        "phone": "Phone",
        "first_name": "First Name",
        "last_name": "Last Name",
    },
}
_NON_DIGITS = re.compile(r"\D")


def normalise_email(value: Any) -> str | None:
    """Trimmed, lower-cased e-mail; None if empty or not an address."""
    if not isinstance(value, str):
        return None
    v = value.strip().lower()
    return v if "@" in v else None


def normalise_phone(value: Any, *, plus: bool = True) -> str | None:
    """E.164 digits (country code first), with a leading ``+`` if ``plus``; None if empty."""
    if not isinstance(value, str):
        return None
    digits = _NON_DIGITS.sub("", value.strip())
    if value.strip().startswith("00") or digits.startswith("00"):
        digits = digits[2:]
    digits = digits.lstrip("0")
    if len(digits) < 7:
        return None
    return ("+" + digits) if plus else digits


def normalise_name(value: Any, *, letters_only: bool = False) -> str | None:
    """Trimmed, lower-cased name; with ``letters_only`` (Meta) every non-letter is dropped.

    >>> normalise_name("  Mary-Ann "), normalise_name("  Mary-Ann ", letters_only=True)
    ('mary-ann', 'maryann')
    """
    if not isinstance(value, str):
        return None
    v = value.strip().lower()
    if letters_only:
        v = "".join(ch for ch in v if ch.isalpha())
    return v or None


def sha256_hex(value: str) -> str:
    """Lower-case hex SHA-256 of the UTF-8 text."""
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


def hash_identifiers(
    channel: str, profile: Mapping[str, Any], identifiers: Sequence[str] = ("email", "phone")
) -> dict[str, str | None]:
    """``{'email_sha256': ..., 'phone_sha256': ...}`` for one profile, per the platform."""
    check_choice("channel", channel, list(LAYOUTS))
    out: dict[str, str | None] = {}
    for ident in identifiers:
        v = normalise(channel, ident, profile.get(ident))
        out[f"{ident}_sha256"] = sha256_hex(v) if v else None
    return out


def normalise(channel: str, identifier: str, value: Any) -> str | None:
    """``value`` of ``identifier`` normalised as ``channel``'s platform documents it."""
    if identifier == "email":
        return normalise_email(value)
    if identifier == "phone":
        return normalise_phone(value, plus=channel == "google_ads")
    check_choice("identifier", identifier, list(IDENTIFIERS))
    return normalise_name(value, letters_only=channel == "facebook_audience")
