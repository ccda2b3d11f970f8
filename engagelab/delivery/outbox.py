"""The default provider: one JSON Lines file per run, idempotent by message key.

Each ``deliver`` call appends the batch's new messages and fsyncs the file once; keys
already in the file (read on ``open``) are acknowledged without writing them again, so
messages re-delivered after a crash appear once. A torn last line (a crash mid-write)
is ignored when reading and dropped by the next ``open``. Several processes may write
one outbox at once (concurrent senders of a run): the torn-line repair and each batch's
write hold an exclusive ``flock`` on the file, so lines never interleave and a line
being written is never taken for a torn one. ``deliver_batch`` takes a
columnar :class:`~engagelab.delivery.protocol.MessageBatch` and encodes its JSON lines
with Arrow compute kernels (each distinct payload is encoded once), so a batch costs a
few microseconds a message.

Example:
    >>> import tempfile, datetime as dt, pathlib
    >>> p = OutboxProvider(pathlib.Path(tempfile.mkdtemp()) / "run.jsonl")
    >>> m = OutgoingMessage("k1", "u1", "c1", "A", "email", "a@example.com", {"subject": "Hi"},
    ...                     dt.datetime(2026, 1, 1, tzinfo=dt.UTC), ("Onboarding",), None)
    >>> p.open(); [r.ok for r in p.deliver([m, m])]; p.deliver([m])[0].ok; p.close()
    [True, True]
    True
    >>> len(p.path.read_text().splitlines())
    1
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from engagelab.delivery.protocol import BatchResult, DeliveryResult, MessageBatch, OutgoingMessage

if TYPE_CHECKING:
    from engagelab.storage.core import Core

__all__ = ["OutboxProvider", "encode_lines", "json_strings", "outbox_path", "read_outbox"]


def outbox_path(ws: Core, run_key: str) -> Path:
    """``<workspace>/outputs/outbox/<run key>.jsonl`` (unsafe characters replaced)."""
    safe = "".join(ch if ch.isalnum() or ch in "-_.@" else "_" for ch in run_key)
    return Path(ws.path) / "outputs" / "outbox" / f"{safe}.jsonl"


_PLAIN = r'["\\]|[^\x20-\x7e]'  # characters json.dumps would escape (or might)


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), default=str)


def json_strings(values: np.ndarray) -> pa.Array:
    """The JSON text of each value (``null`` for None), as :func:`json.dumps` writes it."""
    try:
        arr = pa.array(values, pa.string(), from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError):  # not all strings: encode one by one
        return pa.array([_dumps(v) for v in values], pa.string())
    out = pc.binary_join_element_wise('"', arr, '"', "")
    needs = pc.fill_null(pc.match_substring_regex(arr, _PLAIN), False)
    if pc.any(needs).as_py():
        idx = np.flatnonzero(needs.to_numpy(zero_copy_only=False))
        out = pc.replace_with_mask(out, needs, pa.array([_dumps(values[i]) for i in idx]))
    return pc.fill_null(out, "null")


def _iso_utc(send_us: np.ndarray) -> pa.Array:
    """``datetime.isoformat()`` of UTC instants given in microseconds since the epoch."""
    t = np.asarray(send_us, dtype=np.int64).astype("datetime64[us]")
    whole = np.datetime_as_string(t, unit="s").astype(object)
    frac = send_us % 1_000_000 != 0
    if frac.any():
        whole[frac] = np.datetime_as_string(t[frac], unit="us")
    return pc.binary_join_element_wise('"', pa.array(whole, pa.string()), '+00:00"', "")


def encode_lines(batch: MessageBatch) -> pa.Array:
    """One JSON line (newline included) per message of ``batch``, in the outbox's record
    layout, with the same text ``json.dumps`` gives each record."""
    pay = pa.array([_dumps(p) for p in batch.payloads], pa.string())
    pay = pay.take(pa.array(np.asarray(batch.payload_index, dtype=np.int64)))
    const = (
        f',"channel":{_dumps(batch.channel)},"to":',
        f',"labels":{_dumps(list(batch.labels))},"ttl_seconds":{_dumps(batch.ttl_seconds)}'
        ',"payload":',
    )
    return pc.binary_join_element_wise(
        '{"key":', json_strings(batch.key),
        ',"user_id":', json_strings(batch.user_id),
        f',"campaign_id":{_dumps(batch.campaign_id)},"variant":', json_strings(batch.variant),
        const[0], json_strings(batch.to),
        ',"send_at":', _iso_utc(batch.send_us),
        const[1], pay, "}\n", "",
    )  # fmt: skip


def data(lines: pa.Array) -> memoryview:
    """The bytes of a string array's values, back to back."""
    off = np.frombuffer(lines.buffers()[1], dtype=np.int32, count=len(lines) + 1,
                        offset=lines.offset * 4)  # fmt: skip
    return memoryview(lines.buffers()[2])[off[0] : off[-1]]


