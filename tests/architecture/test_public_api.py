"""The exported surface is deliberate: every public module says what it exports in
``__all__`` (names that resolve, once each), every public class of a public module is
in it, and the classes users meet are importable from public modules."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest


def _modules() -> list[str]:
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


PUBLIC = [m for m in _modules() if not any(p.startswith("_") for p in m.split("."))]


@pytest.mark.parametrize("name", PUBLIC)
def test_all_lists_resolving_names_once(name):
    mod = importlib.import_module(name)
    exported = getattr(mod, "__all__", None)
    assert exported is not None, f"{name} has no __all__"
    assert len(exported) == len(set(exported)), f"{name}.__all__ repeats a name"
    missing = [n for n in exported if not hasattr(mod, n)]
    assert missing == [], f"{name}.__all__ names what it lacks: {missing}"


@pytest.mark.parametrize("name", PUBLIC)
def test_public_classes_are_exported(name):
    mod = importlib.import_module(name)
    exported = set(getattr(mod, "__all__", ()))
    defined = [
        n
        for n, obj in vars(mod).items()
        if inspect.isclass(obj) and obj.__module__ == name and not n.startswith("_")
    ]
    assert sorted(set(defined) - exported) == [], (
        f"{name} defines public classes it does not export"
    )


@pytest.mark.parametrize(
    ("module", "name"),
    [
        ("engagelab", "Workspace"),
        ("engagelab", "WorkspaceSummary"),
        ("engagelab", "IngestReport"),
        ("engagelab.campaigns", "Delivery"),
        ("engagelab.campaigns", "Campaign"),
        ("engagelab.channels", "Content"),
        ("engagelab.channels", "TemplateError"),
        ("engagelab.delivery", "SmtpError"),
        ("engagelab.delivery", "InboxResult"),
        ("engagelab.storage", "Core"),
        ("engagelab.experiments", "ExperimentResult"),
    ],
)
def test_classes_users_meet_come_from_public_modules(module, name):
    mod = importlib.import_module(module)
    assert name in mod.__all__
    assert inspect.isclass(getattr(mod, name))
