"""Fieller intervals for the relative lift: pivot inversion, duality with the test, coverage."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy import optimize, stats

from engagelab.errors import ValidationError
from engagelab.experiments import _stats, analyze

Z = 1.959963984540054


def _pivot_roots(mc, vc, mt, vt, z):
    """Independent reference: the two rho where the Fieller pivot equals z, by root finding."""

    def g(rho):
        return (mt - rho * mc) ** 2 - z * z * (vt + rho * rho * vc)

    r0 = mt / mc  # inside the set (g < 0); the set is bounded when mc**2 > z**2 vc
    step = 10 * math.sqrt(vt + r0 * r0 * vc) / abs(mc) + 1e-9
    lo_end, hi_end = r0 - step, r0 + step
    while g(lo_end) < 0:
        lo_end -= step
    while g(hi_end) < 0:
        hi_end += step
    lo = optimize.brentq(g, lo_end, r0, xtol=1e-14, rtol=1e-13)
    hi = optimize.brentq(g, r0, hi_end, xtol=1e-14, rtol=1e-13)
    return lo - 1, hi - 1


def test_fieller_endpoints_invert_the_pivot():
    rng = np.random.default_rng(21)
    for _ in range(200):
        mc, mt = rng.uniform(0.5, 50, 2) * rng.choice([-1, 1], 2)
        vc, vt = (rng.uniform(0.001, 0.2, 2) * np.array([mc, mt]) ** 2).tolist()
        if mc * mc <= Z * Z * vc:
            continue
        rel, lo, hi = _stats.fieller(mc, vc, mt, vt, Z)
        rlo, rhi = _pivot_roots(mc, vc, mt, vt, Z)
        assert float(rel) == pytest.approx(mt / mc - 1, rel=1e-12)
        assert (float(lo), float(hi)) == pytest.approx((rlo, rhi), rel=1e-9, abs=1e-11)
        # asymmetric around the estimate unless the control is exact
        assert float(lo) < float(rel) < float(hi)


def test_fieller_is_the_delta_interval_when_the_control_is_exact():
    rel, lo, hi = _stats.fieller(4.0, 0.0, 5.0, 0.09, Z)
    d_rel, d_lo, d_hi = _stats.relative_lift(4.0, 0.0, 5.0, 0.09, Z)
    assert (float(lo), float(hi)) == pytest.approx((float(d_lo), float(d_hi)), rel=1e-12)


def test_fieller_unbounded_when_control_is_not_distinguishable_from_zero():
    rel, lo, hi = _stats.fieller(0.1, 0.01, 0.5, 0.01, Z)  # control z = 1 < 1.96
    assert float(lo) == -math.inf and float(hi) == math.inf


def test_fieller_excludes_zero_exactly_when_the_test_rejects():
    rng = np.random.default_rng(22)
    frames = []
    for i in range(60):
        n = int(rng.integers(300, 3000))
        p = rng.uniform(0.03, 0.2)
        lift = rng.uniform(-0.3, 0.3)
        rev_c = rng.lognormal(1, 1, n)
        rev_t = rng.lognormal(1 + lift / 3, 1, n)
        frames.append(
            pd.DataFrame(
                {
                    "experiment": f"e{i:02d}",
                    "arm": ["A"] * n + ["B"] * n,
                    "y": np.r_[rng.random(n) < p, rng.random(n) < p * (1 + lift)].astype(int),
                    "rev": np.r_[rev_c, rev_t],
                    "sends": rng.integers(1, 4, 2 * n),
                }
            )
        )
    df = pd.concat(frames)
    t = analyze(
        df,
        arm_col="arm",
        control="A",
        experiment_col="experiment",
        metrics=["y:proportion", "rev:mean", "rev:ratio:sends"],
        test="auto",
        rel_ci="fieller",
        correction="none",
        bayes_draws=1000,
    ).to_pandas()
    assert set(t.test) == {"z", "welch"}
    rejects = t.p_value < 0.05
    excludes = (t.rel_ci_low > 0) | (t.rel_ci_high < 0)
    assert 10 < rejects.sum() < len(t) - 10  # both outcomes occur
    assert (rejects == excludes).all()
    delta = analyze(
        df, arm_col="arm", control="A", experiment_col="experiment",
        metrics=["y:proportion", "rev:mean", "rev:ratio:sends"], correction="none",
        bayes_draws=1000,
    ).to_pandas()  # fmt: skip
    # same tests, same absolute intervals; only the relative interval changes
    assert np.allclose(t.p_value, delta.p_value) and np.allclose(t.abs_ci_low, delta.abs_ci_low)
    assert np.allclose(t.rel_lift, delta.rel_lift)
    assert not np.allclose(t.rel_ci_high, delta.rel_ci_high)


def test_fieller_covers_where_the_delta_method_falls_short():
    # sparse conversions (about 30 in control): the delta method's symmetric interval
    # undercovers the relative lift; Fieller's stays at its nominal level
    rng = np.random.default_rng(23)
    reps, n, pc, pt = 20000, 3000, 0.010, 0.012
    sc, st = rng.binomial(n, pc, reps), rng.binomial(n, pt, reps)
    ok = sc > 0
    a, b = sc[ok] / n, st[ok] / n
    va, vb = a * (1 - a) / n, b * (1 - b) / n
    truth = pt / pc - 1
    _, lo, hi = _stats.fieller(a, va, b, vb, Z)
    _, dlo, dhi = _stats.relative_lift(a, va, b, vb, Z)
    cover = np.mean((lo <= truth) & (truth <= hi))
    dcover = np.mean((dlo <= truth) & (truth <= dhi))
    sd = math.sqrt(0.95 * 0.05 / ok.sum())
    assert abs(cover - 0.95) <= 3 * sd, cover
    assert dcover < 0.95 - 3 * sd, dcover


def test_rel_ci_option_is_validated_and_reaches_the_cli(tmp_path, capsys):
    from engagelab.cli import main

    df = pd.DataFrame(
        {"arm": ["a"] * 500 + ["b"] * 500, "y": [0, 1] * 250 + [1, 1, 0] * 166 + [1, 1]}
    )
    with pytest.raises(ValidationError, match="^rel_ci == 'wald'"):
        analyze(df, arm_col="arm", control="a", metrics=["y:proportion"], rel_ci="wald")
    path = tmp_path / "d.csv"
    df.to_csv(path, index=False)
    base = ["experiment", "analyze", "--data", str(path), "--arm-col", "arm", "--control", "a",
            "--metric", "y:proportion", "--format", "json"]  # fmt: skip
    assert main([*base, "--rel-ci", "fieller"]) == 0

    row = json.loads(capsys.readouterr().out)["rows"][0]
    a, b = df[df.arm == "a"].y, df[df.arm == "b"].y
    va, vb = a.mean() * (1 - a.mean()) / len(a), b.mean() * (1 - b.mean()) / len(b)
    _, lo, hi = _stats.fieller(a.mean(), va, b.mean(), vb, stats.norm.isf(0.025))
    assert (row["rel_ci_low"], row["rel_ci_high"]) == pytest.approx(
        (float(lo), float(hi)), rel=1e-9
    )
    assert main([*base, "--rel-ci", "exact"]) == 1
    err = json.loads(capsys.readouterr().err)["error"]  # --format json: the error is JSON
    assert err["field"] == "rel_ci" and err["message"].startswith("rel_ci == 'exact'")
