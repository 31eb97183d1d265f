"""The single-machine engine against scipy, its sampling statistics, and its output stage.

Oracle: exact cosine computed here with scipy (normalised columns, A^T A) from the matrix
rule's matrix. Tolerance 1e-9 (scores are rounded to 12 decimals by design).
"""

from __future__ import annotations

import datetime as dt
import os

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import scipy.sparse as sp

from simrec import storage
from simrec.core import dimsum
from simrec.core.actions import ActionWeights
from simrec.core.matrix import build_matrix
from simrec.core.params import DEFAULTS
from simrec.core.similarity import (
    TopK,
    column_norms,
    cosine_topk,
    fit_similarities,
    resolve_params,
    sample,
)
from simrec.generate import generate_events
from simrec.jobs.local_similarity import run_local_similarity
from simrec.storage.similarities import (
    NEIGHBORS_SCHEMA,
    neighbor_pairs,
    read_neighbors,
)
from tests.builders import BINARY_WEIGHTS, PLAIN

ALL = 10**6  # top_k large enough to keep every pair


def exact_cosine(matrix: sp.csr_matrix) -> np.ndarray:
    """Dense exact cosine with a zero diagonal: the oracle."""
    unit = matrix @ sp.diags(1.0 / column_norms(matrix))
    cos = (unit.T @ unit).toarray()
    np.fill_diagonal(cos, 0.0)
    return cos


def dense(topk: TopK, field: str = "scores") -> np.ndarray:
    n = topk.n_items
    return sp.csr_matrix((getattr(topk, field), topk.neighbors, topk.indptr), (n, n)).toarray()


@pytest.fixture(scope="module")
def shop(shop_events):
    m = build_matrix(shop_events["user_id"], shop_events["sku"], shop_events["action"], PLAIN)
    return m, dimsum.string_keys(m.user_ids), dimsum.string_keys(m.skus)


@pytest.fixture(scope="module")
def dense_shop(dense_shop_events):
    """Where sampling really happens at test size (see tests/shops.py)."""
    ev = dense_shop_events
    m = build_matrix(ev["user_id"], ev["sku"], ev["action"], PLAIN.replace(weights=BINARY_WEIGHTS))
    return m, dimsum.string_keys(m.user_ids), dimsum.string_keys(m.skus)


