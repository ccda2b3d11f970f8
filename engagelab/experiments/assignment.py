"""Deterministic assignment of users to arms, control groups and the sample-ratio check.

A user's bucket is ``int(md5(salt + ":" + user_id)[:8], 16) % 10000``: a pure function
of (salt, user id) that Python's :mod:`hashlib` and DuckDB's ``md5()`` compute
identically, so the same user gets the same arm on every machine, rerun and engine
(DuckDB's own ``hash()`` is not stable across versions, md5 is). Buckets map to
arms by cumulative weights: arm *i* owns buckets ``[round(10000 * W_{i-1}),
round(10000 * W_i))``.

Example:
    >>> bucket("user-1", salt="exp-42")
    1103
    >>> list(assign(["user-1", "user-2", "user-3"], salt="exp-42", arms=["A", "B"]))
    ['A', 'B', 'B']
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import duckdb
import numpy as np
import pandas as pd
from scipy import stats

from engagelab.errors import ValidationError
from engagelab.experiments._stats import format_p
from engagelab.validate import check_number, check_str

__all__ = [
    "BUCKETS",
    "SRMResult",
    "assign",
    "bucket",
    "bucket_sql",
    "buckets",
    "campaign_split",
    "global_control",
    "srm_check",
]

BUCKETS = 10_000


def _uid(user_id: Any) -> str:
    if isinstance(user_id, bool) or not isinstance(user_id, str | int | np.integer):
        raise ValidationError("user_id", user_id, "must be a string or an integer")
    return str(user_id)


def bucket(user_id: str | int, salt: str) -> int:
    """The bucket (0..9999) of one user under ``salt``."""
    check_str("salt", salt)
    digest = hashlib.md5(f"{salt}:{_uid(user_id)}".encode()).hexdigest()
    return int(digest[:8], 16) % BUCKETS


def _sql_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def bucket_sql(id_column: str, salt: str) -> str:
    """A DuckDB SQL expression computing :func:`bucket` for the column ``id_column``.

    >>> bucket_sql("user_id", "exp-42")
    '((\\'0x\\' || left(md5(\\'exp-42:\\' || CAST("user_id" AS VARCHAR)), 8))::UBIGINT % 10000)'
    """
    check_str("salt", salt)
    check_str("id_column", id_column)
    ident = '"' + id_column.replace('"', '""') + '"'
    return f"(('0x' || left(md5({_sql_literal(salt + ':')} || CAST({ident} AS VARCHAR)), 8))::UBIGINT % {BUCKETS})"


def buckets(user_ids: Iterable[Any], salt: str) -> np.ndarray:
    """Buckets of many users at once (vectorised in DuckDB), as an int64 array."""
    check_str("salt", salt)
    ids = pd.Series(user_ids if not isinstance(user_ids, pd.Series) else user_ids.to_numpy())
    if ids.isna().any():
        raise ValidationError("user_ids", "<missing>", "must not contain missing values")
    if not (
        pd.api.types.is_integer_dtype(ids)
        or pd.api.types.is_string_dtype(ids)
        or ids.dtype == object
    ):
        raise ValidationError("user_ids", str(ids.dtype), "must be strings or integers")
    if ids.dtype == object:
        for v in ids.head(1000):
            _uid(v)
        ids = ids.astype(str)
    frame = pd.DataFrame({"uid": ids})
    con = duckdb.connect()
    try:
        con.register("ids", frame)
        out = con.execute(f"SELECT {bucket_sql('uid', salt)} AS b FROM ids").fetchnumpy()["b"]
    finally:
        con.close()
    return np.asarray(out, dtype=np.int64)


def _bounds(weights: Sequence[float], name: str = "weights") -> np.ndarray:
    w = [
        float(check_number(f"{name}[{i}]", x, low=0, low_open=True)) for i, x in enumerate(weights)
    ]
    if abs(sum(w) - 1.0) > 1e-6:
        raise ValidationError(name, list(weights), "must sum to 1")
    bounds = np.round(np.cumsum(w) * BUCKETS).astype(np.int64)
    bounds[-1] = BUCKETS
    if np.any(np.diff(np.concatenate([[0], bounds])) == 0):
        raise ValidationError(
            name, list(weights), f"each weight must cover at least one bucket (>= {1 / BUCKETS:g})"
        )
    return bounds


def assign(
    user_ids: Iterable[Any], salt: str, arms: Sequence[str], weights: Sequence[float] | None = None
) -> np.ndarray:
    """Arm of each user: buckets split by cumulative ``weights`` (equal by default)."""
    arms = list(arms)
    if len(arms) < 1 or len(set(arms)) != len(arms):
        raise ValidationError("arms", arms, "must be a non-empty list of distinct names")
    if weights is None:
        weights = [1.0 / len(arms)] * len(arms)
    if len(weights) != len(arms):
        raise ValidationError(
            "weights", list(weights), f"must have one weight per arm ({len(arms)})"
        )
    idx = np.searchsorted(_bounds(weights), buckets(user_ids, salt), side="right")
    return np.asarray(arms, dtype=object)[idx]


def campaign_split(
    user_ids: Iterable[Any],
    salt: str,
    variants: Sequence[str],
    weights: Sequence[float] | None = None,
    control_fraction: float = 0.0,
    control_label: str = "control",
) -> np.ndarray:
    """Campaign assignment: a control group of ``control_fraction``, the rest split over variants.

    The lowest buckets form the control group; the others are divided among
    ``variants`` in proportion to ``weights``.

    >>> labels = campaign_split([f"u{i}" for i in range(10000)], "c1", ["A", "B"], control_fraction=0.1)
    >>> sorted(pd.Series(labels).value_counts().round(-2).items())
    [('A', 4400), ('B', 4600), ('control', 1000)]
    """
    check_number("control_fraction", control_fraction, low=0, high=1, high_open=True)
    variants = list(variants)
    if weights is None:
        weights = [1.0 / len(variants)] * len(variants) if variants else []
    if len(weights) != len(variants) or not variants:
        raise ValidationError(
            "weights", list(weights), f"must have one weight per variant ({len(variants)})"
        )
    _bounds(weights)
    if control_fraction == 0:
        return assign(user_ids, salt, variants, weights)
    scaled = [control_fraction] + [(1 - control_fraction) * float(w) for w in weights]
    return assign(user_ids, salt, [control_label, *variants], scaled)


def global_control(user_ids: Iterable[Any], workspace_salt: str, fraction: float) -> np.ndarray:
    """True for users in the workspace-wide global control group (held out of all campaigns).

    Uses the salt ``"global-control:" + workspace_salt`` so membership is independent of
    every campaign's own split.
    """
    check_number("fraction", fraction, low=0, high=1, high_open=True)
    return buckets(
        user_ids, "global-control:" + check_str("workspace_salt", workspace_salt)
    ) < round(fraction * BUCKETS)


@dataclass(frozen=True)
class SRMResult:
    """Sample-ratio-mismatch check: chi-square of observed arm sizes against intended weights."""

    arms: tuple[str, ...]
    observed: tuple[int, ...]
    expected: tuple[float, ...]
    chi2: float
    df: int
    p_value: float
    log10_p: float

    def mismatch(self, threshold: float = 0.001) -> bool:
        """True when ``p_value < threshold`` (the usual SRM alarm level)."""
        return self.p_value < threshold

    def __repr__(self) -> str:
        flag = "  ** SAMPLE RATIO MISMATCH **" if self.mismatch() else ""
        obs = ", ".join(f"{a}={n}" for a, n in zip(self.arms, self.observed, strict=True))
        return f"SRMResult({obs}; chi2={self.chi2:.3g}, p={format_p(self.p_value, self.log10_p)}){flag}"


def srm_check(
    counts: Sequence[int] | dict[str, int], weights: Sequence[float] | None = None
) -> SRMResult:
    """Chi-square goodness-of-fit of arm sizes against the intended ``weights``.

    >>> srm_check({"A": 5000, "B": 5400}).p_value < 0.001
    True
    """
    if isinstance(counts, dict):
        arms, obs = tuple(str(k) for k in counts), [counts[k] for k in counts]
    else:
        obs = list(counts)
        arms = tuple(str(i) for i in range(len(obs)))
    if len(obs) < 2:
        raise ValidationError("counts", obs, "must have at least two arms")
    for i, n in enumerate(obs):
        if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 0:
            raise ValidationError(f"counts[{i}]", n, "must be an integer >= 0")
    if weights is None:
        weights = [1.0 / len(obs)] * len(obs)
    if len(weights) != len(obs):
        raise ValidationError(
            "weights", list(weights), f"must have one weight per arm ({len(obs)})"
        )
    _bounds(weights)
    total = sum(int(n) for n in obs)
    if total == 0:
        raise ValidationError("counts", obs, "must contain at least one user")
    expected = np.asarray(weights, float) / sum(weights) * total
    chi2 = float(np.sum((np.asarray(obs, float) - expected) ** 2 / expected))
    df = len(obs) - 1
    logp = float(stats.chi2.logsf(chi2, df))
    return SRMResult(
        arms,
        tuple(int(n) for n in obs),
        tuple(expected.tolist()),
        chi2,
        df,
        math.exp(logp),
        logp / math.log(10),
    )
