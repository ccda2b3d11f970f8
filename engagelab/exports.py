"""Lazy package exports: a package names what it offers without importing it all.

A package's ``__init__`` maps each exported name to the module that defines it; the
module is imported on first access (``import engagelab.delivery`` stays cheap for a
command line that never sends an e-mail).
"""

from __future__ import annotations

import importlib
import sys
import types
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["lazy_exports"]


def lazy_exports(
    package: str, names: Mapping[str, str], namespace: dict[str, Any]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """(``__getattr__``, ``__dir__``) for ``package`` whose exported ``names`` map to the
    modules defining them; values are cached in the package's ``namespace``."""

    def __getattr__(name: str) -> Any:
        module = names.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(names))

    module = sys.modules.get(package)
    if module is not None and type(module) is types.ModuleType:
        namespace["__lazy_exports__"] = names
        module.__class__ = _LazyPackage
    return __getattr__, __dir__


class _LazyPackage(types.ModuleType):
    """A package whose exported names win over its submodules of the same name.

    Importing ``pkg.plan`` binds the module to ``pkg.plan``; when ``plan`` is an exported
    function (as an eager ``from pkg.api import plan`` in ``__init__`` would leave it), that
    binding is skipped so ``from pkg import plan`` still gives the function.
    """

    def __setattr__(self, name: str, value: Any) -> None:
        if (
            isinstance(value, types.ModuleType)
            and value.__name__ == f"{self.__name__}.{name}"
            and name in self.__dict__.get("__lazy_exports__", ())
        ):
            return
        super().__setattr__(name, value)