def test_threshold_zero_is_exact_cosine(shop):
    m, uk, ik = shop
    topk = cosine_topk(m.matrix, 0.0, 42, ALL, uk, ik)
    cos = exact_cosine(m.matrix)
    np.testing.assert_allclose(dense(topk), cos, atol=1e-9, rtol=0)
    binary = (m.matrix > 0).astype(np.float64)
    counts = (binary.T @ binary).toarray()
    np.fill_diagonal(counts, 0)
    np.testing.assert_array_equal(dense(topk, "users"), counts)
    per_user = np.diff(m.matrix.indptr)
    assert topk.emitted_pairs == int((per_user * (per_user - 1) // 2).sum())
    assert topk.pairs == int(np.count_nonzero(np.triu(cos)))
    assert topk.gamma == np.inf and topk.neighbor_rows == m.matrix.shape[1]


def test_top_k_order_and_truncation(shop):
    m, uk, ik = shop
    full = cosine_topk(m.matrix, 0.0, 42, ALL, uk, ik)
    top = cosine_topk(m.matrix, 0.0, 42, 5, uk, ik)
    assert (np.diff(top.indptr) == np.minimum(5, np.diff(full.indptr))).all()
    for i in range(full.n_items):
        nb = full.neighbors[full.indptr[i] : full.indptr[i + 1]]
        sc = full.scores[full.indptr[i] : full.indptr[i + 1]]
        expected = sorted(zip(-sc, nb, strict=True))  # score desc, neighbor asc
        assert list(zip(-sc, nb, strict=True)) == expected
        assert top.neighbors[top.indptr[i] : top.indptr[i + 1]].tolist() == nb[:5].tolist()


def test_blocks_do_not_change_the_result(shop):
    m, uk, ik = shop
    one = cosine_topk(m.matrix, 0.2, 7, 10, uk, ik)
    many = cosine_topk(m.matrix, 0.2, 7, 10, uk, ik, block_cells=3_000)  # 10 items a block
    for f in ("indptr", "neighbors", "scores", "users"):
        np.testing.assert_array_equal(getattr(one, f), getattr(many, f))
    assert (one.pairs, one.emitted_pairs) == (many.pairs, many.emitted_pairs)


def entry_p(matrix: sp.csr_matrix, threshold: float) -> sp.csr_matrix:
    """The oracle's keep probabilities: ``min(1, sqrt(gamma) a_uj / c_j)`` per entry."""
    g = dimsum.gamma(threshold, matrix.shape[1])
    unit = matrix @ sp.diags(1.0 / column_norms(matrix))
    return unit.multiply(np.sqrt(g)).minimum(1.0).tocsr()


def test_sample_is_the_shared_keep_rule(dense_shop):
    m, uk, ik = dense_shop
    scaled, pattern, g = sample(m.matrix, 0.2, 5, uk, ik)
    assert g == dimsum.gamma(0.2, m.matrix.shape[1])
    p = entry_p(m.matrix, 0.2).tocoo()
    assert (p.data < 1).sum() > 1000  # entries really sampled
    keep = dimsum.uniform(5, uk[p.row], ik[p.col]) < p.data
    kept = sp.csr_matrix((1 / p.data[keep], (p.row[keep], p.col[keep])), m.matrix.shape)
    np.testing.assert_allclose(pattern.toarray(), kept.toarray(), rtol=1e-15)  # weights 1/p
    unit = (m.matrix @ sp.diags(1.0 / column_norms(m.matrix))).toarray()
    want = np.where(kept.toarray() > 0, unit * kept.toarray(), 0.0)  # a / (p c)
    np.testing.assert_allclose(scaled.toarray(), want, rtol=1e-12)
    g_sq = 1 / np.sqrt(g)
    assert np.all(scaled.data >= g_sq * (1 - 1e-12))  # a kept entry is max(a / c, 1/sqrt g)


def test_sampling_is_deterministic_and_seeded(dense_shop):
    m, uk, ik = dense_shop
    a = cosine_topk(m.matrix, 0.2, 42, 20, uk, ik)
    b = cosine_topk(m.matrix, 0.2, 42, 20, uk, ik)
    c = cosine_topk(m.matrix, 0.2, 43, 20, uk, ik)
    exact = cosine_topk(m.matrix, 0.0, 42, 20, uk, ik)
    for f in ("indptr", "neighbors", "scores", "users"):
        np.testing.assert_array_equal(getattr(a, f), getattr(b, f))
    assert not np.array_equal(a.scores, c.scores)
    assert a.emitted_pairs < exact.emitted_pairs and a.pairs <= exact.pairs


def test_sampled_estimates_are_unbiased(dense_shop):
    """Over 40 seeds the mean unclipped estimate of the sampled pairs' total is exact
    (within 5%: the estimator is heavy-tailed, so the sample mean runs a little low)."""
    m, uk, ik = dense_shop
    cos = exact_cosine(m.matrix)
    p = entry_p(m.matrix, 0.2)
    some = sp.csr_matrix(((p.data < 1).astype(float), p.indices, p.indptr), p.shape)
    touched = (some.T @ m.matrix.astype(bool).astype(float)).toarray() > 0
    sampled = np.triu(touched | touched.T, 1)
    ones = m.matrix.astype(bool).astype(float)
    users = (ones.T @ ones).toarray()
    totals, user_totals = [], []
    for seed in range(40):
        scaled, weights, _ = sample(m.matrix, 0.2, seed, uk, ik)
        totals.append((scaled.T @ scaled).toarray()[sampled].sum())
        user_totals.append((weights.T @ weights).toarray()[sampled].sum())
    assert sampled.sum() > 1000
    assert np.mean(totals) / cos[sampled].sum() == pytest.approx(1.0, abs=0.05)
    # The users behind a pair (Horvitz-Thompson: weights 1 / p) are unbiased too.
    assert np.mean(user_totals) / users[sampled].sum() == pytest.approx(1.0, abs=0.05)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_estimates_above_threshold_are_accurate(dense_shop, seed):
    """>= 80% of pairs with exact cosine >= threshold are estimated within 20%, on data
    where sampling really happens (p < 1 for many columns, fewer emitted pairs)."""
    m, uk, ik = dense_shop
    p = entry_p(m.matrix, 0.2)
    topk = cosine_topk(m.matrix, 0.2, seed, ALL, uk, ik)
    exact = cosine_topk(m.matrix, 0.0, seed, ALL, uk, ik)
    cos = exact_cosine(m.matrix)
    above = np.triu(cos >= 0.2)
    rel = np.abs(dense(topk)[above] - cos[above]) / cos[above]
    assert (p.data < 1).sum() >= 1000 and topk.emitted_pairs < exact.emitted_pairs
    assert above.sum() > 100
    assert (rel <= 0.2).mean() >= 0.8


def test_fixed_point_bounds_hold(dense_shop):
    """``dimsum.sum_bounds`` (the Spark shuffle plan's fixed-point scales) bound every
    pair's sum of kept products and of weight products, whatever the seed."""
    m, uk, ik = dense_shop
    sq = np.bincount(m.matrix.indices, weights=1 / m.matrix.data**2, minlength=m.matrix.shape[1])
    cells = np.bincount(m.matrix.indices, minlength=m.matrix.shape[1])
    for threshold in (0.0, 0.2, 1.0):
        g = dimsum.gamma(threshold, m.matrix.shape[1])
        bound = dimsum.sum_bounds(cells, column_norms(m.matrix), sq, g)
        for seed in range(3):
            scaled, weights, _ = sample(m.matrix, threshold, seed, uk, ik)
            assert (scaled.T @ scaled).max() <= bound[0] * (1 + 1e-12)  # rounding
            assert (weights.T @ weights).max() <= bound[1] * (1 + 1e-12)


@pytest.fixture(scope="module")
def generated_shop() -> pd.DataFrame:
    """10,000 users x 200 items with the product's defaults (cell cap, user weighting)."""
    return generate_events(
        200_000, n_users=10_000, n_items=200, end_date=dt.date(2024, 3, 9), seed=7
    )


def _exact_co_occurrences(matrix: sp.csr_matrix) -> int:
    n = np.diff(matrix.indptr)
    return int((n * (n - 1) // 2).sum())


def test_dimsum_samples_at_the_default_threshold(generated_shop):
    """Per-entry sampling saves most of the work at the default threshold, with or
    without the cell cap (the rule does not depend on the entries' scale)."""
    ev = generated_shop
    for cap in (DEFAULTS.cell_cap_percentile, 0.0):
        params = DEFAULTS.replace(cell_cap_percentile=cap)
        m, topk = fit_similarities(ev["user_id"], ev["sku"], ev["action"], params)
        assert topk.emitted_pairs < 0.6 * _exact_co_occurrences(m.matrix)  # 0.34 / 0.08


def test_sampled_estimates_above_threshold_are_within_the_dimsum_bound(generated_shop):
    """DIMSUM's Chernoff bounds (simrec.core.dimsum): a pair with cosine >= threshold whose
    terms are all ``<= 1/gamma`` is off by more than 20% with probability at most
    ``(e^.2 / 1.2^1.2)^a + exp(-a .2^2 / 2)``, ``a = gamma threshold = 10 ln 200 = 53``:
    0.72, weak at this size. Measured (fixed seed) on the default matrix: at least 80% of
    such pairs with a sampled entry are within 20%, and their mean signed error (the
    estimates are unbiased) is below 5%."""
    ev = generated_shop
    threshold = 0.2
    params = DEFAULTS.replace(shrinkage=0.0, top_k=1000, seed=11)
    m = build_matrix(ev["user_id"], ev["sku"], ev["action"], params)
    keys = dimsum.string_keys(m.user_ids), dimsum.string_keys(m.skus)
    p = entry_p(m.matrix, threshold)
    some = sp.csr_matrix(((p.data < 1).astype(float), p.indices, p.indptr), p.shape)
    touched = (some.T @ m.matrix.astype(bool).astype(float)).toarray() > 0
    est = cosine_topk(m.matrix, threshold, params.seed, 1000, *keys)
    exact = cosine_topk(m.matrix, 0.0, params.seed, 1000, *keys)
    assert est.emitted_pairs < exact.emitted_pairs
    cos, got = dense(exact), dense(est)
    above = np.triu(cos >= threshold, 1) & (touched | touched.T)
    assert above.sum() >= 20
    rel = (got[above] - cos[above]) / cos[above]
    assert (np.abs(rel) <= 0.2).mean() >= 0.8
    assert abs(rel.mean()) < 0.05


def test_resolve_params_overrides_and_validates(exported_shop):
    base = exported_shop.manifest["params"]
    params = resolve_params(base, {"threshold": 0.0, "top_k": 7, "weights": {"purchase": 1}})
    assert params.model.threshold == 0.0 and params.model.top_k == 7
    assert params.model.weights == ActionWeights(purchase=1.0)
    assert params.model.seed == base["seed"]
    assert resolve_params(base, {"threshold": None}).model.threshold == base["threshold"]
    with pytest.raises(ValueError, match="unknown parameter"):
        resolve_params(base, {"tenant": "x"})
    with pytest.raises(ValueError, match="threshold"):
        resolve_params(base, {"threshold": 2})
    with pytest.raises(ValueError, match="min_items_per_user"):
        resolve_params(base, {"min_items_per_user": 10, "max_items_per_user": 5})


def test_rerun_overwrites_cleanly(exported_shop):
    out = exported_shop.similarities_uri("local-rerun")
    params = resolve_params(exported_shop.manifest["params"], {"top_k": 3})
    first = run_local_similarity(exported_shop.manifest_uri, out, params)
    stale = os.path.join(first["outputs"]["neighbors"], "part-99999.parquet")
    with open(stale, "wb") as f:
        f.write(b"left over from an older run")
    second = run_local_similarity(exported_shop.manifest_uri, out, params)
    assert not os.path.exists(stale)
    assert first["counts"] == second["counts"]
    assert read_neighbors(first["outputs"]["neighbors"]).equals(
        read_neighbors(second["outputs"]["neighbors"])
    )


def test_not_an_export_manifest(tmp_path):
    uri = str(tmp_path / "_MANIFEST.json")
    storage.write_json(uri, {"stage": "similarities"})
    with pytest.raises(ValueError, match="not an export manifest"):
        run_local_similarity(uri, str(tmp_path / "out"))


def test_neighbor_pairs_long_form():
    table = pa.Table.from_pylist(
        [
            {
                "sku": "A",
                "neighbors": [
                    {"sku": "B", "score": 0.9, "users": 3.0},
                    {"sku": "C", "score": 0.1, "users": 1.0},
                ],
            },
            {"sku": "B", "neighbors": [{"sku": "A", "score": 0.9, "users": 3.0}]},
        ],
        schema=NEIGHBORS_SCHEMA,
    )
    long = neighbor_pairs(table)
    assert long[["sku", "neighbor", "rank"]].values.tolist() == [
        ["A", "B", 0],
        ["A", "C", 1],
        ["B", "A", 0],
    ]
