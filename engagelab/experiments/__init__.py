"""Experiments: design, deterministic assignment and analysis of A/B/n tests.

Example:
    >>> from engagelab.experiments import sample_size
    >>> sample_size("proportion", baseline=0.05, mde=0.10, relative=True).total_n
    62462
    >>> Experiment(control="A", metrics=("clicked:proportion",), alpha=0.01).metrics[0].kind
    'proportion'
"""

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
from engagelab.experiments.design import DesignResult, minimum_detectable_effect, power, sample_size
from engagelab.experiments.metrics import Metric, aggregate, aggregate_sql
from engagelab.experiments.result import ExperimentResult
from engagelab.experiments.sequential import always_valid, group_sequential_bounds
from engagelab.experiments.spec import Experiment, Sequential
from engagelab.experiments.winner import Winner, choose_winner

__all__ = [
    "BUCKETS",
    "CORRECTIONS",
    "DesignResult",
    "Experiment",
    "ExperimentResult",
    "Metric",
    "SRMResult",
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
