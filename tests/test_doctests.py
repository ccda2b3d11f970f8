"""Every docstring example of engagelab and engagelab.widgets runs, collected once here."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest


def _modules() -> list[str]:
    # engagelab.widgets is installed from widgets/: it is not under engagelab.__path__
    core, widgets = (
        importlib.import_module("engagelab"),
        importlib.import_module("engagelab.widgets"),
    )
    names = {"engagelab", "engagelab.widgets"}
    for pkg in (core, widgets):
        for info in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + "."):
            if not info.name.endswith("__main__"):
                names.add(info.name)
    return sorted(names)


MODULES = _modules()


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0


def test_widgets_are_collected_too():
    assert "engagelab.widgets.segment_builder" in MODULES
    assert "engagelab.storage.core" in MODULES
