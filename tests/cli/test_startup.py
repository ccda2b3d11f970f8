"""Start-up cost of the command line: light commands never load the statistics stack."""

from __future__ import annotations

import json
import subprocess
import sys

import engagelab
from engagelab import Workspace
from engagelab.campaigns import Campaign, Variant, save_campaign

HEAVY = ("scipy", "statsmodels", "matplotlib", "IPython", "ipywidgets", "papermill")

_PROBE = f"""
import json, sys
from engagelab.cli import main
code = main(sys.argv[1:])
print(json.dumps({{"code": code, "heavy": sorted(m for m in {HEAVY!r} if m in sys.modules)}}))
"""


def _probe(*argv: str) -> dict:
    out = subprocess.run([sys.executable, "-c", _PROBE, *argv], capture_output=True, text=True,
                         check=True, timeout=120)  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_campaign_list_does_not_import_scipy_or_statsmodels(tmp_path):
    with Workspace.create(tmp_path / "ws") as ws:
        save_campaign(ws, Campaign(id="hello", channel="push",
                                   variants=(Variant("A", {"title": "Hi", "body": "there"}),)))  # fmt: skip
    code = f"import sys, engagelab.cli; print(sorted(m for m in {HEAVY!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    got = _probe("campaign", "list", "--format", "json", "-w", str(tmp_path / "ws"))
    assert got == {"code": 0, "heavy": []}


def test_experiment_design_does_not_import_statsmodels():
    got = _probe("experiment", "design", "--baseline", "0.05", "--mde", "0.01")
    assert got["code"] == 0 and "statsmodels" not in got["heavy"]


def test_version():
    out = subprocess.run([sys.executable, "-m", "engagelab.cli", "--version"], capture_output=True,
                         text=True, timeout=60)  # fmt: skip
    assert out.returncode == 0
    assert out.stdout.strip() == f"engagelab {engagelab.__version__}"
