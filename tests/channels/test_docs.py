"""The docstring examples of engagelab.channels run, and the package stays import-light."""

from __future__ import annotations

import doctest
import importlib
import subprocess
import sys

import pytest

MODULES = [
    "engagelab.channels",
    "engagelab.channels._base",
    "engagelab.channels._templates",
    "engagelab.channels.content",
    "engagelab.delivery.http",
    "engagelab.delivery.inbox",
    "engagelab.delivery.remarketing",
    "engagelab.channels.sms",
    "engagelab.delivery.smtp",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
    assert result.attempted > 0


def test_importing_channels_loads_no_network_or_ui_modules():
    code = (
        "import sys, engagelab.channels, engagelab.delivery.protocol\n"
        "bad = [m for m in ('httpx', 'smtplib', 'ipywidgets', 'IPython', 'pyspark', 'aiosmtpd') "
        "if m in sys.modules]\n"
        "print(bad)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
