"""The scoring kernel, its pure-Python twin and the exact oracle (scipy sparse)."""

from __future__ import annotations

import random
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import scipy.sparse as sp

from simrec.core import scoring
from simrec.core.actions import ActionWeights
from simrec.core.scoring import Query, popularity_order, score
from simrec.core.snapshot import ModelSnapshot
from tests.shops import snapshot_from_rows


def make_snapshot(rng: random.Random, n_items: int, max_k: int, levels: int = 8) -> ModelSnapshot:
    """Random neighbor lists; scores on a coarse grid so equal totals (ties) are common."""
    rows = {}
    for i in range(n_items):
        others = [j for j in range(n_items) if j != i]
        k = rng.randint(0, min(max_k, len(others)))
        row = [(rng.randint(1, levels) / levels, j) for j in rng.sample(others, k)]
        row.sort(key=lambda t: (-t[0], t[1]))
        rows[i] = [(j, s) for s, j in row]
    # Some rows get non-grid float32 scores so float64 rounding is exercised too.
    rows = {i: [(j, s if rng.random() < 0.5 else s * 0.7777) for j, s in row]
            for i, row in rows.items()}  # fmt: skip
    skus = [f"sku{i:04d}" for i in range(n_items)]
    popularity = [rng.randint(0, 5) for _ in range(n_items)]
    return snapshot_from_rows(skus, rows, popularity, {"version": "test"})


def random_query(rng: random.Random, n_items: int) -> Query:
    """Action weights (sums exact in float64) or arbitrary ones (rounding: order matters)."""
    if rng.random() < 0.5:
        pairs = [(rng.randrange(n_items), rng.random() * 7) for _ in range(rng.randint(0, 12))]
        return Query.from_pairs(pairs + pairs[: rng.randint(0, 2)])
    weights = ActionWeights()
    actions = ["browsed", "basket", "purchase"]
    pairs = [(rng.randrange(n_items), rng.choice(actions)) for _ in range(rng.randint(0, 12))]
    if pairs and rng.random() < 0.5:  # the same item under several actions
        pairs += [(pairs[0][0], a) for a in actions]
    return Query.from_actions(pairs, weights)


def oracle(snapshot: ModelSnapshot, query: Query) -> np.ndarray:
    """score(j) = sum_i w_i * sim(i, j) as a sparse product, in float64."""
    n = snapshot.n_items
    sim = sp.csr_matrix(
        (snapshot.scores.astype(np.float64), snapshot.indices, snapshot.indptr), shape=(n, n)
    )
    q = np.zeros(n)
    q[query.items] = query.weights
    return sim.T @ q


def test_kernel_is_built() -> None:
    assert scoring.KERNEL_AVAILABLE, "run `python setup.py build_ext --inplace`"


def test_hand_computed_example() -> None:
    rows = {0: [(1, 0.75), (2, 0.5)], 1: [(0, 0.75), (3, 0.25)], 2: [(0, 0.5)]}
    snap = snapshot_from_rows(["a", "b", "c", "d"], rows, [3.0, 2.0, 1.0, 0.0], {})
    # a browsed + purchased (0.5 + 6 = 6.5), b in basket (2).
    query = Query.from_actions([(0, "browsed"), (1, "basket"), (0, "purchase")], ActionWeights())
    assert query.items.tolist() == [0, 1] and query.weights.tolist() == [6.5, 2.0]
    expected = [(1, 6.5 * 0.75), (2, 6.5 * 0.5), (0, 2 * 0.75), (3, 2 * 0.25)]
    for backend in ("kernel", "python"):
        assert score(snap, query, 10, backend=backend) == expected
        assert score(snap, query, 2, backend=backend) == expected[:2]
        assert score(snap, query, 10, exclude=[0, 1], backend=backend) == [expected[1], expected[3]]
        assert score(snap, query, 0, backend=backend) == []
        assert score(snap, Query.from_pairs([]), 5, backend=backend) == []
        # d has no neighbors: nothing scores.
        assert score(snap, Query.from_pairs([(3, 6.0)]), 5, backend=backend) == []


