"""Tell someone a run finished: a JSON POST to a webhook and/or an e-mail over SMTP.

A failing hook never changes the run's outcome: :func:`notify` returns the error text
(recorded on the :class:`~engagelab.jobs.RunResult`) instead of raising.
"""

from __future__ import annotations

import smtplib
from email.message import EmailMessage
from typing import Any

from engagelab.jobs.spec import Notify

__all__ = ["notify", "payload"]


def payload(result: Any) -> dict[str, Any]:
    """The JSON body sent for ``result`` (job, logical date, status, last attempt's details)."""
    last = result.last
    return {
        "job": result.job, "logical_date": result.logical_date, "status": result.status,
        "attempts": len(result.attempts), "error_name": last.get("error_name"),
        "error_value": last.get("error_value"), "cell_index": last.get("cell_index"),
        "output_path": last.get("output_path"), "html_path": last.get("html_path"),
    }  # fmt: skip


def notify(hook: Notify, result: Any, *, timeout: float = 10.0) -> str | None:
    """Send ``result`` through ``hook`` if its ``on`` list covers the outcome; errors as text."""
    kind = "success" if result.status == "succeeded" else "failure"
    if kind not in hook.on:
        return None
    body = payload(result)
    errors = []
    if hook.webhook:
        try:
            import httpx

            r = httpx.post(hook.webhook, json=body, timeout=timeout)
            r.raise_for_status()
        except Exception as exc:
            errors.append(f"webhook: {type(exc).__name__}: {exc}")
    if hook.email:
        try:
            msg = EmailMessage()
            msg["Subject"] = f"[engagelab] {result.job} {result.logical_date}: {result.status}"
            msg["From"] = hook.sender
            msg["To"] = hook.email
            msg.set_content("\n".join(f"{k}: {v}" for k, v in body.items()))
            host, port = hook.smtp.rsplit(":", 1)
            with smtplib.SMTP(host, int(port), timeout=timeout) as s:
                s.send_message(msg)
        except Exception as exc:
            errors.append(f"email: {type(exc).__name__}: {exc}")
    return "; ".join(errors) or None
