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


def run(
    *args: str, stdin: bytes | None = None, timeout: float = 120
) -> subprocess.CompletedProcess:
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


# --------------------------------------------------------------------------- ingest (CLI)
def _bytes_cases() -> list[tuple[str, bytes, list[str]]]:
    import random

    rnd = random.Random(1)
    binary = bytes(rnd.randrange(256) for _ in range(4000)) + b"\x00"
    return [
        ("empty.csv", b"", ["source", "empty.csv", "is empty", "header line"]),
        ("blank.csv", b"\n\n", ["is empty"]),
        ("binary.csv", binary, ["binary.csv", "not a text file", "NUL"]),
        (
            "latin1.csv",
            "user_id,event,ts,city\nu1,A,2026-01-01,M\xfcnchen\n".encode("latin-1"),
            ["latin1.csv", "not utf-8 text", "--encoding latin-1"],
        ),
        (
            "dupes.csv",
            b"user_id,event,ts,ts\nu1,A,2026-01-01,x\n",
            ["dupes.csv", "['ts'] more than once", "unique"],
        ),
        (
            "fake.parquet",
            b"not parquet at all\n" * 10,
            ["fake.parquet", "not a Parquet file", "--input-format"],
        ),
        (
            "mixed-dates.csv",
            b"user_id,event,ts\nu1,A,01/02/2026\nu2,A,13/02/2026\nu3,A,02/13/2026\n",
            [
                "ts",
                "mixes day-first ('13/02/2026') and month-first ('02/13/2026')",
                "--date-format",
            ],
        ),
    ]


@pytest.mark.parametrize(
    ("name", "content", "needles"), _bytes_cases(), ids=[c[0] for c in _bytes_cases()]
)
def test_bad_files_are_refused_with_one_line(cws, tmp_path, name, content, needles):
    src = tmp_path / name
    src.write_bytes(content)
    before = snapshot(cws)
    assert_clean_error(run("ingest", "-w", str(cws), str(src)), *needles)
    assert snapshot(cws) == before
    proc = run("ingest", "-w", str(cws), str(src), "--format", "json")
    assert json.loads(proc.stderr)["error"]["field"] == "source" or name.startswith("mixed")


