"""Counter-based random numbers: every draw is a pure function of a 64-bit key.

The simulator never keeps a random *state*. A draw for (user, day, session, field) is
``mix64(pack(...) ^ seed_key)``, so generating day 40 alone gives exactly the bytes that
generating days 0..89 in one call gives, and no user's behaviour depends on how many
other users exist. ``mix64`` is the SplitMix64 finaliser (a bijection on 64-bit words
with full avalanche), vectorised with numpy's wrapping ``uint64`` arithmetic.

>>> import numpy as np
>>> k = seed_key(0)
>>> u = uniform(mix64(np.arange(4, dtype=np.uint64) ^ k))
>>> bool(((u >= 0) & (u < 1)).all()), bool(np.array_equal(u, uniform(mix64(np.arange(4, dtype=np.uint64) ^ k))))
(True, True)
"""

from __future__ import annotations

import hashlib

import numpy as np
import pyarrow as pa
from scipy.special import ndtri

__all__ = [
    "field_key",
    "fixed_width_strings",
    "hex16",
    "mix64",
    "normal",
    "pack",
    "poisson",
    "seed_key",
    "string_key",
    "uniform",
    "uniform32",
]

_C1 = np.uint64(0xBF58476D1CE4E5B9)
_C2 = np.uint64(0x94D049BB133111EB)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)


def seed_key(seed: int, domain: str = "baseline") -> np.uint64:
    """A 64-bit key for ``(seed, domain)``, stable across Python and numpy versions."""
    digest = hashlib.blake2b(f"engagelab.simulate:{domain}:{seed}".encode(), digest_size=8)
    return np.uint64(int.from_bytes(digest.digest(), "little"))


