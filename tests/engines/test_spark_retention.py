"""The same retention SQL on DuckDB and, transpiled by sqlglot, on Spark."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from engagelab import Workspace
from engagelab.retention import retention
from engagelab.retention.labels import label_effect, label_retention
from engagelab.simulate.labels import label_programme

pytestmark = [pytest.mark.spark, pytest.mark.slow]


@pytest.fixture(scope="module")
def spark_ws(tmp_path_factory):
    from engagelab.engines.spark_engine import local_spark_session

    session = local_spark_session("engagelab-retention-parity")
    ws = Workspace.create(tmp_path_factory.mktemp("rparity") / "ws")
    label_programme(ws, n_users=1_500, days=14, observe_days=10, seed=5, effect=0.3)
    ws.spark(session)
    yield ws
    ws.close()
    session.stop()


def _same(a, b):
    pd.testing.assert_frame_equal(a.cells, b.cells, check_dtype=False)


@pytest.mark.parametrize(
    "opts",
    [
        dict(period="day", periods=31, mode="on", cohort="first"),  # the benchmark's query
        dict(period="week", periods=3, mode="on-or-after", cohort="recurring"),
        dict(period="day", periods=5, window="rolling", brackets=(1, 3, 6), mode="on"),
        dict(period="month", periods=2, mode="on", breakdown="plan"),
        dict(period="week", periods=3, mode="on", window="rolling", breakdown="plan"),
        dict(period="day", periods=5, mode="on", cohort="recurring", timezone="America/New_York"),
        dict(period="week", periods=2, mode="on-or-after", timezone="Asia/Kolkata"),
    ],
)
def test_duckdb_and_spark_agree(spark_ws, opts):
    kw = {k: v for k, v in opts.items()}
    a = retention(spark_ws, "App Launched", **kw)
    b = retention(spark_ws, "App Launched", engine="spark", **kw)
    _same(a, b)
    assert a.cells["retained"].notna().sum() >= 2  # not all censored


def test_label_queries_agree_on_spark(spark_ws):
    a = label_retention(spark_ws, "Onboarding", periods=6)["Onboarding"]
    b = label_retention(spark_ws, "Onboarding", periods=6, engine="spark")["Onboarding"]
    _same(a, b)
    ea = label_effect(spark_ws, "Onboarding", day=7)
    eb = label_effect(spark_ws, "Onboarding", day=7, engine="spark")
    pd.testing.assert_frame_equal(ea.groups, eb.groups)
    assert np.allclose(ea.comparisons["difference"], eb.comparisons["difference"])
