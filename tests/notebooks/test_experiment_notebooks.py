"""The experiments notebooks run top to bottom under papermill, in a real kernel; the
Hillstrom case study's numbers are recomputed here with plain pandas/scipy."""

from __future__ import annotations

import json
import math
from pathlib import Path

import nbformat
import numpy as np
import pandas as pd
import papermill as pm
import pytest
from scipy import stats

from engagelab.experiments import sample_size
from tests.notebooks.figures import assert_plots_render

ROOT = Path(__file__).resolve().parents[2]
NB = ROOT / "notebooks"


def execute(name: str, out: Path, **parameters) -> nbformat.NotebookNode:
    pm.execute_notebook(str(NB / name), str(out), parameters=parameters, kernel_name="python3",
                        progress_bar=False)  # fmt: skip
    nb = nbformat.read(out, as_version=4)
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
              if o.get("output_type") == "error"]  # fmt: skip
    assert not errors
    return nb


def _text(nb) -> str:
    parts = []
    for c in nb.cells:
        for o in c.get("outputs", []):
            parts.append(o.get("text", ""))
            parts.extend(str(v) for v in o.get("data", {}).values())
    return "\n".join(parts)


@pytest.mark.slow
def test_design_notebook_writes_the_spec(tmp_path):
    spec = tmp_path / "spec.json"
    nb = execute("design_experiment.ipynb", tmp_path / "out.ipynb", baseline=0.1, mde=0.02,
                 relative=False, variants=["A", "B", "C"], daily_traffic=1000.0,
                 spec_path=str(spec))  # fmt: skip
    got = json.loads(spec.read_text())
    core = sample_size("proportion", baseline=0.1, mde=0.02, arms=3, daily_traffic=1000.0)
    assert got["variants"] == ["A", "B", "C"]
    assert got["design"]["n_per_arm"] == list(core.n_per_arm) and got["design"]["days"] == core.days
    assert "detects 10.000% -> 12.000%" in _text(nb)


@pytest.mark.slow
def test_analyze_notebook_recovers_planted_effect(tmp_path):
    nb = execute("analyze_experiment.ipynb", tmp_path / "out.ipynb", users=20000, seed=3,
                 output_dir=str(tmp_path / "o"))  # fmt: skip
    assert_plots_render(nb.cells)
    t = pd.read_csv(tmp_path / "o" / "result.csv")
    conv = t[t.metric == "converted"].set_index("arm")
    # planted: B converts at 6% vs 5%; C has no effect
    assert conv.loc["B", "abs_ci_low"] < 0.01 < conv.loc["B", "abs_ci_high"]
    assert conv.loc["C", "abs_ci_low"] < 0 < conv.loc["C", "abs_ci_high"]


@pytest.mark.slow
def test_analyze_notebook_on_a_given_file(tmp_path):
    rng = np.random.default_rng(5)
    df = pd.DataFrame({"grp": rng.choice(["ctl", "new"], 3000), "y": rng.integers(0, 2, 3000)})
    df.to_csv(tmp_path / "d.csv", index=False)
    execute("analyze_experiment.ipynb", tmp_path / "out.ipynb", data_path=str(tmp_path / "d.csv"),
            arm_col="grp", control="ctl", metrics=["y:proportion"], output_dir=str(tmp_path / "o"))  # fmt: skip
    r = pd.read_csv(tmp_path / "o" / "result.csv").iloc[0]
    c, n = df[df.grp == "ctl"].y, df[df.grp == "new"].y
    assert r.abs_lift == pytest.approx(n.mean() - c.mean(), rel=1e-9)
    assert r.n_arm == len(n) and r.n_control == len(c)


