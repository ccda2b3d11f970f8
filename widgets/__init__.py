"""Jupyter widgets for engagelab (installed as ``engagelab.widgets``).

Widgets are thin: they hold a spec's inputs, call the core and render its results;
every callback shows its errors inside the widget. Interactive parts carry CSS
classes (``el-sb-...`` for the segment builder, ``el-cb-...`` for the campaign
builder, ...) so browser tests can select them.

Each widget's module is imported on first use, so ``import engagelab.widgets`` stays
cheap:

>>> import engagelab.widgets as elw
>>> sorted(elw.__all__)[:3]
['BestTimeExplorer', 'CampaignBuilder', 'CampaignReports']
"""

from __future__ import annotations

import importlib
from typing import Any

_WIDGETS = {
    "BestTimeExplorer": "besttime",
    "CampaignBuilder": "campaign_builder",
    "CampaignReports": "campaign_reports",
    "CohortRetentionExplorer": "retention",
    "ExperimentDesigner": "experiment_designer",
    "JobsPanel": "jobs_panel",
    "SegmentBuilder": "segment_builder",
    "VariantReport": "variant_report",
}

__all__ = sorted(_WIDGETS)


def __getattr__(name: str) -> Any:
    if name in _WIDGETS:
        module = importlib.import_module(f"engagelab.widgets.{_WIDGETS[name]}")
        value = getattr(module, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'engagelab.widgets' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
