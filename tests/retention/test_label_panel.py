"""The label panel's data on planted campaigns, with and without a control group."""

from __future__ import annotations

import pandas as pd
import pytest

from engagelab import Workspace
from engagelab.retention.labels import label_effect

T0 = pd.Timestamp("2026-01-01 09:00", tz="UTC")
DAY = pd.Timedelta(days=1)


def _workspace(path, *, holdout_at: pd.Timedelta | None) -> Workspace:
    """20 users sent 'Promo' on Jan 1 (campaign c1), 10 held out at ``holdout_at`` after it
    (none when None), 10 others; everyone launches the app daily until Jan 12."""
    rows = []
    sent = [f"s{i}" for i in range(20)]
    held = [f"h{i}" for i in range(10)]
    others = [f"o{i}" for i in range(10)]
    for u in sent:
        rows.append((u, "Notification Sent", T0, ["Promo"], "c1"))
    if holdout_at is not None:
        for u in held:
            rows.append((u, "Control Group", T0 + holdout_at, ["Promo"], "c1"))
    for u in sent + held + others:
        for d in range(-1, 12):
            rows.append((u, "App Launched", T0 + d * DAY + pd.Timedelta(hours=1), None, None))
    ev = pd.DataFrame(rows, columns=["user_id", "event", "ts", "labels", "campaign_id"])
    ev["ts"] = ev["ts"].astype("datetime64[us, UTC]")
    ws = Workspace.create(path)
    ws.append("events", ev)
    return ws


def _no_nan_cells(html: str) -> None:
    assert "nan" not in html.lower().replace("nanos", "")


def test_control_group_that_has_not_reached_day_n_is_not_called_missing(tmp_path):
    # the holdout entered 9 days after the sends: at day 5 it has not been observed yet
    with _workspace(tmp_path / "ws", holdout_at=9 * DAY) as ws:
        eff = label_effect(ws, "Promo", day=5)
    assert not any("no control group" in n for n in eff.notes)
    assert any("none of the 10 holdout users has reached day 5 yet" in n for n in eff.notes)
    assert list(eff.groups["group"]) == ["sent", "everyone else"]  # the empty holdout has no row
    assert not eff.groups.isna().any().any()
    assert list(eff.comparisons["kind"]) == ["observational"]
    _no_nan_cells(eff._repr_html_())


def test_control_group_reached_gives_the_causal_comparison(tmp_path):
    with _workspace(tmp_path / "ws", holdout_at=pd.Timedelta(0)) as ws:
        eff = label_effect(ws, "Promo", day=5)
    assert not any("control group" in n for n in eff.notes)
    assert list(eff.groups["group"]) == ["sent", "holdout", "everyone else"]
    assert eff.effect == pytest.approx(0.0)
    html = eff._repr_html_()
    assert "100.0%" in html and "+0.0 pp" in html and "users at day 5" in html
    _no_nan_cells(html)


def test_campaign_without_a_control_group_says_so(tmp_path):
    with _workspace(tmp_path / "ws", holdout_at=None) as ws:
        eff = label_effect(ws, "Promo", day=5)
    assert any("campaigns carrying 'Promo' had no control group" in n for n in eff.notes)
    assert list(eff.groups["group"]) == ["sent", "everyone else"]
    assert not eff.groups.isna().any().any()
    _no_nan_cells(eff._repr_html_())