def string_key(base: np.uint64, values: pa.Array) -> np.ndarray:
    """One 64-bit key per string, a hash of ``base``, the length and the UTF-8 bytes.

    Vectorised: the strings are zero-padded into 8-byte words and folded with
    :func:`mix64`, so the key depends only on the bytes (stable across processes,
    Python hash seeds and library versions). Nulls hash like the empty string.

    >>> a = string_key(seed_key(0), pa.array(["k1", "k2", "k1"]))
    >>> bool(a[0] == a[2]), bool(a[0] == a[1])
    (True, False)
    """
    arr = pa.array(values).cast(pa.large_string()).fill_null("")
    n = len(arr)
    if n == 0:
        return np.empty(0, dtype=np.uint64)
    bufs = arr.buffers()
    offsets = np.frombuffer(bufs[1], dtype=np.int64)[arr.offset : arr.offset + n + 1]
    data = np.frombuffer(bufs[2], dtype=np.uint8) if bufs[2] is not None else np.empty(0, np.uint8)
    lengths = np.diff(offsets)
    width = max(1, int(-(-lengths.max() // 8)))
    padded = np.zeros((n, width * 8), dtype=np.uint8)
    rows = np.repeat(np.arange(n), lengths)
    cols = np.arange(int(lengths.sum())) - np.repeat(offsets[:-1] - offsets[0], lengths)
    padded[rows, cols] = data[offsets[0] : offsets[-1]]
    words = padded.view("<u8")
    h = mix64(lengths.astype(np.uint64) ^ base)
    for k in range(width):
        h = mix64(h ^ words[:, k])
    return h


def mix64(x: np.ndarray) -> np.ndarray:
    """SplitMix64 finaliser applied elementwise (returns a new uint64 array)."""
    z = np.asarray(x, dtype=np.uint64) + _GOLDEN
    z ^= z >> np.uint64(30)
    z *= _C1
    z ^= z >> np.uint64(27)
    z *= _C2
    z ^= z >> np.uint64(31)
    return z


def pack(
    user: np.ndarray, day: np.ndarray | int, slot: np.ndarray | int, stream: int
) -> np.ndarray:
    """Pack (user < 2**32, day < 2**16, slot < 2**8, stream < 2**8) into one uint64 word."""
    u = np.asarray(user, dtype=np.uint64) << np.uint64(32)
    d = (np.asarray(day, dtype=np.int64) & 0xFFFF).astype(np.uint64) << np.uint64(16)
    s = (np.asarray(slot, dtype=np.int64) & 0xFF).astype(np.uint64) << np.uint64(8)
    return u | d | s | np.uint64(stream & 0xFF)


_C3 = np.uint64(0xD6E8FEB86659FD93)


def field_key(key: np.ndarray, field: int | np.ndarray) -> np.ndarray:
    """An independent hash of ``key`` for draw number ``field`` (an int or an aligned array)."""
    if isinstance(field, int):
        return mix64(key ^ np.uint64((field * int(_C3)) & 0xFFFFFFFFFFFFFFFF))
    return mix64(key ^ (np.asarray(field).astype(np.uint64) * _C3))


def uniform(h: np.ndarray) -> np.ndarray:
    """Map 64-bit hashes to floats uniform on [0, 1) (53 random bits)."""
    return (h >> np.uint64(11)).astype(np.float64) * (1.0 / 9007199254740992.0)


def normal(h: np.ndarray) -> np.ndarray:
    """Map 64-bit hashes to standard normal draws (inverse CDF of an open-interval uniform)."""
    return ndtri((h >> np.uint64(11)).astype(np.float64) * (1.0 / 9007199254740992.0) + 2.0**-54)


def poisson(u: np.ndarray, lam: np.ndarray, cap: int = 60) -> np.ndarray:
    """Poisson(``lam``) draws by inverting the CDF at uniforms ``u`` (vectorised).

    Only the still-undecided elements are touched in each step, so the cost is about
    ``n * (1 + mean(lam))``. Counts are capped at ``cap``.

    >>> import numpy as np
    >>> poisson(np.array([0.0, 0.5, 0.99]), np.array([2.0, 2.0, 2.0])).tolist()
    [0, 2, 6]
    """
    lam = np.broadcast_to(np.asarray(lam, dtype=np.float64), u.shape)
    k = np.zeros(u.shape, dtype=np.int64)
    p = np.exp(-lam)
    idx = np.flatnonzero(u > p)
    p = p[idx]
    cdf = p.copy()
    uu = u[idx]
    ll = lam[idx]
    i = 0
    while idx.size and i < cap:
        i += 1
        k[idx] += 1
        p = p * ll / i
        cdf += p
        keep = uu > cdf
        idx, p, cdf, uu, ll = idx[keep], p[keep], cdf[keep], uu[keep], ll[keep]
    return k


_HEX_PAIRS = np.array(
    [ord(f"{b:02x}"[0]) | (ord(f"{b:02x}"[1]) << 8) for b in range(256)], dtype="<u2"
)


def hex16(h: np.ndarray) -> pa.Array:
    """Render uint64 hashes as 16-character lowercase hex strings (a pyarrow string array).

    >>> hex16(np.array([255], dtype=np.uint64)).to_pylist()
    ['00000000000000ff']
    """
    b = np.ascontiguousarray(h, dtype=">u8").view(np.uint8).reshape(-1, 8)
    chars = _HEX_PAIRS[b].view(np.uint8).reshape(-1, 16)
    return fixed_width_strings(chars)


def uniform32(h: np.ndarray, high: bool) -> np.ndarray:
    """A uniform on [0, 1) from the high or low 32 bits of ``h`` (two draws per hash)."""
    bits = h >> np.uint64(32) if high else h & np.uint64(0xFFFFFFFF)
    return bits.astype(np.float64) * (1.0 / 4294967296.0)


def fixed_width_strings(chars: np.ndarray) -> pa.Array:
    """Build a pyarrow string array from an (n, width) uint8 array of ASCII codes."""
    n, width = chars.shape
    offsets = np.arange(0, (n + 1) * width, width, dtype=np.int32)
    data = np.ascontiguousarray(chars).tobytes()
    return pa.Array.from_buffers(pa.string(), n, [None, pa.py_buffer(offsets), pa.py_buffer(data)])
