"""Label cohorts on the simulator with a planted Onboarding effect on later activity.

The world adds, for every delivered Onboarding message, an extra 'App Launched' on each
later day with probability 0.15 (engagelab/simulate/_respond.py). Only active users
reachable on push are sent (a selected audience); a random campaign control group and
a global control group are held out. The planted effect on day-30 retention is computed
here with plain pandas as the difference, over the sent users, between their actual
day-30 retention and their retention without the events the label effect planted.
"""

from __future__ import annotations

import pandas as pd
import pytest

from engagelab import Workspace
from engagelab.errors import ValidationError
from engagelab.retention.labels import label_effect, label_retention, labels_in_use
from engagelab.segments import was_sent
from engagelab.simulate.labels import label_programme

pytestmark = pytest.mark.slow
DAY = pd.Timedelta(days=1)


@pytest.fixture(scope="module")
def world_ws(tmp_path_factory):
    ws = Workspace.create(tmp_path_factory.mktemp("labels") / "ws")
    info = label_programme(ws, n_users=20_000, days=28, observe_days=33, seed=11, effect=0.15)
    yield ws, info
    ws.close()


def _day30(ws, event, extra_where=""):
    """Per user of ``event`` start rows: (actual, counterfactual) day-30 retention, in pandas."""
    starts = ws.sql(
        f"SELECT user_id, min(ts) AS t0 FROM events WHERE event = $e {extra_where} "
        "GROUP BY user_id",
        {"e": event},
    )
    launches = ws.sql(
        "SELECT user_id, ts, event_id FROM events WHERE event = 'App Launched' "
        "AND user_id IN (SELECT user_id FROM events WHERE event = $e)",
        {"e": event},
    )
    m = launches.merge(starts, on="user_id")
    m = m[(m["ts"] >= m["t0"] + 30 * DAY) & (m["ts"] < m["t0"] + 31 * DAY)]
    return starts, m


def test_holdout_recovers_planted_effect_observational_is_biased(world_ws):
    ws, info = world_ws
    starts, m = _day30(ws, "Notification Sent")
    planted = set(info["response_event_ids"])
    actual = starts["user_id"].isin(m["user_id"])
    counterfactual = starts["user_id"].isin(m.loc[~m["event_id"].isin(planted), "user_id"])
    truth = actual.mean() - counterfactual.mean()
    assert 0.07 < truth < 0.15  # ≈ P(delivered) × 0.15 × (1 − baseline day-30 retention)

    eff = label_effect(ws, "Onboarding", day=30)
    causal = eff.comparisons.set_index("kind").loc["causal"]
    obs = eff.comparisons.set_index("kind").loc["observational"]
    print(eff, f"truth={truth:.4f}")
    assert causal["ci_low"] <= truth <= causal["ci_high"]
    assert obs["ci_low"] > truth + 0.05  # the observational comparison is visibly biased
    assert eff.effect == pytest.approx(causal["difference"])
    g = eff.groups.set_index("group")
    # the engine's sent-group rate equals the pandas count; all users reached day 30
    assert int(g.loc["sent", "size"]) == info["sent"] == len(starts)
    assert int(g.loc["sent", "retained"]) == int(actual.sum())
    assert int(g.loc["holdout", "size"]) == info["held_out"]
    assert any("selection bias" in n for n in eff.notes)
    html = eff._repr_html_()
    assert "observational" in html and "causal" in html and "selection bias" in html


def test_label_cohorts_side_by_side_and_never_used_label(world_ws):
    ws, info = world_ws
    assert labels_in_use(ws) == ["Onboarding"]
    lr = label_retention(ws, ["Onboarding", "Winback"], periods=4)
    assert lr["Winback"].empty
    assert "never sent" in lr["Winback"].message and "'Onboarding'" in lr["Winback"].message
    table = lr.to_pandas()
    assert list(table.index) == ["Onboarding", "Winback"]
    assert table.loc["Winback"].isna().all()
    on = lr["Onboarding"].overall()
    assert int(on["size"].iloc[0]) == info["sent"]
    with pytest.raises(ValidationError, match="Winback"):
        label_effect(ws, "Winback")
    with pytest.raises(ValidationError, match="return_event == 'App Lunched'"):
        label_effect(ws, "Onboarding", return_event="App Lunched")


def test_segment_spec_selects_users_sent_a_label(world_ws):
    ws, info = world_ws
    assert ws.count(was_sent("Onboarding")) == info["sent"]
    assert ws.count(was_sent("Winback")) == 0
