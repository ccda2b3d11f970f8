"""Charts in executed notebooks: every cell that plots must carry an image output."""

from __future__ import annotations

import re

IMAGE_TYPES = ("image/png", "image/svg+xml")
_PLOTS = re.compile(r"\.plot\(|display\(fig\)")


def plotting_cells(cells) -> list:
    """The code cells whose source draws a chart."""
    return [c for c in cells if c.cell_type == "code" and _PLOTS.search(c.source)]


def assert_plots_render(cells) -> None:
    """Each plotting cell shows an image (not only the text ``<Figure size ...>``)."""
    found = plotting_cells(cells)
    assert found, "no plotting cell found"
    for c in found:
        outputs = c.get("outputs", [])
        images = [o for o in outputs if any(t in o.get("data", {}) for t in IMAGE_TYPES)]
        assert images, f"no image output for cell {c.source!r}: {outputs}"
