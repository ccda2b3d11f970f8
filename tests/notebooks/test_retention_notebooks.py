"""notebooks/label_retention.ipynb and notebooks/cdnow_cohorts.ipynb under papermill."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pandas as pd
import papermill as pm
import pytest

from engagelab import Workspace
from engagelab.schema import PRE_ASSIGNMENT_REASONS
from tests.notebooks.figures import assert_plots_render

ROOT = Path(__file__).resolve().parents[2]
LABEL_NB = ROOT / "notebooks" / "label_retention.ipynb"
CDNOW_NB = ROOT / "notebooks" / "cdnow_cohorts.ipynb"
CDNOW = ROOT / "data" / "CDNOW_master.txt"

pytestmark = pytest.mark.slow


def _run(nb, out, **params):
    pm.execute_notebook(
        str(nb),
        str(out),
        parameters=params,
        kernel_name="python3",
        progress_bar=False,
        cwd=str(nb.parent),
    )
    cells = nbformat.read(out, as_version=4).cells
    assert not [
        o
        for c in cells
        if c.cell_type == "code"
        for o in c.get("outputs", [])
        if o.output_type == "error"
    ]
    return cells


def test_label_retention_notebook(tmp_path):
    ws = tmp_path / "ws"
    cells = _run(
        LABEL_NB,
        tmp_path / "out.ipynb",
        workspace=str(ws),
        users=3000,
        days=14,
        observe_days=12,
        seed=4,
        effect=0.3,
        day=10,
    )
    assert_plots_render(cells)
    summary = json.loads((ws / "outputs" / "label_retention.json").read_text())
    groups = {g["group"]: g for g in summary["groups"]}
    comps = {c["kind"]: c for c in summary["comparisons"]}
    assert set(groups) == {"sent", "holdout", "everyone else"}
    assert "would-be-sent" in groups["sent"]["members"]
    # the notebook went through the planner: eligibility first (the unreachable and opted
    # out are suppressed before the control group is drawn), then the DND drop after
    # assignment, for the sent arm (suppressed) and the control group (would_be) alike
    plan = pd.DataFrame(summary["plan"])
    users = plan.groupby(["decision", "reason"])["users"].sum()
    assert users[("suppressed", "unreachable")] > 0 and users[("suppressed", "opted_out")] > 0
    assert users[("suppressed", "dnd_drop")] > 0
    after = plan[(plan["decision"] == "suppressed") & ~plan["reason"].isin(PRE_ASSIGNMENT_REASONS)]
    assert summary["would_be_sent"] == after["users"].sum()
    with Workspace.open(ws) as w:
        f = w.sql(
            "SELECT event, count(DISTINCT user_id) AS n FROM events WHERE campaign_id = "
            "'onboarding-1' AND event IN ('Notification Sent', 'Control Group') GROUP BY ALL"
        )
    n = f.set_index("event")["n"]
    assert n["Notification Sent"] == users[("send", "")]
    assert n["Control Group"] == plan.loc[plan["decision"] == "control", "users"].sum()
    # intention-to-treat: every assigned user (sent or would-be-sent) against the whole
    # holdout; with 12 observed days everyone has reached day 10
    assert groups["sent"]["size"] == users[("send", "")] + after["users"].sum()
    assert groups["holdout"]["size"] == n["Control Group"]
    assert comps["causal"]["comparison"] == "sent or would-be-sent − holdout"
    assert summary["rule"] == comps["causal"]["rule"] and "intention-to-treat" in summary["rule"]
    # a planted effect of 0.3 a day: the causal difference is clearly positive,
    # and the observational one is larger still (selection of active users)
    assert comps["causal"]["ci_low"] > 0
    assert comps["observational"]["difference"] > comps["causal"]["difference"]
    assert any("selection bias" in n for n in summary["notes"])


def test_label_retention_notebook_rejects_bad_parameter(tmp_path):
    with pytest.raises(pm.PapermillExecutionError, match="users"):
        pm.execute_notebook(
            str(LABEL_NB),
            str(tmp_path / "bad.ipynb"),
            parameters={"users": "many"},
            kernel_name="python3",
            progress_bar=False,
        )


def test_cdnow_notebook_cohorts_match_plain_pandas(tmp_path):
    ws = tmp_path / "ws"
    cells = _run(
        CDNOW_NB, tmp_path / "out.ipynb", workspace=str(ws), data_path=str(CDNOW), periods=6
    )
    assert_plots_render(cells)
    summary = json.loads((ws / "outputs" / "cdnow_cohorts.json").read_text())
    raw = pd.read_csv(
        CDNOW,
        sep=r"\s+",
        header=None,
        names=["id", "date", "cds", "dollars"],
        dtype={"id": str, "date": str},
    )
    raw = raw[raw["date"].str.fullmatch(r"\d{8}")]  # skip the header line
    assert len(raw) == 69_659
    raw["month"] = raw["date"].str[:6]
    first = raw.groupby("id")["month"].min()
    sizes = first.value_counts().sort_index()
    assert summary["sizes"] == {f"{m[:4]}-{m[4:]}": int(n) for m, n in sizes.items()}
    assert summary["sizes"] == {"1997-01": 7846, "1997-02": 8476, "1997-03": 7248}
    # repeat purchase in month k after the first-purchase month, by plain pandas
    m = raw.merge(first.rename("first"), left_on="id", right_index=True)
    k = (m["month"].str[:4].astype(int) - m["first"].str[:4].astype(int)) * 12 + (
        m["month"].str[4:].astype(int) - m["first"].str[4:].astype(int)
    )
    m = m.assign(k=k)
    on = pd.DataFrame(summary["on"])
    for cohort, kk in [("1997-01", 1), ("1997-02", 3), ("1997-03", 5)]:
        want = m[(m["first"] == cohort.replace("-", "")) & (m["k"] == kk)]["id"].nunique()
        got = on[(on["cohort"] == cohort) & (on["period_index"] == kk)]["retained"].iloc[0]
        assert got == want
    # all three cohorts reached month 5 (data to June 1998): nothing censored here
    assert on["retained"].notna().all()
    after = pd.DataFrame(summary["on_or_after"])
    jan = after[after["cohort"] == "1997-01"].set_index("period_index")["retained"]
    want = m[(m["first"] == "199701") & (m["k"] >= 2)]["id"].nunique()
    assert jan[2] == want and jan.is_monotonic_decreasing
