"""(Doctests: tests/test_doctests.py.) The docstring examples of engagelab.channels run, and the package stays import-light."""

from __future__ import annotations

import subprocess
import sys


def test_importing_channels_loads_no_network_or_ui_modules():
    code = (
        "import sys, engagelab.channels, engagelab.delivery.protocol\n"
        "bad = [m for m in ('httpx', 'smtplib', 'ipywidgets', 'IPython', 'pyspark', 'aiosmtpd') "
        "if m in sys.modules]\n"
        "print(bad)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
