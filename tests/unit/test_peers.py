"""The peers of ``simrec evaluate`` on hand-computed cases, the bootstrap intervals and the
paired comparison (simrec/evaluation/peers.py, simrec/evaluation/metrics.py).

The case ``M`` (4 users x 5 items A..E, every cell 1)::

    U0: A B        U1: A B C        U2: B C E        U3: D E

Distinct users per item: A 2, B 3, C 2, D 1, E 2.

Item cosines (binary item vectors over users): AB = 2/sqrt(6) = .8165, AC = 1/2,
BC = 2/sqrt(6) = .8165, BE = 1/sqrt(6) = .4082, CE = 1/2, DE = 1/sqrt(2) = .7071, every
other pair 0. An item-item score is the sum of its cosines to the user's items.

Session (user) cosines: U0U1 = 2/sqrt(6) = .8165, U0U2 = 1/sqrt(6) = .4082,
U1U2 = 2/3, U2U3 = 1/sqrt(6) = .4082, U0U3 = U1U3 = 0.
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import math
import sys

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from simrec.config import Settings
from simrec.evaluation import metrics, peers
from simrec.evaluation.evaluate import run_evaluation
from simrec.evaluation.split import temporal_split
from simrec.generate import generate_events

A, B, C, D, E = range(5)
M = sp.csr_matrix(
    np.array(
        [
            [1, 1, 0, 0, 0],
            [1, 1, 1, 0, 0],
            [0, 1, 1, 0, 1],
            [0, 0, 0, 1, 1],
        ],
        dtype=np.float64,
    )
)
USERS = np.arange(4)
R6 = 1 / math.sqrt(6)


def _lists(peer: peers.Peer, n: int = 3) -> tuple[list[list[int]], np.ndarray]:
    peer.fit(M)
    ids, scores = peer.recommend(USERS, M, n)
    return [[int(i) for i in row if i >= 0] for row in ids], scores


def test_popularity_ranks_unseen_items_by_users_then_index():
    """U0 (has A B): C 2, E 2 (tie: C first), D 1. U1: E 2, D 1. U2: A 2, D 1.
    U3 (has D E): B 3, A 2, C 2."""
    lists, scores = _lists(peers.PopularityPeer())
    assert lists == [[C, E, D], [E, D], [A, D], [B, A, C]]
    assert scores[3].tolist() == [3.0, 2.0, 2.0]


def test_session_knn_sums_the_cosines_of_the_nearest_other_sessions():
    """U0: neighbors U1 (.8165), U2 (.4082) -> C = .8165 + .4082, E = .4082.
    U1: U0 (.8165) holds only seen items, U2 (2/3) -> E = 2/3.
    U2: U1 (2/3), U0 (.4082), U3 (.4082) -> A = 2/3 + .4082, D = .4082.
    U3: U2 (.4082) only -> B = C = .4082 (tie: B first)."""
    lists, scores = _lists(peers.SessionKNNPeer())
    assert lists == [[C, E], [E], [A, D], [B, C]]
    np.testing.assert_allclose(scores[0, :2], [2 * R6 + R6, R6])
    np.testing.assert_allclose(scores[1, :1], [2 / 3])
    np.testing.assert_allclose(scores[2, :2], [2 / 3 + R6, R6])


def test_session_knn_is_the_same_query_block_by_block(monkeypatch):
    whole = _lists(peers.SessionKNNPeer())
    monkeypatch.setattr(peers, "QUERY_BLOCK", 1)
    one_by_one = _lists(peers.SessionKNNPeer())
    assert whole[0] == one_by_one[0]
    np.testing.assert_array_equal(whole[1], one_by_one[1])


def test_session_knn_keeps_only_the_nearest_neighbors():
    """One neighbor: U0's is U1 (not itself: its own history is no neighbor) -> C only;
    U2's is U1 -> A = 2/3, and D (held by U3 only) is no longer reached.
    Two neighbors for U2: U1, then U0 and U3 tie (.4082): the lower row, U0 -> A only."""
    lists, scores = _lists(peers.SessionKNNPeer(neighbors=1))
    assert lists[0] == [C] and lists[2] == [A]
    assert scores[2, 0] == pytest.approx(2 / 3)
    lists, scores = _lists(peers.SessionKNNPeer(neighbors=2))
    assert lists[2] == [A] and scores[2, 0] == pytest.approx(2 / 3 + R6)


#: implicit is optional: its peers' tests skip, with the reason, where it is absent.
needs_implicit = pytest.mark.skipif(
    importlib.util.find_spec("implicit") is None, reason=peers.IMPLICIT_MISSING
)


def _peer(name: str) -> peers.Peer:
    (peer,) = [p for p in peers.implicit_peers(seed=0) if p.name == name]
    assert not isinstance(peer, peers.SkippedPeer)
    return peer


@needs_implicit
def test_implicit_cosine_scores_sums_of_item_cosines():
    """U0: C = AC + BC = .5 + .8165, E = BE = .4082 (D: 0, not reached).
    U1: E = BE + CE = .4082 + .5. U2: A = AB + AC = .8165 + .5, D = DE = .7071.
    U3: C = CE = .5, B = BE = .4082."""
    lists, scores = _lists(_peer("implicit cosine"))
    assert lists == [[C, E], [E], [A, D], [C, B]]
    np.testing.assert_allclose(scores[0, :2], [0.5 + 2 * R6, R6], rtol=1e-6)
    np.testing.assert_allclose(scores[2, :2], [2 * R6 + 0.5, 1 / math.sqrt(2)], rtol=1e-6)


@needs_implicit
def test_implicit_tfidf_weights_users_by_idf():
    """Each user weighs idf_u = ln(5 items) - ln(1 + its items): U0, U3 ln(5/3);
    U1, U2 ln(5/4); an item's vector holds idf_u per user, L2-normalised. So w = idf^2:
    w0 = w3 = .2609, w1 = w2 = .0498. U3 (D E): C = w2 / sqrt((w1+w2)(w2+w3)) = .2831,
    B = w2 / sqrt((w0+w1+w2)(w2+w3)) = .1488 -> C, B."""
    lists, scores = _lists(_peer("implicit tfidf"))
    w0, w1 = math.log(5 / 3) ** 2, math.log(5 / 4) ** 2
    assert lists[3] == [C, B]
    np.testing.assert_allclose(
        scores[3, :2],
        [w1 / math.sqrt(2 * w1 * (w1 + w0)), w1 / math.sqrt((w0 + 2 * w1) * (w1 + w0))],
        rtol=1e-5,
    )


@needs_implicit
def test_implicit_bm25_ranks_differently_from_cosine():
    """BM25 (K1 1.2, B .75): an item i's entry for user u is f_i * idf_u with
    f_i = 2.2 / (1.2 * (.25 + .75 * users_i / 2) + 1): f_A = f_C = f_E = 1,
    f_B = 2.2 / 2.65, f_D = 2.2 / 1.75; not normalised, so sim(i, j) = f_i f_j sum idf_u^2.
    U2 (B C E): A = f_B (w0 + w1) + w1 = .3077, D = f_D w3 = .3280 -> D before A (cosine
    had A first)."""
    lists, scores = _lists(_peer("implicit bm25"))
    w0, w1 = math.log(5 / 3) ** 2, math.log(5 / 4) ** 2
    f_b, f_d = 2.2 / 2.65, 2.2 / 1.75
    assert lists[2] == [D, A]
    np.testing.assert_allclose(scores[2, :2], [f_d * w0, f_b * (w0 + w1) + w1], rtol=1e-5)


@needs_implicit
def test_implicit_als_recommends_within_the_users_community():
    """Two disjoint communities (users 0-19 on items 0-3, users 20-39 on items 4-7), each
    user missing one item of its community: ALS recommends that item first."""
    rows, cols = [], []
    for u in range(40):
        block = range(0, 4) if u < 20 else range(4, 8)
        for i in block:
            if i != block[u % 4]:
                rows.append(u)
                cols.append(i)
    m = sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(40, 8))
    peer = _peer("implicit als")
    peer.fit(m)
    ids, _ = peer.recommend(np.arange(40), m, 1)
    expected = [(0 if u < 20 else 4) + u % 4 for u in range(40)]
    assert ids[:, 0].tolist() == expected


def test_every_implicit_peer_is_skipped_with_the_reason_without_implicit(monkeypatch):
    monkeypatch.setitem(sys.modules, "implicit.als", None)  # import fails as if absent
    skipped = peers.implicit_peers()
    assert [p.name for p in skipped] == [
        "implicit cosine", "implicit tfidf", "implicit bm25", "implicit als"]
    assert all(isinstance(p, peers.SkippedPeer) and p.reason == peers.IMPLICIT_MISSING
               for p in skipped)  # fmt: skip


def test_training_matrix_sums_the_action_weights():
    train = pd.DataFrame({"user_id": ["v", "u", "u", "u"], "sku": ["b", "a", "a", "b"],
                          "action": ["browsed", "browsed", "purchase", "basket"]})
    w = Settings().model.weights
    m, users = peers.training_matrix(train, np.array(["a", "b"], dtype=object), w)
    assert users.tolist() == ["u", "v"]
    np.testing.assert_allclose(m.toarray(), [[w.browsed + w.purchase, w.basket],
                                             [0.0, w.browsed]])  # fmt: skip


# --- bootstrap intervals and the paired comparison ----------------------------------------------
def _case(hit_users: range, n_users: int = 200) -> tuple[pd.DataFrame, pd.DataFrame]:
    """User i's relevant item is ``r<i>``; users in ``hit_users`` get it at rank 1."""
    users = [f"u{i:03d}" for i in range(n_users)]
    true = pd.DataFrame({"user_id": users, "sku": [f"r{i}" for i in range(n_users)]})
    pred = pd.DataFrame({
        "user_id": users + users,
        "sku": [f"r{i}" if i in hit_users else "x" for i in range(n_users)] + ["y"] * n_users,
        "rank": [1] * n_users + [2] * n_users,
    })  # fmt: skip
    return true, pred


