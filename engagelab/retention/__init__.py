"""Cohort retention: N-day and on-or-after, first-time and recurring cohorts, censoring,
Wilson intervals, and message-label cohorts with a causal holdout comparison.

Example:
    >>> from engagelab.retention import RetentionSpec
    >>> RetentionSpec("App Launched", period="week", periods=4).columns()
    ['Week 0', 'Week 1', 'Week 2', 'Week 3']
"""

from engagelab.retention._stats import newcombe, wilson
from engagelab.retention.engine import retention
from engagelab.retention.result import RetentionResult
from engagelab.retention.spec import RetentionSpec

__all__ = ["RetentionResult", "RetentionSpec", "newcombe", "retention", "wilson"]
