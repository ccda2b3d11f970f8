"""The import graph of engagelab and its widgets, read from the source.

Every ``import`` and ``from ... import`` statement counts, at module level and inside
functions alike (an import inside a function is still a dependency; it only runs later).
Run it by hand to see the layers, circles and wrong-way imports:

    python -m tests.architecture.graph

``tests/architecture/test_layers.py`` fails on any circle and any import against
:data:`LAYERS`; ARCHITECTURE.md explains the order.
"""

from __future__ import annotations

import ast
import sys
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

#: The layers, lowest first. A unit (a top-level module or a first-level package of
#: engagelab) may import units of lower layers only; units of one layer are independent.
LAYERS: list[list[str]] = [
    ["engagelab.errors", "engagelab.exports"],
    [
        "engagelab.validate",
        "engagelab.schema",
        "engagelab.clock",
        "engagelab.frozen",
        "engagelab.redact",
        "engagelab.figures",
    ],
    ["engagelab.engines"],
    ["engagelab.storage"],
    ["engagelab.segments", "engagelab.experiments", "engagelab.channels"],
    ["engagelab.delivery", "engagelab.besttime", "engagelab.retention", "engagelab.jobs"],
    ["engagelab.campaigns"],
    ["engagelab.tracking", "engagelab.journeys"],
    ["engagelab.simulate"],
    ["engagelab.workspace"],
    ["engagelab.demo"],
    ["engagelab.cli"],
    ["engagelab.widgets"],
]

#: Units of one layer that may import each other in this direction only (importer, imported).
SAME_LAYER: set[tuple[str, str]] = {
    ("engagelab.journeys", "engagelab.tracking"),
}

#: The package face: ``engagelab/__init__.py`` hands on names lazily and sits above all.
FACE = "engagelab"


@dataclass(frozen=True)
class Import:
    """One import statement: who imports which module, the names taken, and the line."""

    importer: str
    imported: str
    names: tuple[str, ...]
    line: int
    type_only: bool


def module_files() -> dict[str, Path]:
    """Every module of engagelab and engagelab.widgets, by dotted name."""
    out: dict[str, Path] = {}
    for base, prefix in (
        (ROOT / "engagelab", ("engagelab",)),
        (ROOT / "widgets", ("engagelab", "widgets")),
    ):
        for path in sorted(base.rglob("*.py")):
            parts = list(prefix) + list(path.relative_to(base).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join(parts)] = path
    return out


def _is_type_checking(node: ast.If) -> bool:
    t = node.test
    return (isinstance(t, ast.Name) and t.id == "TYPE_CHECKING") or (
        isinstance(t, ast.Attribute) and t.attr == "TYPE_CHECKING"
    )


