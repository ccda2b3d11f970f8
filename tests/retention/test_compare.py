"""Differences between breakdown groups and between label cohorts, with intervals checked
against statsmodels and counts checked against the pandas reference / hand counts."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from statsmodels.stats.proportion import confint_proportions_2indep

from engagelab import Workspace
from engagelab.errors import ValidationError
from engagelab.retention import retention
from engagelab.retention.engine import _default_until
from engagelab.retention.labels import label_retention
from tests.retention.reference import reference


def _check_intervals(d, confidence=0.95):
    for r in d.dropna(subset=["difference"]).itertuples():
        lo, hi = confint_proportions_2indep(
            r.retained, r.size, r.baseline_retained, r.baseline_size,
            method="newcomb", compare="diff", alpha=1 - confidence,
        )  # fmt: skip
        assert (r.ci_low, r.ci_high) == pytest.approx((lo, hi), abs=1e-12)
        assert r.difference == pytest.approx(
            r.retained / r.size - r.baseline_retained / r.baseline_size
        )


def test_breakdown_groups_compared_to_a_baseline(rand_ws):
    ws, ev, prof = rand_ws
    res = retention(ws, "App Launched", periods=10, breakdown="plan", confidence=0.9)
    d = res.compare("free")
    assert set(d["group"]) == {"pro", "(missing)"} and set(d["baseline"]) == {"free"}
    assert len(d) == 2 * 10
    ref = reference(ev, start="App Launched", ret="App Launched", periods=10, profiles=prof,
                    breakdown="plan", until=_default_until(ev["ts"].max()))  # fmt: skip
    pooled = ref[ref["cohort"].isna()].set_index(["group", "j"])
    for r in d.itertuples():
        assert r.size == pooled.loc[(r.group, r.period_index), "size"]
        assert r.baseline_retained == pooled.loc[("free", r.period_index), "retained"]
    _check_intervals(d, 0.9)
    assert d["difference"].notna().sum() >= 10
    # the default baseline is the first group in sort order
    assert set(res.compare()["baseline"]) == {"(missing)"}
    with pytest.raises(ValidationError, match="baseline == 'gold', must be one of"):
        res.compare("gold")
    with pytest.raises(ValidationError, match="breakdown == None, must name a profile property"):
        retention(ws, "App Launched", periods=3).compare()


@pytest.fixture
def two_labels(tmp_path):
    """Users 0-9 sent label A, 10-29 sent label B on Jan 1; launches on later days."""
    t = pd.Timestamp("2026-01-01 10:00", tz="UTC")
    sent = pd.DataFrame({
        "user_id": [f"u{i}" for i in range(30)], "event": "Notification Sent",
        "ts": t, "labels": [["A"]] * 10 + [["B"]] * 20,
    })  # fmt: skip
    # day 1: 6 of A, 5 of B come back; day 2: 1 of A, 12 of B; data runs to Jan 4
    back = [(f"u{i}", 1) for i in range(6)] + [(f"u{i}", 1) for i in range(10, 15)]
    back += [("u9", 2)] + [(f"u{i}", 2) for i in range(12, 24)] + [("u29", 3)]
    launches = pd.DataFrame({
        "user_id": [u for u, _ in back], "event": "App Launched",
        "ts": [t + pd.Timedelta(days=k) for _, k in back],
    })  # fmt: skip
    ws = Workspace.create(tmp_path / "ws")
    ws.append("events", pd.concat([sent, launches]).astype({"ts": "datetime64[us, UTC]"}))
    yield ws
    ws.close()


def test_label_cohorts_compared_side_by_side(two_labels):
    lr = label_retention(two_labels, ["A", "B", "C"], periods=5)
    d = lr.compare()
    assert list(d["label"].unique()) == ["B"] and set(d["baseline"]) == {"A"}
    day = d.set_index("period_index")
    assert day.loc[1, ["retained", "size", "baseline_retained", "baseline_size"]].tolist() == [
        5, 20, 6, 10,
    ]  # fmt: skip
    assert day.loc[2, "difference"] == pytest.approx(12 / 20 - 1 / 10)
    _check_intervals(d)
    back = lr.compare("B").set_index("period_index")
    assert back.loc[1, "difference"] == pytest.approx(-day.loc[1, "difference"])
    with pytest.raises(ValidationError, match="never sent"):
        lr.compare("C")
    # day 3 (Jan 4) is the last observed day: u29 of B; day 4 is censored for both
    assert day.loc[3, "difference"] == pytest.approx(1 / 20)
    assert np.isnan(day.loc[4, "difference"]) and np.isnan(day.loc[4, "ci_low"])
