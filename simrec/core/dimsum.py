"""DIMSUM sampling (Zadeh & Carlsson), per entry, defined once for every engine.

MLlib's ``RowMatrix.columnSimilarities(threshold)`` keeps a whole column ``j`` with
one probability ``min(1, sqrt(gamma) / c_j)``, which needs entries in [0, 1] and then
samples only items with more than ``gamma`` users (docs/scaling.md: on the shared
datasets, never). This is the weighted variant of the same estimator: each entry
``a_uj`` of column ``j`` (norm ``c_j``) is kept with its own probability

    ``p_uj = min(1, sqrt(gamma) a_uj / c_j)``

and, when kept, becomes ``a_uj / (p_uj c_j)``, i.e. ``max(a_uj / c_j, 1 / sqrt(gamma))``.

* ``gamma = GAMMA_CONSTANT ln(n) / threshold`` (``n`` = number of item columns, the
  constant MLlib's 10); ``threshold = 0`` means ``gamma = inf``: every ``p`` is 1 and the
  result is exact cosine. Only ``GAMMA_CONSTANT / threshold`` matters, so the threshold is
  the one knob.
* the pair ``(i, j)`` of a user contributes the product of its two kept values, with
  probability ``p_ui p_uj``: its expectation is ``a_ui a_uj / (c_i c_j)``, so the sum over
  users is an unbiased estimate of ``cos(i, j)``. A product of two sampled entries is
  exactly ``1 / gamma`` whatever the entries' scale, so no scaling into [0, 1] is needed;
  entries small against their column (heavy, down-weighted users on popular items: the
  bulk of the co-occurrences) are the ones sampled away.
* the users behind a pair (for shrinkage) are estimated by Horvitz-Thompson: each kept
  entry carries ``1 / p_uj`` and the pair sums the products of its two weights.

The error bound (docs/scaling.md): for a pair with ``cos(i, j) >= threshold`` the sum is
one of independent terms in ``[0, M]``; when both entries are sampled ``M = 1 / gamma``,
and the Chernoff bounds of the paper give, with ``mu = cos`` and ``alpha = mu / M >= gamma
threshold = GAMMA_CONSTANT ln(n)``, ``P[est > (1 + d) mu] <= (e^d / (1 + d)^(1 + d))^alpha``
and ``P[est < (1 - d) mu] <= exp(-alpha d^2 / 2)``. Entries kept with certainty add no
variance; a term pairing one certain entry (``a_ui / c_i > 1 / sqrt(gamma)``) with a
sampled one is at most ``a_ui / (c_i sqrt(gamma))``, which weakens ``alpha`` for that pair
by the factor ``sqrt(gamma) a_ui / c_i``.

Unlike MLlib (one Java RNG stream per partition, so results depend on partitioning),
the keep decision is a pure function of ``(seed, user, item)``: an entry is kept when
``uniform(seed, crc32(user), crc32(sku)) < p_uj``. Reruns are identical whatever the
engine, the partitioning or the machine, and the Spark job and the single-machine engine
draw exactly the same sample.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)

#: gamma's oversampling constant (MLlib's): ``gamma = GAMMA_CONSTANT ln(n) / threshold``.
GAMMA_CONSTANT = 10.0


def gamma(threshold: float, n_items: int) -> float:
    """Oversampling parameter; ``inf`` (exact) when ``threshold`` is 0."""
    if threshold < 0 or threshold > 1:
        raise ValueError(f"threshold must be in [0, 1], got {threshold}")
    if threshold < 1e-6 or n_items <= 1:
        return math.inf
    return GAMMA_CONSTANT * math.log(n_items) / threshold


def keep_probabilities(values: np.ndarray, norms: np.ndarray, g: float) -> np.ndarray:
    """``p_uj = min(1, sqrt(gamma) a_uj / c_j)`` per entry (``norms``: its column's)."""
    values = np.asarray(values, dtype=np.float64)
    if math.isinf(g):
        return np.ones(len(values))
    return np.minimum(1.0, math.sqrt(g) * values / np.asarray(norms, dtype=np.float64))


@dataclass
class EntrySample:
    """Which entries are kept, and each kept entry's value and Horvitz-Thompson weight."""

    keep: np.ndarray  # bool, one per entry
    values: np.ndarray  # float64, kept entries: a / (p c)
    weights: np.ndarray  # float64, kept entries: 1 / p


def sample_entries(
    seed: int,
    user_keys: np.ndarray,
    item_keys: np.ndarray,
    values: np.ndarray,
    norms: np.ndarray,
    g: float,
) -> EntrySample:
    """The rule on parallel arrays, one element per entry (``norms``: its column's norm,
    > 0). Both engines call it on the same entries and get the same bits."""
    values = np.asarray(values, dtype=np.float64)
    norms = np.asarray(norms, dtype=np.float64)
    p = keep_probabilities(values, norms, g)
    if np.all(p >= 1.0):  # nothing sampled (exact, or every entry large enough)
        return EntrySample(np.ones(len(values), dtype=bool), values / norms, np.ones(len(values)))
    keep = uniform(seed, user_keys, item_keys) < p
    pk = p[keep]
    return EntrySample(keep, values[keep] / (pk * norms[keep]), 1.0 / pk)


def sum_bounds(
    cells: np.ndarray, norms: np.ndarray, inv_sq: np.ndarray, g: float
) -> tuple[float, float]:
    """Upper bounds, known before sampling, of any pair's sum of kept products and of its
    sum of weight products (Cauchy-Schwarz: at most the larger column's sum of squares,
    every entry kept). Per column: ``sum max(a/c, 1/sqrt g)^2 <= 1 + cells / g`` and
    ``sum max(1, c / (sqrt g a))^2 <= cells + c^2 inv_sq / g``, ``inv_sq = sum 1 / a^2``.
    They set the Spark shuffle plan's fixed-point scales."""
    cells = np.asarray(cells, dtype=np.float64)
    if len(cells) == 0:
        return 1.0, 1.0
    if math.isinf(g):
        return 1.0, float(cells.max())
    norms = np.asarray(norms, dtype=np.float64)
    value = float(np.max(1.0 + cells / g))
    weight = float(np.max(cells + norms * norms * np.asarray(inv_sq, dtype=np.float64) / g))
    return value, weight


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


def clip_similarity(estimates: np.ndarray) -> np.ndarray:
    """Sampled estimates can leave [0, 1]; cosine of non-negative vectors cannot."""
    return np.clip(estimates, 0.0, 1.0)
