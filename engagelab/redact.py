"""Secret redaction: one place that knows how to keep secret values out of what we write.

A :class:`Redactor` holds the secret *values* of a run (the environment variables a job
lists in ``secret_env``, a provider's token) and replaces every occurrence, also in its
JSON-escaped form, by ``***`` in text, in nested values (history rows, parameters), and in
files (executed notebooks, HTML reports). The job runner applies it to what it records
(error messages, parameters, the output notebook) and to what it raises and logs.

Values shorter than ``min_length`` (4) are not redacted: masking ``"1"`` everywhere would
destroy the output and protect nothing.

Example:
    >>> r = Redactor(["s3cr3t-token", "ab"])
    >>> r.text("auth failed for s3cr3t-token")
    'auth failed for ***'
    >>> r.value({"note": "x s3cr3t-token", "n": 3, "tags": ["s3cr3t-token"]})
    {'note': 'x ***', 'n': 3, 'tags': ['***']}
    >>> Redactor.from_env(["NOT_SET_ANYWHERE_X"], env={}).secrets
    ()
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

__all__ = ["MASK", "Redactor"]

#: What a secret value is replaced with.
MASK = "***"


class Redactor:
    """Replaces known secret values by :data:`MASK` wherever they appear."""

    def __init__(self, secrets: Iterable[str] = (), *, min_length: int = 4):
        forms: set[str] = set()
        for s in secrets:
            if isinstance(s, str) and len(s) >= min_length:
                forms.add(s)
                forms.add(json.dumps(s)[1:-1])  # as it appears inside JSON text
        # longest first, so a secret containing another is masked whole
        self._forms = tuple(sorted(forms, key=len, reverse=True))
        self.secrets = tuple(s for s in secrets if isinstance(s, str) and len(s) >= min_length)

    @classmethod
    def from_env(
        cls, names: Iterable[str], env: Mapping[str, str] | None = None, **kw: Any
    ) -> Redactor:
        """A redactor of the values of environment variables ``names`` (unset ones skipped)."""
        env = os.environ if env is None else env
        return cls([env[n] for n in names if env.get(n)], **kw)

    def __bool__(self) -> bool:
        return bool(self._forms)

    def __repr__(self) -> str:
        return f"Redactor({len(self.secrets)} secret(s))"  # never the values

    def text(self, text: str) -> str:
        """``text`` with every secret replaced."""
        for form in self._forms:
            if form in text:
                text = text.replace(form, MASK)
        return text

    def value(self, value: Any) -> Any:
        """A copy of ``value`` (str, mapping, list, tuple; others as is) with secrets replaced."""
        if not self._forms:
            return value
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, Mapping):
            return {k: self.value(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return type(value)(self.value(v) for v in value)
        return value

    def file(self, path: str | os.PathLike[str]) -> bool:
        """Redact a text file in place (atomically); True if it changed."""
        p = Path(path)
        if not self._forms or not p.is_file():
            return False
        text = p.read_text(encoding="utf-8", errors="surrogateescape")
        new = self.text(text)
        if new == text:
            return False
        tmp = p.with_name(p.name + ".redact-tmp")
        tmp.write_text(new, encoding="utf-8", errors="surrogateescape")
        os.replace(tmp, p)
        return True