CATALOG = np.array(["x", "y", *[f"r{i}" for i in range(200)]], dtype=object)
POPULARITY = pd.Series(np.linspace(0, 1, len(CATALOG)), index=CATALOG)


def _scores(hit_users: range) -> metrics.UserScores:
    true, pred = _case(hit_users)
    return metrics.user_scores(true, pred, CATALOG, POPULARITY, k=3)


def test_point_of_the_user_scores_is_every_metric_function():
    true, pred = _case(range(0, 200, 3))
    point = _scores(range(0, 200, 3)).point()
    args = (true, pred, 3)
    assert point["hit_rate"] == pytest.approx(metrics.hit_rate_at_k(*args))
    assert point["precision"] == pytest.approx(metrics.precision_at_k(*args))
    assert point["recall"] == pytest.approx(metrics.recall_at_k(*args))
    assert point["ndcg"] == pytest.approx(metrics.ndcg_at_k(*args))
    assert point["map"] == pytest.approx(metrics.map_at_k(*args))
    assert point["coverage"] == pytest.approx(metrics.catalog_coverage(pred, CATALOG, 3))
    assert point["mean_popularity"] == pytest.approx(
        metrics.mean_popularity(pred, POPULARITY, 3))
    assert point["hit_rate"] == pytest.approx(67 / 200)


