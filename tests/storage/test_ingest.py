"""Ingestion: validation, quarantine, formats, idempotency."""

from __future__ import annotations

import json

import pandas as pd
import pyarrow as pa
import pytest

from engagelab import ValidationError

EVENTS = pd.DataFrame(
    {
        "user_id": ["u1", "u2", "", None, "u5", "u6", "u7", "u8"],
        "event": [
            "Charged",
            "App Launched",
            "Charged",
            "Charged",
            None,
            "Charged",
            "Charged",
            "Charged",
        ],
        "ts": [
            "2026-01-01T10:00:00Z",
            "2026-01-01 11:00:00+02:00",
            "2026-01-02T10:00:00Z",
            "2026-01-02T10:00:00Z",
            "2026-01-02T10:00:00Z",
            "not a date",
            None,
            "2026-01-03T00:00:00Z",
        ],
        "revenue": ["12.5", "", "3", "4", "5", "6", "7", "abc"],
    }
)


def test_good_rows_appended_bad_rows_quarantined_with_reasons(ws):
    report = ws.ingest(EVENTS, types={"revenue": "float64"}, quiet=True)
    assert report.rows_read == 8
    assert report.rows_appended == 2
    assert report.reasons == {
        "missing_user_id": 2,
        "missing_event": 1,
        "bad_timestamp": 1,
        "missing_timestamp": 1,
        "wrong_type": 1,
    }
    assert report.rows_quarantined == 6
    by_reason = report.to_pandas()  # most frequent reason first, ties in insertion order
    assert list(by_reason.columns) == ["reason", "rows"]
    assert by_reason["rows"].tolist() == [2, 1, 1, 1, 1]
    assert by_reason["reason"].iloc[0] == "missing_user_id"
    q = report.quarantined()
    assert sorted(q["_row"].tolist()) == [2, 3, 4, 5, 6, 7]
    bad = q.set_index("_row")
    assert bad.loc[7, "_reason"] == "wrong_type"
    assert "revenue" in bad.loc[7, "_detail"]
    assert bad.loc[7, "revenue"] == "abc"  # raw value kept for the user to fix
    got = ws.sql("SELECT user_id, ts, revenue FROM events ORDER BY user_id")
    assert got["user_id"].tolist() == ["u1", "u2"]
    assert got["revenue"].iloc[0] == 12.5 and pd.isna(got["revenue"].iloc[1])
    # the +02:00 offset was honoured and stored as UTC
    assert got["ts"].iloc[1] == pd.Timestamp("2026-01-01 09:00:00", tz="UTC")


def test_type_inference_tolerates_a_stray_typo(ws):
    n = 200
    df = pd.DataFrame(
        {
            "user_id": ["u"] * n,
            "event": ["E"] * n,
            "ts": ["2026-01-01"] * n,
            "price": [str(i / 2) for i in range(n - 1)] + ["oops"],
        }
    )
    r = ws.ingest(df, quiet=True)
    assert r.new_columns == {"price": "float64"}
    assert r.reasons == {"wrong_type": 1}


def test_ingest_is_idempotent_unless_forced(ws, tmp_path):
    path = tmp_path / "e.csv"
    EVENTS.to_csv(path, index=False)
    first = ws.ingest(path, types={"revenue": "float64"}, quiet=True)
    second = ws.ingest(path, types={"revenue": "float64"}, quiet=True)
    assert first.rows_appended == 2 and not first.already_ingested
    assert second.already_ingested and second.rows_appended == 0
    assert int(ws.sql("SELECT count(*) AS n FROM events")["n"][0]) == 2
    third = ws.ingest(path, types={"revenue": "float64"}, force=True, quiet=True)
    assert third.rows_appended == 2
    assert int(ws.sql("SELECT count(*) AS n FROM events")["n"][0]) == 4


def test_summary_is_printed(ws, capsys):
    ws.ingest(EVENTS, types={"revenue": "float64"})
    out = capsys.readouterr().out
    assert "8 rows read, 2 appended, 6 quarantined" in out
    assert "missing_user_id: 2" in out


