"""Power-family spending ``alpha * t**rho`` for group-sequential bounds, checked against
an independent recursion written here (Armitage-McPherson-Rowe on a uniform grid with
the trapezoid rule, root by brentq) and used through the analysis."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import optimize, stats

from engagelab.errors import SpecError
from engagelab.experiments import Sequential, analyze, group_sequential_bounds


def recursion_bounds(t, alpha, rho, points=3001):
    """Two-sided bounds c_k with P0(first |Z| crossing at look k) = alpha (t_k^rho - t_{k-1}^rho)."""
    spent = alpha * np.asarray(t, float) ** rho
    bounds, grid, dens, prev_t, prev_spent = [], None, None, 0.0, 0.0
    for tk, sk in zip(t, spent, strict=True):
        target, sd = sk - prev_spent, np.sqrt(tk - prev_t)
        if grid is None:
            c = stats.norm.isf(target / 2)
        else:
            w = np.full(len(grid), grid[1] - grid[0])
            w[[0, -1]] /= 2
            mass = w * dens

            def excess(c, mass=mass, grid=grid, sd=sd, tk=tk, target=target):
                b = c * np.sqrt(tk)
                p = stats.norm.cdf((-b - grid) / sd) + stats.norm.sf((b - grid) / sd)
                return float(mass @ p) - target

            c = optimize.brentq(excess, 0.5, 20.0, xtol=1e-12)
        b = c * np.sqrt(tk)
        new = np.linspace(-b, b, points)
        if grid is None:
            dens = stats.norm.pdf(new / sd) / sd
        else:
            dens = (stats.norm.pdf((new[:, None] - grid[None, :]) / sd) / sd) @ mass
        grid, prev_t, prev_spent = new, tk, sk
        bounds.append(c)
    return np.array(bounds)


@pytest.mark.parametrize("rho", [1.0, 2.0, 3.0])
@pytest.mark.parametrize("t", [(0.5, 1.0), (0.25, 0.5, 0.75, 1.0), (0.3, 0.45, 0.8, 1.0)])
def test_power_family_bounds_match_an_independent_recursion(t, rho):
    ours = np.array(group_sequential_bounds(t, 0.05, "power", rho))
    assert ours == pytest.approx(recursion_bounds(t, 0.05, rho), abs=2e-5)


def test_power_spending_through_the_analysis():
    rng = np.random.default_rng(2)
    df = pd.DataFrame({"arm": rng.choice(["A", "B"], 4000), "y": rng.normal(0, 1, 4000)})
    t = (0.25, 0.5, 0.75, 1.0)
    res = analyze(df, arm_col="arm", control="A", metrics=["y:mean"], gs_information=t,
                  gs_look=2, gs_spending="power", gs_rho=3.0).to_pandas()  # fmt: skip
    assert res.gs_bound.iloc[0] == pytest.approx(recursion_bounds(t, 0.05, 3.0)[1], abs=2e-5)
    # rho = 1 spends linearly: look 1 of two equal looks is the two-sided 0.025 quantile
    lin = Sequential(information=(0.5, 1.0), spending="power")
    assert group_sequential_bounds(lin.information, 0.05, lin.spending, lin.rho)[0] == (
        pytest.approx(stats.norm.isf(0.0125), rel=1e-9)
    )
    with pytest.raises(SpecError, match="sequential.rho"):
        Sequential(information=(0.5, 1.0), spending="obf", rho=2.0)
    with pytest.raises(SpecError, match="sequential.rho"):
        Sequential(information=(0.5, 1.0), spending="power", rho=0)
