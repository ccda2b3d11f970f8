"""Assignment: stability (hashlib reference), Python == DuckDB, uniformity, independence, SRM."""

from __future__ import annotations

import hashlib

import duckdb
import numpy as np
import pandas as pd
import pytest
from scipy import stats

from engagelab.errors import ValidationError
from engagelab.experiments.assignment import (
    BUCKETS,
    assign,
    bucket,
    bucket_sql,
    buckets,
    campaign_split,
    global_control,
    srm_check,
)

IDS = [f"user-{i}" for i in range(200_000)]


def test_bucket_is_md5_of_salt_colon_id():
    for uid in ["a", "user-1", "Ünïcode-ü", "x'y", 12345]:
        ref = int(hashlib.md5(f"s1:{uid}".encode()).hexdigest()[:8], 16) % 10000
        assert bucket(uid, "s1") == ref


def test_vectorised_equals_scalar_and_duckdb_sql():
    ids = IDS[:3000] + ["quote'd", "ünï"]
    vec = buckets(ids, "salt'x")
    assert vec.tolist() == [bucket(u, "salt'x") for u in ids]
    con = duckdb.connect()
    con.register("users", pd.DataFrame({"user_id": ids}))
    expr = bucket_sql("user_id", "salt'x")
    sql = con.sql(f"SELECT {expr} AS b FROM users").fetchnumpy()["b"]
    assert np.array_equal(np.asarray(sql, dtype=np.int64), vec)
    ints = np.arange(1000, dtype=np.int64)
    assert buckets(ints, "k").tolist() == [bucket(int(i), "k") for i in ints]


def test_uniform_over_buckets_and_arms():
    b = buckets(IDS, "uniformity")
    counts = np.bincount(b // 100, minlength=100)  # 100 groups of 100 buckets
    assert stats.chisquare(counts).pvalue > 1e-3
    arms = assign(IDS, "uniformity", ["A", "B", "C"], [0.5, 0.3, 0.2])
    obs = [int((arms == a).sum()) for a in "ABC"]
    assert stats.chisquare(obs, np.array([0.5, 0.3, 0.2]) * len(IDS)).pvalue > 1e-3


def test_independent_across_salts():
    a = buckets(IDS, "salt-1") // 1000
    b = buckets(IDS, "salt-2") // 1000
    table = pd.crosstab(a, b).to_numpy()
    assert stats.chi2_contingency(table).pvalue > 1e-3
    assert np.corrcoef(a, b)[0, 1] == pytest.approx(0, abs=0.01)


def test_stable_across_calls_and_weights_respected():
    first = assign(IDS[:5000], "stable", ["A", "B"])
    again = assign(list(reversed(IDS[:5000])), "stable", ["A", "B"])[::-1]
    assert (first == again).all()
    b = buckets(IDS[:5000], "stable")
    assert ((b < 5000) == (first == "A")).all()


def test_campaign_split_and_global_control():
    labels = campaign_split(IDS[:50_000], "camp", ["A", "B"], [0.5, 0.5], control_fraction=0.2)
    b = buckets(IDS[:50_000], "camp")
    assert ((b < 2000) == (labels == "control")).all()
    share = (labels == "control").mean()
    assert share == pytest.approx(0.2, abs=0.01)
    g = global_control(IDS[:50_000], "ws", 0.05)
    assert g.mean() == pytest.approx(0.05, abs=0.005)
    # global control is independent of the campaign's split
    assert stats.chi2_contingency(pd.crosstab(g, labels).to_numpy()).pvalue > 1e-3


def test_srm_matches_scipy_chisquare():
    rng = np.random.default_rng(1)
    for _ in range(30):
        k = int(rng.integers(2, 6))
        w = rng.dirichlet(np.ones(k) * 5)
        w = np.round(w, 4)
        w[-1] = 1 - w[:-1].sum()
        counts = [int(c) for c in rng.multinomial(int(rng.integers(100, 100000)), w)]
        res = srm_check(counts, list(w))
        ref = stats.chisquare(counts, np.asarray(w) * sum(counts))
        assert res.chi2 == pytest.approx(ref.statistic, rel=1e-9)
        assert res.p_value == pytest.approx(ref.pvalue, rel=1e-6, abs=1e-300)


def test_srm_extreme_mismatch_keeps_log_p():
    res = srm_check({"A": 1_000_000, "B": 1_200_000})
    assert res.p_value < 1e-300 or res.p_value == 0.0
    assert res.log10_p < -1000
    assert res.mismatch() and "MISMATCH" in repr(res) and "p=0" not in repr(res)


@pytest.mark.parametrize(
    "call, field",
    [
        (lambda: assign(["a"], "s", ["A", "B"], [0.6, 0.6]), "weights"),
        (lambda: assign(["a"], "s", ["A", "B"], [1.0]), "weights"),
        (lambda: assign(["a"], "", ["A"]), "salt"),
        (lambda: assign([None], "s", ["A"]), "user_ids"),
        (lambda: campaign_split(["a"], "s", ["A"], control_fraction=1.5), "control_fraction"),
        (lambda: srm_check([10, -1]), "counts[1]"),
        (lambda: srm_check([0, 0]), "counts"),
        (lambda: bucket(1.5, "s"), "user_id"),
    ],
)
def test_bad_input(call, field):
    with pytest.raises(ValidationError) as e:
        call()
    assert e.value.field == field


def test_bucket_constant():
    assert BUCKETS == 10_000
