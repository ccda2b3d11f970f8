"""Sending processes for the multi-process campaign tests (``python -m tests.campaigns.workers``)."""

from __future__ import annotations

import json
import sys
import time

from engagelab import Workspace
from engagelab.campaigns import Campaign, OutboxProvider, plan, send


class SlowOutbox(OutboxProvider):
    """The outbox provider, pausing after each batch so a test can kill the process mid-run."""

    def __init__(self, path, pause: float):
        super().__init__(path)
        self.pause = pause

    def deliver(self, batch):
        out = super().deliver(batch)
        time.sleep(self.pause)
        return out


def run(
    ws_path: str,
    spec: str,
    logical_date: str,
    run_key: str,
    batch: int,
    pause: float,
    barrier: str = "",
) -> None:
    ws = Workspace.open(ws_path)
    c = Campaign.from_json(spec)
    p = plan(ws, c, logical_date, run_key=run_key)
    if barrier:  # both processes have planned before either sends: the caps race at claim
        from pathlib import Path

        Path(barrier, run_key).touch()
        while len(list(Path(barrier).iterdir())) < 2:
            time.sleep(0.01)
    prov = SlowOutbox(OutboxProvider.for_run(ws, run_key).path, pause)
    r = send(ws, p, run_key, prov, batch_size=batch)
    print(json.dumps(r.to_dict()))
    ws.close()


if __name__ == "__main__":
    a = sys.argv[1:]
    run(a[0], a[1], a[2], a[3], int(a[4]), float(a[5]), *a[6:])