def test_ties_rank_by_index_and_zero_scores_are_not_candidates() -> None:
    snap = ModelSnapshot(
        skus=["a", "b", "c", "d", "e"],
        indptr=np.array([0, 4, 4, 4, 4, 4]),
        indices=np.array([4, 2, 3, 1]),
        scores=np.array([0.5, 0.5, 0.5, 0.0]),
        users=np.ones(4),
        popularity=np.ones(5),
    )
    for backend in ("kernel", "python"):
        assert score(snap, Query.from_pairs([(0, 1.0)]), 10, backend=backend) == [
            (2, 0.5),
            (3, 0.5),
            (4, 0.5),
        ]
        assert score(snap, Query.from_pairs([(0, 1.0)]), 2, backend=backend) == [(2, 0.5), (3, 0.5)]
        assert score(snap, Query.from_pairs([(0, 0.0)]), 10, backend=backend) == []


def test_kernel_equals_twin_bit_for_bit_on_random_inputs() -> None:
    rng = random.Random(20240301)
    cases = 0
    for _ in range(400):
        n_items = rng.randint(1, 80)
        snap = make_snapshot(rng, n_items, max_k=rng.choice([0, 3, 10, 40]))
        for _ in range(3):
            query = random_query(rng, n_items)
            exclude = [rng.randrange(n_items) for _ in range(rng.randint(0, 6))]
            if rng.random() < 0.5:
                exclude += query.items.tolist()
            n = rng.choice([0, 1, 2, 5, 10, n_items, n_items + 7])
            kernel = score(snap, query, n, exclude, backend="kernel")
            twin = score(snap, query, n, exclude, backend="python")
            assert kernel == twin  # exact: same indices, same float64 bits, same order
            cases += bool(kernel)
    assert cases > 300  # the comparison was not vacuous


def test_scores_match_the_sparse_oracle() -> None:
    rng = random.Random(7)
    for _ in range(100):
        n_items = rng.randint(2, 60)
        snap = make_snapshot(rng, n_items, max_k=15)
        query = random_query(rng, n_items)
        exclude = set(query.items.tolist()[:2])
        expected = oracle(snap, query)
        got = score(snap, query, n_items, exclude)
        # Every item with a positive oracle score and not excluded is there, nothing else.
        positive = {j for j in range(n_items) if expected[j] > 1e-12 and j not in exclude}
        assert {j for j, _ in got} == positive
        for j, s in got:
            assert s == pytest.approx(expected[j], rel=1e-12, abs=0)
        ranked = [s for _, s in got]
        assert ranked == sorted(ranked, reverse=True)


def test_concurrent_calls_from_threads_agree_with_serial_ones() -> None:
    rng = random.Random(3)
    big = make_snapshot(rng, 400, max_k=50)
    small = make_snapshot(rng, 30, max_k=10)
    jobs = []
    for k in range(300):
        snap = big if k % 3 else small  # workspaces are reused across model sizes
        jobs.append((snap, random_query(rng, snap.n_items), rng.randint(1, 20)))

    def run(job: tuple[ModelSnapshot, Query, int]) -> scoring.Scored:
        snap, query, n = job
        return score(snap, query, n, query.items.tolist()[:1], backend="kernel")

    serial = [run(job) for job in jobs]
    with ThreadPoolExecutor(max_workers=4) as pool:
        parallel = list(pool.map(run, jobs))
    assert parallel == serial
    assert serial == [score(s, q, n, q.items.tolist()[:1], backend="python") for s, q, n in jobs]


@pytest.mark.parametrize("backend", ["kernel", "python"])
def test_bad_input_is_rejected(backend: str) -> None:
    snap = make_snapshot(random.Random(1), 5, max_k=3)
    q = Query.from_pairs([(1, 1.0)])
    with pytest.raises(ValueError, match="query item index out of range"):
        score(snap, Query.from_pairs([(5, 1.0)]), 3, backend=backend)
    with pytest.raises(ValueError, match="excluded item index out of range"):
        score(snap, q, 3, exclude=[-1], backend=backend)
    with pytest.raises(ValueError, match="n must be >= 0"):
        score(snap, q, -1, backend=backend)


