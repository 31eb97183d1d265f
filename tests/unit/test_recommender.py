"""The core recommender (``simrec.core.recommender``), on the compiled kernel and on its
Python twin alike: ranking, exclusions, masks, because, the popularity fallback."""

from __future__ import annotations

import random

import numpy as np
import pytest

from simrec.core import scoring
from simrec.core.recommender import SHARE_DIGITS, Recommender
from simrec.core.scoring import Query
from simrec.core.snapshot import ModelSnapshot

#   a -> b .75, c .375      popularity: a 10, b 8, c 9, d 3, e 12, f 0
#   b -> a .75, d .5, c .25 categories: a X, b X, c Y, d Y, e X, f -
#   c -> a .375, b .25
#   d -> b .5, f .3
ROWS = {0: [(1, 0.75), (2, 0.375)], 1: [(0, 0.75), (3, 0.5), (2, 0.25)],
        2: [(0, 0.375), (1, 0.25)], 3: [(1, 0.5), (5, 0.3)]}  # fmt: skip
CATEGORY = ["X", "X", "Y", "Y", "X", None]
A, B, C, D, E, F = range(6)


def snapshot() -> ModelSnapshot:
    indptr, indices, scores = [0], [], []
    for i in range(6):
        for j, s in ROWS.get(i, []):
            indices.append(j)
            scores.append(s)
        indptr.append(len(indices))
    return ModelSnapshot(
        skus=list("abcdef"),
        indptr=np.array(indptr),
        indices=np.array(indices),
        scores=np.array(scores),
        users=np.ones(len(indices)),
        popularity=np.array([10.0, 8.0, 9.0, 3.0, 12.0, 0.0]),
    )


@pytest.fixture(params=["kernel", "python"])
def rec(request) -> Recommender:
    return Recommender(snapshot(), category=CATEGORY, backend=request.param)


def q(*pairs: tuple[int, float]) -> Query:
    return Query.from_pairs(pairs)


def test_ranked_with_because_hand_computed(rec: Recommender) -> None:
    # a 1 + b 2: c = .375 + .5 = .875, d = 1.0; a and b are the query (excluded).
    got = rec.recommend(q((A, 1.0), (B, 2.0)), 10)
    assert not got.fallback
    assert got.ranked == [(D, 1.0, [(B, 1.0)]),
                          (C, 0.875, [(B, round(0.5 / 0.875, SHARE_DIGITS)),
                                      (A, round(0.375 / 0.875, SHARE_DIGITS))])]  # fmt: skip
    assert got.items == [D, C] and got.scores == [1.0, 0.875]
    assert rec.recommend(q((A, 1.0), (B, 2.0)), 10, because_k=1).because == [[(B, 1.0)],
                                                                            [(B, 0.5714)]]
    assert rec.recommend(q((A, 1.0), (B, 2.0)), 1, because_k=0).ranked == [(D, 1.0, [])]
    named = rec.recommend(q((A, 1.0), (B, 2.0)), 1, labels=["a", "b"], because_keys=("k", "v"))
    assert named.ranked == [(D, 1.0, [{"k": "b", "v": 1.0}])]


def test_exclusions_and_mask(rec: Recommender) -> None:
    kept = rec.recommend(q((A, 1.0)), 10, exclude_query=False)
    assert kept.items == [B, C]
    # a <- b 2 * .75 = 1.5, d 1.0, c .875, b <- a .75
    assert rec.recommend(q((A, 1.0), (B, 2.0)), 10, exclude_query=False).items == [A, D, C, B]
    assert rec.recommend(q((A, 1.0), (B, 2.0)), 10, exclude=[D]).items == [C]
    mask = np.array([1, 1, 0, 1, 1, 1], dtype=np.uint8)
    assert rec.recommend(q((A, 1.0), (B, 2.0)), 10, allowed=mask).items == [D]