def imports_of(name: str, path: Path, modules: Iterable[str]) -> list[Import]:  # noqa: C901
    """The imports of one module that name engagelab modules (resolved to modules)."""
    known = set(modules)
    tree = ast.parse(path.read_text(), filename=str(path))
    is_pkg = path.name == "__init__.py"
    out: list[Import] = []

    def visit(node: ast.AST, type_only: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                for sub in child.body:
                    visit_one(sub, True)
                for sub in child.orelse:
                    visit_one(sub, type_only)
                continue
            visit_one(child, type_only)

    def visit_one(child: ast.AST, type_only: bool) -> None:
        if isinstance(child, ast.Import):
            for a in child.names:
                if a.name.startswith("engagelab"):
                    out.append(Import(name, _known(a.name, known), (), child.lineno, type_only))
        elif isinstance(child, ast.ImportFrom):
            mod = child.module or ""
            if child.level:
                base = name.split(".") if is_pkg else name.split(".")[:-1]
                base = base[: len(base) - child.level + 1]
                mod = ".".join(base + ([mod] if mod else []))
            if not mod.startswith("engagelab"):
                return
            taken = tuple(a.name for a in child.names)
            subs = [n for n in taken if f"{mod}.{n}" in known]
            rest = tuple(n for n in taken if f"{mod}.{n}" not in known)
            for n in subs:
                out.append(Import(name, f"{mod}.{n}", (), child.lineno, type_only))
            if rest or not subs:
                out.append(Import(name, _known(mod, known), rest, child.lineno, type_only))
        visit(child, type_only)

    visit(tree, False)
    return out


def _known(mod: str, known: set[str]) -> str:
    while mod not in known and "." in mod:
        mod = mod.rsplit(".", 1)[0]
    return mod


def unit(module: str) -> str:
    """The layer unit of a module: its first-level package (or itself at the top)."""
    parts = module.split(".")
    return ".".join(parts[:2])


def layer_of() -> dict[str, int]:
    return {u: i for i, us in enumerate(LAYERS) for u in us}


def all_imports() -> list[Import]:
    mods = module_files()
    out: list[Import] = []
    for name, path in mods.items():
        out += imports_of(name, path, mods)
    return out


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:  # noqa: C901
    """Strongly connected components of more than one node (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on: set[str] = set()
    stack: list[str] = []
    found: list[list[str]] = []
    counter = 0
    nodes = set(edges) | {v for vs in edges.values() for v in vs}
    for root in sorted(nodes):
        if root in index:
            continue
        work = [(root, iter(sorted(edges.get(root, ()))))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on.add(root)
        while work:
            v, it = work[-1]
            advanced = False
            for w in it:
                if w not in index:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(sorted(edges.get(w, ())))))
                    advanced = True
                    break
                if w in on:
                    low[v] = min(low[v], index[w])
            if advanced:
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                if len(comp) > 1:
                    found.append(sorted(comp))
    return found


def module_edges(imps: list[Import]) -> dict[str, set[str]]:
    edges: dict[str, set[str]] = defaultdict(set)
    for i in imps:
        if i.importer != i.imported:
            edges[i.importer].add(i.imported)
    return edges


def unit_edges(imps: list[Import]) -> dict[str, set[str]]:
    edges: dict[str, set[str]] = defaultdict(set)
    for i in imps:
        a, b = unit(i.importer), unit(i.imported)
        if a != b:
            edges[a].add(b)
    return edges


def wrong_way(imps: list[Import]) -> list[str]:
    """Imports that go against :data:`LAYERS` (or name a unit no layer lists)."""
    layer = layer_of()
    bad = []
    for i in imps:
        a, b = unit(i.importer), unit(i.imported)
        if a in (b, FACE):
            continue
        if b == FACE:
            bad.append(
                f"{i.importer}:{i.line} imports the package face 'engagelab' (import from the module that defines the name)"
            )
            continue
        for u in (a, b):
            if u not in layer:
                bad.append(f"{u} is in no layer of tests/architecture/graph.py")
        if a not in layer or b not in layer:
            continue
        if layer[b] < layer[a] or (a, b) in SAME_LAYER:
            continue
        bad.append(f"{i.importer}:{i.line} imports {i.imported} ({a} is not above {b})")
    return sorted(set(bad))


def private_across(imps: list[Import]) -> list[str]:
    """Private names (or private modules) taken from another unit."""
    bad = []
    for i in imps:
        if unit(i.importer) == unit(i.imported):
            continue
        priv = [n for n in i.names if n.startswith("_") and not n.startswith("__")]
        mod_private = any(
            p.startswith("_") and not p.startswith("__") for p in i.imported.split(".")[1:]
        )
        if priv or mod_private:
            what = ", ".join(priv) if priv else i.imported
            bad.append(f"{i.importer}:{i.line} takes private {what} from {i.imported}")
    return sorted(bad)


def main() -> int:
    imps = all_imports()
    mc = cycles(module_edges(imps))
    uc = cycles(unit_edges(imps))
    ww = wrong_way(imps)
    pv = private_across(imps)
    for title, rows in (
        ("module circles", [" -> ".join(c) for c in mc]),
        ("package circles", [" -> ".join(c) for c in uc]),
        ("imports against the layers", ww),
        ("private names across packages", pv),
    ):
        print(f"{title}: {len(rows)}")
        for r in rows:
            print("  " + r)
    print("layers, lowest first:")
    for i, us in enumerate(LAYERS):
        print(f"  {i:2d}  " + ", ".join(us))
    return 1 if (mc or uc or ww or pv) else 0


if __name__ == "__main__":
    sys.exit(main())