@pytest.mark.parametrize("fmt", ["csv", "parquet", "jsonl", "polars", "arrow", "tsv"])
def test_every_source_format(ws, tmp_path, fmt):
    df = pd.DataFrame(
        {
            "uid": ["a", "b", "c"],
            "name": ["Launch", "Launch", "Charged"],
            "when": ["2026-01-01T00:00:00Z", "2026-01-01T01:00:00Z", "2026-01-01T02:00:00Z"],
            "amount": [1.0, 2.0, 3.5],
        }
    )
    mapping = {"uid": "user_id", "name": "event", "when": "ts"}
    if fmt == "csv":
        src = tmp_path / "x.csv"
        df.to_csv(src, index=False)
    elif fmt == "tsv":
        src = tmp_path / "x.tsv"
        df.to_csv(src, index=False, sep="\t")
    elif fmt == "parquet":
        src = tmp_path / "x.parquet"
        df.to_parquet(src)
    elif fmt == "jsonl":
        src = tmp_path / "x.jsonl"
        src.write_text("\n".join(json.dumps(r) for r in df.to_dict("records")))
    elif fmt == "polars":
        import polars as pl

        src = pl.from_pandas(df)
    else:
        src = pa.Table.from_pandas(df)
    report = ws.ingest(src, mapping=mapping, quiet=True)
    assert report.rows_appended == 3, report
    got = ws.sql("SELECT user_id, event, amount FROM events ORDER BY user_id")
    assert got["user_id"].tolist() == ["a", "b", "c"]
    assert got["amount"].tolist() == [1.0, 2.0, 3.5]
    assert ws.store.columns("events")["amount"] == "float64"


def test_recorded_types_are_enforced_on_later_batches(ws):
    ws.ingest(
        pd.DataFrame({"user_id": ["a"], "event": ["E"], "ts": ["2026-01-01"], "n": [1]}), quiet=True
    )
    report = ws.ingest(
        pd.DataFrame(
            {
                "user_id": ["b", "c"],
                "event": ["E", "E"],
                "ts": ["2026-01-01"] * 2,
                "n": ["2", "two"],
            }
        ),
        quiet=True,
    )
    assert report.rows_appended == 1
    assert report.reasons == {"wrong_type": 1}
    assert ws.sql("SELECT sum(n) AS s FROM events")["s"][0] == 3


def test_duplicate_event_ids_within_batch_and_against_store(ws):
    base = {"event": ["E"] * 3, "ts": ["2026-01-01"] * 3}
    r1 = ws.ingest(
        pd.DataFrame({"user_id": ["a", "b", "c"], "event_id": ["1", "2", "1"], **base}), quiet=True
    )
    assert r1.rows_appended == 2 and r1.reasons == {"duplicate_event_id": 1}
    r2 = ws.ingest(
        pd.DataFrame({"user_id": ["d", "e", "f"], "event_id": ["2", "3", "4"], **base}), quiet=True
    )
    assert r2.rows_appended == 2 and r2.reasons == {"duplicate_event_id": 1}
    ids = ws.sql("SELECT event_id FROM events ORDER BY event_id")["event_id"].tolist()
    assert ids == ["1", "2", "3", "4"]


def test_profiles_validation(ws):
    df = pd.DataFrame(
        {
            "user_id": ["a", "b", "c", "d", "a", "f"],
            "timezone": ["Europe/Berlin", "Mars/Olympus", "UTC", None, "UTC", "Asia/Tokyo"],
            "latitude": [52.5, 0, 95.0, 1.0, 0, 35.6],
            "optout_email": ["true", "no", "1", "maybe", "0", None],
            "created_at": [
                "2026-01-01",
                "2026-01-01",
                "2026-01-01",
                "2026-01-01",
                "2026-01-01",
                "never",
            ],
        }
    )
    r = ws.ingest(df, table="profiles", quiet=True)
    assert r.reasons == {
        "unknown_timezone": 1,
        "bad_coordinates": 1,
        "wrong_type": 1,
        "duplicate_user_id": 1,
        "bad_timestamp": 1,
    }
    got = ws.sql("SELECT user_id, optout_email, timezone FROM profiles ORDER BY user_id")
    assert got["user_id"].tolist() == ["a"]
    assert bool(got["optout_email"][0]) is True