def test_latin1_csv_with_encoding(cws, tmp_path):
    src = tmp_path / "latin1.csv"
    src.write_bytes("user_id,event,ts,city\nu1,A,2026-01-01,M\xfcnchen\n".encode("latin-1"))
    proc = run("ingest", "-w", str(cws), str(src), "--encoding", "latin-1", "--format", "json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["rows_appended"] == 1
    got = Workspace.open(cws).sql("SELECT city FROM events")
    assert got["city"].tolist() == ["München"]


def test_one_bad_jsonl_line_is_quarantined_not_the_file(cws, tmp_path):
    src = tmp_path / "events.jsonl"
    src.write_text(
        '{"user_id": "u1", "event": "A", "ts": "2026-01-01T00:00:00Z"}\n'
        "{bad json\n"
        "[1, 2]\n" + "[" * 100_000 + "]" * 100_000 + "\n"
        '{"user_id": "u2", "event": "A", "ts": "2026-01-02T00:00:00Z",'
        ' "props": {"a": {"b": [1, {"c": 2}]}}}\n'
    )
    proc = run("ingest", "-w", str(cws), str(src), "--format", "json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["rows_appended"] == 2
    assert report["reasons"] == {"bad_line": 3}
    ws = Workspace.open(cws)
    q = ws.sql("SELECT 1")  # the workspace still reads
    assert len(q) == 1
    import pandas as pd

    bad = pd.read_parquet(report["quarantine_file"]).sort_values("_row")
    assert [d.split(":")[0] for d in bad["_detail"]] == ["line 2", "line 3", "line 4"]
    assert "not valid JSON" in bad["_detail"].iloc[0]
    assert "must be a JSON object" in bad["_detail"].iloc[1]
    # a nested object is stored as JSON text, never aborting the ingest
    props = ws.sql("SELECT props FROM events WHERE user_id = 'u2'")["props"][0]
    assert json.loads(props) == {"a": {"b": [1, {"c": 2}]}}


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
@pytest.mark.parametrize(("unit", "scale"), [("s", 1), ("ms", 1_000), ("us", 1_000_000)])
def test_ts_unit_applies_to_csv_and_jsonl(cws, tmp_path, fmt, unit, scale):
    epoch = 1767225600  # 2026-01-01T00:00:00Z
    src = tmp_path / f"events.{fmt}"
    if fmt == "csv":
        src.write_text(f"user_id,event,ts\nu1,A,{epoch * scale}\n")
    else:
        src.write_text(json.dumps({"user_id": "u1", "event": "A", "ts": epoch * scale}) + "\n")
    proc = run("ingest", "-w", str(cws), str(src), "--ts-unit", unit, "--format", "json")
    assert json.loads(proc.stdout)["rows_appended"] == 1, proc.stderr
    got = Workspace.open(cws).sql("SELECT ts FROM events")["ts"][0]
    assert str(got) == "2026-01-01 00:00:00+00:00"
    # the wrong unit is quarantined, never silently mis-scaled (seconds read as ms -> 1970)
    wrong = {"s": "ms", "ms": "s", "us": "ms"}[unit]
    proc = run(
        "ingest", "-w", str(cws), str(src), "--ts-unit", wrong, "--format", "json", "--force"
    )
    assert json.loads(proc.stdout)["reasons"] == {"bad_timestamp": 1}, proc.stdout


def test_one_date_order_per_batch(ws):
    import pandas as pd

    df = pd.DataFrame(
        {"user_id": ["a", "b"], "event": ["A", "A"], "ts": ["01/02/2026", "13/02/2026"]}
    )
    ws.ingest(df, quiet=True)
    got = ws.sql("SELECT user_id, ts FROM events ORDER BY user_id")["ts"].dt.strftime("%Y-%m-%d")
    assert got.tolist() == ["2026-02-01", "2026-02-13"]  # both day-first
    us = pd.DataFrame({"user_id": ["c"], "event": ["A"], "ts": ["01/02/2026"]})
    ws.ingest(us, date_format="%m/%d/%Y", quiet=True)
    got = ws.sql("SELECT ts FROM events WHERE user_id = 'c'")["ts"].dt.strftime("%Y-%m-%d")
    assert got.tolist() == ["2026-01-02"]
    with pytest.raises(ValidationError, match="date_format == 'dd/mm'"):
        ws.ingest(us, date_format="dd/mm", quiet=True)


@pytest.mark.parametrize("table", ["events", "profiles"])
def test_coordinates_out_of_range_are_quarantined(ws, table):
    import pandas as pd

    df = pd.DataFrame(
        {"user_id": ["a", "b", "c"], "latitude": [95.0, 45.0, 10.0], "longitude": [0.0, 0.0, 181.0]}
    )
    if table == "events":
        df = df.assign(event="A", ts="2026-01-01T00:00:00Z")
    r = ws.ingest(df, table=table, quiet=True)
    assert r.rows_appended == 1
    assert r.reasons == {"bad_coordinates": 2}
    assert set(r.quarantined()["_detail"]) == {
        "latitude: must be in [-90, 90]",
        "longitude: must be in [-180, 180]",
    }


def test_content_key_dedupes_overlapping_reexports(ws):
    import pandas as pd

    day1 = pd.DataFrame(
        {
            "user_id": ["a", "b", "b"],
            "event": ["A", "A", "A"],
            "ts": ["2026-01-01T10:00:00Z", "2026-01-01T11:00:00Z", "2026-01-01T11:00:00Z"],
            "amount": ["1", "2", "2"],
        }
    )
    # the second export overlaps the first; its timestamps are written differently
    day2 = pd.DataFrame(
        {
            "user_id": ["b", "c"],
            "event": ["A", "A"],
            "ts": ["2026-01-01 12:00:00+01:00", "2026-01-02T09:00:00Z"],
            "amount": ["2", "3"],
        }
    )
    r1 = ws.ingest(day1, dedupe_key="content", quiet=True)
    r2 = ws.ingest(day2, dedupe_key="content", quiet=True)
    assert (r1.rows_appended, r1.reasons) == (2, {"duplicate_event_id": 1})
    assert (r2.rows_appended, r2.reasons) == (1, {"duplicate_event_id": 1})
    assert ws.sql("SELECT count(*) AS n FROM events")["n"][0] == 3
    # without the content key the overlap is appended twice (today's behaviour, kept)
    r3 = ws.ingest(day2, quiet=True)
    assert r3.rows_appended == 2
    with pytest.raises(ValidationError, match="dedupe_key == 'row'"):
        ws.ingest(day2, dedupe_key="row", quiet=True)


_MEMCAP = r"""
import resource, sys
cap = int(sys.argv[3]) << 20
resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
from engagelab import Workspace
ws = Workspace.open(sys.argv[1])
r = ws.ingest(sys.argv[2], quiet=True, force=True)
print(r.rows_appended, r.rows_quarantined, sorted(r.reasons))
"""


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_huge_single_line_is_bounded(cws, tmp_path, fmt):
    """A ~50 MB one-line file under a memory cap: quarantined (or refused), never 8 GB."""
    src = tmp_path / f"big.{fmt}"
    big = "x" * (50 << 20)
    with open(src, "w") as fh:
        if fmt == "jsonl":
            fh.write('{"user_id": "u1", "event": "A", "ts": "2026-01-01T00:00:00Z"}\n')
            fh.write('{"user_id": "u2", "event": "A", "ts": "2026-01-01T00:00:00Z", "blob": "')
            fh.write(big + '"}\n')
        else:
            fh.write("user_id,event,ts,blob\nu1,A,2026-01-01,small\nu2,A,2026-01-01,")
            fh.write(big + "\n")
    proc = subprocess.run(
        [sys.executable, "-c", _MEMCAP, str(cws), str(src), "3000"],
        capture_output=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr.decode()[-2000:]
    appended, quarantined, reasons = proc.stdout.decode().split(" ", 2)
    assert (appended, quarantined) == ("1", "1")
    assert ("bad_line" if fmt == "jsonl" else "value_too_large") in reasons


# --------------------------------------------------------------------------- values
def test_window_bounds_and_invalid_dates():
    from engagelab.errors import SpecError
    from engagelab.segments import Segment

    def seg(window: str) -> str:
        return (
            f"version: 1\ncondition: {{kind: did, event: Charged, at_least: 1, window: {window}}}\n"
        )

    with pytest.raises(
        SpecError, match=r"window.last_days == 99999999999, must be an integer in \[1, 36500\]"
    ):
        Segment.from_yaml(seg("{last_days: 99999999999}"))
    with pytest.raises(SpecError, match="window.start == '2026-02-30', must be an ISO date"):
        Segment.from_yaml(seg("{start: 2026-02-30, end: 2026-03-02}"))
    ok = Segment.from_yaml(seg("{start: 2026-02-01, end: 2026-03-02}"))
    assert str(ok.condition.window.start) == "2026-02-01"


def test_window_last_days_on_the_command_line(cws):
    proc = run(
        "segment",
        "count",
        "-w",
        str(cws),
        "--json",
        '{"version": 1, "condition": {"kind": "did", "event": "Charged", "at_least": 1,'
        ' "window": {"last_days": 99999999999}}}',
    )
    assert_clean_error(proc, "window.last_days == 99999999999", "[1, 36500]")


def test_labels_as_one_string_is_one_label():
    from engagelab.campaigns import Campaign, Variant

    c = Campaign(id="c", channel="push", variants=(Variant("A", {"title": "t", "body": "b"}),))
    data = c.to_dict()
    data["labels"] = "Onboarding"
    assert Campaign.from_dict(data).labels == ("Onboarding",)
    text = c.to_yaml().replace("labels: []", "labels: Onboarding")
    assert Campaign.from_yaml(text).labels == ("Onboarding",)


def test_plan_refuses_a_number_as_date(ws):
    from engagelab.campaigns import Campaign, Variant

    c = Campaign(id="c", channel="push", variants=(Variant("A", {"title": "t", "body": "b"}),))
    with pytest.raises(
        ValidationError, match="logical_date == 12345, must be a datetime, a date or ISO 8601 text"
    ):
        ws.plan(c, 12345)


def test_arms_bound_on_the_command_line():
    t0 = time.perf_counter()
    proc = run(
        "experiment",
        "design",
        "--metric",
        "proportion",
        "--baseline",
        "0.1",
        "--mde",
        "0.01",
        "--arms",
        "1000000",
    )
    assert_clean_error(proc, "arms == 1000000", "[2, 26]")
    assert time.perf_counter() - t0 < 60


def test_template_render_time_limit():
    from engagelab.channels._templates import MAX_RENDER_SECONDS, TemplateError, compile_template

    src = "{% for i in range(10000) %}{{ ('x' * 999999).upper() | length }}{% endfor %}"
    t = compile_template("push.body", src)
    t0 = time.perf_counter()
    with pytest.raises(
        TemplateError, match=r"template push.body: rendering took longer than 1 s; aborted"
    ):
        t.render({"profile": {}})
    assert time.perf_counter() - t0 < MAX_RENDER_SECONDS + 1.0


def test_misspelt_event_in_a_segment_warns(ws):
    import pandas as pd

    from engagelab.errors import EngagelabWarning, UnknownEventWarning
    from engagelab.segments import did

    ws.ingest(
        pd.DataFrame({"user_id": ["a"], "event": ["Charged"], "ts": ["2026-01-01T00:00:00Z"]}),
        quiet=True,
    )
    assert issubclass(UnknownEventWarning, EngagelabWarning)
    with pytest.warns(
        UnknownEventWarning, match=r"no event 'Charge' in the store \(did you mean 'Charged'\?\)"
    ):
        n = ws.count(did("Charge"))
    assert n == 0
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ws.count(did("Charged"))  # a known event: no warning