def test_query_validation() -> None:
    with pytest.raises(ValueError, match="unique"):
        Query(np.array([1, 1]), np.array([1.0, 2.0]))
    with pytest.raises(ValueError, match="finite and >= 0"):
        Query.from_pairs([(1, -1.0)])
    with pytest.raises(ValueError, match="finite and >= 0"):
        Query.from_pairs([(1, float("nan"))])
    with pytest.raises(ValueError, match="unknown action"):
        Query.from_actions([(1, "viewed")], ActionWeights())
    with pytest.raises(ValueError, match="unknown backend"):
        score(make_snapshot(random.Random(1), 3, 2), Query.from_pairs([]), 1, backend="gpu")


def test_popularity_order() -> None:
    popularity = np.array([2.0, 5.0, 0.0, 5.0, 1.0])
    assert popularity_order(popularity).tolist() == [1, 3, 0, 4]  # ties by index, 0 left out


# --- Scorer: catalog masks, because, and the twin ---------------------------------------
def test_scorer_twins_agree_with_masks_and_contributions() -> None:
    rng = random.Random(11)
    checked = 0
    for _ in range(200):
        n_items = rng.randint(1, 60)
        snap = make_snapshot(rng, n_items, max_k=rng.choice([0, 4, 15]))
        kernel = scoring.make_scorer(snap.indptr, snap.indices, snap.scores, backend="kernel")
        twin = scoring.make_scorer(snap.indptr, snap.indices, snap.scores, backend="python")
        for _ in range(3):
            query = random_query(rng, n_items)
            allowed = None
            if rng.random() < 0.6:
                allowed = np.array([rng.random() < 0.6 for _ in range(n_items)], dtype=np.uint8)
            excluded = np.array(
                [rng.randrange(n_items) for _ in range(rng.randint(0, 4))], dtype=np.int32
            )
            n = rng.choice([1, 3, 10, n_items])
            got = kernel.score(query.items, query.weights, n, excluded, allowed)
            assert got == twin.score(query.items, query.weights, n, excluded, allowed)
            if allowed is not None:
                assert all(allowed[j] for j, _ in got)
            assert not set(excluded.tolist()) & {j for j, _ in got}
            results = [j for j, _ in got]
            k = rng.choice([1, 2, 3, 5])
            terms = kernel.contributions(query.items, query.weights, results, k)
            assert terms == twin.contributions(query.items, query.weights, results, k)
            ranked = kernel.recommend(query.items, query.weights, n, excluded, allowed, k)
            assert ranked == twin.recommend(query.items, query.weights, n, excluded, allowed, k)
            labels = query.items.tolist()
            assert ranked == [
                (j, s, [(labels[q], round(c / s, 4)) for q, c in row])
                for (j, s), row in zip(got, terms, strict=True)
            ]
            named = [f"s{i}" for i in labels]
            records = kernel.recommend(query.items, query.weights, n, excluded, allowed, k,
                                       named, 4, ("sku", "share"))  # fmt: skip
            assert records == twin.recommend(query.items, query.weights, n, excluded, allowed,
                                             k, named, 4, ("sku", "share"))  # fmt: skip
            assert records == [
                (j, s, [{"sku": f"s{i}", "share": share} for i, share in because])
                for j, s, because in ranked
            ]
            for (j, total), row in zip(got, terms, strict=True):
                # The terms are the real w*sim products, largest first, and all of them
                # together (k large enough) sum to the score.
                assert len(row) <= k and [c for _, c in row] == sorted(
                    (c for _, c in row), reverse=True
                )
                full = kernel.contributions(query.items, query.weights, [j], len(query) + 1)[0]
                assert sum(c for _, c in full) == pytest.approx(total, rel=1e-12)
                checked += 1
    assert checked > 200


