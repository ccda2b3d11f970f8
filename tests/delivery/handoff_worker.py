"""A sending process for the per-message hand-off tests:
``python -m tests.delivery.handoff_worker WS SPEC DATE RUN_KEY PORT STALL_AFTER LEASE``.

Plans and sends a campaign through the real SMTP provider. With ``STALL_AFTER`` > 0 the
process stops making progress (sleeps, alive) once it has handed that many messages to
the server: a sender that hangs while holding claims.
"""

from __future__ import annotations

import json
import sys
import time

from engagelab import Workspace
from engagelab.campaigns import Campaign, plan, send
from engagelab.delivery.smtp import SmtpProvider


class Stalling(SmtpProvider):
    """The SMTP provider, hanging after ``stall_after`` accepted messages (0: never)."""

    def __init__(self, port: int, stall_after: int):
        super().__init__("127.0.0.1", port)
        self.stall_after = stall_after
        self.accepted = 0

    def _send_one(self, m, slot=0):
        out = super()._send_one(m, slot)
        self.accepted += bool(out.ok)
        if self.stall_after and self.accepted >= self.stall_after:
            print("stalled", flush=True)
            time.sleep(3600)
        return out


def run(ws_path: str, spec: str, logical_date: str, run_key: str, port: int, stall_after: int,
        lease: float) -> None:  # fmt: skip
    ws = Workspace.open(ws_path)
    c = Campaign.from_json(spec)
    p = plan(ws, c, logical_date, run_key=run_key)
    r = send(ws, p, run_key, Stalling(port, stall_after), batch_size=5000, lease_seconds=lease)
    print(json.dumps(r.to_dict()), flush=True)
    ws.close()


if __name__ == "__main__":
    a = sys.argv[1:]
    run(a[0], a[1], a[2], a[3], int(a[4]), int(a[5]), float(a[6]))
