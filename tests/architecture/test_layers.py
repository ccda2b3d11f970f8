"""The import graph of engagelab, read from the source (``tests/architecture/graph.py``):
no circle between modules or between packages, every import goes down the documented
layers, no private name crosses a package, and the core never imports Jupyter."""

from __future__ import annotations

import ast

import pytest

from tests.architecture import graph as g


@pytest.fixture(scope="module")
def imports():
    return g.all_imports()


def test_reads_in_function_and_type_only_imports():
    # the graph counts an import wherever it stands: a checker that skipped these would
    # miss the circles that in-function imports used to hide
    src = (
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from engagelab.workspace import Workspace\n"
        "def f():\n    from engagelab.campaigns import plan\n    import engagelab.storage.core\n"
    )
    mods = {"engagelab.x": None, "engagelab.workspace": None, "engagelab.campaigns": None,
            "engagelab.storage.core": None, "engagelab.storage": None}  # fmt: skip
    path = _tmp_module(src)
    got = g.imports_of("engagelab.x", path, mods)
    assert {(i.imported, i.type_only) for i in got} == {
        ("engagelab.workspace", True),
        ("engagelab.campaigns", False),
        ("engagelab.storage.core", False),
    }


def _tmp_module(src: str):
    import tempfile
    from pathlib import Path

    p = Path(tempfile.mkdtemp()) / "x.py"
    p.write_text(src)
    return p


def test_cycle_finder_finds_a_planted_circle():
    edges = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert g.cycles(edges) == [["a", "b", "c"]]
    assert g.cycles({"a": {"b"}, "b": set()}) == []


def test_no_module_circle(imports):
    assert g.cycles(g.module_edges(imports)) == []


def test_no_package_circle(imports):
    assert g.cycles(g.unit_edges(imports)) == []


def test_every_import_goes_down_the_layers(imports):
    assert g.wrong_way(imports) == []


def test_every_unit_has_a_layer(imports):
    layer = g.layer_of()
    units = {g.unit(m) for m in g.module_files()} - {g.FACE}
    assert sorted(units - set(layer)) == []


def test_no_private_name_crosses_a_package(imports):
    assert g.private_across(imports) == []


def test_core_never_imports_jupyter():
    banned = ("ipywidgets", "IPython", "ipykernel", "traitlets", "jupyter", "anywidget")
    bad = []
    for name, path in g.module_files().items():
        if name.startswith("engagelab.widgets"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            mods = []
            if isinstance(node, ast.Import):
                mods = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                mods = [node.module]
            bad += [f"{name}: {m}" for m in mods if m.split(".")[0] in banned]
    assert bad == []
