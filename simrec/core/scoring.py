"""Item-to-item scoring: "shoppers who looked at these also like ...".

``score(j) = sum over query items i of weight(i) * sim(i, j)``, where ``sim`` is the
snapshot's neighbour list of ``i`` (items outside it count as 0).

Rules shared by the compiled kernel (``simrec.core._scoring``) and the pure-Python twin
here, so the two return bit-identical results:

* The query holds each item once, in order of first appearance; an item given several
  times (e.g. browsed *and* purchased) gets the sum of its weights, added in that order
  (``Query.from_actions``: browsed 0.5 + purchase 6 = 6.5).
* Scores are accumulated in float64 as ``acc[j] += w * float64(sim)``, query items in
  order, each neighbour row in storage order.
* Candidates are the items reached by at least one neighbour, not excluded, with a
  score > 0 (similarities and weights are >= 0, so 0 means "no evidence").
* Ranked by score descending, ties by item index ascending (= sku ascending).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

import numpy as np

from simrec.core.actions import ActionWeights
from simrec.core.snapshot import ModelSnapshot

try:
    from simrec.core import _scoring as _kernel
except ImportError:  # not built: `python setup.py build_ext --inplace`
    _kernel = None
    logging.getLogger(__name__).warning(
        "simrec.core._scoring is not built; scoring falls back to the slower Python twin"
    )

KERNEL_AVAILABLE: bool = _kernel is not None

Backend = Literal["auto", "kernel", "python"]
Scored = list[tuple[int, float]]


@dataclass(frozen=True)
class Query:
    """Unique item indices (int32) with their float64 weights, in first-appearance order."""

    items: np.ndarray
    weights: np.ndarray

    def __post_init__(self) -> None:
        items = np.ascontiguousarray(self.items, dtype=np.int32)
        weights = np.ascontiguousarray(self.weights, dtype=np.float64)
        if items.ndim != 1 or items.shape != weights.shape:
            raise ValueError("query items and weights must be 1-d arrays of the same length")
        if len(np.unique(items)) != len(items):
            raise ValueError("query items must be unique; build it with Query.from_pairs")
        if not np.all(np.isfinite(weights)) or np.any(weights < 0):
            raise ValueError("query weights must be finite and >= 0")
        object.__setattr__(self, "items", items)
        object.__setattr__(self, "weights", weights)

    def __len__(self) -> int:
        return len(self.items)

    @classmethod
    def from_pairs(cls, pairs: Iterable[tuple[int, float]]) -> Query:
        """Sum the weights of repeated items, keeping the order of first appearance."""
        summed: dict[int, float] = {}
        for item, weight in pairs:
            summed[int(item)] = summed.get(int(item), 0.0) + float(weight)
        return cls(
            np.fromiter(summed.keys(), dtype=np.int32, count=len(summed)),
            np.fromiter(summed.values(), dtype=np.float64, count=len(summed)),
        )

    @classmethod
    def from_actions(cls, pairs: Iterable[tuple[int, str]], weights: ActionWeights) -> Query:
        """``(item, action)`` pairs -> a query weighted by ``weights.of(action)``."""
        return cls.from_pairs((item, weights.of(action)) for item, action in pairs)


def score(
    snapshot: ModelSnapshot,
    query: Query,
    n: int,
    exclude: Iterable[int] = (),
    *,
    backend: Backend = "auto",
) -> Scored:
    """Top-``n`` ``(item index, score)`` for ``query``, best first, ``exclude`` left out.

    ``backend="auto"`` uses the compiled kernel when it is built, else the twin.
    """
    if backend not in ("auto", "kernel", "python"):
        raise ValueError(f"unknown backend {backend!r}")
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    n_items = snapshot.n_items
    excluded = np.unique(np.asarray(list(exclude), dtype=np.int64)).astype(np.int32)
    for name, arr in (("query item", query.items), ("excluded item", excluded)):
        if len(arr) and (arr.min() < 0 or arr.max() >= n_items):
            raise ValueError(f"{name} index out of range 0..{n_items - 1}")
    if backend == "python" or (backend == "auto" and _kernel is None):
        return _score_python(snapshot, query, n, excluded)
    if _kernel is None:
        raise RuntimeError("scoring kernel not built: run `python setup.py build_ext --inplace`")
    idx, scores = _kernel.score_csr(
        snapshot.indptr,
        snapshot.indices,
        snapshot.scores,
        query.items,
        query.weights,
        n,
        excluded,
    )
    return list(zip(idx.tolist(), scores.tolist(), strict=True))


def _score_python(snapshot: ModelSnapshot, query: Query, n: int, excluded: np.ndarray) -> Scored:
    """The kernel's twin in plain Python floats (IEEE float64, same operation order)."""
    skip = set(excluded.tolist())
    acc: dict[int, float] = {}
    indptr = snapshot.indptr
    for item, weight in zip(query.items.tolist(), query.weights.tolist(), strict=True):
        lo, hi = int(indptr[item]), int(indptr[item + 1])
        cols = snapshot.indices[lo:hi].tolist()
        sims = snapshot.scores[lo:hi].tolist()  # float32 -> exact float64
        for j, sim in zip(cols, sims, strict=True):
            if j not in skip:
                acc[j] = acc.get(j, 0.0) + weight * sim
    ranked = sorted(((j, s) for j, s in acc.items() if s > 0), key=lambda t: (-t[1], t[0]))
    return ranked[:n]


def top_similar(snapshot: ModelSnapshot, item: int, n: int) -> Scored:
    """The first ``n`` of ``item``'s neighbours (already ranked in the snapshot)."""
    if not 0 <= item < snapshot.n_items:
        raise ValueError(f"item index {item} out of range 0..{snapshot.n_items - 1}")
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    idx, sims = snapshot.neighbours(item)
    return list(zip(idx[:n].tolist(), sims[:n].tolist(), strict=True))


def popularity_order(popularity: np.ndarray) -> np.ndarray:
    """Item indices with popularity > 0, most popular first, ties by index ascending."""
    popularity = np.asarray(popularity, dtype=np.float64)
    order = np.lexsort((np.arange(len(popularity)), -popularity))
    keep = popularity[order] > 0
    return np.ascontiguousarray(order[keep], dtype=np.int32)


def most_popular(
    order: np.ndarray, popularity: np.ndarray, n: int, exclude: Iterable[int] = ()
) -> Scored:
    """The fallback: the first ``n`` items of ``order`` not in ``exclude``, with popularity."""
    skip = set(exclude)
    out: Scored = []
    for j in order.tolist():
        if len(out) >= n:
            break
        if j not in skip:
            out.append((j, float(popularity[j])))
    return out