def test_because_shares_hand_computed() -> None:
    rows = {0: [(1, 0.75), (2, 0.5)], 1: [(0, 0.75), (2, 0.25)], 2: [(2, 0.5)]}
    snap = snapshot_from_rows(["a", "b", "c", "d"], rows, np.ones(4), {})
    for backend in ("kernel", "python"):
        scorer = scoring.make_scorer(snap.indptr, snap.indices, snap.scores, backend=backend)
        query = Query.from_pairs([(0, 1.0), (1, 2.0)])
        # c (2) = a 1*0.5 + b 2*0.25 = 1.0; d has no in-edges. Tie: a (query position 0) first.
        got = scorer.recommend(query.items, query.weights, 10, query.items)
        assert got == [(2, 1.0, [(0, 0.5), (1, 0.5)])]
        assert scorer.recommend(query.items, query.weights, 10, query.items, None, 1) == [
            (2, 1.0, [(0, 0.5)])
        ]
        assert scorer.recommend(query.items, query.weights, 10, query.items, None, 0) == [
            (2, 1.0, [])
        ]
        named = scorer.recommend(query.items, query.weights, 10, None, None, 3, ["A", "B"])
        # a <- b 2*0.75, c <- both, b <- a 0.75: labels name the query items.
        assert named == [(0, 1.5, [("B", 1.0)]), (2, 1.0, [("A", 0.5), ("B", 0.5)]),
                         (1, 0.75, [("A", 1.0)])]  # fmt: skip


def test_because_shares_round_as_python_does() -> None:
    """The kernel rounds shares in C; ``round``'s answer on every value it is likely to
    get wrong: the exact halves m/20000 and their neighbors a few ulps away."""
    from simrec.core._scoring import rounded

    values = [0.0, 1.0, 0.03125, 0.00005, 0.99995, 5e-324, *np.random.default_rng(3).random(2000)]
    for m in range(1, 20000, 2):
        x = m / 20000
        lo = hi = x
        values.append(x)
        for _ in range(2):
            lo, hi = np.nextafter(lo, 0.0), np.nextafter(hi, 2.0)
            values += [float(lo), float(hi)]
    mismatches = [x for x in values if rounded(float(x), 4) != round(float(x), 4)]
    assert not mismatches
    assert rounded(0.03125, 4) == 0.0312 and rounded(0.00015, 4) == round(0.00015, 4)


def test_scorer_rejects_bad_input() -> None:
    snap = make_snapshot(random.Random(2), 6, max_k=3)
    for backend in ("kernel", "python"):
        scorer = scoring.make_scorer(snap.indptr, snap.indices, snap.scores, backend=backend)
        items, weights = np.array([1], dtype=np.int32), np.array([1.0])
        with pytest.raises(ValueError, match="allowed"):
            scorer.score(items, weights, 3, None, np.ones(5, dtype=np.uint8))
        with pytest.raises(ValueError, match="same length"):
            scorer.score(items, np.array([1.0, 2.0]), 3)
        with pytest.raises(ValueError, match="distinct"):
            scorer.contributions(items, weights, [2, 2], 3)
        with pytest.raises(ValueError, match="out of range"):
            scoring.make_scorer(np.array([0, 1]), np.array([9]), np.array([0.5]), n_cols=3,
                                backend=backend)
    with pytest.raises(TypeError, match="int32"):
        scoring.make_scorer(snap.indptr, snap.indices, snap.scores).score(
            np.array([1], dtype=np.int64), np.array([1.0]), 3
        )


def test_rectangular_scorer_scores_like_the_full_one() -> None:
    """The Datastore backend's per-request matrix (rows = query items) gives the same."""
    rng = random.Random(4)
    snap = make_snapshot(rng, 50, max_k=12)
    full = scoring.make_scorer(snap.indptr, snap.indices, snap.scores)
    for _ in range(50):
        query = random_query(rng, 50)
        rows = [snap.neighbors(i) for i in query.items.tolist()]
        indptr = np.concatenate([[0], np.cumsum([len(r[0]) for r in rows])]).astype(np.int64)
        indices = np.concatenate([r[0] for r in rows] + [np.zeros(0, np.int32)])
        sims = np.concatenate([r[1] for r in rows] + [np.zeros(0, np.float32)])
        mini = scoring.make_scorer(indptr, indices, sims, n_cols=50)
        local = np.arange(len(query), dtype=np.int32)
        assert mini.score(local, query.weights, 10, query.items) == full.score(
            query.items, query.weights, 10, query.items
        )