@contextlib.contextmanager
def _locked(fh: Any) -> Iterator[None]:
    """An exclusive advisory lock on an open file (a no-op where ``fcntl`` is missing)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield
        return
    fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
    try:
        yield
    finally:
        fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def read_outbox(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The complete records of an outbox file (a torn last line is skipped)."""
    out: list[dict[str, Any]] = []
    p = Path(path)
    if not p.exists():
        return out
    with p.open("rb") as fh:
        for line in fh:
            if not line.endswith(b"\n"):
                break
            out.append(json.loads(line))
    return out


class OutboxProvider:
    """Writes messages to a JSON Lines file (see the module docstring)."""

    name = "outbox"

    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path)
        self._keys: set[str] = set()
        self._fh: Any = None

    @classmethod
    def for_run(cls, ws: Core, run_key: str) -> OutboxProvider:
        return cls(outbox_path(ws, run_key))

    def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._keys = set()
        self._fh = self.path.open("ab")
        with _locked(self._fh):
            good = 0
            with self.path.open("rb") as fh:
                for line in fh:
                    if not line.endswith(b"\n"):
                        break
                    self._keys.add(json.loads(line)["key"])
                    good += len(line)
            if good != self.path.stat().st_size:  # drop a torn last line
                with self.path.open("r+b") as fh:
                    fh.truncate(good)

    def deliver(self, batch: Sequence[OutgoingMessage]) -> list[DeliveryResult]:
        """Append the new messages of ``batch`` (see the module docstring)."""

        def meta(m: OutgoingMessage) -> tuple[Any, ...]:
            return (m.campaign_id, m.channel, tuple(m.labels), m.ttl_seconds)

        start = 0
        for i in range(1, len(batch) + 1):  # runs of messages sharing campaign metadata
            if i == len(batch) or meta(batch[i]) != meta(batch[start]):
                self.deliver_batch(MessageBatch.from_messages(batch[start:i]))
                start = i
        return [DeliveryResult(m.key, True, provider_id=m.key) for m in batch]

    def deliver_batch(self, batch: MessageBatch) -> BatchResult:
        """Append the new messages of a columnar batch with one write and one fsync."""
        if self._fh is None:
            self.open()
        n = len(batch)
        keys = batch.key
        fresh = set(keys.tolist())
        if len(fresh) != n or not self._keys.isdisjoint(fresh):
            keep = np.zeros(n, dtype=bool)
            seen = set(self._keys)
            for i, k in enumerate(keys.tolist()):
                if k not in seen:
                    seen.add(k)
                    keep[i] = True
            batch = batch.take(keep)
            fresh = set(batch.key.tolist())
        if len(batch):
            with _locked(self._fh):
                for lo in range(0, len(batch), 100_000):  # bounded arrays (int32 offsets)
                    part = batch.take(slice(lo, lo + 100_000))
                    self._fh.write(data(encode_lines(part)))
                self._fh.flush()
                os.fsync(self._fh.fileno())
            self._keys |= fresh
        return BatchResult.all_ok(n)

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    def __repr__(self) -> str:
        return f"OutboxProvider({str(self.path)!r})"
