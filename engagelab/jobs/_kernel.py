"""Start a job's kernel so that it dies with the papermill process that started it.

Run as ``python _kernel.py PARENT_PID KERNEL_ARGV...`` (by the papermill child's kernel
manager, never imported by engagelab): asks Linux to SIGKILL this process when its
parent dies (``PR_SET_PDEATHSIG``, which survives ``exec``), checks the parent is still
the one that started it, then ``exec``-s the kernel. The papermill child has the same
arrangement with the runner, so killing the runner (even with SIGKILL) takes the child
and then the kernel down at once, instead of the kernel's own once-a-second parent
poll letting it run on (and send) after the runner is gone.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys


def main() -> None:
    parent = int(sys.argv[1])
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent:  # the parent died before we asked
        os._exit(3)
    argv = sys.argv[2:]
    os.execvp(argv[0], argv)


if __name__ == "__main__":
    main()