def test_profiles_merge_latest_non_null_per_column(ws):
    ws.ingest(
        pd.DataFrame(
            {"user_id": ["a", "b"], "email": ["a@x.io", "b@x.io"], "city": ["Berlin", "Paris"]}
        ),
        table="profiles",
        quiet=True,
    )
    ws.ingest(
        pd.DataFrame({"user_id": ["a"], "optout_email": [True], "city": ["Munich"]}),
        table="profiles",
        quiet=True,
    )
    got = ws.sql("SELECT * FROM profiles ORDER BY user_id").set_index("user_id")
    assert got.loc["a", "email"] == "a@x.io"  # kept from the first batch
    assert got.loc["a", "city"] == "Munich"  # replaced by the later batch
    assert bool(got.loc["a", "optout_email"]) is True
    assert got.loc["b", "city"] == "Paris"
    # compaction keeps the same answer and leaves one file
    before = ws.sql("SELECT * FROM profiles ORDER BY user_id")
    ws.compact("profiles")
    after = ws.sql("SELECT * FROM profiles ORDER BY user_id")
    pd.testing.assert_frame_equal(before, after)
    assert len(ws.store.live_files("profiles")) == 1


def test_bad_arguments_name_the_field(ws, tmp_path):
    with pytest.raises(ValidationError, match="table == 'users', must be one of"):
        ws.ingest(EVENTS, table="users")
    with pytest.raises(ValidationError, match="source .* does not exist"):
        ws.ingest(tmp_path / "nope.csv")
    with pytest.raises(ValidationError, match="mapping"):
        ws.ingest(EVENTS, mapping={"nope": "user_id"})
    with pytest.raises(ValidationError, match="lacks the column"):
        ws.ingest(pd.DataFrame({"user_id": ["a"]}))
    with pytest.raises(ValidationError, match="source"):
        ws.ingest(42)
    with pytest.raises(ValidationError, match="ts_unit"):
        ws.ingest(EVENTS, ts_unit="h")


def test_epoch_timestamps_and_lists(ws):
    df = pd.DataFrame(
        {
            "user_id": ["a", "b"],
            "event": ["Notification Sent"] * 2,
            "ts": [1767225600000, 1767229200000],
            "labels": [["Onboarding", "Promo"], ["Onboarding"]],
        }
    )
    r = ws.ingest(df, ts_unit="ms", quiet=True)
    assert r.rows_appended == 2
    got = ws.sql("SELECT ts, labels FROM events ORDER BY ts")
    assert got["ts"][0] == pd.Timestamp("2026-01-01", tz="UTC")
    assert list(got["labels"][0]) == ["Onboarding", "Promo"]
    assert ws.store.columns("events")["labels"] == "list<string>"
    n = ws.sql(
        "SELECT count(*) AS n FROM events WHERE list_contains(labels, $l)", {"l": "Onboarding"}
    )["n"][0]
    assert n == 2


def test_large_chunks_stream_through(ws, tmp_path):
    n = 25_000
    df = pd.DataFrame(
        {
            "user_id": [f"u{i % 1000}" for i in range(n)],
            "event": ["E"] * n,
            "ts": pd.date_range("2026-01-01", periods=n, freq="min", tz="UTC"),
            "event_id": [str(i) for i in range(n)],
        }
    )
    df.loc[n - 1, "event_id"] = "5"  # a duplicate across chunks
    path = tmp_path / "big.parquet"
    df.to_parquet(path)
    r = ws.ingest(path, chunk_rows=4_000, quiet=True)
    assert r.rows_appended == n - 1 and r.reasons == {"duplicate_event_id": 1}
    assert int(ws.sql("SELECT count(DISTINCT event_id) AS n FROM events")["n"][0]) == n - 1
    q = r.quarantined()
    assert q["_row"].tolist() == [n - 1]


def test_compaction_clusters_events_and_is_idempotent(ws):
    import pyarrow.parquet as pq

    df = pd.DataFrame(
        {
            "user_id": ["b", "a", "c", "a"],
            "event": ["Z", "A", "A", "Z"],
            "ts": ["2026-01-03", "2026-01-02", "2026-01-01", "2026-01-01"],
        }
    )
    ws.ingest(df, quiet=True)
    first = ws.compact("events")["events"]
    assert first is not None
    (path,) = ws.store.live_files("events")
    got = pq.read_table(path).to_pandas()
    assert got["event"].tolist() == ["A", "A", "Z", "Z"]  # clustered by event, then time
    assert got["user_id"].tolist() == ["c", "a", "a", "b"]
    assert ws.compact("events")["events"] is None  # already compacted: nothing rewritten
    assert ws.compact("profiles")["profiles"] is None  # empty table: nothing to do
