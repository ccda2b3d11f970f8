"""The workspace-wide global control group: a share of all users held out of every
campaign that respects it, so the lift of all messaging together can be measured.

Example:
    >>> import tempfile
    >>> from engagelab.storage.core import Core
    >>> core = Core.create(tempfile.mkdtemp() + "/ws")
    >>> set_global_control(core, 0.05)
    >>> get_global_control(core)
    (0.05, 'global')
"""

from __future__ import annotations

import sqlalchemy as sa

from engagelab.storage.core import Core
from engagelab.storage.tables import campaign_settings as settings
from engagelab.storage.upsert import upsert
from engagelab.validate import check_number, check_str

__all__ = ["get_global_control", "set_global_control"]


def set_global_control(ws: Core, fraction: float, salt: str = "global") -> None:
    """Set the workspace-wide global control group: ``fraction`` of all users, held out of
    every campaign that respects it (membership is a pure function of ``salt`` and user)."""
    check_number("fraction", fraction, low=0, high=1, high_open=True)
    check_str("salt", salt)
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