def test_bootstrap_is_deterministic_for_a_seed_and_holds_the_estimate():
    scores = _scores(range(0, 200, 3))
    w = metrics.resample_weights(200, 500, seed=7)
    np.testing.assert_array_equal(w, metrics.resample_weights(200, 500, seed=7))
    assert not np.array_equal(w, metrics.resample_weights(200, 500, seed=8))
    assert (w.sum(axis=1) == 200).all()
    ci = metrics.confidence_intervals(scores, w)
    assert ci == metrics.confidence_intervals(scores, w)
    for name, value in scores.point().items():
        low, high = ci[name]
        if name in metrics.NO_INTERVAL:
            assert low is None and high is None
        else:
            assert low <= value <= high, name
    # p = 67/200 = .335: sd = sqrt(p (1 - p) / 200) = .0334, so a 95% width of ~.131.
    low, high = ci["hit_rate"]
    assert 0.10 < high - low < 0.16


def test_paired_comparison_sign_and_pairing():
    """Model a hits users 0-109, b hits 0-99: a is better on exactly 10 users and never
    worse. Each model's own interval overlaps the other's, but the paired difference's
    interval lies above zero; swapped, it lies below."""
    a, b = _scores(range(110)), _scores(range(100))
    w = metrics.resample_weights(200, 1000, seed=0)
    ci_a, ci_b = metrics.confidence_intervals(a, w), metrics.confidence_intervals(b, w)
    assert ci_a["ndcg"][0] < ci_b["ndcg"][1]  # the unpaired intervals overlap
    d = metrics.paired_difference(a, b, w)["ndcg"]
    assert d["difference"] == pytest.approx(10 / 200)
    assert 0 < d["low"] <= d["difference"] <= d["high"]
    d = metrics.paired_difference(b, a, w)["ndcg"]
    assert d["low"] <= d["difference"] <= d["high"] < 0


