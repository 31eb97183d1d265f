"""DIMSUM sampling (Zadeh & Carlsson), defined once for every engine.

The rule is Spark MLlib's ``RowMatrix.columnSimilarities(threshold)``:

* ``gamma = 10 ln(n) / threshold`` (``n`` = number of item columns); ``threshold = 0``
  means ``gamma = inf``: nothing is sampled and the result is exact cosine.
* entries are first scaled into [0, 1] (divided by the largest entry; cosine is
  unchanged), as DIMSUM's analysis assumes. A column is then sampled only when its norm
  exceeds ``sqrt(gamma)`` times the largest entry, which is why the matrix rule caps cells
  at their median (``simrec.core.matrix``, docs/scaling.md): scaled by one heavy cell of
  raw summed weights, no column ever was.
* column ``j`` with norm ``c_j`` is kept in a row with probability
  ``p_j = min(1, sqrt(gamma) / c_j)`` and its value is scaled by
  ``1 / q_j`` with ``q_j = min(sqrt(gamma), c_j)``.
* the pair ``(i, j)`` of a row contributes ``(a_i / q_i) (a_j / q_j)`` when both are kept,
  so its expectation is ``a_i a_j / (c_i c_j)``: the sum over rows is an unbiased
  estimate of ``cos(i, j)``.

Unlike MLlib (one Java RNG stream per partition, so results depend on partitioning),
the keep decision is a pure function of ``(seed, user, item)``: a row entry is kept when
``uniform(seed, crc32(user), crc32(sku)) < p_j``. Reruns are identical whatever the
engine, the partitioning or the machine, and the Spark job and the single-machine engine
draw exactly the same sample.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Iterable

import numpy as np

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)


def gamma(threshold: float, n_items: int) -> float:
    """Oversampling parameter; ``inf`` (exact) when ``threshold`` is 0."""
    if threshold < 0 or threshold > 1:
        raise ValueError(f"threshold must be in [0, 1], got {threshold}")
    if threshold < 1e-6 or n_items <= 1:
        return math.inf
    return 10.0 * math.log(n_items) / threshold


def probabilities_and_scales(
    col_norms: np.ndarray,
    threshold: float,
    n_items: int | None = None,
    max_entry: float = 1.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Keep probability ``p_j`` and divisor ``q_j`` for each column norm ``c_j``.

    DIMSUM's error bound holds for entries in [0, 1]; cells are summed action weights,
    capped (``cell_cap_percentile``) and row-weighted, or raw sums (often 10-100) with
    the cap off. The matrix is therefore scaled by ``1 / max_entry`` first,
    which leaves cosine unchanged and amounts to using ``max_entry * sqrt(gamma)`` in
    place of ``sqrt(gamma)``. Without it, heavy weights would shrink every ``p_j`` and
    the estimates would lose their guarantee.

    Columns with norm 0 are treated as norm 1 (as MLlib does): they have no entries.
    """
    if not max_entry > 0:
        raise ValueError(f"max_entry must be > 0, got {max_entry}")
    norms = np.asarray(col_norms, dtype=np.float64)
    norms = np.where(norms > 0, norms, 1.0)
    g = gamma(threshold, len(norms) if n_items is None else n_items)
    if math.isinf(g):
        return np.ones_like(norms), norms.copy()
    sg = math.sqrt(g) * max_entry
    return np.minimum(1.0, sg / norms), np.minimum(sg, norms)


def _splitmix64(x: np.ndarray) -> np.ndarray:
    z = x + _GOLDEN
    z = (z ^ (z >> np.uint64(30))) * _M1
    z = (z ^ (z >> np.uint64(27))) * _M2
    return z ^ (z >> np.uint64(31))


def uniform(seed: int, user_keys: np.ndarray, item_keys: np.ndarray) -> np.ndarray:
    """A deterministic uniform draw in [0, 1) per (seed, user key, item key).

    Keys are unsigned 32-bit integers (see :func:`string_keys`). Vectorised; the Spark
    job calls it on Arrow batches, so both engines share it bit for bit.
    """
    users = np.asarray(user_keys).astype(np.uint64, copy=False)
    items = np.asarray(item_keys).astype(np.uint64, copy=False)
    with np.errstate(over="ignore"):
        s = _splitmix64(np.full(1, seed, dtype=np.uint64) & np.uint64(0xFFFFFFFFFFFFFFFF))
        z = _splitmix64((users << np.uint64(32)) | items)
        z = _splitmix64(z ^ s)
    return (z >> np.uint64(11)).astype(np.float64) * (1.0 / 9007199254740992.0)


def string_keys(values: Iterable[str]) -> np.ndarray:
    """CRC-32 of each string's UTF-8 bytes: Spark SQL's ``crc32(col)`` gives the same."""
    return np.fromiter(
        (zlib.crc32(v.encode("utf-8")) for v in values), dtype=np.uint64
    )


def keep_mask(
    seed: int, user_keys: np.ndarray, item_keys: np.ndarray, keep_probability: np.ndarray
) -> np.ndarray:
    """Which row entries are kept: ``uniform(seed, user, item) < p_item``."""
    p = np.asarray(keep_probability, dtype=np.float64)
    if np.all(p >= 1.0):
        return np.ones(len(p), dtype=bool)
    return uniform(seed, user_keys, item_keys) < p


def estimate_users(emitted: np.ndarray, p_i: np.ndarray, p_j: np.ndarray) -> np.ndarray:
    """Users behind a pair, estimated from the pairs emitted under sampling.

    Each co-occurrence is emitted with probability ``p_i p_j``, so ``emitted / (p_i p_j)``
    is unbiased; without sampling it is the exact count.
    """
    return np.asarray(emitted, dtype=np.float64) / (np.asarray(p_i) * np.asarray(p_j))


def clip_similarity(estimates: np.ndarray) -> np.ndarray:
    """Sampled estimates can leave [0, 1]; cosine of non-negative vectors cannot."""
    return np.clip(estimates, 0.0, 1.0)
