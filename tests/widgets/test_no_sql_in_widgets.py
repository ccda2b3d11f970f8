"""The widgets call public core functions only: no SQL text, no ``.sql(`` call and no
reach into a workspace's ``.engine`` or ``.state`` anywhere in ``widgets/*.py``. The
queries they need live in :mod:`engagelab.storage.catalog` (tested there)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

WIDGETS = Path(__file__).resolve().parents[2] / "widgets"
#: SQL keywords as the code base writes them (upper case), so prose like "select a
#: segment from the list" is not flagged
SQL = re.compile(
    r"\bSELECT\b[\s\S]*\bFROM\b|\bINSERT\s+INTO\b|\bUPDATE\b\s+\w+\s+\bSET\b|\bDELETE\s+FROM\b"
    r"|\bCREATE\s+(TABLE|VIEW|INDEX)\b|\bDROP\s+TABLE\b|\bGROUP\s+BY\b|\bunnest\s*\("
)
FORBIDDEN_ATTRS = {"engine", "state"}


def problems(source: str, filename: str = "<widget>") -> list[str]:
    """Lines of ``source`` with SQL in a string, a ``.sql(...)`` call or ``.engine``/``.state``."""
    found: list[str] = []
    for node in ast.walk(ast.parse(source, filename)):
        line = getattr(node, "lineno", 0)
        if (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and SQL.search(node.value)
        ):
            found.append(f"{filename}:{line}: SQL in a string: {node.value.strip()[:60]!r}")
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and (node.func.attr == "sql")
        ):
            found.append(f"{filename}:{line}: .sql(...) call")
        elif isinstance(node, ast.Attribute) and node.attr in FORBIDDEN_ATTRS:
            found.append(f"{filename}:{line}: .{node.attr} access")
    return found


@pytest.mark.parametrize("path", sorted(WIDGETS.glob("*.py")), ids=lambda p: p.name)
def test_widget_module_has_no_sql_and_no_engine_or_state_access(path: Path) -> None:
    assert problems(path.read_text(encoding="utf-8"), path.name) == []


def test_every_widget_module_is_scanned() -> None:
    names = {p.name for p in WIDGETS.glob("*.py")}
    assert {"segment_builder.py", "campaign_builder.py", "besttime.py", "retention.py",
            "variant_report.py", "campaign_reports.py", "experiment_designer.py"} <= names  # fmt: skip


@pytest.mark.parametrize(
    "source",
    [
        'n = ws.engine.scalar("SELECT 1")',
        'df = ws.sql("SELECT user_id FROM profiles")',
        'q = "SELECT DISTINCT event FROM events"',
        'q = ("SELECT event, count(*) AS n "\n     "FROM events GROUP BY event")',
        "rows = self.ws.state.jobs()",
        'q = f"DELETE FROM {t} WHERE x"',
    ],
)
def test_the_scan_catches_each_kind_of_violation(source: str) -> None:
    assert problems(source) != []


def test_the_scan_leaves_widget_words_alone() -> None:
    ok = (
        "self.sql = w.Textarea()\nself.sql.value = segment.to_sql()\n"
        "from engagelab.retention.engine import retention\n"
        'label = "select a segment from the list"\n'
    )
    assert problems(ok) == []
