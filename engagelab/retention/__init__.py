"""Cohort retention: N-day and on-or-after, first-time and recurring cohorts, censoring,
Wilson intervals, and message-label cohorts with a causal holdout comparison.

Example:
    >>> from engagelab.retention import RetentionSpec
    >>> RetentionSpec("App Launched", period="week", periods=4).columns()
    ['Week 0', 'Week 1', 'Week 2', 'Week 3']
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from engagelab.exports import lazy_exports

if TYPE_CHECKING:
    from engagelab.retention._stats import newcombe, wilson
    from engagelab.retention.engine import retention
    from engagelab.retention.result import RetentionResult
    from engagelab.retention.spec import RetentionSpec

#: Exported names, imported from their modules on first use.
_EXPORTS = {
    "RetentionResult": "engagelab.retention.result",
    "RetentionSpec": "engagelab.retention.spec",
    "newcombe": "engagelab.retention._stats",
    "retention": "engagelab.retention.engine",
    "wilson": "engagelab.retention._stats",
}

__all__ = ["RetentionResult", "RetentionSpec", "newcombe", "retention", "wilson"]

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
