"""``engagelab experiment design|analyze`` run as the real executable, checked against the core
and against plain scipy/statsmodels references computed here."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from statsmodels.stats.power import NormalIndPower
from statsmodels.stats.proportion import proportion_effectsize

from engagelab.experiments import sample_size

BIN = Path(sys.executable).with_name("engagelab")


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN), *args], capture_output=True, text=True, timeout=300)


def ok(*args: str) -> str:
    proc = run(*args)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_design_json_matches_core_and_issue_example():
    out = json.loads(ok("experiment", "design", "--metric", "proportion", "--baseline", "0.05",
                        "--mde", "0.10", "--relative", "--alpha", "0.05", "--power", "0.8",
                        "--arms", "2", "--format", "json"))  # fmt: skip
    core = sample_size("proportion", baseline=0.05, mde=0.10, relative=True)
    assert out["n_per_arm"] == list(core.n_per_arm) == [31231, 31231]
    assert out["total_n"] == 62462 and out["method"] == "unpooled"
    assert "5.000% -> 5.500%" in out["effect_text"]
    # statsmodels' arcsine formula lands within ~5% of the unpooled default
    h = proportion_effectsize(0.055, 0.05)
    sm = NormalIndPower().solve_power(effect_size=h, alpha=0.05, power=0.8)
    assert abs(out["n_per_arm"][0] / sm - 1) < 0.05


def test_design_arcsine_method_equals_statsmodels():
    out = json.loads(ok("experiment", "design", "--baseline", "0.1", "--mde", "0.02",
                        "--method", "arcsine", "--format", "json"))  # fmt: skip
    h = proportion_effectsize(0.12, 0.10)
    sm = NormalIndPower().solve_power(effect_size=h, alpha=0.05, power=0.8)
    assert out["n_per_arm"][0] == math.ceil(sm - 1e-6)
    assert out["method"] == "arcsine" and "Cohen" in out["formula"]


def test_design_table_three_arms_duration_and_mean():
    text = ok("experiment", "design", "--metric", "mean", "--baseline", "10", "--sd", "4",
              "--mde", "0.5", "--arms", "3", "--daily-traffic", "2000")  # fmt: skip
    core = sample_size("mean", baseline=10.0, sd=4.0, mde=0.5, arms=3, daily_traffic=2000)
    assert f"{core.total_n:,}" in text
    assert f"{core.days} days" in text and "unpooled" in text and "bonferroni" in text


def test_design_solves_mde_and_power():
    mde = json.loads(ok("experiment", "design", "--baseline", "0.05", "--n-per-arm", "31231",
                        "--format", "json"))  # fmt: skip
    assert mde["solved_for"] == "mde" and abs(mde["mde_abs"] - 0.005) < 2e-5
    pw = json.loads(ok("experiment", "design", "--baseline", "0.05", "--mde", "0.005",
                       "--n-per-arm", "31231", "--format", "json"))  # fmt: skip
    assert pw["solved_for"] == "power" and abs(pw["power"] - 0.8) < 1e-3


@pytest.mark.parametrize(
    "args, field",
    [
        (["--baseline", "0.05", "--mde", "0"], "mde"),
        (["--baseline", "0.05", "--mde", "0.01", "--alpha", "1.5"], "alpha"),
        (
            ["--baseline", "0.05", "--mde", "0.01", "--arms", "3", "--weights", "0.5,0.3,0.3"],
            "weights",
        ),
        (["--baseline", "0.05", "--mde", "0.01", "--weights", "a,b"], "--weights"),
        (["--metric", "mean", "--baseline", "3", "--mde", "0.1"], "sd"),
        (["--metric", "median", "--baseline", "3", "--mde", "0.1"], "metric"),
    ],
)
def test_design_bad_input_one_line(args, field):
    proc = run("experiment", "design", *args)
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"engagelab: error: {field} == ")


@pytest.fixture(scope="module")
def ab_file(tmp_path_factory):
    rng = np.random.default_rng(3)
    n = 4000
    arm = rng.choice(["ctrl", "b", "c"], size=n)
    pre = rng.gamma(2.0, 5.0, n)
    conv = rng.random(n) < np.where(arm == "c", 0.16, 0.10)
    rev = conv * (pre * 0.8 + rng.gamma(2.0, 10.0, n))
    df = pd.DataFrame({"arm": arm, "converted": conv.astype(int), "revenue": rev, "pre": pre,
                       "sends": rng.integers(1, 5, n), "label": "x"})  # fmt: skip
    d = tmp_path_factory.mktemp("ab")
    df.to_csv(d / "ab.csv", index=False)
    df.to_parquet(d / "ab.parquet")
    return d, df


def _z_interval(x1, n1, x2, n2, alpha=0.05):
    p1, p2 = x1 / n1, x2 / n2
    se = math.sqrt(p1 * (1 - p1) / n1 + p2 * (1 - p2) / n2)
    z = stats.norm.isf(alpha / 2)
    d = p2 - p1
    return d, d - z * se, d + z * se, 2 * stats.norm.sf(abs(d) / se)


@pytest.mark.parametrize("ext", ["csv", "parquet"])
def test_analyze_json_rows_against_references(ab_file, ext):
    d, df = ab_file
    out = json.loads(ok("experiment", "analyze", "--data", str(d / f"ab.{ext}"), "--arm-col", "arm",
                        "--control", "ctrl", "--metric", "converted:proportion",
                        "--metric", "revenue:mean", "--metric", "revenue:ratio:sends",
                        "--correction", "bonferroni", "--format", "json"))  # fmt: skip
    rows = out["rows"]
    assert len(rows) == 2 * 3 and out["correction"] == "bonferroni"
    srm = stats.chisquare(df["arm"].value_counts().reindex(["ctrl", "b", "c"]).to_numpy())
    for r in rows:
        for k in ("n_arm", "control_estimate", "arm_estimate", "abs_lift", "abs_ci_low",
                  "abs_ci_high", "rel_lift", "p_value", "p_adjusted", "bayes_p_beat_control", "srm_p"):  # fmt: skip
            assert k in r
        assert r["srm_p"] == pytest.approx(srm.pvalue, rel=1e-9)
    c = df[df.arm == "ctrl"]
    for arm in ("b", "c"):
        t = df[df.arm == arm]
        r = next(r for r in rows if r["arm"] == arm and r["metric"] == "converted")
        dd, lo, hi, p = _z_interval(c.converted.sum(), len(c), t.converted.sum(), len(t))
        assert r["abs_lift"] == pytest.approx(dd, rel=1e-9)
        assert (r["abs_ci_low"], r["abs_ci_high"]) == (
            pytest.approx(lo, rel=1e-9),
            pytest.approx(hi, rel=1e-9),
        )
        assert r["p_value"] == pytest.approx(p, rel=1e-6)
        assert r["n_arm"] == len(t)
        w = next(r for r in rows if r["arm"] == arm and r["metric"] == "revenue")
        welch = stats.ttest_ind(t.revenue, c.revenue, equal_var=False)
        assert w["p_value"] == pytest.approx(welch.pvalue, rel=1e-6)
        ps = [x["p_value"] for x in rows]
        assert r["p_adjusted"] == pytest.approx(min(1.0, r["p_value"] * len(ps)), rel=1e-6)
        ratio = next(r for r in rows if r["arm"] == arm and r["metric"] == "revenue/sends")
        assert ratio["arm_estimate"] == pytest.approx(t.revenue.sum() / t.sends.sum(), rel=1e-12)


def test_analyze_cuped_and_table(ab_file):
    d, df = ab_file
    plain = json.loads(ok("experiment", "analyze", "--data", str(d / "ab.csv"), "--arm-col", "arm",
                          "--control", "ctrl", "--metric", "revenue:mean", "--format", "json"))  # fmt: skip
    cuped = json.loads(ok("experiment", "analyze", "--data", str(d / "ab.csv"), "--arm-col", "arm",
                          "--control", "ctrl", "--metric", "revenue:mean", "--covariate", "pre",
                          "--format", "json"))  # fmt: skip
    for a, b in zip(plain["rows"], cuped["rows"], strict=True):
        assert b["abs_ci_high"] - b["abs_ci_low"] < a["abs_ci_high"] - a["abs_ci_low"]
    text = ok("experiment", "analyze", "--data", str(d / "ab.csv"), "--arm-col", "arm",
              "--control", "ctrl", "--metric", "converted:proportion")  # fmt: skip
    assert "converted" in text and "holm" in text and "SAMPLE RATIO MISMATCH" not in text


def test_analyze_srm_banner_in_table(tmp_path):
    df = pd.DataFrame({"arm": ["a"] * 600 + ["b"] * 400, "y": [0, 1] * 500})
    df.to_csv(tmp_path / "srm.csv", index=False)
    text = ok("experiment", "analyze", "--data", str(tmp_path / "srm.csv"), "--arm-col", "arm",
              "--control", "a", "--metric", "y:proportion")  # fmt: skip
    assert text.startswith("!! SAMPLE RATIO MISMATCH")


@pytest.mark.parametrize(
    "extra, field",
    [
        (["--control", "nope", "--metric", "converted:proportion"], "control"),
        (["--control", "ctrl", "--metric", "label:mean"], "metric"),
        (["--control", "ctrl", "--metric", "converted"], "metric"),
        (["--control", "ctrl", "--metric", "converted:proportion", "--alpha", "0"], "alpha"),
        (
            ["--control", "ctrl", "--metric", "converted:proportion", "--correction", "x"],
            "correction",
        ),
        (
            ["--control", "ctrl", "--metric", "converted:proportion", "--gs-information", "0.5,x"],
            "--gs-information",
        ),
        (
            [
                "--control",
                "ctrl",
                "--metric",
                "converted:proportion",
                "--gs-information",
                "0.5,1",
                "--gs-look",
                "3",
            ],
            "gs_look",
        ),
        (
            [
                "--control",
                "ctrl",
                "--metric",
                "converted:proportion",
                "--gs-information",
                "0.5,1",
                "--gs-spending",
                "linear",
            ],
            "gs_spending",
        ),
    ],  # fmt: skip
)
def test_analyze_bad_input_one_line(ab_file, extra, field):
    d, _ = ab_file
    proc = run("experiment", "analyze", "--data", str(d / "ab.csv"), "--arm-col", "arm", *extra)
    assert proc.returncode == 1, proc.stdout
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("engagelab: error: ") and field in lines[0]


def test_analyze_missing_file_and_bad_suffix(tmp_path):
    for path, msg in (
        (tmp_path / "none.csv", "file not found"),
        (tmp_path / "x.txt", "must be a .csv"),
    ):
        proc = run("experiment", "analyze", "--data", str(path), "--arm-col", "a", "--control", "b",
                   "--metric", "y:proportion")  # fmt: skip
        assert proc.returncode == 1 and msg in proc.stderr and "--data" in proc.stderr


def test_analyze_table_shows_sequential_columns(ab_file):
    """``--sequential`` and ``--gs-information`` put seq_p, the confidence sequence and the
    group-sequential look in the table itself, not only in JSON."""
    d, _ = ab_file
    args = ["experiment", "analyze", "--data", str(d / "ab.csv"), "--arm-col", "arm",
            "--control", "ctrl", "--metric", "converted:proportion", "--sequential",
            "--gs-information", "0.5,1", "--gs-look", "1"]  # fmt: skip
    text = ok(*args)
    header = text.splitlines()[0].split()
    for col in ("seq_p", "seq_ci_low", "seq_ci_high", "gs_z", "gs_bound", "gs_reject"):
        assert col in header
    rows = json.loads(ok(*args, "--format", "json"))["rows"]
    # Lan-DeMets O'Brien-Fleming spending, first look at t = 0.5 (two-sided 0.05, 0.025 a
    # side): the first bound spends alpha(t) alone, 2.963 as in gsDesign's sfLDOF
    spent = 2 * stats.norm.sf(stats.norm.isf(0.025 / 2) / math.sqrt(0.5))  # one side
    assert rows[0]["gs_bound"] == pytest.approx(stats.norm.isf(spent), abs=1e-4)
    assert rows[0]["gs_bound"] == pytest.approx(2.963, abs=1e-3)
    for r in rows:
        assert r["seq_p_text"] in text and f"{r['gs_bound']:.4g}" in text
        assert r["seq_p"] >= r["p_value"]


def test_analyze_by_segment_json_and_table(ab_file, tmp_path):
    d, df = ab_file
    rng = np.random.default_rng(5)
    seg = df.assign(country=rng.choice(["DE", "FR", "US"], len(df)))
    seg.loc[seg.index[:40], "country"] = None
    path = tmp_path / "seg.csv"
    seg.to_csv(path, index=False)
    args = ("experiment", "analyze", "--data", str(path), "--arm-col", "arm", "--control", "ctrl",
            "--metric", "converted:proportion", "--by", "country")  # fmt: skip
    out = json.loads(ok(*args, "--format", "json"))
    rows = out["rows"]
    assert out["by"] == "country" and len(rows) == 4 * 2
    assert sorted({r["segment"] for r in rows}) == ["(missing)", "DE", "FR", "US"]
    for r in rows:  # each segment as its own subset, z interval by hand
        sub = (
            seg[seg.country.isna()]
            if r["segment"] == "(missing)"
            else seg[seg.country == r["segment"]]
        )
        c, t = sub[sub.arm == "ctrl"], sub[sub.arm == r["arm"]]
        dd, lo, _, p = _z_interval(c.converted.sum(), len(c), t.converted.sum(), len(t))
        assert r["abs_lift"] == pytest.approx(dd, rel=1e-9)
        assert r["abs_ci_low"] == pytest.approx(lo, rel=1e-9)
        if r["segment"] == "(missing)":  # 40 users: the plain analysis picks Fisher's test
            assert r["test"] == "fisher"
            table = [[t.converted.sum(), len(t) - t.converted.sum()],
                     [c.converted.sum(), len(c) - c.converted.sum()]]  # fmt: skip
            p = stats.fisher_exact(table).pvalue
        assert r["p_value"] == pytest.approx(p, rel=1e-6)
        assert {"diff_from_rest", "diff_p", "diff_q", "differs", "diff_q_text"} <= set(r)
    text = ok(*args)
    assert "segment" in text and "diff_q" in text and "Benjamini-Hochberg" in text
    proc = run(*args[:-1], "cuntry")
    assert proc.returncode == 1
    assert "by == 'cuntry', must be a column of data" in proc.stderr


def test_design_cuped_and_ratio_from_the_shell():
    out = json.loads(ok("experiment", "design", "--metric", "mean", "--baseline", "10", "--sd", "4",
                        "--mde", "0.5", "--cuped-rho", "0.6", "--format", "json"))  # fmt: skip
    es = 0.5 / (4 * math.sqrt(1 - 0.36))
    ref = NormalIndPower().solve_power(effect_size=es, alpha=0.05, power=0.8, ratio=1.0)
    assert out["n_per_arm"] == [math.ceil(ref)] * 2 and out["cuped_rho"] == 0.6
    text = ok("experiment", "design", "--metric", "ratio", "--numerator-mean", "20",
              "--denominator-mean", "2", "--numerator-var", "300", "--denominator-var", "2",
              "--covariance", "20", "--mde", "0.05", "--relative")  # fmt: skip
    ref = NormalIndPower().solve_power(effect_size=0.5 / 5.0, alpha=0.05, power=0.8, ratio=1.0)
    assert (
        f"{math.ceil(ref):,}, {math.ceil(ref):,}" in text and "delta-method sd per user 5" in text
    )
    proc = run("experiment", "design", "--metric", "mean", "--baseline", "1", "--sd", "1",
               "--mde", "0.1", "--cuped-rho", "1")  # fmt: skip
    assert proc.returncode == 1 and "cuped_rho == 1.0, must be in [0, 1)" in proc.stderr
