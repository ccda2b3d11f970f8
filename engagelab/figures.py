"""Figures that show themselves: what every ``.plot()`` method returns.

A :class:`matplotlib.figure.Figure` made without pyplot has no display hook, so a
notebook (or the HTML of a scheduled run) shows ``<Figure size 700x400 with 1 Axes>``
instead of the chart. :class:`Chart` is such a Figure that also renders itself as PNG
(``_repr_png_``) and SVG (``_repr_svg_``), which any Jupyter front end and nbconvert
display as an image, with or without ``%matplotlib inline``, and without a GUI backend.
Matplotlib is imported only when a chart is made.

Example:
    >>> fig = new_figure(figsize=(3, 2))
    >>> _ = fig.add_subplot().plot([0, 1], [0, 1])
    >>> fig._repr_png_()[:8]
    b'\\x89PNG\\r\\n\\x1a\\n'
    >>> b64 = png_data_uri(fig)
    >>> b64.startswith("data:image/png;base64,")
    True
"""

from __future__ import annotations

import base64
import io
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["Chart", "new_figure", "png_bytes", "png_data_uri", "svg_text"]  # noqa: F822 (Chart: built on first use)

_CHART_CLASS: type | None = None


def _chart_class() -> type:
    """The :class:`Chart` class, built on first use so ``import`` stays free of matplotlib."""
    global _CHART_CLASS
    if _CHART_CLASS is None:
        from matplotlib.figure import Figure

        class Chart(Figure):
            """A matplotlib Figure that Jupyter and nbconvert display as an image."""

            def _repr_png_(self) -> bytes:
                return png_bytes(self)

            def _repr_html_(self) -> None:  # Figure's own hook only serves WebAgg
                return None

        Chart.__module__ = __name__
        Chart.__qualname__ = "Chart"
        globals()["Chart"] = Chart  # so a chart pickles like any Figure
        _CHART_CLASS = Chart
    return _CHART_CLASS


def new_figure(figsize: tuple[float, float] = (7, 4), **kwargs: Any) -> Figure:
    """A new figure (no pyplot, no GUI) that displays as a PNG image in notebooks."""
    return _chart_class()(figsize=figsize, **kwargs)


def png_bytes(fig: Figure, dpi: float = 100) -> bytes:
    """The figure as PNG bytes (rendered with Agg, whatever the active backend)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight", facecolor="white")
    return buf.getvalue()


def png_data_uri(fig: Figure, dpi: float = 100) -> str:
    """``data:image/png;base64,...`` for an ``<img src>`` in a self-contained HTML page."""
    return "data:image/png;base64," + base64.b64encode(png_bytes(fig, dpi)).decode("ascii")


def svg_text(fig: Figure) -> str:
    """The figure as an inline ``<svg>`` element (no XML prolog), for HTML pages."""
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight")
    text = buf.getvalue()
    return text[text.find("<svg") :]


def __getattr__(name: str) -> Any:
    if name == "Chart":  # unpickling a chart in a process that has not made one yet
        return _chart_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
