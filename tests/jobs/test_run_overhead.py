"""What keeps ``engagelab run`` cheap over bare papermill, checked without timing anything.

The run path must not import pandas, pyarrow, DuckDB or numpy (seconds of CPU in a fresh
process); the papermill child must skip the optional modules a local run never uses; and
the runner opens only the workspace's state database, exactly as the workspace would.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

import engagelab
import engagelab.jobs
from engagelab.errors import WorkspaceError
from engagelab.jobs._child import UNUSED_OPTIONAL
from engagelab.jobs.execute import CHILD
from engagelab.storage.statedb import WorkspaceState

from .conftest import ROOT, write_notebook

HEAVY = ("pandas", "numpy", "pyarrow", "duckdb", "scipy", "papermill", "nbformat", "nbconvert")


def _fresh(code: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, **(env or {})}, timeout=600)  # fmt: skip


def _loaded(out: str) -> list[str]:
    return json.loads(out.strip().splitlines()[-1])


def test_importing_the_cli_and_jobs_loads_no_heavy_module():
    r = _fresh(
        "import sys, json, engagelab, engagelab.cli.app, engagelab.jobs, engagelab.cli.jobs; "
        f"print(json.dumps([m for m in {(*HEAVY, 'sqlalchemy')!r} if m in sys.modules]))"
    )
    assert r.returncode == 0, r.stderr
    assert _loaded(r.stdout) == []


def test_a_whole_run_loads_no_heavy_module_in_the_runner(jws, tmp_path):
    nb = write_notebook(tmp_path / "t.ipynb", "n = 0", "print(n + 1)")
    jobs = engagelab.jobs
    jobs.add_job(jws, jobs.JobSpec(name="t", notebook=str(nb), params={"n": "int"}))
    r = _fresh(
        "import sys, json\n"
        "from engagelab.cli import main\n"
        f"code = main(['run', 't', '--logical-date', '2026-03-01', '-p', 'n=1', '-w', {str(jws.path)!r}])\n"
        f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))\n"
        "sys.exit(code)\n"
    )
    assert r.returncode == 0, r.stderr
    assert "t 2026-03-01: succeeded (attempt 1)" in r.stdout
    assert _loaded(r.stdout) == []
    out = json.loads((jws.path / "outputs/runs/t/2026-03-01/attempt-1.ipynb").read_text())
    # the parameter reached the kernel
    assert "".join(out["cells"][-1]["outputs"][0]["text"]) == "2\n"
    h = jobs.history(jws, "t")
    assert list(h["status"]) == ["succeeded"]


def _imported(cmd: list[str]) -> set[str]:
    """Modules whose import ``cmd`` attempted (-X importtime, set through the environment)."""
    r = subprocess.run(cmd, input="", text=True, capture_output=True, timeout=600,
                       env={**os.environ, "PYTHONPROFILEIMPORTTIME": "1"})  # fmt: skip
    assert r.returncode == 0, r.stderr[-2000:]
    return {line.rsplit("|", 1)[-1].strip() for line in r.stderr.splitlines() if "|" in line}


def test_the_papermill_child_imports_papermill_without_the_unused_optional_modules():
    # an empty request makes the child exit right after importing papermill; a blocked module
    # is still logged as attempted, but none of its own submodules or dependencies load
    assert set(UNUSED_OPTIONAL) == {"rfc3987_syntax", "pyarrow"}
    loaded_only_by_them = {"pyarrow.lib", "rfc3987_syntax.syntax_helpers", "lark"}
    bare = _imported([sys.executable, "-c", "import papermill"]) & loaded_only_by_them
    assert bare, "papermill no longer loads these: UNUSED_OPTIONAL can go"
    child = _imported([sys.executable, str(CHILD), str(os.getpid())])
    assert {"papermill", "papermill.execute", "nbclient", "jsonschema"} <= child
    assert not child & loaded_only_by_them


def test_workspace_state_reaches_the_same_database_as_the_workspace(jws, tmp_path, monkeypatch):
    with WorkspaceState(jws.path) as light:
        assert light.path == jws.path
        assert light.state.url == jws.state.url
        assert repr(light) == f"WorkspaceState({str(jws.path)!r})"
    monkeypatch.chdir(jws.path.parent)
    with WorkspaceState(jws.path.name) as rel:  # a relative path is resolved like Workspace's
        assert rel.path == jws.path and rel.state.url == jws.state.url
    other = f"sqlite:///{tmp_path}/elsewhere.db"
    monkeypatch.setenv("ENGAGELAB_STATE_URL", other)
    with WorkspaceState(jws.path) as env:
        assert env.state.url == other


def test_workspace_state_refuses_what_workspace_open_refuses(jws, tmp_path):
    from engagelab import Workspace

    for folder, setup in (
        (tmp_path / "empty", None),
        (tmp_path / "future", "format_version: 99\nstate_url: sqlite:///state.db\n"),
    ):
        folder.mkdir()
        if setup:
            (folder / "engagelab.yaml").write_text(setup)
        with pytest.raises(WorkspaceError) as light:
            WorkspaceState(folder)
        with pytest.raises(WorkspaceError) as full:
            Workspace.open(folder)
        assert str(light.value) == str(full.value)


def test_lazy_exports_resolve_to_the_defining_modules():
    from engagelab.jobs import runner, schedule, spec, store
    from engagelab.workspace import Workspace

    assert engagelab.Workspace is Workspace
    jobs = engagelab.jobs
    assert jobs.run_job is runner.run_job and jobs.JobSpec is spec.JobSpec
    assert jobs.Scheduler is schedule.Scheduler and jobs.history is store.history
    for pkg in (engagelab, engagelab.jobs):
        assert set(pkg.__all__) <= set(dir(pkg))
        for name in pkg.__all__:
            assert getattr(pkg, name) is not None
    # in a fresh process: names and submodules resolve after a bare `import engagelab`
    r = _fresh(
        "import engagelab as e; print(e.segments.__name__, e.Workspace.__module__, e.jobs.run_job.__module__)"
    )
    assert r.stdout.split() == [
        "engagelab.segments",
        "engagelab.workspace",
        "engagelab.jobs.runner",
    ]
    with pytest.raises(AttributeError, match="no attribute 'nothing_here'"):
        _ = engagelab.nothing_here
    with pytest.raises(AttributeError, match="no attribute 'nothing_here'"):
        _ = engagelab.jobs.nothing_here