def test_paired_comparison_needs_the_same_users():
    true, pred = _case(range(10), n_users=50)
    other = metrics.user_scores(true, pred, CATALOG, POPULARITY, k=3)
    with pytest.raises(ValueError, match="same evaluated users"):
        metrics.paired_difference(_scores(range(10)), other, metrics.resample_weights(200, 10))


def test_interval_side():
    assert metrics.interval_side(0.01, 0.2) == "above 0"
    assert metrics.interval_side(-0.2, -0.01) == "below 0"
    assert metrics.interval_side(-0.1, 0.1) == "across 0"
    assert metrics.interval_side(None, None) is None


# --- the peers in a whole evaluation ------------------------------------------------------------
@needs_implicit
def test_run_evaluation_has_every_peer_intervals_and_the_comparison():
    events = generate_events(20_000, n_users=800, n_items=150, days=30,
                             end_date=dt.date(2024, 3, 31), seed=9)  # fmt: skip
    events = events.assign(day=events["ts"].dt.tz_localize(None).astype("datetime64[s]"))
    result = run_evaluation(temporal_split(events, holdout_days=5), Settings().model, k=10,
                            thresholds=(0.0,), max_users=300)  # fmt: skip
    models = result["models"]
    expected = ["popularity", "cosine", "implicit cosine", "implicit tfidf", "implicit bm25",
                "implicit als", "session knn"]  # fmt: skip
    assert [n for n, m in models.items() if m["kind"] == "peer"] == expected
    assert result["skipped_peers"] == {}
    for name, model in models.items():
        for metric, value in model["metrics"].items():
            low, high = model["intervals"][metric]
            assert metric in metrics.NO_INTERVAL or low <= value <= high, (name, metric)
    c = result["comparison"]
    best = max(expected, key=lambda n: models[n]["metrics"]["ndcg"])
    assert c["best_peer"] == best and c["model"] == "configured"
    d = c["differences"]["ndcg"]
    assert d["difference"] == pytest.approx(
        models["configured"]["metrics"]["ndcg"] - models[best]["metrics"]["ndcg"])
    assert d["low"] <= d["difference"] <= d["high"]


def test_run_evaluation_without_implicit_records_the_skipped_peers(monkeypatch):
    from simrec.evaluation.report import render

    monkeypatch.setitem(sys.modules, "implicit.als", None)  # import fails as if absent
    events = generate_events(5_000, n_users=300, n_items=60, days=20,
                             end_date=dt.date(2024, 3, 31), seed=3)  # fmt: skip
    events = events.assign(day=events["ts"].dt.tz_localize(None).astype("datetime64[s]"))
    result = run_evaluation(temporal_split(events, holdout_days=4), Settings().model, k=5,
                            thresholds=(0.0,))  # fmt: skip
    assert result["skipped_peers"] == dict.fromkeys(
        ["implicit cosine", "implicit tfidf", "implicit bm25", "implicit als"],
        peers.IMPLICIT_MISSING,
    )
    assert not any(name.startswith("implicit") for name in result["models"])
    assert result["comparison"]["best_peer"] in ("popularity", "cosine", "session knn")
    assert f"Peer implicit als skipped: {peers.IMPLICIT_MISSING}" in render(result)
