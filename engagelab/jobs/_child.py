"""The papermill process of one job attempt (run as a script, never imported by engagelab).

Started by :mod:`engagelab.jobs.execute` *before* the runner has finished its own checks,
so importing papermill overlaps with them. It asks to die with the runner (Linux
``PR_SET_PDEATHSIG``) and starts the kernel through ``_kernel.py``, which asks the same
for the kernel, so a killed runner leaves no kernel running. It reads one JSON request from
stdin (an empty stdin means "not needed": exit 0), runs papermill, classifies the outcome
from the exception type only, scrubs secret values from the output notebook, optionally
renders HTML, and writes a JSON result file. It imports nothing from engagelab so that
starting it stays cheap.
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import sys
import traceback


def _die_with_parent(parent: int) -> None:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent:  # the parent died before we asked
        os._exit(3)


def _kernel_manager_class() -> type:
    """nbclient's kernel manager, starting the kernel through ``_kernel.py`` so that it
    gets ``PR_SET_PDEATHSIG`` too (it dies the moment this process dies)."""
    from jupyter_client.manager import AsyncKernelManager

    wrapper = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_kernel.py")

    class DieWithParentKernelManager(AsyncKernelManager):
        def format_kernel_cmd(self, extra_arguments: list | None = None) -> list:
            cmd = super().format_kernel_cmd(extra_arguments)
            return [sys.executable, wrapper, str(os.getpid()), *cmd]

    return DieWithParentKernelManager


def _classify(exc: BaseException) -> dict:
    from nbclient.exceptions import CellTimeoutError, DeadKernelError
    from papermill.exceptions import PapermillExecutionError

    if isinstance(exc, PapermillExecutionError):
        return {"status": "cell_error", "cell_index": exc.cell_index, "error_name": exc.ename,
                "error_value": str(exc.evalue)}  # fmt: skip
    if isinstance(exc, CellTimeoutError):
        return {
            "status": "timeout",
            "error_name": "CellTimeoutError",
            "error_value": _first_line(exc),
        }
    if isinstance(exc, DeadKernelError):
        return {
            "status": "dead_kernel",
            "error_name": "DeadKernelError",
            "error_value": _first_line(exc),
        }
    return {"status": "crashed", "error_name": type(exc).__name__, "error_value": _first_line(exc),
            "traceback": traceback.format_exc()[-4000:]}  # fmt: skip


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or repr(exc)
    return text.splitlines()[0][:500] if "\n" in text else text[:500]


def _scrub_text(text: str, secrets: list[str]) -> str:
    # the same rule as engagelab.redact.Redactor (not imported: this process stays cheap)
    forms = {f for value in secrets for f in (value, json.dumps(value)[1:-1])}
    for form in sorted(forms, key=len, reverse=True):
        text = text.replace(form, "***")
    return text


def _scrub(path: str, secrets: list[str]) -> None:
    if not secrets or not os.path.exists(path):
        return
    with open(path, encoding="utf-8") as fh:
        text = fh.read()
    new = _scrub_text(text, secrets)
    if new != text:
        tmp = path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(new)
        os.replace(tmp, path)


def _html(src: str, dest: str) -> None:
    import nbformat
    from nbconvert import HTMLExporter

    body, _ = HTMLExporter().from_notebook_node(nbformat.read(src, as_version=4))
    tmp = dest + ".tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(body)
    os.replace(tmp, dest)


#: Optional modules that importing papermill loads but a run on local files never uses:
#: jsonschema builds an IRI grammar with lark when ``rfc3987_syntax`` is installed (its
#: "iri" format check; nbformat validates without format checks), and papermill's HDFS
#: handler imports pyarrow. Together they cost more CPU than the rest of papermill's
#: import (measured here: 2.6 -> 0.6 CPU s with cached bytecode, 4.4 -> 1.7 without;
#: the grammar is built at every import, bytecode or not). Marking them absent makes
#: those imports fail the way a missing optional dependency does, which both libraries
#: handle (papermill then names the package to install if an hdfs:// path is used).
UNUSED_OPTIONAL = ("rfc3987_syntax", "pyarrow")


def main() -> int:
    _die_with_parent(int(sys.argv[1]))
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the runner's to handle
    for name in UNUSED_OPTIONAL:
        sys.modules.setdefault(name, None)  # type: ignore[arg-type]
    import papermill  # noqa: F401  (the expensive import, overlapped with the runner's checks)

    raw = sys.stdin.read()
    if not raw.strip():
        return 0
    req = json.loads(raw)
    result: dict = {"status": "succeeded"}
    try:
        import papermill as pm

        pm.execute_notebook(
            req["input"], req["output"], parameters=req["parameters"], kernel_name=req["kernel_name"],
            execution_timeout=req.get("cell_timeout"), progress_bar=False, log_output=False,
            cwd=req.get("cwd"), autosave_cell_every=0, kernel_manager_class=_kernel_manager_class(),
        )  # fmt: skip
    except BaseException as exc:  # noqa: BLE001  (every outcome is classified and reported)
        result = _classify(exc)
    secrets = [os.environ[n] for n in req.get("secret_env", []) if len(os.environ.get(n, "")) >= 4]
    _scrub(req["output"], secrets)
    if req.get("html") and os.path.exists(req["output"]):
        try:
            _html(req["output"], req["html"])
            result["html_path"] = req["html"]
        except Exception as exc:  # a report failure must not hide the run's own outcome
            result["html_error"] = f"{type(exc).__name__}: {exc}"
    result = {k: _scrub_text(v, secrets) if isinstance(v, str) else v for k, v in result.items()}
    tmp = req["result"] + ".tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(result, fh)
    os.replace(tmp, req["result"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
