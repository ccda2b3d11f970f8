"""A sending process for the SIGKILL tests: ``python -m tests.delivery.kill_worker ...``.

Plans and sends a campaign through the SMTP or HTTP provider of engagelab.channels,
pausing after each delivered batch (before the ledger marks it sent), so a test can kill
it at the worst moment: messages delivered but still in doubt.
"""

from __future__ import annotations

import json
import sys
import time

from engagelab import Workspace
from engagelab.campaigns import Campaign, plan, send
from engagelab.delivery.http import HttpProvider
from engagelab.delivery.smtp import SmtpProvider


def make_provider(kind: str, port: int, pause: float = 0.0):
    """The provider of ``kind`` ('smtp' | 'http'), pausing ``pause`` s after each batch."""
    base = SmtpProvider if kind == "smtp" else HttpProvider

    class Pausing(base):  # type: ignore[misc, valid-type]
        def deliver(self, batch):
            out = super().deliver(batch)
            time.sleep(pause)
            return out

    if kind == "smtp":
        return Pausing("127.0.0.1", port)
    return Pausing(channel="webhook", retries=2, backoff=0.05)


def run(ws_path: str, spec: str, logical_date: str, run_key: str, kind: str, port: int,
        batch: int, pause: float) -> None:  # fmt: skip
    ws = Workspace.open(ws_path)
    c = Campaign.from_json(spec)
    p = plan(ws, c, logical_date, run_key=run_key)
    r = send(ws, p, run_key, make_provider(kind, port, pause), batch_size=batch)
    print(json.dumps(r.to_dict()))
    ws.close()


if __name__ == "__main__":
    a = sys.argv[1:]
    run(a[0], a[1], a[2], a[3], a[4], int(a[5]), int(a[6]), float(a[7]))
