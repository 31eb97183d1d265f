"""The peers simrec is compared with in ``simrec evaluate``: one interface, every peer.

The interface is implicit's (``fit(user_items)``, ``recommend(userid, user_items, N)``):
a peer is fitted on the training user x item CSR matrix (:func:`training_matrix`) and
recommends, for users given by their training row and their history row, the top ``n``
items they have not had. Rankings are deterministic: equal scores rank by item index.

Peers:

* ``popularity``: items by distinct training users (the baseline every shop can have).
* ``implicit cosine`` / ``implicit tfidf`` / ``implicit bm25``: implicit's item-item
  ``CosineRecommender``, ``TFIDFRecommender``, ``BM25Recommender`` with their default
  parameters (K = 20 neighbors; BM25 K1 = 1.2, B = 0.75).
* ``implicit als``: implicit's ``AlternatingLeastSquares`` (default factors and
  iterations, seeded).
* ``session knn``: session-based kNN (Jannach & Ludewig, "When recurrent neural networks
  meet the neighborhood for session-based recommendation", RecSys 2017): a session is a
  binary item vector; the query session's ``neighbors`` nearest training sessions by
  cosine are its neighbors, and an item scores the summed similarity of the neighbors
  that hold it. The events carry no session ids, so a session is a user's training
  history; the query user's own training history is not its own neighbor. (The paper's
  sampling of recent sessions is left out: every training session is a candidate.)

implicit is an optional dependency: without it its four peers are skipped with the
reason (:func:`default_peers`). Plain cosine, the other peer of the issue, is simrec's
own exact model without quality features (``ModelParams.plain``), run by the evaluator.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import pandas as pd
import scipy.sparse as sp

from simrec.core.actions import ActionWeights
from simrec.core.matrix import action_weights

#: Neighbor sessions of the session-kNN peer (the issue's baseline).
SESSION_NEIGHBORS = 100
#: Query sessions compared with every training session at a time (bounds the memory).
QUERY_BLOCK = 1024
#: Threads each implicit model may use (the evaluation shares the machine).
IMPLICIT_THREADS = 1
IMPLICIT_MISSING = "the optional dependency implicit is not installed (pip install implicit)"


class Peer(Protocol):
    """A recommender fitted on the training matrix and asked for users' top n."""

    name: str

    def fit(self, user_items: sp.csr_matrix) -> None:
        """Learn from the training users x items matrix (values: summed action weights)."""

    def recommend(
        self, users: np.ndarray, user_items: sp.csr_matrix, n: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top ``n`` (items, scores), ``len(users) x n``, padded with item -1.

        ``users``: the users' training rows; ``user_items``: their history rows (one
        per user). Items of a user's history row are never recommended to it.
        """


@dataclass(frozen=True)
class SkippedPeer:
    """A peer that cannot run here, and why (shown in the table, JSON and report)."""

    name: str
    reason: str


def training_matrix(
    train: pd.DataFrame, catalog: np.ndarray, weights: ActionWeights
) -> tuple[sp.csr_matrix, pd.Index]:
    """The peers' training matrix: one row per training user (sorted), one column per
    catalog item; a cell is the sum of the action weights of the user's events on the
    item (step 1 of the matrix rule, without simrec's user limits and quality features).
    Cells of zero weight are not cells. Returns the matrix and its row labels."""
    users = pd.Index(np.sort(train["user_id"].unique().astype(object)))
    row = users.get_indexer(train["user_id"])
    col = pd.Index(catalog).get_indexer(train["sku"])
    if (col < 0).any():
        raise ValueError("a training item is missing from the catalog")
    w = action_weights(train["action"], weights)
    m = sp.csr_matrix((w, (row, col)), shape=(len(users), len(catalog)), dtype=np.float64)
    m.sum_duplicates()
    m.eliminate_zeros()
    m.sort_indices()
    return m, users


def _top(candidates: np.ndarray, scores: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``n`` best (score desc, item asc), padded to ``n`` with item -1 / score -inf."""
    order = np.lexsort((candidates, -scores))[:n]
    items = np.full(n, -1, dtype=np.int64)
    best = np.full(n, -np.inf)
    items[: len(order)] = candidates[order]
    best[: len(order)] = scores[order]
    return items, best


def _unseen_top(
    scores: np.ndarray, seen: np.ndarray, n: int
) -> tuple[np.ndarray, np.ndarray]:
    """Top ``n`` of a dense score row over items with a positive score, ``seen`` excluded."""
    keep = scores > 0
    keep[seen] = False
    candidates = np.flatnonzero(keep)
    return _top(candidates, scores[candidates], n)


class PopularityPeer:
    """Most popular unseen items: popularity = distinct training users of the item."""

    name = "popularity"

    def fit(self, user_items: sp.csr_matrix) -> None:
        self.popularity = np.bincount(
            user_items.indices, minlength=user_items.shape[1]
        ).astype(np.float64)
        self.order = np.lexsort((np.arange(len(self.popularity)), -self.popularity))
        self.order = self.order[self.popularity[self.order] > 0]

    def recommend(
        self, users: np.ndarray, user_items: sp.csr_matrix, n: int
    ) -> tuple[np.ndarray, np.ndarray]:
        out = []
        for i in range(len(users)):
            seen = user_items.indices[user_items.indptr[i] : user_items.indptr[i + 1]]
            top = self.order[: n + len(seen)]
            top = top[~np.isin(top, seen)][:n]
            out.append(_top(top, self.popularity[top], n))
        return _stack(out, n)


class SessionKNNPeer:
    """Session-based kNN: items scored by the summed cosine of the nearest sessions."""

    name = "session knn"

    def __init__(self, neighbors: int = SESSION_NEIGHBORS) -> None:
        if neighbors < 1:
            raise ValueError(f"neighbors must be >= 1, got {neighbors}")
        self.neighbors = neighbors

    @staticmethod
    def _sessions(user_items: sp.csr_matrix) -> sp.csr_matrix:
        """Binary session vectors, L2-normalised (so a dot product is their cosine)."""
        binary = user_items.copy().astype(np.float64)
        binary.data[:] = 1.0
        norms = np.sqrt(np.diff(binary.indptr)).astype(np.float64)
        norms[norms == 0] = 1.0
        return sp.diags(1.0 / norms) @ binary

    def fit(self, user_items: sp.csr_matrix) -> None:
        self.normalised = self._sessions(user_items).tocsr()
        self.holds = self.normalised.copy()
        self.holds.data[:] = 1.0  # session x item: 1 if the session holds the item
        self.by_item = self.normalised.T.tocsr()

    def recommend(
        self, users: np.ndarray, user_items: sp.csr_matrix, n: int
    ) -> tuple[np.ndarray, np.ndarray]:
        query = self._sessions(user_items).tocsr()
        out = []
        for start in range(0, len(users), QUERY_BLOCK):
            block = slice(start, start + QUERY_BLOCK)
            out += self._recommend_block(users[block], query[block], user_items[block], n)
        return _stack(out, n)

    def _recommend_block(
        self, users: np.ndarray, query: sp.csr_matrix, user_items: sp.csr_matrix, n: int
    ) -> list[tuple[np.ndarray, np.ndarray]]:
        sims = (query @ self.by_item).tocsr()  # query x training sessions: cosine
        out = []
        for i, own in enumerate(users):
            lo, hi = sims.indptr[i], sims.indptr[i + 1]
            sessions, sim = sims.indices[lo:hi], sims.data[lo:hi]
            keep = (sessions != own) & (sim > 0)
            nearest, weight = _top(sessions[keep], sim[keep], self.neighbors)
            found = nearest >= 0
            scores = self.holds[nearest[found]].T @ weight[found]
            out.append(_unseen_top(np.asarray(scores, dtype=np.float64).ravel(),
                                   user_items[i].indices, n))  # fmt: skip
        return out


class ImplicitPeer:
    """One of implicit's models behind the peer interface (``make`` builds it).

    implicit pads a short list (item-item: with zero-score items, seen ones included;
    ALS: with the lowest float); those are dropped, so a list holds only unseen items
    the model scores (item-item: a positive score, reached from the history).
    """

    def __init__(self, name: str, make: Callable[[], Any], item_item: bool) -> None:
        self.name = name
        self.make = make
        self.item_item = item_item

    def fit(self, user_items: sp.csr_matrix) -> None:
        from implicit.utils import ParameterWarning
        from threadpoolctl import threadpool_limits

        with warnings.catch_warnings(), threadpool_limits(1, "blas"):
            # implicit's own TF-IDF/BM25 weighting hands itself a COO matrix.
            warnings.simplefilter("ignore", ParameterWarning)
            self.model = self.make()  # ALS checks the BLAS threads here
            self.model.fit(user_items.astype(np.float32), show_progress=False)

    def recommend(
        self, users: np.ndarray, user_items: sp.csr_matrix, n: int
    ) -> tuple[np.ndarray, np.ndarray]:
        history = user_items.astype(np.float32).tocsr()
        ids, scores = self.model.recommend(
            np.asarray(users, dtype=np.int32), history, N=n, filter_already_liked_items=True
        )
        ids = np.asarray(ids, dtype=np.int64)
        scores = np.asarray(scores, dtype=np.float64)
        floor = 0.0 if self.item_item else float(np.finfo(np.float32).min)
        out = []
        for i, (row_ids, row_scores) in enumerate(zip(ids, scores, strict=True)):
            valid = (row_ids >= 0) & (row_scores > floor)
            valid &= ~np.isin(row_ids, history[i].indices)
            out.append(_top(row_ids[valid], row_scores[valid], n))  # ties by item index
        return _stack(out, n)


def _stack(rows: list[tuple[np.ndarray, np.ndarray]], n: int) -> tuple[np.ndarray, np.ndarray]:
    if not rows:
        return np.zeros((0, n), dtype=np.int64), np.zeros((0, n))
    return np.vstack([r[0] for r in rows]), np.vstack([r[1] for r in rows])


def implicit_peers(seed: int = 0) -> list[Peer | SkippedPeer]:
    """implicit's models (default parameters), or skipped peers when it is absent."""
    names = ("implicit cosine", "implicit tfidf", "implicit bm25", "implicit als")
    try:
        from implicit.als import AlternatingLeastSquares
        from implicit.nearest_neighbours import (
            BM25Recommender,
            CosineRecommender,
            TFIDFRecommender,
        )
    except ImportError:
        return [SkippedPeer(name, IMPLICIT_MISSING) for name in names]
    t = IMPLICIT_THREADS
    makers: list[Callable[[], Any]] = [
        lambda: CosineRecommender(num_threads=t),
        lambda: TFIDFRecommender(num_threads=t),
        lambda: BM25Recommender(num_threads=t),
        lambda: AlternatingLeastSquares(random_state=seed, num_threads=t, use_gpu=False),
    ]
    return [
        ImplicitPeer(name, make, item_item=name != "implicit als")
        for name, make in zip(names, makers, strict=True)
    ]


def default_peers(seed: int = 0) -> list[Peer | SkippedPeer]:
    """Every peer of ``simrec evaluate``, in the order of its table."""
    return [PopularityPeer(), *implicit_peers(seed), SessionKNNPeer()]


__all__ = [
    "IMPLICIT_MISSING",
    "SESSION_NEIGHBORS",
    "ImplicitPeer",
    "Peer",
    "PopularityPeer",
    "SessionKNNPeer",
    "SkippedPeer",
    "default_peers",
    "implicit_peers",
    "training_matrix",
]
