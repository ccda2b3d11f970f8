"""World persistence, Parquet output and display (doctests: tests/test_doctests.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from engagelab.errors import ValidationError
from engagelab.simulate import EVENT_SCHEMA, PROFILE_SCHEMA, World, simulate

REPO = Path(__file__).resolve().parents[2]
MESSAGES = pd.DataFrame(
    {
        "user_id": [f"u{i:07d}" for i in range(1, 201)],
        "campaign_id": "c9",
        "variant": ["A", "B"] * 100,
        "channel": "push",
        "send_ts": pd.Timestamp("2026-01-04 09:30", tz="UTC"),
        "labels": [["Onboarding"]] * 200,
        "message_key": [f"run1:u{i:07d}:c9" for i in range(1, 201)],
    }
)


def test_save_load_round_trip_in_another_process(tmp_path: Path) -> None:
    world = simulate(n_users=200, days=8, seed=17, label_effects={"Onboarding": 0.2})
    world.plant_variant_effects("c9", {"B": 2.0})
    path = world.save(tmp_path / "world.json")
    doc = json.loads(path.read_text())
    assert doc["config"]["seed"] == 17 and doc["variant_effects"] == {"c9": {"B": 2.0}}
    MESSAGES.to_pickle(tmp_path / "messages.pkl")
    script = (
        "import sys, pandas as pd, pyarrow.parquet as pq\n"
        "from engagelab.simulate import World\n"
        "w = World.load(sys.argv[1])\n"
        "pq.write_table(w.respond(pd.read_pickle(sys.argv[2])), sys.argv[3])\n"
        "pq.write_table(w.baseline_events(3, 12), sys.argv[4])\n"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    subprocess.run(
        [
            sys.executable,
            "-c",
            script,
            str(path),
            str(tmp_path / "messages.pkl"),
            str(tmp_path / "answer.parquet"),
            str(tmp_path / "later.parquet"),
        ],
        check=True,
        env=env,
        cwd=REPO,
        timeout=120,
    )
    assert pq.read_table(tmp_path / "answer.parquet").equals(world.respond(MESSAGES))
    assert pq.read_table(tmp_path / "later.parquet").equals(world.baseline_events(3, 12))
    again = World.load(path)
    assert again.config == world.config and again.variant_effects == world.variant_effects
    assert again.truth.equals(world.truth)


def test_load_rejects_other_files(tmp_path: Path) -> None:
    (tmp_path / "x.json").write_text(json.dumps({"config": {}}))
    with pytest.raises(ValidationError, match="format == None"):
        World.load(tmp_path / "x.json")


def test_write_parquet_reads_back(tmp_path: Path) -> None:
    world = simulate(n_users=500, days=20, seed=2)
    paths = world.write_parquet(tmp_path / "out", batch_days=6)
    assert paths[0].name == "profiles.parquet" and len(paths) == 1 + 4
    assert all(p.exists() for p in paths)
    assert pq.read_table(paths[0]).equals(world.profiles)
    events = pa.concat_tables([pq.read_table(p) for p in paths[1:]])
    assert events.schema == EVENT_SCHEMA
    assert events.equals(world.events())
    # files concatenate with responses: one schema for every events table
    assert pa.concat_tables([events, world.respond(MESSAGES)]).schema == EVENT_SCHEMA
    assert pq.read_schema(paths[0]) == PROFILE_SCHEMA


def test_truth_and_planted(tmp_path: Path) -> None:
    world = simulate(n_users=300, days=10, seed=1, label_effects={"Onboarding": 0.1})
    truth = world.truth
    assert list(truth.columns[:6]) == [
        "user_id",
        "timezone",
        "city",
        "country",
        "preferred_hour",
        "focus",
    ]
    assert truth["preferred_hour"].between(0, 23).all()
    assert set(truth["engagement"]) <= {"heavy", "regular", "sparse"}
    truth.loc[0, "preferred_hour"] = 99  # a copy: the world's truth is unchanged
    assert world.truth.loc[0, "preferred_hour"] != 99
    planted = world.planted
    assert planted["label_effects"] == {"Onboarding": 0.1}
    assert planted["channel_rates"]["email"]["deliver"] == 0.97
    assert world.date_of(31).isoformat() == "2026-02-01" and world.day_index("2026-02-01") == 31


def test_repr_and_html() -> None:
    world = simulate(n_users=120, days=4, seed=3)
    assert "users=120" in repr(world) and "not generated yet" in repr(world)
    n = world.events().num_rows
    assert f"events={n:,}," in repr(world)
    html = world._repr_html_()
    assert "<table" in html and "time zones" in html and "120" in html


def test_bad_arguments() -> None:
    world = simulate(n_users=10, days=3)
    with pytest.raises(ValidationError, match="config == 'dict'"):
        World({"n_users": 3})  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="start day == -1"):
        world.baseline_events(-1, 2)
    with pytest.raises(ValidationError, match="end day == 1, must be an integer in \\[2, 65536\\]"):
        world.baseline_events(2, 1)
    with pytest.raises(ValidationError, match="day == 'soon'"):
        world.baseline_events("soon", 3)
    assert world.baseline_events(2, 2).num_rows == 0
