"""Every widget is exported from engagelab.widgets and is an ipywidgets DOMWidget."""

from __future__ import annotations

import engagelab.widgets as elw
import ipywidgets


def test_every_exported_widget_resolves():
    assert elw.__all__ == sorted(elw.__all__)
    for name in elw.__all__:
        cls = getattr(elw, name)
        assert issubclass(cls, ipywidgets.DOMWidget), name
        assert cls.__doc__, name
