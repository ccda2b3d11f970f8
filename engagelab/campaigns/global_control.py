"""The workspace-wide global control group: a share of all users held out of every
campaign that respects it, so the lift of all messaging together can be measured.

The usual size is 1-15 % of users (CleverTap allows 2-5 %, Braze 1-15 %): smaller
holdouts measure nothing, larger ones withhold messaging from many users. A fraction
outside :data:`RECOMMENDED` is accepted with a :class:`GlobalControlWarning`; 0 turns
the global control off. ``engagelab campaign global-control set|show`` is the CLI, and
:func:`~engagelab.campaigns.global_report.global_control_report` the report.

Example:
    >>> import tempfile
    >>> from engagelab.storage.core import Core
    >>> core = Core.create(tempfile.mkdtemp() + "/ws")
    >>> set_global_control(core, 0.05)
    >>> get_global_control(core)
    (0.05, 'global')
    >>> set_global_control(core, 0.00001)
    Traceback (most recent call last):
    ...
    engagelab.errors.ValidationError: fraction == 1e-05, must be 0 (off) or in [0.0001, 1): the holdout is drawn in steps of 1/10,000
"""

from __future__ import annotations

import warnings

import sqlalchemy as sa

from engagelab.errors import EngagelabWarning, ValidationError
from engagelab.experiments.assignment import BUCKETS
from engagelab.storage.core import Core
from engagelab.storage.tables import campaign_settings as settings
from engagelab.storage.upsert import upsert
from engagelab.validate import check_number, check_str

__all__ = ["RECOMMENDED", "GlobalControlWarning", "get_global_control", "set_global_control"]

#: The usual range of a global control group's share of users (Braze: 1-15 %).
RECOMMENDED = (0.01, 0.15)


class GlobalControlWarning(EngagelabWarning):
    """A global control fraction outside the usual 1-15 % of users."""


def set_global_control(ws: Core, fraction: float, salt: str = "global") -> None:
    """Set the workspace-wide global control group: ``fraction`` of all users, held out of
    every campaign that respects it (membership is a pure function of ``salt`` and user).

    Args:
        fraction: share of users held out, 0 (off) or in ``[0.0001, 1)``; outside
            1-15 % a :class:`GlobalControlWarning` says why that is unusual.
        salt: the hash salt; changing it draws a new group.
    """
    check_number("fraction", fraction, low=0, high=1, high_open=True)
    if 0 < fraction < 1 / BUCKETS:
        raise ValidationError(
            "fraction",
            fraction,
            f"must be 0 (off) or in [{1 / BUCKETS:g}, 1): the holdout is drawn in steps of "
            f"1/{BUCKETS:,}",
        )
    check_str("salt", salt)
    lo, hi = RECOMMENDED
    if fraction and not lo <= fraction <= hi:
        why = (
            "too few users to measure the lift of all messaging"
            if fraction < lo
            else "that many users get no messages from any campaign that respects it"
        )
        warnings.warn(
            GlobalControlWarning(
                f"global control fraction {fraction:g} ({fraction:.1%} of users) is outside "
                f"the usual {lo:.0%}-{hi:.0%}: {why}"
            ),
            stacklevel=2,
        )
    with ws.state.write() as conn:
        for key, value in (
            ("global_control_fraction", repr(float(fraction))),
            ("global_control_salt", salt),
        ):
            upsert(conn, settings, {"key": key}, {"value": value})


def get_global_control(ws: Core) -> tuple[float, str]:
    """(fraction, salt) of the workspace's global control group (0 when unset)."""
    with ws.state.read() as conn:
        got = dict(conn.execute(sa.select(settings.c.key, settings.c.value)).fetchall())
    return float(got.get("global_control_fraction", "0")), got.get("global_control_salt", "global")
