"""Item-to-item scoring: "shoppers who looked at these also like ...".

``score(j) = sum over query items i of weight(i) * sim(i, j)``, where ``sim`` is the
snapshot's neighbor list of ``i`` (items outside it count as 0).

Rules shared by the compiled kernel (``simrec.core._scoring``) and the pure-Python twin
here, so the two return bit-identical results:

* The query holds each item once, in order of first appearance; an item given several
  times (e.g. browsed *and* purchased) gets the sum of its weights, added in that order
  (``Query.from_actions``: browsed 0.5 + purchase 6 = 6.5).
* Scores are accumulated in float64 as ``acc[j] += w * float64(sim)``, query items in
  order, each neighbor row in storage order.
* Candidates are the items reached by at least one neighbor, not excluded, allowed by
  the optional per-item mask (catalog filters), with a score > 0 (similarities and
  weights are >= 0, so 0 means "no evidence").
* ``contributions`` (the recommender's ``because``): per result, the query items with
  the largest terms ``w * sim``, ties by query position.
* Ranked by score descending, ties by item index ascending (= sku ascending).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

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
Scorer = Any  # simrec.core._scoring.Scorer or PythonScorer: score, contributions, recommend


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
        """Sum the weights of repeated items, keeping the order of first appearance.

        Unique by construction, so only the weights are checked (the request path
        builds every query here)."""
        summed: dict[int, float] = {}
        get, inf = summed.get, math.inf
        for item, weight in pairs:
            if not 0.0 <= weight < inf:
                raise ValueError("query weights must be finite and >= 0")
            summed[item] = get(item, 0.0) + weight
        query = object.__new__(cls)
        object.__setattr__(query, "items", np.fromiter(summed, np.int32, len(summed)))
        object.__setattr__(
            query, "weights", np.fromiter(summed.values(), np.float64, len(summed))
        )
        return query

    @classmethod
    def from_actions(cls, pairs: Iterable[tuple[int, str]], weights: ActionWeights) -> Query:
        """``(item, action)`` pairs -> a query weighted by ``weights.of(action)``."""
        return cls.from_pairs((item, weights.of(action)) for item, action in pairs)


def make_scorer(
    indptr: np.ndarray,
    indices: np.ndarray,
    scores: np.ndarray,
    n_cols: int | None = None,
    *,
    backend: Backend = "auto",
) -> Scorer:
    """A scorer over a CSR matrix (int64 indptr, int32 indices, float32 scores).

    ``n_cols`` (default: the number of rows) is the number of candidate columns: the
    Datastore backend scores a small per-request matrix whose rows are the query items
    and whose columns are the model's item indices.
    """
    if backend not in ("auto", "kernel", "python"):
        raise ValueError(f"unknown backend {backend!r}")
    cols = -1 if n_cols is None else int(n_cols)
    if backend == "python" or (backend == "auto" and _kernel is None):
        return PythonScorer(indptr, indices, scores, cols)
    if _kernel is None:
        raise RuntimeError("scoring kernel not built: run `python setup.py build_ext --inplace`")
    return _kernel.Scorer(
        np.ascontiguousarray(indptr, dtype=np.int64),
        np.ascontiguousarray(indices, dtype=np.int32),
        np.ascontiguousarray(scores, dtype=np.float32),
        cols,
    )


def score(
    snapshot: ModelSnapshot,
    query: Query,
    n: int,
    exclude: Iterable[int] = (),
    *,
    allowed: np.ndarray | None = None,
    backend: Backend = "auto",
) -> Scored:
    """Top-``n`` ``(item index, score)`` for ``query``, best first, ``exclude`` left out.

    ``allowed`` (uint8 per item) keeps only items with a non-zero flag (catalog filters).
    ``backend="auto"`` uses the compiled kernel when it is built, else the twin. Serving
    keeps one ``make_scorer`` per model instead, which skips the per-call setup here.
    """
    excluded = np.asarray(list(exclude), dtype=np.int64)
    if len(excluded) and (excluded.min() < 0 or excluded.max() >= snapshot.n_items):
        raise ValueError(f"excluded item index out of range 0..{snapshot.n_items - 1}")
    scorer = make_scorer(snapshot.indptr, snapshot.indices, snapshot.scores, backend=backend)
    return scorer.score(query.items, query.weights, n, excluded.astype(np.int32), allowed)


class PythonScorer:
    """The kernel's ``Scorer`` twin in plain Python floats (same operation order)."""

    def __init__(
        self, indptr: np.ndarray, indices: np.ndarray, scores: np.ndarray, n_cols: int = -1
    ) -> None:
        self.indptr = np.ascontiguousarray(indptr, dtype=np.int64)
        self.indices = np.ascontiguousarray(indices, dtype=np.int32)
        self.scores = np.ascontiguousarray(scores, dtype=np.float32)
        if len(self.indptr) < 1 or self.indptr[0] != 0 or self.indptr[-1] != len(self.indices):
            raise ValueError("indptr must start at 0 and end at len(indices) == len(scores)")
        if len(self.scores) != len(self.indices):
            raise ValueError("indptr must start at 0 and end at len(indices) == len(scores)")
        if np.any(np.diff(self.indptr) < 0):
            raise ValueError("indptr must be non-decreasing")
        self.n_rows = len(self.indptr) - 1
        self.n_cols = self.n_rows if n_cols < 0 else n_cols
        if len(self.indices) and (self.indices.min() < 0 or self.indices.max() >= self.n_cols):
            raise ValueError("neighbor index out of range")

    def _rows(self, items: np.ndarray, weights: np.ndarray):
        items_l, weights_l = np.asarray(items).tolist(), np.asarray(weights).tolist()
        if len(items_l) != len(weights_l):
            raise ValueError("items and weights must have the same length")
        for i in items_l:
            if not 0 <= i < self.n_rows:
                raise ValueError(f"query item index out of range 0..{self.n_rows - 1}")
        for q, (i, w) in enumerate(zip(items_l, weights_l, strict=True)):
            lo, hi = int(self.indptr[i]), int(self.indptr[i + 1])
            # float32 -> exact float64 via tolist()
            yield q, w, self.indices[lo:hi].tolist(), self.scores[lo:hi].tolist()

    def score(
        self,
        items: np.ndarray,
        weights: np.ndarray,
        n: int,
        excluded: np.ndarray | None = None,
        allowed: np.ndarray | None = None,
    ) -> Scored:
        if n < 0:
            raise ValueError("n must be >= 0")
        skip = set() if excluded is None else set(np.asarray(excluded).tolist())
        for x in skip:
            if not 0 <= x < self.n_cols:
                raise ValueError(f"excluded item index out of range 0..{self.n_cols - 1}")
        if allowed is not None and len(allowed) != self.n_cols:
            raise ValueError("allowed must have one flag per column")
        ok = None if allowed is None else np.asarray(allowed).tolist()
        acc: dict[int, float] = {}
        for _, weight, cols, sims in self._rows(items, weights):
            for j, sim in zip(cols, sims, strict=True):
                if j not in skip and (ok is None or ok[j]):
                    acc[j] = acc.get(j, 0.0) + weight * sim
        ranked = sorted(((j, s) for j, s in acc.items() if s > 0), key=lambda t: (-t[1], t[0]))
        return ranked[:n]

    def contributions(
        self, items: np.ndarray, weights: np.ndarray, results: list[int], k: int
    ) -> list[list[tuple[int, float]]]:
        if k < 1:
            raise ValueError("k must be >= 1")
        if len(set(results)) != len(results):
            raise ValueError("results must be distinct")
        position = {j: r for r, j in enumerate(results)}
        terms: list[list[tuple[int, float]]] = [[] for _ in results]
        for q, weight, cols, sims in self._rows(items, weights):
            for j, sim in zip(cols, sims, strict=True):
                r = position.get(j)
                c = weight * sim
                if r is not None and c > 0:
                    terms[r].append((q, c))
        return [sorted(row, key=lambda t: (-t[1], t[0]))[:k] for row in terms]


    def recommend(
        self,
        items: np.ndarray,
        weights: np.ndarray,
        n: int,
        excluded: np.ndarray | None = None,
        allowed: np.ndarray | None = None,
        k: int = 3,
        labels: list | None = None,
        digits: int = 4,
        keys: tuple[str, str] | None = None,
    ) -> list[tuple[int, float, list[Any]]]:
        scored = self.score(items, weights, n, excluded, allowed)
        if not scored or k == 0:
            return [(j, s, []) for j, s in scored]
        labels = np.asarray(items).tolist() if labels is None else labels
        if len(labels) != len(items):
            raise ValueError("labels must have one entry per query item")
        terms = self.contributions(items, weights, [j for j, _ in scored], k)
        if keys is None:
            return [
                (j, s, [(labels[q], round(c / s, digits)) for q, c in row])
                for (j, s), row in zip(scored, terms, strict=True)
            ]
        label_key, share_key = keys
        return [
            (j, s, [{label_key: labels[q], share_key: round(c / s, digits)} for q, c in row])
            for (j, s), row in zip(scored, terms, strict=True)
        ]


def popularity_order(popularity: np.ndarray) -> np.ndarray:
    """Item indices with popularity > 0, most popular first, ties by index ascending."""
    popularity = np.asarray(popularity, dtype=np.float64)
    order = np.lexsort((np.arange(len(popularity)), -popularity))
    keep = popularity[order] > 0
    return np.ascontiguousarray(order[keep], dtype=np.int32)
