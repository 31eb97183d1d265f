"""The recommender: a shopper's items -> ranked items with why, or popular items.

One function for every caller (the HTTP API, the CLI through it, the offline
evaluation), as implicit's ``recommend`` or SAR's ``get_item_based_topk``: a ``Query``
(``simrec.core.scoring``), ``n``, exclusions and an optional item mask in; ranked items,
their scores, ``because`` and whether they are the popularity fallback out.

Rules (the scoring rules themselves are in ``simrec.core.scoring``):

* The query items are excluded unless ``exclude_query=False``; ``exclude`` always.
* ``because``: per item, the (up to ``because_k``) query items with the largest terms
  ``w * sim`` (ties by query position) and their share of the item's score, rounded to
  ``SHARE_DIGITS`` decimals (as Python's ``round``).
* When nothing scores (no known query item, or no candidate passes the exclusions and the
  mask), the fallback answers popular items with their popularity as score and no
  ``because``: first the most popular items of the query items' categories and of the
  ``category`` filter (merged by popularity), then the most popular overall; exclusions
  and the mask apply to them too.
* ``trending``: the model's trending items in their stored order, exclusions and the
  mask applied (the rule is ``simrec.core.trending``'s, applied when the model is built).
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np

from simrec.core.scoring import Backend, Query, Scorer, make_scorer, popularity_order
from simrec.core.snapshot import ModelSnapshot

BECAUSE_K = 3
SHARE_DIGITS = 4

Because = list[Any]  # (query item label, share of the item's score), or a dict of them
Ranked = list[tuple[int, float, Because]]  # (item index, score, because), best first


def _first(
    ranked: Iterable[tuple[int, float]], n: int, exclude: Iterable[int], allowed: np.ndarray | None
) -> list[tuple[int, float]]:
    """The first ``n`` of ``ranked`` ``(item, value)`` pairs not excluded and allowed."""
    skip = set(exclude)
    out: list[tuple[int, float]] = []
    for j, s in ranked:
        if len(out) >= n:
            break
        if j not in skip and (allowed is None or allowed[j]):
            out.append((j, s))
    return out


class Recommendations(NamedTuple):
    """``ranked``: ``(item index, score, because)``, best first; ``fallback``: popular
    items because nothing scored. (A named tuple: the cheapest object to build.)"""

    ranked: Ranked
    fallback: bool

    @property
    def items(self) -> list[int]:
        return [j for j, _, _ in self.ranked]

    @property
    def scores(self) -> list[float]:
        return [s for _, s, _ in self.ranked]

    @property
    def because(self) -> list[Because]:
        return [b for _, _, b in self.ranked]


class Recommender:
    """One model's recommendations: its neighbor lists and scorer, its popularity and,
    with a catalog, the items' categories (for the fallback). Built once per model
    version; the optional arguments share what the caller has already built."""

    def __init__(
        self,
        snapshot: ModelSnapshot,
        *,
        scorer: Scorer | None = None,
        popularity: Sequence[float] | None = None,
        popular: Sequence[int] | None = None,
        category: Sequence[str | None] | None = None,
        popular_by_category: Mapping[str, Sequence[int]] | None = None,
        backend: Backend = "auto",
    ) -> None:
        self.snapshot = snapshot
        self.scorer = scorer or make_scorer(
            snapshot.indptr, snapshot.indices, snapshot.scores, backend=backend
        )
        self.popularity = snapshot.popularity.tolist() if popularity is None else popularity
        self.popular = (
            popularity_order(snapshot.popularity).tolist() if popular is None else popular
        )
        self.category = category
        if category is not None and popular_by_category is None:
            by_category: dict[str, list[int]] = {}
            for j in self.popular:
                c = category[j]
                if c is not None:
                    by_category.setdefault(c, []).append(j)
            popular_by_category = by_category
        self.popular_by_category = popular_by_category or {}

    def recommend(
        self,
        query: Query,
        n: int,
        *,
        exclude: Sequence[int] = (),
        exclude_query: bool = True,
        allowed: np.ndarray | None = None,
        category: str | None = None,
        because_k: int = BECAUSE_K,
        fallback: bool = True,
        labels: list | None = None,
        because_keys: tuple[str, str] | None = None,
        scorer: Scorer | None = None,
        rows: np.ndarray | None = None,
    ) -> Recommendations:
        """Top-``n`` for ``query``; see the module docstring.

        ``allowed``: uint8 per item, 0 = filtered out. ``category``: the category filter,
        which the fallback prefers. ``scorer``/``rows``: another scorer over this model's
        columns and the query items' rows in it (the Datastore backend's per-request
        matrix); by default the model's scorer with the items as rows. ``fallback=False``:
        nothing (not popular items) when nothing scores. ``labels``: what ``because``
        names each query item by (default its index); ``because_keys=(label key, share
        key)``: ``because`` entries as dicts of those keys (an answer's shape, built in
        the kernel) instead of ``(label, share)`` tuples.
        """
        items = query.items
        indices = items.tolist()
        excluded = [*exclude, *indices] if exclude_query else list(exclude)
        if indices:
            if not exclude:  # the common case: the query items, already int32
                x = items if exclude_query else _EMPTY_I32
            else:
                x = np.array(excluded, dtype=np.int32)
            if scorer is None:
                scorer, rows = self.scorer, items
            ranked = scorer.recommend(
                rows, query.weights, n, x, allowed, because_k,
                indices if labels is None else labels, SHARE_DIGITS, because_keys,
            )  # fmt: skip
            if ranked or not fallback:
                return Recommendations(ranked, False)
        if not fallback:
            return Recommendations([], False)
        popular = self.most_popular(n, excluded, allowed, indices, category)
        return Recommendations([(j, s, []) for j, s in popular], True)

    def similar(
        self,
        item: int,
        n: int,
        exclude: Iterable[int] = (),
        allowed: np.ndarray | None = None,
        row: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> list[tuple[int, float]]:
        """``item``'s first ``n`` neighbors (ranked in the model) not excluded and
        allowed, with their similarity; ``row``: its ``(neighbors, scores)`` read
        elsewhere (the Datastore backend, a cold item's blended row; ``item`` -1: a sku
        only the catalog lists, ``simrec.core.content``)."""
        if not (0 <= item < self.snapshot.n_items or (item == -1 and row is not None)):
            raise ValueError(f"item index {item} out of range 0..{self.snapshot.n_items - 1}")
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        cols, sims = self.snapshot.neighbors(item) if row is None else row
        return _first(zip(cols.tolist(), sims.tolist(), strict=True), n, exclude, allowed)

    def trending(
        self, n: int, exclude: Iterable[int] = (), allowed: np.ndarray | None = None
    ) -> list[tuple[int, float]]:
        """The first ``n`` trending items (ranked in the model, ``simrec.core.trending``)
        not excluded and allowed, with their growth. No fallback: a model with fewer
        trending items answers fewer."""
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        trend = self.snapshot.trending.tolist(), self.snapshot.trending_scores.tolist()
        return _first(zip(*trend, strict=True), n, exclude, allowed)

    def most_popular(
        self,
        n: int,
        exclude: Iterable[int] = (),
        allowed: np.ndarray | None = None,
        items: Sequence[int] = (),
        category: str | None = None,
    ) -> list[tuple[int, float]]:
        """The fallback: popular items of ``items``' categories and ``category`` first
        (merged by popularity), then the most popular overall; ``(item, popularity)``."""
        skip = set(exclude)
        popularity = self.popularity

        def take(order: Iterable[int], limit: int) -> list[int]:
            out: list[int] = []
            if limit <= 0:
                return out
            for j in order:
                if j not in skip and (allowed is None or allowed[j]):
                    out.append(j)
                    if len(out) >= limit:
                        break
            return out

        chosen: list[int] = []
        if self.category is not None:
            categories = [category] if category else []
            for i in items:
                c = self.category[i]
                if c is not None and c not in categories:
                    categories.append(c)
            lists = [take(self.popular_by_category.get(c, ()), n) for c in categories]
            if lists:
                merged = heapq.merge(*lists, key=lambda j: (-popularity[j], j))
                chosen = list(dict.fromkeys(merged))[:n]
        if len(chosen) < n:
            skip |= set(chosen)
            chosen += take(self.popular, n - len(chosen))
        return [(j, popularity[j]) for j in chosen]


_EMPTY_I32 = np.zeros(0, dtype=np.int32)
