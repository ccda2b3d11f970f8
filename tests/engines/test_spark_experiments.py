"""The experiment aggregation SQL on DuckDB and, transpiled by sqlglot, on Spark."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from engagelab.errors import ValidationError
from engagelab.experiments import Metric, aggregate, analyze

pytestmark = [pytest.mark.spark, pytest.mark.slow]


@pytest.fixture(scope="module")
def spark():
    from engagelab.engines.spark_engine import local_spark_session

    session = local_spark_session("engagelab-experiments-parity")
    yield session
    session.stop()


def test_analyze_on_spark_equals_duckdb(spark):
    rng = np.random.default_rng(8)
    n = 3000
    df = pd.DataFrame(
        {
            "campaign": rng.choice(["c1", "c2"], n),
            "arm": rng.integers(0, 3, n),
            "clicked": rng.random(n) < 0.1,
            "revenue": rng.gamma(2.0, 3.0, n),
            "orders": rng.integers(0, 4, n),
            "rev_pre": rng.gamma(2.0, 3.0, n),
            "orders_pre": rng.integers(0, 4, n),
        }
    )
    df.loc[5, "revenue"] = np.nan  # missing counts as 0 on both engines
    metrics = [
        Metric("clicked", "proportion"),
        Metric("revenue", "mean", covariate="rev_pre"),
        Metric("rpo", "ratio", "revenue", "orders", "rev_pre", denominator_covariate="orders_pre"),
    ]
    sdf = spark.createDataFrame(df)
    kw = dict(arm_col="arm", control=0, experiment_col="campaign", metrics=metrics)
    a_duck = aggregate(df, metrics, "arm", "campaign")
    a_spark = aggregate(sdf, metrics, "arm", "campaign")
    pd.testing.assert_frame_equal(a_spark, a_duck, check_exact=False, rtol=1e-12)
    r_duck = analyze(df, **kw, bayes_draws=1000).to_pandas()
    r_spark = analyze(sdf, **kw, bayes_draws=1000).to_pandas()
    pd.testing.assert_frame_equal(r_spark, r_duck, check_exact=False, rtol=1e-9)
    with pytest.raises(ValidationError, match=r"^metrics\['campaign'\].column == 'campaign'"):
        analyze(sdf, arm_col="arm", control=0, metrics=["campaign:mean"])
