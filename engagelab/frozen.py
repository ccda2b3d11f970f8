"""Deeply frozen spec values: read-only mappings, tuples, and errors that point to ``.replace()``.

Specs (campaigns, schedules, delivery options, content, experiments, ...) are frozen
dataclasses whose mappings are :class:`FrozenDict` and whose sequences are tuples, so a
spec is a value: it cannot change under the code holding it and it can be hashed (equal
specs hash equal). A :class:`FrozenDict` is a ``dict`` whose mutating methods raise
:class:`~engagelab.errors.FrozenSpecError`: it compares equal to dicts, serialises to
JSON and YAML as a plain mapping, and :func:`thaw` turns it back into plain data.

Example:
    >>> f = freeze({"city": ["Berlin", "Paris"], "min_orders": 2})
    >>> f == {"city": ("Berlin", "Paris"), "min_orders": 2}
    True
    >>> hash(f) == hash(freeze({"min_orders": 2, "city": ("Berlin", "Paris")}))
    True
    >>> f["min_orders"] = 3
    Traceback (most recent call last):
    ...
    engagelab.errors.FrozenSpecError: this mapping belongs to a frozen spec and is read-only: build a changed copy with the spec's .replace(...)
    >>> import json
    >>> json.dumps(f)
    '{"city": ["Berlin", "Paris"], "min_orders": 2}'
    >>> thaw(f)
    {'city': ['Berlin', 'Paris'], 'min_orders': 2}
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping
from typing import Any, NoReturn, TypeVar

import yaml

from engagelab.errors import FrozenSpecError, SpecError

__all__ = ["FrozenDict", "freeze", "frozen", "replace_spec", "thaw"]

T = TypeVar("T")

_READ_ONLY = (
    "this mapping belongs to a frozen spec and is read-only: "
    "build a changed copy with the spec's .replace(...)"
)


class FrozenDict(dict[Any, Any]):
    """A read-only, hashable ``dict`` whose values are deeply frozen (see :func:`freeze`).

    Equal to any mapping with the same items; ``json.dumps`` and ``yaml.safe_dump``
    write it as a plain mapping; ``copy()`` returns a plain (mutable) ``dict``.

    >>> d = FrozenDict({"tags": ["a", "b"]})
    >>> d["tags"], d == {"tags": ("a", "b")}, isinstance(d, dict)
    (('a', 'b'), True, True)
    >>> d.update(x=1)
    Traceback (most recent call last):
    ...
    engagelab.errors.FrozenSpecError: this mapping belongs to a frozen spec and is read-only: build a changed copy with the spec's .replace(...)
    """

    __slots__ = ()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        items = dict(*args, **kwargs)
        super().__init__((k, freeze(v)) for k, v in items.items())

    def _read_only(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise FrozenSpecError(_READ_ONLY)

    __setitem__ = __delitem__ = _read_only
    clear = pop = popitem = setdefault = update = _read_only
    __ior__ = _read_only  # type: ignore[assignment]

    def __hash__(self) -> int:  # type: ignore[override]
        return hash(frozenset(self.items()))

    def __reduce__(self) -> tuple[Any, ...]:
        return (FrozenDict, (dict(self),))

    def __copy__(self) -> FrozenDict:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> FrozenDict:
        return self

    def copy(self) -> dict[Any, Any]:  # type: ignore[override]
        """A plain, mutable shallow copy."""
        return dict(self)


def freeze(value: Any) -> Any:
    """``value`` with every mapping made a :class:`FrozenDict`, every list and tuple a
    tuple and every set a ``frozenset``, at any depth (other values are kept as they are:
    specs nested in specs are frozen already).

    >>> freeze([{"a": [1, 2]}, {3}])
    ({'a': (1, 2)}, frozenset({3}))
    """
    if isinstance(value, FrozenDict):
        return value
    if isinstance(value, Mapping) and not dataclasses.is_dataclass(value):
        return FrozenDict(value)
    if type(value) in (list, tuple):
        return tuple(freeze(v) for v in value)
    if isinstance(value, set | frozenset):
        return frozenset(freeze(v) for v in value)
    return value


def thaw(value: Any) -> Any:
    """Plain data from frozen data: mappings become dicts, tuples (and lists) become lists,
    at any depth (the inverse of :func:`freeze` for JSON-like values).

    >>> thaw(freeze({"a": [1, {"b": (2,)}]}))
    {'a': [1, {'b': [2]}]}
    """
    if isinstance(value, Mapping) and not dataclasses.is_dataclass(value):
        return {k: thaw(v) for k, v in value.items()}
    if type(value) in (list, tuple):
        return [thaw(v) for v in value]
    return value


def _snake(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name.lstrip("_")).lower()


def _frozen_message(spec: Any, name: str) -> str:
    cls = type(spec).__name__
    var = _snake(cls)
    fields = {f.name for f in dataclasses.fields(spec) if f.init}
    if name in fields:
        return f"{cls} is frozen: use {var}.replace({name}=...) for a changed copy"
    return (
        f"{cls} is frozen and {name!r} is not one of its fields: "
        f"use {var}.replace(...) for a changed copy"
    )


def frozen(cls: type[T]) -> type[T]:
    """Class decorator for a ``@dataclass(frozen=True)`` spec: assigning or deleting an
    attribute raises :class:`~engagelab.errors.FrozenSpecError` naming ``.replace()``,
    and ``copy.copy`` / ``copy.deepcopy`` return the value itself (apply it above
    ``@dataclass``, on every spec class, subclasses included).

    >>> @frozen
    ... @dataclasses.dataclass(frozen=True)
    ... class Window:
    ...     days: int = 7
    >>> Window().days = 8
    Traceback (most recent call last):
    ...
    engagelab.errors.FrozenSpecError: Window is frozen: use window.replace(days=...) for a changed copy
    """

    def __setattr__(self: Any, name: str, value: Any) -> NoReturn:
        raise FrozenSpecError(_frozen_message(self, name))

    def __delattr__(self: Any, name: str) -> NoReturn:
        raise FrozenSpecError(_frozen_message(self, name))

    def __copy__(self: T) -> T:
        return self

    def __deepcopy__(self: T, memo: dict[int, Any]) -> T:
        return self

    setattr_: Callable[..., Any] = __setattr__
    cls.__setattr__ = setattr_  # type: ignore[assignment]
    cls.__delattr__ = __delattr__  # type: ignore[assignment]
    # a frozen value is its own copy
    cls.__copy__ = __copy__  # type: ignore[attr-defined]
    cls.__deepcopy__ = __deepcopy__  # type: ignore[attr-defined]
    return cls


def replace_spec(spec: T, changes: Mapping[str, Any]) -> T:
    """A copy of the frozen dataclass ``spec`` with ``changes``, validated again; an
    unknown field is a :class:`~engagelab.errors.SpecError` naming it and the fields."""
    fields = sorted(f.name for f in dataclasses.fields(spec) if f.init)  # type: ignore[arg-type]
    unknown = sorted(set(changes) - set(fields))
    if unknown:
        raise SpecError(
            unknown[0],
            changes[unknown[0]],
            f"is not a field of {type(spec).__name__}: " + ", ".join(fields),
        )
    return dataclasses.replace(spec, **changes)  # type: ignore[type-var]


def _represent_frozen(dumper: Any, data: FrozenDict) -> yaml.Node:
    return dumper.represent_dict(thaw(data))


yaml.SafeDumper.add_representer(FrozenDict, _represent_frozen)
yaml.Dumper.add_representer(FrozenDict, _represent_frozen)
