"""Exception and warning types raised by engagelab.

Every error engagelab raises derives from :class:`EngagelabError`; leaves also
derive from the matching builtin so ``except ValueError`` keeps working.

Example:
    >>> from engagelab.errors import ValidationError
    >>> try:
    ...     raise ValidationError("alpha", 1.2, "must be in (0, 1)")
    ... except ValueError as exc:
    ...     print(exc)
    alpha == 1.2, must be in (0, 1)
"""

from __future__ import annotations

import dataclasses
from typing import Any

__all__ = [
    "ConcurrencyError",
    "EngagelabError",
    "EngagelabWarning",
    "FrozenSpecError",
    "MissingExtraError",
    "QueryError",
    "SpecError",
    "UnknownEventWarning",
    "ValidationError",
    "WorkspaceError",
]


class EngagelabError(Exception):
    """Base class of every error raised by engagelab."""


class EngagelabWarning(UserWarning):
    """Base class of every warning emitted by engagelab."""


class UnknownEventWarning(EngagelabWarning):
    """A segment names an event the store does not hold (a typo counts 0 users)."""


class ValidationError(EngagelabError, ValueError):
    """A user-supplied value is not allowed.

    Carries the ``field`` that is wrong, the ``value`` given and what is ``allowed``,
    and renders them as one line: ``"alpha == 1.2, must be in (0, 1)"``.
    """

    def __init__(
        self, field: str, value: Any = None, allowed: str = "", *, message: str | None = None
    ):
        self.field = field
        self.value = value
        self.allowed = allowed
        if message is None:
            message = f"{field} == {value!r}, {allowed}" if allowed else f"{field} == {value!r}"
        super().__init__(message)


class SpecError(ValidationError):
    """A spec (segment, campaign, experiment, job) is malformed."""


class FrozenSpecError(EngagelabError, dataclasses.FrozenInstanceError, TypeError):
    """A spec, or a mapping inside one, was changed in place.

    Specs are frozen values: build a changed copy with their ``.replace()`` method. Caught
    by ``except dataclasses.FrozenInstanceError`` (an ``AttributeError``) and by
    ``except TypeError`` (what a read-only mapping raises).
    """


class QueryError(EngagelabError, ValueError):
    """A SQL query failed in the engine (syntax error, unknown column, ...)."""


class WorkspaceError(EngagelabError, RuntimeError):
    """The workspace is missing, corrupt, or used in a way it does not allow."""


class ConcurrencyError(EngagelabError, RuntimeError):
    """Another process holds what this one needs (lease, lock, run key)."""


class MissingExtraError(EngagelabError, ImportError):
    """An optional dependency is missing; the message names the pip command."""

    def __init__(self, package: str, extra: str, purpose: str):
        self.package = package
        self.extra = extra
        super().__init__(
            f"{purpose} needs the optional package {package!r}; "
            f"install it with: pip install 'engagelab[{extra}]'"
        )
