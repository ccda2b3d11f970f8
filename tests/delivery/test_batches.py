"""Columnar message batches: conversion both ways, result merging, provider dispatch, and
the outbox's bulk JSON Lines encoding (checked against json.dumps record by record)."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engagelab.delivery.outbox import OutboxProvider, encode_lines, read_outbox
from engagelab.delivery.protocol import (
    BatchResult,
    DeliveryResult,
    MessageBatch,
    OutgoingMessage,
    deliver_batch,
)
from engagelab.errors import ValidationError

UTC = dt.UTC


def msg(key, user="u1", *, to="a@example.com", payload=None, at=None, variant="A", labels=("L",)):
    return OutgoingMessage(
        key, user, "c1", variant, "email", to, payload or {"subject": "Hi"},
        at or dt.datetime(2026, 1, 1, tzinfo=UTC), labels, None,
    )  # fmt: skip


def record(m: OutgoingMessage) -> str:
    rec = {
        "key": m.key, "user_id": m.user_id, "campaign_id": m.campaign_id, "variant": m.variant,
        "channel": m.channel, "to": m.to, "send_at": m.send_at.isoformat(),
        "labels": list(m.labels), "ttl_seconds": m.ttl_seconds, "payload": m.payload,
    }  # fmt: skip
    return json.dumps(rec, separators=(",", ":"), default=str) + "\n"


def test_batch_round_trip():
    ms = [msg("k1"), msg("k2", "u2", to=None, at=dt.datetime(2026, 1, 1, 3, 4, 5, 6, tzinfo=UTC))]
    b = MessageBatch.from_messages(ms)
    assert len(b) == 2 and b.send_us[1] - b.send_us[0] == (3 * 3600 + 4 * 60 + 5) * 10**6 + 6
    assert b.messages() == ms
    sub = b.take(np.array([1]))
    assert [m.key for m in sub.messages()] == ["k2"] and sub.messages()[0].to is None


def test_batch_refuses_mixed_campaigns():
    other = OutgoingMessage("k2", "u", "c2", "A", "email", None, {}, dt.datetime.now(UTC), (), None)
    with pytest.raises(ValidationError, match=r"batch.campaign_id == 'c2'"):
        MessageBatch.from_messages([msg("k1"), other])


def test_results_by_key_and_merge():
    keys = np.array(["a", "b", "c"], dtype=object)
    res = BatchResult.from_results(
        keys,
        [DeliveryResult("c", False, error="451"), DeliveryResult("a", True, provider_id="p-a"),
         DeliveryResult("b", False, permanent=True, error="550")],
    )  # fmt: skip
    assert res.ok.tolist() == [True, False, False]
    assert res.permanent.tolist() == [False, True, False]
    assert res.provider_id.tolist() == ["p-a", None, None]
    again = res.merge(np.array([2]), BatchResult.all_ok(1))
    assert again.ok.tolist() == [True, False, True]
    assert again.error.tolist() == [None, "550", None]
    with pytest.raises(ValidationError, match="lack an answer"):
        BatchResult.from_results(keys, [DeliveryResult("a", True)])


class OneByOne:
    name = "one"

    def __init__(self):
        self.calls = []

    def deliver(self, batch):
        self.calls.append(len(batch))
        return [DeliveryResult(m.key, True) for m in batch]


class Bulk(OneByOne):
    def deliver_batch(self, batch):
        self.calls.append(("bulk", len(batch)))
        return BatchResult.all_ok(len(batch))


class PausingBulk(Bulk):
    def deliver(self, batch):  # a subclass hooking deliver must be called
        self.calls.append("hooked")
        return super().deliver(batch)


def test_dispatch_prefers_bulk_unless_deliver_is_overridden_below_it():
    b = MessageBatch.from_messages([msg("k1"), msg("k2")])
    for prov, expect in ((OneByOne(), [2]), (Bulk(), [("bulk", 2)]),
                         (PausingBulk(), ["hooked", 2])):  # fmt: skip
        assert deliver_batch(prov, b).ok.all()
        assert prov.calls == expect


def test_outbox_subclass_hooking_deliver_still_writes(tmp_path):
    seen = []

    class Hooked(OutboxProvider):
        def deliver(self, batch):
            seen.append(len(batch))
            return super().deliver(batch)

    p = Hooked(tmp_path / "o.jsonl")
    p.open()
    assert deliver_batch(p, MessageBatch.from_messages([msg("k1"), msg("k2")])).ok.all()
    p.close()
    assert seen == [2] and [r["key"] for r in read_outbox(p.path)] == ["k1", "k2"]


text = st.text(st.characters(codec="utf-8"), max_size=12)


@settings(max_examples=60, deadline=None)
@given(
    users=st.lists(text, min_size=1, max_size=6),
    to=st.one_of(st.none(), text),
    variant=st.one_of(st.none(), text),
    subject=text,
    micros=st.integers(-(10**15), 10**16),
    labels=st.lists(text, max_size=3),
)
def test_encode_lines_is_json_dumps(users, to, variant, subject, micros, labels):
    at = dt.datetime(1970, 1, 1, tzinfo=UTC) + dt.timedelta(microseconds=micros)
    ms = [msg(f"k{i}", u, to=to, variant=variant, payload={"subject": subject, "n": i}, at=at,
              labels=tuple(labels)) for i, u in enumerate(users)]  # fmt: skip
    assert encode_lines(MessageBatch.from_messages(ms)).to_pylist() == [record(m) for m in ms]


def test_outbox_bulk_dedups_and_fsyncs_once(tmp_path, monkeypatch):
    import os

    syncs = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (syncs.append(fd), real(fd)))
    p = OutboxProvider(tmp_path / "o.jsonl")
    p.open()
    b = MessageBatch.from_messages([msg(f"k{i}") for i in range(5)] + [msg("k0")])
    assert deliver_batch(p, b).ok.tolist() == [True] * 6
    assert len(syncs) == 1
    assert deliver_batch(p, MessageBatch.from_messages([msg("k3"), msg("k9")])).ok.all()
    p.close()
    p2 = OutboxProvider(p.path)
    p2.open()  # keys already in the file are acknowledged, not written again
    deliver_batch(p2, MessageBatch.from_messages([msg("k9"), msg("k10")]))
    p2.close()
    assert [r["key"] for r in read_outbox(p.path)] == [f"k{i}" for i in range(5)] + ["k9", "k10"]
