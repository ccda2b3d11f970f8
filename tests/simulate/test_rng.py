"""The counter-based random numbers, checked against scipy and as invariants."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from engagelab.simulate import _rng, simulate
from engagelab.simulate._population import user_ids


def test_uniform_and_normal_distributions() -> None:
    h = _rng.mix64(np.arange(200_000, dtype=np.uint64) ^ _rng.seed_key(1))
    assert stats.kstest(_rng.uniform(h), "uniform").pvalue > 1e-3
    assert stats.kstest(_rng.uniform32(h, True), "uniform").pvalue > 1e-3
    assert stats.kstest(_rng.uniform32(h, False), "uniform").pvalue > 1e-3
    assert stats.kstest(_rng.normal(_rng.field_key(h, 1)), "norm").pvalue > 1e-3
    # the two halves of one hash are uncorrelated
    assert abs(np.corrcoef(_rng.uniform32(h, True), _rng.uniform32(h, False))[0, 1]) < 0.01
    # consecutive counters give uncorrelated draws
    u = _rng.uniform(h)
    assert abs(np.corrcoef(u[:-1], u[1:])[0, 1]) < 0.01


@settings(max_examples=60, deadline=None)
@given(
    u=st.lists(st.floats(0, 1, exclude_max=True), min_size=1, max_size=50),
    lam=st.floats(0.001, 30),
)
def test_poisson_inverse_cdf_matches_scipy(u: list[float], lam: float) -> None:
    arr = np.array(u)
    got = _rng.poisson(arr, np.full(arr.size, lam), cap=1_000)
    # scipy's ppf is the smallest k with CDF(k) >= u; ours the smallest with u <= CDF(k)
    want = stats.poisson.ppf(arr, lam)
    cdf_want = stats.poisson.cdf(want, lam)
    near_tie = np.abs(cdf_want - arr) < 1e-9
    assert np.all((got == want) | near_tie)


def test_poisson_sample_distribution() -> None:
    u = _rng.uniform(_rng.mix64(np.arange(100_000, dtype=np.uint64)))
    k = _rng.poisson(u, np.full(u.size, 1.7))
    observed = np.bincount(k, minlength=12)[:12]
    expected = stats.poisson.pmf(np.arange(12), 1.7) * u.size
    expected[-1] += u.size - expected.sum()
    observed[-1] += (k >= 12).sum()
    assert stats.chisquare(observed, expected).pvalue > 1e-3


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(0, 2**64 - 1), min_size=1, max_size=20))
def test_hex16_renders_every_word(words: list[int]) -> None:
    arr = _rng.hex16(np.array(words, dtype=np.uint64))
    assert arr.type == pa.string()
    assert arr.to_pylist() == [f"{w:016x}" for w in words]


@settings(max_examples=30, deadline=None)
@given(st.lists(st.integers(0, 9_999_998), min_size=1, max_size=20))
def test_user_ids(index: list[int]) -> None:
    assert user_ids(np.array(index)).to_pylist() == [f"u{i + 1:07d}" for i in index]


@settings(max_examples=12, deadline=None)
@given(
    seed=st.integers(0, 2**32),
    cuts=st.lists(st.integers(1, 15), max_size=4),
    start=st.sampled_from(["2026-01-01", "2026-03-25", "2026-10-20"]),
)
def test_any_split_of_days_gives_the_same_rows(seed: int, cuts: list[int], start: str) -> None:
    world = simulate(n_users=60, days=16, seed=seed, start=start, heavy_share=0.5, sparse_share=0.3)
    edges = sorted({0, 16, *cuts})
    parts = [world.baseline_events(a, b) for a, b in zip(edges[:-1], edges[1:], strict=True)]
    assert pa.concat_tables(parts).equals(world.baseline_events(0, 16))
