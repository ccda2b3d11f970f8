"""Bad input at every entry point: one clear line (or JSON object), no traceback, nothing written.

Each case feeds one bad input through the real entry point: the ``engagelab`` command in a
subprocess where users meet it on the command line, else the Python API.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engagelab import Workspace
from engagelab.errors import EngagelabError, ValidationError, WorkspaceError

CLI = str(Path(sys.executable).with_name("engagelab"))

# --------------------------------------------------------------------------- helpers


def run(*args: str, stdin: bytes | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [CLI, *args], capture_output=True, input=stdin, timeout=timeout, check=False
    )


def snapshot(ws_path: Path) -> dict[str, str]:
    """Every file of the workspace but the state database, with its hash, plus the state rows."""
    out = {}
    for p in sorted(ws_path.rglob("*")):
        if p.is_file() and not p.name.startswith("state.db"):
            out[str(p.relative_to(ws_path))] = hashlib.sha256(p.read_bytes()).hexdigest()
    db = ws_path / "state.db"
    if db.exists():
        con = sqlite3.connect(db)
        try:
            for (t,) in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'"):
                out[f"table:{t}"] = str(con.execute(f'SELECT COUNT(*) FROM "{t}"').fetchone()[0])
        finally:
            con.close()
    return out


def assert_clean_error(proc: subprocess.CompletedProcess, *needles: str) -> str:
    err = proc.stderr.decode("utf-8", "replace")
    assert proc.returncode != 0, (proc.stdout, err)
    assert "Traceback" not in err, err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert lines and lines[-1].startswith("engagelab: error: ") or "usage:" in err, err
    for n in needles:
        assert n in err, (n, err)
    return err


@pytest.fixture
def cws(tmp_path) -> Path:
    """A fresh workspace made by ``engagelab init``."""
    path = tmp_path / "ws"
    proc = run("init", str(path))
    assert proc.returncode == 0, proc.stderr
    return path


# --------------------------------------------------------------------------- specs (YAML / JSON)
BOMB = "a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + "".join(
    f"{c}: &{c} [{', '.join(['*' + p] * 9)}]\n" for p, c in zip("abcdefgh", "bcdefghi", strict=True)
)

SPEC_CASES = [
    # (file name, content, words the error must contain)
    ("latin1.yaml", "name: M\xfcnchen\ncondition: {}\n".encode("latin-1"), ["not UTF-8", "0xfc"]),
    (
        "tag.yaml",
        b"condition: !!python/object/apply:os.system ['touch /tmp/pwned']\n",
        ["!!python/object/apply:os.system", "not allowed"],
    ),
    ("bomb.yaml", BOMB.encode(), ["expands to more than", "refused"]),
    ("deep.json", b"[" * 100_000 + b"]" * 100_000, ["nested deeper than 64"]),
    ("broken.yaml", b"condition: [1, 2\n", ["not valid YAML", "line"]),
    ("broken.json", b'{"condition": ', ["not valid JSON", "line 1"]),
]


@pytest.mark.parametrize(("name", "content", "needles"), SPEC_CASES, ids=[c[0] for c in SPEC_CASES])
def test_bad_segment_spec_file_is_one_line(cws, tmp_path, name, content, needles):
    spec = tmp_path / name
    spec.write_bytes(content)
    before = snapshot(cws)
    t0 = time.perf_counter()
    proc = run("segment", "count", "-w", str(cws), "--spec", str(spec))
    took = time.perf_counter() - t0
    assert_clean_error(proc, "--spec", *needles)
    assert took < 30, took  # the alias bomb took minutes and gigabytes
    assert snapshot(cws) == before


@pytest.mark.parametrize(("name", "content", "needles"), SPEC_CASES, ids=[c[0] for c in SPEC_CASES])
def test_bad_campaign_spec_file_is_one_line(cws, tmp_path, name, content, needles):
    spec = tmp_path / name
    spec.write_bytes(content)
    before = snapshot(cws)
    proc = run("campaign", "save", "-w", str(cws), str(spec))
    assert_clean_error(proc, *needles)
    assert snapshot(cws) == before


@pytest.mark.parametrize(
    "loader",
    ["Segment.from_yaml", "Campaign.from_yaml", "JobSpec.from_yaml"],
)
def test_api_yaml_loaders_refuse_tags_and_bombs(loader):
    from engagelab.campaigns import Campaign
    from engagelab.jobs.spec import JobSpec
    from engagelab.segments import Segment

    cls = {"Segment": Segment, "Campaign": Campaign, "JobSpec": JobSpec}[loader.split(".")[0]]
    with pytest.raises(ValidationError, match="!!python/object/apply:os.system"):
        cls.from_yaml("x: !!python/object/apply:os.system ['true']\n")
    t0 = time.perf_counter()
    with pytest.raises(ValidationError, match="expands to more than"):
        cls.from_yaml(BOMB)
    assert time.perf_counter() - t0 < 5


def test_api_json_depth_limit():
    from engagelab.campaigns import Campaign
    from engagelab.segments import Segment

    deep = "[" * 100_000 + "]" * 100_000
    for cls in (Segment, Campaign):
        with pytest.raises(ValidationError, match="nested deeper than 64"):
            cls.from_json(deep)


def test_job_params_file_not_utf8(cws, tmp_path):
    params = tmp_path / "params.yaml"
    params.write_bytes("city: M\xfcnchen\n".encode("latin-1"))
    proc = run("run", "-w", str(cws), "j", "-d", "2026-01-01", "--params-file", str(params))
    assert_clean_error(proc, "--params-file", "not UTF-8")


# --------------------------------------------------------------------------- workspace / state
def test_corrupt_config_names_the_file(cws):
    (cws / "engagelab.yaml").write_text("format_version: [1\n")
    proc = run("sql", "-w", str(cws), "SELECT 1")
    assert_clean_error(proc, "engagelab.yaml", "not valid YAML", "corrupt")
    (cws / "engagelab.yaml").write_bytes(b"\xff\xfe\x00")
    assert_clean_error(run("sql", "-w", str(cws), "SELECT 1"), "engagelab.yaml", "not UTF-8")
    (cws / "engagelab.yaml").write_text("- just\n- a list\n")
    assert_clean_error(run("sql", "-w", str(cws), "SELECT 1"), "engagelab.yaml", "mapping")
    with pytest.raises(WorkspaceError, match="engagelab.yaml"):
        Workspace.open(cws)


def test_corrupt_state_db_names_the_file(cws):
    for p in cws.glob("state.db*"):
        p.unlink()
    (cws / "state.db").write_bytes(b"this is not a database" * 100)
    proc = run("sql", "-w", str(cws), "SELECT 1")
    assert_clean_error(proc, "state.db", "cannot be opened", "not a database")


@pytest.mark.parametrize(
    ("url", "needles"),
    [
        ("bogus://x", ["--state-url", "bogus://x", "must be a SQLAlchemy URL"]),
        ("not a url", ["--state-url", "must be a SQLAlchemy URL"]),
        (
            "postgresql+psycopg://nobody:secret@127.0.0.1:1/db",
            ["cannot be opened", "127.0.0.1"],
        ),
    ],
)
def test_bad_state_url_leaves_nothing_behind(tmp_path, url, needles):
    target = tmp_path / "new-ws"
    err = assert_clean_error(run("init", str(target), "--state-url", url), *needles)
    assert "secret" not in err  # passwords are never printed
    assert not target.exists()


def test_missing_workspace_names_the_command_not_the_function(tmp_path):
    err = assert_clean_error(run("sql", "-w", str(tmp_path / "nope"), "SELECT 1"))
    assert "engagelab init" in err
    assert "Workspace.create" not in err


# --------------------------------------------------------------------------- CLI output
def test_errors_are_json_with_format_json(cws):
    proc = run("ingest", "-w", str(cws), "--format", "json", str(cws / "missing.csv"))
    assert proc.returncode != 0
    err = json.loads(proc.stderr)
    assert err["error"]["type"] == "ValidationError"
    assert err["error"]["field"] == "source"
    assert "does not exist" in err["error"]["message"]
    usage = run("ingest", "--format", "json")
    assert usage.returncode == 2
    assert "required" in json.loads(usage.stderr)["error"]["message"]
    nows = run("sql", "--format", "json", "SELECT 1")
    assert "no workspace" in json.loads(nows.stderr)["error"]["message"]


def test_broken_pipe_ends_quietly(cws):
    """``engagelab sql ... | head -1`` with a real pipe closed early: no traceback."""
    for fmt in ("table", "json"):
        proc = subprocess.run(
            f"'{CLI}' sql -w '{cws}' --format {fmt} 'SELECT * FROM range(200000)' | head -1",
            shell=True,
            capture_output=True,
            timeout=120,
            check=False,
        )
        assert proc.stdout.strip(), proc.stderr
        assert b"Traceback" not in proc.stderr, proc.stderr
        assert b"BrokenPipe" not in proc.stderr, proc.stderr


def test_error_classes_are_engagelab_errors():
    assert issubclass(ValidationError, EngagelabError)
