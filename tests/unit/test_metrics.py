"""simrec.evaluation.metrics on cases computed by hand.

Case (k = 3): user a has relevant {x, y}; recommended x (rank 1), z (2), y (3).
user b has relevant {w}; recommended p (1), q (2), r (3): no hit.
user c has relevant {v}; no recommendation at all (still counted in |U| = 3).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from simrec.evaluation import metrics

TRUE = pd.DataFrame({"user_id": ["a", "a", "b", "c"], "sku": ["x", "y", "w", "v"]})
PRED = pd.DataFrame(
    {
        "user_id": ["a", "a", "a", "b", "b", "b", "z", "a"],
        "sku": ["x", "z", "y", "p", "q", "r", "x", "w"],
        "rank": [1, 2, 3, 1, 2, 3, 1, 4],  # user z is not evaluated; rank 4 is beyond k
    }
)
K = 3


def test_hit_rate():
    assert metrics.hit_rate_at_k(TRUE, PRED, K) == pytest.approx(1 / 3)


def test_precision():
    # a: 2 hits / 3 slots, b: 0, c: 0 (a missing list still has k slots)
    assert metrics.precision_at_k(TRUE, PRED, K) == pytest.approx((2 / 3) / 3)


def test_recall():
    assert metrics.recall_at_k(TRUE, PRED, K) == pytest.approx((2 / 2) / 3)


def test_ndcg():
    dcg_a = 1 / math.log2(2) + 1 / math.log2(4)
    idcg_a = 1 / math.log2(2) + 1 / math.log2(3)
    assert metrics.ndcg_at_k(TRUE, PRED, K) == pytest.approx((dcg_a / idcg_a) / 3)


def test_map():
    ap_a = (1 / 1 + 2 / 3) / min(K, 2)
    assert metrics.map_at_k(TRUE, PRED, K) == pytest.approx(ap_a / 3)


def test_k_cuts_the_list():
    # At k = 1 only x counts for a: P = 1/3 users * 1/1, R = (1/2)/3, NDCG_a = 1.
    assert metrics.precision_at_k(TRUE, PRED, 1) == pytest.approx(1 / 3)
    assert metrics.recall_at_k(TRUE, PRED, 1) == pytest.approx(0.5 / 3)
    assert metrics.ndcg_at_k(TRUE, PRED, 1) == pytest.approx(1 / 3)
    assert metrics.map_at_k(TRUE, PRED, 1) == pytest.approx(1 / 3)


def test_perfect_and_empty_lists():
    perfect = TRUE.assign(rank=[1, 2, 1, 1])
    for fn in (metrics.hit_rate_at_k, metrics.recall_at_k, metrics.ndcg_at_k, metrics.map_at_k):
        assert fn(TRUE, perfect, K) == pytest.approx(1.0)
    empty = PRED.iloc[:0]
    for fn in (metrics.hit_rate_at_k, metrics.precision_at_k, metrics.ndcg_at_k):
        assert fn(TRUE, empty, K) == 0.0
    with pytest.raises(ValueError, match="k must be"):
        metrics.ndcg_at_k(TRUE, PRED, 0)
    with pytest.raises(ValueError, match="empty"):
        metrics.recall_at_k(TRUE.iloc[:0], PRED, K)


def test_duplicate_truth_rows_are_ignored():
    doubled = pd.concat([TRUE, TRUE])
    assert metrics.ndcg_at_k(doubled, PRED, K) == metrics.ndcg_at_k(TRUE, PRED, K)


def test_coverage_and_mean_popularity():
    catalog = ["x", "y", "z", "w", "p", "q", "r", "s"]
    # Shown at rank <= 3: x, z, y, p, q, r (w only at rank 4): 6 of 8.
    assert metrics.catalog_coverage(PRED, catalog, K) == pytest.approx(6 / 8)
    pop = pd.Series({"x": 0.5, "y": 0.25, "z": 0.0, "p": 0.1})
    shown = PRED.loc[PRED["rank"] <= K, "sku"]
    expected = np.mean([pop.get(s, 0.0) for s in shown])  # q, r unknown -> 0
    assert metrics.mean_popularity(PRED, pop, K) == pytest.approx(expected)
    assert math.isnan(metrics.mean_popularity(PRED.iloc[:0], pop, K))


def test_column_names_are_injected():
    true = TRUE.rename(columns={"user_id": "customer", "sku": "product"})
    pred = PRED.rename(columns={"user_id": "customer", "sku": "product", "rank": "pos"})
    kw = {"col_user": "customer", "col_item": "product", "col_rank": "pos"}
    assert metrics.ndcg_at_k(true, pred, K, **kw) == metrics.ndcg_at_k(TRUE, PRED, K)
    assert metrics.map_at_k(true, pred, K, **kw) == metrics.map_at_k(TRUE, PRED, K)


def test_every_metric_ignores_users_not_evaluated():
    catalog = ["x", "y", "z", "w", "p", "q", "r"]
    pop = pd.Series({"x": 1.0})
    got = metrics.user_scores(TRUE, PRED, catalog, pop, K).point()
    assert set(got) == set(metrics.METRICS)
    assert got["ndcg"] == metrics.ndcg_at_k(TRUE, PRED, K)
    # user z's x (rank 1) is not counted in mean popularity: a's x is, once, of 6 shown.
    assert got["mean_popularity"] == pytest.approx(1 / 6)