@pytest.mark.slow
def test_hillstrom_case_study_matches_independent_numbers(tmp_path):
    out = tmp_path / "o"
    nb = execute("hillstrom_case_study.ipynb", tmp_path / "out.ipynb",
                 data_path=str(ROOT / "data" / "hillstrom.csv"), output_dir=str(out))  # fmt: skip
    df = pd.read_csv(ROOT / "data" / "hillstrom.csv")
    res = pd.read_csv(out / "hillstrom_result.csv").set_index(["metric", "arm"])
    rates = df.groupby("segment")["visit"].mean()
    # published-style visit rates
    assert rates["Mens E-Mail"] == pytest.approx(0.1828, abs=5e-5)
    assert rates["Womens E-Mail"] == pytest.approx(0.1514, abs=5e-5)
    assert rates["No E-Mail"] == pytest.approx(0.1062, abs=5e-5)
    ctrl = df[df.segment == "No E-Mail"]
    z = stats.norm.isf(0.025)
    for arm in ("Mens E-Mail", "Womens E-Mail"):
        g = df[df.segment == arm]
        for m in ("visit", "conversion"):
            r = res.loc[(m, arm)]
            p1, p2 = ctrl[m].mean(), g[m].mean()
            assert round(r.arm_estimate, 4) == round(p2, 4) and round(
                r.control_estimate, 4
            ) == round(p1, 4)
            se = math.sqrt(p1 * (1 - p1) / len(ctrl) + p2 * (1 - p2) / len(g))
            assert r.abs_lift == pytest.approx(p2 - p1, abs=1e-12)
            assert r.abs_ci_low == pytest.approx(p2 - p1 - z * se, abs=1e-10)
            assert r.abs_ci_high == pytest.approx(p2 - p1 + z * se, abs=1e-10)
            assert r.n_arm == len(g) and r.n_control == len(ctrl)
        welch = stats.ttest_ind(g.spend, ctrl.spend, equal_var=False)
        r = res.loc[("spend", arm)]
        assert r.arm_estimate == pytest.approx(g.spend.mean(), rel=1e-12)
        assert r.p_value == pytest.approx(welch.pvalue, rel=1e-6)
        assert r.bayes_p_beat_control > 0.99
    # Holm over the 6 comparisons, computed by hand
    ps = res["p_value"].sort_values()
    holm = np.maximum.accumulate(np.minimum(1, ps.to_numpy() * np.arange(len(ps), 0, -1)))
    np.testing.assert_allclose(res.loc[ps.index, "p_adjusted"], holm, rtol=1e-6)
    # SRM: chi-square against an equal split
    srm = pd.read_csv(out / "hillstrom_srm.csv").iloc[0]
    ref = stats.chisquare(df.segment.value_counts().to_numpy())
    assert srm.p_value == pytest.approx(ref.pvalue, rel=1e-9) and srm.p_value > 0.5
    # CUPED on history, theta per comparison (the default): over the control and the
    # compared arm only, the OLS of spend on a treatment dummy and the covariate gives the
    # same lift; intervals no wider
    cuped = pd.read_csv(out / "hillstrom_cuped.csv").set_index(["metric", "arm"])
    for arm in ("Mens E-Mail", "Womens E-Mail"):
        pair = df[df.segment.isin([arm, "No E-Mail"])]
        design = np.column_stack(
            [np.ones(len(pair)), (pair.segment == arm).to_numpy(float), pair.history]
        )
        beta = np.linalg.lstsq(design, pair.spend.to_numpy(float), rcond=None)[0]
        c = cuped.loc[("spend", arm)]
        assert c.abs_lift == pytest.approx(beta[1], rel=1e-6)
        p = res.loc[("spend", arm)]
        assert c.abs_ci_high - c.abs_ci_low <= p.abs_ci_high - p.abs_ci_low
    win = pd.read_csv(out / "hillstrom_winners.csv")
    assert win.variant.iloc[0] == "Mens E-Mail" and win.rule.iloc[0] == "statistical"
    assert "Conclusion" in "".join(c.source for c in nb.cells if c.cell_type == "markdown")
    assert_plots_render(nb.cells)
