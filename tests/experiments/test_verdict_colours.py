"""ExperimentResult shows significant losses red and wins green, direction-aware."""

from __future__ import annotations

import matplotlib.colors as mcolors
import numpy as np
import pandas as pd

from engagelab.experiments import Metric, analyze


def _data() -> pd.DataFrame:
    rng = np.random.default_rng(5)
    n = 4000
    arm = np.repeat(["A", "B"], n)
    clicked = np.r_[rng.random(n) < 0.20, rng.random(n) < 0.12]  # B clicks much less: a loss
    unsub = np.r_[rng.random(n) < 0.10, rng.random(n) < 0.04]  # B unsubscribes less: a win
    noise = rng.random(2 * n) < 0.3  # no difference
    return pd.DataFrame({"arm": arm, "clicked": clicked.astype(int),
                         "unsub": unsub.astype(int), "noise": noise.astype(int)})  # fmt: skip


def test_losses_red_wins_green_in_table_and_forest_plot():
    metrics = [
        Metric("clicked", "proportion"),
        Metric("unsub", "proportion", lower_is_better=True),
        Metric("noise", "proportion"),
    ]
    res = analyze(_data(), arm_col="arm", control="A", metrics=metrics)
    by_metric = dict(zip(res.table["metric"], res.verdicts(), strict=True))
    assert by_metric["clicked"] == "loss" and by_metric["unsub"] == "win"
    assert by_metric["noise"] == "neutral"
    html = res._repr_html_()
    rows = html.split("<tbody>")[1].split("</tr>")
    row = {m: r for m in ("clicked", "unsub", "noise") for r in rows if f">{m}<" in r}
    assert "el-loss" in row["clicked"] and "#b00020" in row["clicked"]
    assert "el-win" in row["unsub"] and "#1a5e20" in row["unsub"]
    assert "el-" not in row["noise"].split(">")[0]
    fig = res.plot()
    colours = [
        mcolors.to_hex(line.get_color()) for line in fig.axes[0].lines if line.get_marker() == "o"
    ]
    # rows are drawn in table order
    assert colours == ["#b00020", "#1a7f37", "#555555"]
