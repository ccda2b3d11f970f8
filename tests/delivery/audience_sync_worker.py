"""A syncing process for the SIGKILL test: ``python -m tests.delivery.audience_sync_worker``.

Arguments: workspace, channel, audience, run key, members (JSON), stop point. It syncs the
audience and, at the stop point, prints ``STOPPED`` and sleeps so the test can kill it:

* ``mid-write``: half of ``full.csv`` is in its temp file (the add/remove files are done);
* ``before-commit``: every file is in place, the sync row is not committed yet.
"""

from __future__ import annotations

import json
import sys
import time

from engagelab import Workspace
from engagelab.delivery import audience_sync as A


def _stop() -> None:
    print("STOPPED", flush=True)
    time.sleep(60)
    sys.exit(3)  # not killed: the test failed to kill us


def run(ws_path: str, channel: str, audience: str, run_key: str, members: str, at: str) -> None:
    ws = Workspace.open(ws_path)
    if at == "mid-write":
        real = A._write_atomic

        def torn(path, text):  # type: ignore[no-untyped-def]
            if path.name == "full.csv":
                tmp = path.with_name(f".{path.name}.{A.os.getpid()}.0000.tmp")
                tmp.write_text(text[: len(text) // 2], encoding="utf-8")
                _stop()
            real(path, text)

        A._write_atomic = torn
    elif at == "before-commit":
        real_files = A._write_files

        def then_stop(*args):  # type: ignore[no-untyped-def]
            real_files(*args)
            _stop()

        A._write_files = then_stop
    A.sync_audience(ws, channel, audience, json.loads(members), run_key)
    print("DONE", flush=True)
    ws.close()


if __name__ == "__main__":
    run(*sys.argv[1:7])