def test_fallback_prefers_the_query_items_categories(rec: Recommender) -> None:
    # e has no neighbors: popular X items first (e itself excluded): a 10, b 8, then
    # the most popular overall: c 9, d 3 (f has popularity 0: never).
    got = rec.recommend(q((E, 1.0)), 10)
    assert got.fallback and got.ranked == [(A, 10.0, []), (B, 8.0, []), (C, 9.0, []),
                                           (D, 3.0, [])]  # fmt: skip
    # The category filter is preferred too, merged by popularity with the items' ones.
    assert rec.recommend(q((E, 1.0)), 3, category="Y").items == [A, C, B]
    # No known query item; exclusions and the mask apply to the fallback.
    mask = np.array([1, 0, 1, 1, 1, 1], dtype=np.uint8)
    assert rec.recommend(Query.from_pairs([]), 3, exclude=[A], allowed=mask).items == [E, C, D]
    assert rec.recommend(q((E, 1.0)), 3, fallback=False) == ([], False)
    # Without categories: the most popular overall.
    plain = Recommender(snapshot())
    assert plain.recommend(q((E, 1.0)), 2).items == [A, C]
    assert plain.most_popular(3, exclude=[A]) == [(E, 12.0), (C, 9.0), (B, 8.0)]


def test_similar(rec: Recommender) -> None:
    assert rec.similar(B, 10) == [(A, 0.75), (D, 0.5), (C, 0.25)]
    assert rec.similar(B, 2) == [(A, 0.75), (D, 0.5)]
    assert rec.similar(B, 10, exclude=[A]) == [(D, 0.5), (C, 0.25)]
    mask = np.array([1, 1, 1, 0, 1, 1], dtype=np.uint8)
    assert rec.similar(B, 10, allowed=mask) == [(A, 0.75), (C, 0.25)]
    row = (np.array([E, F], dtype=np.int32), np.array([0.5, 0.25], dtype=np.float32))
    assert rec.similar(B, 10, row=row) == [(E, 0.5), (F, 0.25)]  # e.g. read from Datastore
    with pytest.raises(ValueError, match="out of range"):
        rec.similar(6, 3)


def test_another_scorer_over_the_query_rows_gives_the_same(rec: Recommender) -> None:
    """The Datastore backend's per-request matrix: rows = the query items."""
    snap = snapshot()
    rng = random.Random(3)
    for _ in range(30):
        items = rng.sample(range(6), rng.randint(1, 4))
        query = Query.from_pairs((i, rng.choice([0.5, 2.0, 6.0])) for i in items)
        rows = [snap.neighbors(i) for i in items]
        indptr = np.concatenate([[0], np.cumsum([len(r[0]) for r in rows])]).astype(np.int64)
        indices = np.concatenate([r[0] for r in rows] + [np.zeros(0, np.int32)])
        sims = np.concatenate([r[1] for r in rows] + [np.zeros(0, np.float32)])
        mini = scoring.make_scorer(indptr, indices, sims, n_cols=6)
        got = rec.recommend(query, 4, scorer=mini, rows=np.arange(len(items), dtype=np.int32))
        assert got == rec.recommend(query, 4)


def test_kernel_and_twin_recommend_alike_on_random_models() -> None:
    rng = random.Random(8)
    for _ in range(100):
        n = rng.randint(1, 40)
        indptr, indices, scores = [0], [], []
        for _ in range(n):
            row = rng.sample(range(n), rng.randint(0, min(n, 6)))
            indices += row
            scores += sorted((rng.choice([0.125, 0.25, 0.5, 0.75]) for _ in row), reverse=True)
            indptr.append(len(indices))
        popularity = np.array([rng.randint(0, 5) for _ in range(n)], dtype=np.float64)
        snap = ModelSnapshot(skus=[f"s{i:03d}" for i in range(n)], indptr=np.array(indptr),
                             indices=np.array(indices, dtype=np.int32), scores=np.array(scores),
                             users=np.ones(len(indices)), popularity=popularity)  # fmt: skip
        category = [rng.choice(["p", "q", None]) for _ in range(n)]
        kernel = Recommender(snap, category=category, backend="kernel")
        twin = Recommender(snap, category=category, backend="python")
        for _ in range(5):
            query = Query.from_pairs(
                (rng.randrange(n), rng.choice([0.5, 2.0, 6.0])) for _ in range(rng.randint(0, 5))
            )
            exclude = [rng.randrange(n) for _ in range(rng.randint(0, 3))]
            mask = None if rng.random() < 0.5 else np.array(
                [rng.random() < 0.7 for _ in range(n)], dtype=np.uint8)  # fmt: skip
            k = rng.randint(1, 10)
            args = {"exclude": exclude, "allowed": mask, "exclude_query": rng.random() < 0.8}
            assert kernel.recommend(query, k, **args) == twin.recommend(query, k, **args)
