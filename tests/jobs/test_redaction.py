"""A secret never appears in output notebooks, reports, job history, logs or messages."""

from __future__ import annotations

import json

import pytest

from engagelab.jobs import EXIT_CODES, JobSpec, add_job, history, run_job
from engagelab.redact import MASK, Redactor

from .conftest import cli, write_notebook

pytestmark = pytest.mark.slow

TOKEN = "tok-Zq8v1-secret-value"


def _files_holding(root, secret: str) -> list[str]:
    hits = []
    for path in root.rglob("*"):
        if path.is_file() and secret.encode() in path.read_bytes():
            hits.append(str(path))
    return hits


def test_a_secret_is_redacted_everywhere_a_run_writes(jws, tmp_path, monkeypatch):
    nb = write_notebook(
        tmp_path / "leaky.ipynb",
        "note = ''",
        "import os\ntoken = os.environ['RED_TOKEN']\nprint('using', token, note)\ntoken",
        "raise RuntimeError(f'login failed with {token}')",
    )
    add_job(jws, JobSpec(name="leaky", notebook=str(nb), params={"note": "str"},
                         secret_env=["RED_TOKEN"], html_report=True))  # fmt: skip
    monkeypatch.setenv("RED_TOKEN", TOKEN)
    # the command line, with the secret also passed as an innocent-looking parameter
    r = cli("run", "leaky", "-d", "2026-03-01", "-p", f"note={TOKEN}", ws=jws)
    assert r.returncode == EXIT_CODES["cell_error"], r.stderr
    assert "login failed with ***" in r.stderr
    assert TOKEN not in r.stdout + r.stderr
    # the API: what it returns and raises
    res = run_job(jws, "leaky", "2026-03-02", {"note": TOKEN})
    assert res.status == "cell_error"
    assert res.message == "login failed with ***"
    assert TOKEN not in repr(res) and TOKEN not in json.dumps(res.to_dict(), default=str)
    assert TOKEN not in res._repr_html_()
    h = history(jws, "leaky")
    assert list(h["status"]) == ["cell_error", "cell_error"]
    assert TOKEN not in h.to_json(date_format="iso") and all(
        v == "login failed with ***" for v in h["error_value"]
    )
    # every file: executed notebooks, HTML reports, the state DB (and its WAL), the config
    out = jws.path / "outputs"
    assert sorted(p.suffix for p in out.rglob("attempt-*")) == [
        ".html",
        ".html",
        ".ipynb",
        ".ipynb",
    ]
    assert _files_holding(jws.path, TOKEN) == []
    assert _files_holding(tmp_path, TOKEN) == []
    text = next(out.rglob("attempt-1.ipynb")).read_text()
    assert f"using {MASK} {MASK}" in text  # the output is there, masked


def test_redactor_masks_text_values_and_files(tmp_path):
    r = Redactor(['pa"ss-word', "x"])
    assert r.text('auth pa"ss-word') == f"auth {MASK}"
    f = tmp_path / "n.json"
    f.write_text(json.dumps({"out": 'was pa"ss-word'}))
    assert r.file(f) and "pa" not in f.read_text() and MASK in f.read_text()
    assert not r.file(f)  # nothing left to mask
    assert r.value(("x", 1)) == ("x", 1)  # too short to mask
    assert "pa" not in repr(r)
