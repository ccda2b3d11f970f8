"""Row-level coercion of raw input columns to typed Arrow arrays, reporting bad rows.

Every function returns ``(typed_array, bad_mask)``: values that could not be converted
become null in the array and ``True`` in the mask, so the caller can quarantine exactly
those rows with a reason.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from engagelab.schema import PROPERTY_TYPES, TS_TYPE

__all__ = ["coerce", "infer_date_format", "infer_string_type", "parse_timestamps"]

_TRUE = {"true", "t", "yes", "y", "1"}
_FALSE = {"false", "f", "no", "n", "0"}
_TS_LIKE = re.compile(
    r"^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?)?$"
)
_MIN_TS = pd.Timestamp("1970-01-01", tz="UTC")
_MAX_TS = pd.Timestamp("2200-01-01", tz="UTC")
_EPOCH_UNITS = {"s": 1_000_000, "ms": 1_000, "us": 1}
#: an epoch number before this is taken as a wrong unit (seconds read as ms land in 1970)
_MIN_EPOCH_TS = pd.Timestamp("1980-01-01", tz="UTC")
_EPOCH_TEXT = re.compile(r"^\s*[+-]?\d+(\.\d*)?\s*$")
_SLASHED = re.compile(r"^\s*(\d{1,2})[/.-](\d{1,2})[/.-](\d{4})\b")


def _as_pylist_strings(arr: pa.ChunkedArray) -> pd.Series:
    s = arr.to_pandas()
    return s.astype("object").where(s.notna(), None)


def _blank_to_null(arr: pa.ChunkedArray) -> pa.ChunkedArray:
    """Empty / whitespace-only strings become null (CSV cells with no value)."""
    if not (pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)):
        return arr
    blank = pc.equal(pc.utf8_trim_whitespace(arr), "")
    return pc.if_else(blank, pa.scalar(None, arr.type), arr)


def infer_date_format(arr: pa.ChunkedArray, name: str = "ts") -> str | None:
    """The one day/month order of ``dd/mm/yyyy``-like dates in a text column, or None.

    ``13/02/2026`` can only be day-first and ``02/13/2026`` only month-first; a column
    with both is refused (ValidationError naming an example of each). A column whose
    dates all fit both orders is read month-first, like pandas.

    >>> import pyarrow as pa
    >>> infer_date_format(pa.chunked_array([["01/02/2026", "13/02/2026"]]))
    '%d/%m/%Y'
    """
    from engagelab.errors import ValidationError

    if not (pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)):
        return None
    day_first = month_first = None
    sep = "/"
    for v in pc.unique(arr.drop_null()).to_pylist():
        m = _SLASHED.match(v)
        if not m:
            continue
        sep = v.strip()[len(m.group(1))]
        a, b = int(m.group(1)), int(m.group(2))
        if a > 12 and day_first is None:
            day_first = v
        if b > 12 and month_first is None:
            month_first = v
    if day_first is not None and month_first is not None:
        raise ValidationError(
            name,
            [day_first, month_first],
            f"mixes day-first ({day_first!r}) and month-first ({month_first!r}) dates; "
            f"pass date_format='%d{sep}%m{sep}%Y' or '%m{sep}%d{sep}%Y'",
        )
    if day_first is None and month_first is None and not _has_slashed(arr):
        return None
    return f"%d{sep}%m{sep}%Y" if day_first is not None else f"%m{sep}%d{sep}%Y"


def _has_slashed(arr: pa.ChunkedArray) -> bool:
    return any(_SLASHED.match(v) for v in arr.drop_null().slice(0, 1000).to_pylist())


def parse_timestamps(
    arr: pa.ChunkedArray, ts_unit: str = "s", date_format: str | None = None
) -> tuple[pa.ChunkedArray, np.ndarray]:
    """Timestamps (UTC, microseconds) from timestamp, date, epoch-number or text columns.

    Text is parsed as ISO 8601 (a missing offset means UTC); numbers, and text that is a
    number, are epoch values in ``ts_unit`` (``'s'``, ``'ms'`` or ``'us'``). Other text is
    read with ``date_format`` (a ``strftime`` pattern) when given. Values before 1970 or
    after 2200 are bad, and so are epoch numbers before 1980 (a wrong ``ts_unit``).
    """
    arr = _blank_to_null(arr)
    n = len(arr)
    typ = arr.type
    epoch = np.zeros(n, dtype=bool)
    if pa.types.is_timestamp(typ) or pa.types.is_date(typ):
        if pa.types.is_date(typ) or typ.tz is None:
            arr = pc.assume_timezone(arr.cast(pa.timestamp("us")), "UTC")
        out = arr.cast(TS_TYPE)
        bad = np.zeros(n, dtype=bool)
    elif pa.types.is_integer(typ) or pa.types.is_floating(typ):
        vals = arr.to_numpy(zero_copy_only=False).astype("float64")
        out, bad, epoch = _from_epoch(vals, ts_unit)
    else:
        texts = arr.cast(pa.string()) if not pa.types.is_string(typ) else arr
        s = texts.to_pandas()
        present = s.notna().to_numpy()
        numeric = present & s.str.match(_EPOCH_TEXT).fillna(False).to_numpy(dtype=bool)
        epoch = np.zeros(n, dtype=bool)
        if numeric.any() and not (present & ~numeric).any():
            vals = pd.to_numeric(s, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
            out, bad, epoch = _from_epoch(vals, ts_unit)
        else:
            orig = s
            if numeric.any():
                s = s.where(~numeric, None)
            parsed = pd.to_datetime(s, utc=True, errors="coerce", format="ISO8601")
            # ISO8601 with a fixed format fails on the first odd value and coerces the rest;
            # retry those one by one with the explicit format, else the flexible parser
            retry = present & ~numeric & parsed.isna().to_numpy()
            if retry.any():
                again = pd.to_datetime(
                    s[retry], utc=True, errors="coerce", format=date_format or "mixed"
                )
                parsed = parsed.copy()
                parsed[retry] = again
            parsed = parsed.astype("datetime64[us, UTC]")
            if numeric.any():
                nums = pd.to_numeric(orig.where(numeric, None), errors="coerce")
                ep, _, _ = _from_epoch(nums.to_numpy(dtype="float64", na_value=np.nan), ts_unit)
                parsed = parsed.where(~numeric, ep.to_pandas().to_numpy())
                epoch = numeric
            out = pa.chunked_array([pa.array(parsed, TS_TYPE)])
            bad = present & parsed.isna().to_numpy()
    # range check
    values = out.to_pandas()
    notnull = values.notna().to_numpy()
    out_of_range = notnull & ((values < _MIN_TS) | (values > _MAX_TS)).to_numpy()
    out_of_range |= notnull & epoch & (values < _MIN_EPOCH_TS).to_numpy()
    if out_of_range.any():
        out = pc.if_else(pa.array(out_of_range), pa.scalar(None, TS_TYPE), out)
        bad = bad | out_of_range
    return out, bad


def _from_epoch(vals: np.ndarray, ts_unit: str) -> tuple[pa.ChunkedArray, np.ndarray, np.ndarray]:
    us = vals * _EPOCH_UNITS[ts_unit]
    limit = 2**62
    ok = np.isfinite(us) & (np.abs(np.where(np.isfinite(us), us, 0)) < limit)
    ints = np.where(ok, us, 0).astype("int64")
    out = pa.chunked_array([pa.array(ints, pa.int64(), mask=~ok).cast(TS_TYPE)])
    present = ~np.isnan(vals)
    return out, present & ~ok, present


def infer_string_type(arr: pa.ChunkedArray, tolerance: float = 0.02) -> str:
    """Best property type for a text column: int64, float64, bool, timestamp or string.

    A type is chosen when all but ``tolerance`` of the (sampled) values fit it, so a
    numeric column with a stray typo is numeric and the typo is quarantined as
    ``wrong_type`` rather than turning the whole column into text.
    """
    s = _blank_to_null(arr).drop_null()
    if len(s) == 0:
        return "string"
    stripped = [v.strip() for v in s.slice(0, 5000).to_pylist()]
    allowed_misses = int(len(stripped) * tolerance)

    def fits(pred) -> bool:  # type: ignore[no-untyped-def]
        misses = 0
        for v in stripped:
            if not pred(v):
                misses += 1
                if misses > allowed_misses:
                    return False
        return True

    if fits(lambda v: re.fullmatch(r"[+-]?\d{1,18}", v) is not None):
        return "int64"
    if fits(_is_float):
        return "float64"
    if fits(lambda v: v.lower() in ("true", "false")):
        return "bool"
    if fits(lambda v: _TS_LIKE.match(v) is not None):
        return "timestamp"
    if fits(_is_json_string_list):
        return "list<string>"
    return "string"


def _is_float(v: str) -> bool:
    try:
        return np.isfinite(float(v))
    except ValueError:
        return False


def _is_json_string_list(v: str) -> bool:
    if not (v.startswith("[") and v.endswith("]")):
        return False
    try:
        x = json.loads(v)
    except ValueError:
        return False
    return isinstance(x, list) and all(isinstance(i, str) for i in x)


def coerce(  # noqa: C901
    arr: pa.ChunkedArray, type_name: str, ts_unit: str = "s"
) -> tuple[pa.ChunkedArray, np.ndarray]:
    """Convert a raw column to the property type ``type_name``; mark values that don't fit."""
    if isinstance(arr, pa.Array):
        arr = pa.chunked_array([arr])
    if pa.types.is_dictionary(arr.type):
        arr = arr.cast(arr.type.value_type)
    n = len(arr)
    target = PROPERTY_TYPES[type_name]
    if type_name == "timestamp":
        return parse_timestamps(arr, ts_unit)
    if pa.types.is_null(arr.type):
        return pa.chunked_array([pa.nulls(n, target)]), np.zeros(n, dtype=bool)
    is_text = pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)
    if is_text:
        arr = _blank_to_null(arr)
    if not is_text or type_name == "string":
        try:
            if type_name == "int64" and pa.types.is_floating(arr.type):
                raise pa.ArrowInvalid("floats are checked below")
            return arr.cast(target), np.zeros(n, dtype=bool)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
            pass
    present = arr.is_valid().to_numpy(zero_copy_only=False)
    if type_name in ("int64", "float64"):
        if is_text:
            nums = pd.to_numeric(arr.to_pandas(), errors="coerce").to_numpy(
                dtype="float64", na_value=np.nan
            )
        else:
            try:
                nums = arr.cast(pa.float64()).to_numpy(zero_copy_only=False)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
                nums = pd.to_numeric(_as_pylist_strings(arr), errors="coerce").to_numpy(
                    dtype="float64", na_value=np.nan
                )
        ok = np.isfinite(nums)
        if type_name == "int64":
            ok &= np.abs(nums) < 2**53
            ok &= np.equal(np.floor(np.where(ok, nums, 0)), np.where(ok, nums, 0))
            out = pa.array(np.where(ok, nums, 0).astype("int64"), pa.int64(), mask=~ok)
        else:
            out = pa.array(np.where(ok, nums, 0.0), pa.float64(), mask=~ok)
        return pa.chunked_array([out]), present & ~ok
    if type_name == "bool":
        s = _as_pylist_strings(arr.cast(pa.string()) if not is_text else arr)
        low = s.map(lambda v: None if v is None else str(v).strip().lower())
        vals = low.map(lambda v: True if v in _TRUE else (False if v in _FALSE else None))
        ok = vals.notna().to_numpy()
        out = pa.array(vals.where(ok, None).tolist(), pa.bool_())
        return pa.chunked_array([out]), present & ~ok
    if type_name == "list<string>":
        values = arr.to_pylist()
        out_vals: list[list[str] | None] = []
        bad = np.zeros(n, dtype=bool)
        for i, v in enumerate(values):
            if v is None:
                out_vals.append(None)
                continue
            if isinstance(v, str):
                try:
                    v = json.loads(v)
                except ValueError:
                    v = None
            if isinstance(v, list | tuple) and all(isinstance(x, str) for x in v):
                out_vals.append(list(v))
            else:
                out_vals.append(None)
                bad[i] = True
        return pa.chunked_array([pa.array(out_vals, target)]), bad
    # string target from a non-castable type (e.g. struct): JSON text
    values = arr.to_pylist()
    texts = [
        None if v is None else (v if isinstance(v, str) else json.dumps(v, default=str))
        for v in values
    ]
    return pa.chunked_array([pa.array(texts, pa.string())]), np.zeros(n, dtype=bool)
