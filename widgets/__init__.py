"""Jupyter widgets for engagelab (installed as ``engagelab.widgets``).

Widgets are thin: they hold a spec's inputs, call the core and render its results;
every callback shows its errors inside the widget. Interactive parts carry CSS
classes (``el-sb-...`` for the segment builder) so browser tests can select them.
"""

from engagelab.widgets.segment_builder import SegmentBuilder

__all__ = ["SegmentBuilder"]
