"""adjust_pvalues against statsmodels' multipletests, method by method."""

from __future__ import annotations

import numpy as np
import pytest
from statsmodels.stats.multitest import multipletests

from engagelab.errors import ValidationError
from engagelab.experiments import CORRECTIONS, adjust_pvalues

STATSMODELS = {
    "holm": "holm",
    "hochberg": "simes-hochberg",
    "bonferroni": "bonferroni",
    "sidak": "sidak",
    "holm-sidak": "holm-sidak",
    "bh": "fdr_bh",
    "by": "fdr_by",
}


@pytest.mark.parametrize("method", sorted(STATSMODELS))
@pytest.mark.parametrize("seed", range(5))
def test_adjustments_equal_statsmodels(method, seed):
    rng = np.random.default_rng(seed)
    m = int(rng.integers(2, 40))
    p = np.r_[rng.uniform(0, 1, m // 2), rng.uniform(0, 0.01, m - m // 2)]
    ref = multipletests(p, method=STATSMODELS[method])[1]
    assert adjust_pvalues(p, method) == pytest.approx(ref, rel=1e-9, abs=1e-12)


def test_tiny_p_values_keep_their_order_of_magnitude_and_nan_stays_out():
    out = adjust_pvalues([1e-20, np.nan, 0.5], "sidak")
    assert out[0] == pytest.approx(2e-20, rel=1e-9)  # 1 - (1 - p)**2 for a p below rounding
    assert np.isnan(out[1]) and out[2] == pytest.approx(0.75)
    assert adjust_pvalues([0.2, 0.3], "none").tolist() == [0.2, 0.3]
    assert set(STATSMODELS) | {"none"} == set(CORRECTIONS)


def test_bad_input_is_named():
    with pytest.raises(ValidationError, match="pvalues"):
        adjust_pvalues([0.1, 1.5])
    with pytest.raises(ValidationError, match="correction"):
        adjust_pvalues([0.1], "fdr")
