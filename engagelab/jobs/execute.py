"""One attempt's papermill process: start it early, hand it the request, watch it, classify.

The notebook runs in a child process (``_child.py``) so that a wall-clock timeout can kill
it, a runner that dies takes it down too (``PR_SET_PDEATHSIG``; the kernel follows through
its parent poller), and the outcome is classified from the exception type the child saw
or from its exit status, never from the output notebook's metadata (which papermill marks
"completed" even after a dead kernel or a timeout).

Outcome classes:
    ``succeeded``; ``cell_error`` (cell index, error name and value); ``dead_kernel``;
    ``timeout`` (a cell ran past ``cell_timeout``, or the attempt past ``timeout``);
    ``crashed`` (the papermill process died or failed outside the notebook, or the runner
    lost its lease; a runner that died is classified ``crashed`` by the next invocation).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

__all__ = ["Attempt", "Executor"]

CHILD = Path(__file__).with_name("_child.py")


class Attempt(dict):
    """The child's verdict: ``status`` plus optional error details and ``html_path``."""


class Executor:
    """A papermill child process, started at construction (importing papermill meanwhile).

    Args:
        env: extra environment variables for the child (and so for the kernel).
        python: the interpreter; default this one.
    """

    def __init__(self, env: dict[str, str] | None = None, python: str | None = None):
        self._log = tempfile.TemporaryFile()  # noqa: SIM115  (closed in run/cancel)
        self.proc = subprocess.Popen(
            [python or sys.executable, str(CHILD), str(os.getpid())],
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=self._log,
            env={**os.environ, **(env or {})},
        )  # fmt: skip

    @classmethod
    def for_workspace(cls, path: str | os.PathLike[str]) -> Executor:
        """The child of a run in the workspace at (resolved) ``path``: its kernel finds the
        workspace through ``$ENGAGELAB_WORKSPACE``."""
        return cls(env={"ENGAGELAB_WORKSPACE": str(path)})

    def cancel(self) -> None:
        """Not needed after all: stop the child (it has not started a kernel)."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        self._log.close()

    def run(
        self,
        request: dict[str, Any],
        *,
        timeout: float | None,
        lost: threading.Event | None = None,
        stop: threading.Event | None = None,
    ) -> Attempt:
        """Send ``request`` and wait; kill the child on wall-clock ``timeout``, a ``lost``
        lease or ``stop``; return the classified outcome."""
        result_path = Path(request["result"])
        result_path.unlink(missing_ok=True)
        try:
            self.proc.stdin.write(json.dumps(request).encode())  # type: ignore[union-attr]
            self.proc.stdin.close()  # type: ignore[union-attr]
        except BrokenPipeError:
            pass
        try:
            return self._wait(request, result_path, timeout, lost, stop)
        except BaseException:  # KeyboardInterrupt, a failing check: never leave a notebook running
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            raise

    def _wait(
        self,
        request: dict[str, Any],
        result_path: Path,
        timeout: float | None,
        lost: threading.Event | None,
        stop: threading.Event | None,
    ) -> Attempt:
        start = time.monotonic()
        killed = ""
        exited = threading.Event()  # set the moment the child exits, so no poll delay is added

        def _reap() -> None:
            self.proc.wait()
            exited.set()

        waiter = threading.Thread(target=_reap, name="papermill-child-waiter", daemon=True)
        waiter.start()
        while not exited.wait(0.05):
            if timeout is not None and time.monotonic() - start > timeout:
                killed = "timeout"
            elif lost is not None and lost.is_set():
                killed = "lost"
            elif stop is not None and stop.is_set():
                killed = "stop"
            if killed:
                self.proc.kill()
                break
        waiter.join()
        code = self.proc.returncode
        try:
            if killed == "timeout":
                return Attempt(status="timeout", error_name="WallClockTimeout",
                               error_value=f"the attempt ran longer than {timeout:g} s and was killed")  # fmt: skip
            if killed == "lost":
                return Attempt(status="crashed", error_name="LeaseLost",
                               error_value="another runner took over this run's lease; attempt stopped")  # fmt: skip
            if killed == "stop":
                return Attempt(status="crashed", error_name="Abandoned",
                               error_value="the runner was asked to stop; attempt abandoned")  # fmt: skip
            if result_path.exists():
                out = Attempt(json.loads(result_path.read_text()))
                result_path.unlink(missing_ok=True)
                return out
            return Attempt(status="crashed", error_name="PapermillProcessDied",
                           error_value=f"the papermill process exited with code {code}: {self._tail()}")  # fmt: skip
        finally:
            self._log.close()

    def _tail(self) -> str:
        try:
            self._log.seek(0)
            text = self._log.read().decode(errors="replace").strip()
        except (OSError, ValueError):
            return ""
        return " | ".join(text.splitlines()[-3:])[-500:]
