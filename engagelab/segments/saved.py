"""Saved segments: named segment specs kept in the workspace's state database.

Example:
    >>> import tempfile
    >>> from engagelab.storage.core import Core
    >>> from engagelab.segments import Segment, did
    >>> core = Core.create(tempfile.mkdtemp() + "/ws")
    >>> save_segment(core, "buyers", Segment(did("Charged")), "bought anything")
    >>> load_segment(core, "buyers").describe()
    "did 'Charged'"
    >>> list_segments(core)["name"].tolist()
    ['buyers']
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import sqlalchemy as sa

from engagelab.errors import ValidationError
from engagelab.segments.base import Condition
from engagelab.segments.segment import Segment
from engagelab.storage.core import Core
from engagelab.storage.statedb import utcnow
from engagelab.storage.tables import saved_segments
from engagelab.storage.upsert import upsert

__all__ = ["as_segment", "delete_segment", "list_segments", "load_segment", "save_segment"]


def as_segment(core: Core, segment: Any) -> Segment:
    """A :class:`Segment` from a Segment, a condition, its dict or JSON, or the name of a
    saved segment."""
    if isinstance(segment, Segment):
        return segment
    if isinstance(segment, Condition):
        return Segment(segment)
    if isinstance(segment, dict):
        return Segment.from_dict(segment)
    if isinstance(segment, str):
        text = segment.strip()
        return Segment.from_json(text) if text.startswith("{") else load_segment(core, text)
    raise ValidationError(
        "segment",
        type(segment).__name__,
        "must be a Segment, a condition, a dict/JSON spec or a saved name",
    )


def save_segment(core: Core, name: str, segment: Any, description: str = "") -> None:
    """Save (or replace) a segment under ``name``."""
    if not isinstance(name, str) or not name.strip():
        raise ValidationError("name", name, "must be a non-empty string")
    if not isinstance(description, str):
        raise ValidationError("description", description, "must be a string")
    spec = as_segment(core, segment).to_json()
    now = utcnow()
    with core.state.write() as conn:
        upsert(
            conn,
            saved_segments,
            {"name": name},
            {"spec": spec, "description": description, "updated_at": now},
            {"created_at": now},
        )


def load_segment(core: Core, name: str) -> Segment:
    """The saved segment called ``name``."""
    with core.state.read() as conn:
        spec = conn.execute(
            sa.select(saved_segments.c.spec).where(saved_segments.c.name == name)
        ).scalar_one_or_none()
    if spec is None:
        raise ValidationError(
            "segment",
            name,
            f"is not a saved segment; saved: {list_segments(core)['name'].tolist()}",
        )
    return Segment.from_json(spec)


def list_segments(core: Core) -> pd.DataFrame:
    """Saved segments: name, description, created and updated times."""
    with core.state.read() as conn:
        rows = conn.execute(
            sa.select(
                saved_segments.c.name,
                saved_segments.c.description,
                saved_segments.c.created_at,
                saved_segments.c.updated_at,
            ).order_by(saved_segments.c.name)
        ).all()
    return pd.DataFrame(rows, columns=["name", "description", "created_at", "updated_at"])


def delete_segment(core: Core, name: str) -> bool:
    """Delete the saved segment ``name``; True if it existed."""
    with core.state.write() as conn:
        done = conn.execute(saved_segments.delete().where(saved_segments.c.name == name))
    return bool(done.rowcount)
