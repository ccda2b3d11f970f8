"""Experiments: design, deterministic assignment and analysis of A/B/n tests.

Example:
    >>> from engagelab.experiments import sample_size
    >>> sample_size("proportion", baseline=0.05, mde=0.10, relative=True).total_n
    62462
    >>> from engagelab.experiments import Experiment
    >>> Experiment(control="A", metrics=("clicked:proportion",), alpha=0.01).metrics[0].kind
    'proportion'
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from engagelab.exports import lazy_exports

if TYPE_CHECKING:
    from engagelab.experiments._stats import CORRECTIONS, adjust_pvalues
    from engagelab.experiments.analysis import analyze, analyze_aggregates
    from engagelab.experiments.api import analyze_experiment, design_experiment
    from engagelab.experiments.assignment import (
        BUCKETS,
        SRMResult,
        assign,
        bucket,
        bucket_sql,
        buckets,
        campaign_split,
        global_control,
        srm_check,
    )
    from engagelab.experiments.design import (
        DesignResult,
        minimum_detectable_effect,
        power,
        sample_size,
    )
    from engagelab.experiments.metrics import Metric, aggregate, aggregate_sql
    from engagelab.experiments.result import ExperimentResult
    from engagelab.experiments.segmented import SegmentedResult
    from engagelab.experiments.sequential import always_valid, group_sequential_bounds
    from engagelab.experiments.spec import Experiment, Sequential
    from engagelab.experiments.winner import Winner, choose_winner

#: Exported names, imported from their modules on first use.
_EXPORTS = {
    "BUCKETS": "engagelab.experiments.assignment",
    "CORRECTIONS": "engagelab.experiments._stats",
    "Experiment": "engagelab.experiments.spec",
    "Sequential": "engagelab.experiments.spec",
    "adjust_pvalues": "engagelab.experiments._stats",
    "DesignResult": "engagelab.experiments.design",
    "ExperimentResult": "engagelab.experiments.result",
    "Metric": "engagelab.experiments.metrics",
    "SRMResult": "engagelab.experiments.assignment",
    "SegmentedResult": "engagelab.experiments.segmented",
    "Winner": "engagelab.experiments.winner",
    "aggregate": "engagelab.experiments.metrics",
    "aggregate_sql": "engagelab.experiments.metrics",
    "always_valid": "engagelab.experiments.sequential",
    "analyze": "engagelab.experiments.analysis",
    "analyze_aggregates": "engagelab.experiments.analysis",
    "analyze_experiment": "engagelab.experiments.api",
    "assign": "engagelab.experiments.assignment",
    "bucket": "engagelab.experiments.assignment",
    "bucket_sql": "engagelab.experiments.assignment",
    "buckets": "engagelab.experiments.assignment",
    "campaign_split": "engagelab.experiments.assignment",
    "choose_winner": "engagelab.experiments.winner",
    "design_experiment": "engagelab.experiments.api",
    "global_control": "engagelab.experiments.assignment",
    "group_sequential_bounds": "engagelab.experiments.sequential",
    "minimum_detectable_effect": "engagelab.experiments.design",
    "power": "engagelab.experiments.design",
    "sample_size": "engagelab.experiments.design",
    "srm_check": "engagelab.experiments.assignment",
}

__all__ = [
    "BUCKETS",
    "CORRECTIONS",
    "DesignResult",
    "Experiment",
    "ExperimentResult",
    "Metric",
    "SRMResult",
    "SegmentedResult",
    "Sequential",
    "Winner",
    "adjust_pvalues",
    "aggregate",
    "aggregate_sql",
    "always_valid",
    "analyze",
    "analyze_aggregates",
    "analyze_experiment",
    "assign",
    "bucket",
    "bucket_sql",
    "buckets",
    "campaign_split",
    "choose_winner",
    "design_experiment",
    "global_control",
    "group_sequential_bounds",
    "minimum_detectable_effect",
    "power",
    "sample_size",
    "srm_check",
]

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
