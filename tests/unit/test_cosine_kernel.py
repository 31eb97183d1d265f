"""The compiled cosine kernel (simrec.core._cosine) against its NumPy/scipy twin and scipy.

Oracles: the NumPy path of ``cosine_topk`` (bit for bit: same sums in the same order,
same rounding, same tie-break) and exact cosine from scipy (normalised columns, A^T A,
tolerance 1e-9: scores are rounded to 12 decimals by design).
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from simrec.core.similarity import TopK, column_norms, cosine_topk

pytest.importorskip("simrec.core._cosine", reason="compiled kernel not built")

FIELDS = ("indptr", "neighbors", "scores", "users")


def random_matrix(
    seed: int, n_users: int, n_items: int, density: float, integer: bool = True
) -> sp.csr_matrix:
    """Random non-negative matrix; integer values make exact ties common. A few empty
    columns and one-item users are forced in."""
    rng = np.random.default_rng(seed)
    m = sp.random(n_users, n_items, density=density, random_state=rng, format="lil")
    m[:, n_items // 3] = 0  # an empty column
    m[:, n_items - 1] = 0  # and the last one
    for u in range(0, n_users, 7):  # one-item users
        m[u, :] = 0
        m[u, int(rng.integers(0, n_items - 1))] = 1.0
    m = m.tocsr()
    if integer:
        m.data = np.ceil(m.data * 3)
    m.eliminate_zeros()
    return m


def keys(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 2**32, n).astype(np.uint64)


def assert_identical(a: TopK, b: TopK) -> None:
    for f in FIELDS:
        np.testing.assert_array_equal(getattr(a, f), getattr(b, f), err_msg=f)
    assert (a.pairs, a.emitted_pairs, a.gamma) == (b.pairs, b.emitted_pairs, b.gamma)


def exact_cosine(matrix: sp.csr_matrix) -> np.ndarray:
    norms = column_norms(matrix)
    unit = matrix @ sp.diags(1.0 / np.where(norms > 0, norms, 1.0))
    cos = (unit.T @ unit).toarray()
    np.fill_diagonal(cos, 0.0)
    return cos


CASES = [  # (seed, users, items, density, integer values, threshold, top_k)
    (1, 400, 60, 0.08, True, 0.0, 5),
    (2, 400, 60, 0.08, False, 0.0, 1000),  # top_k > n_items
    (3, 2000, 30, 0.4, True, 0.3, 10),  # dense: DIMSUM samples
    (4, 3000, 40, 0.3, False, 0.1, 3),
    (5, 50, 200, 0.02, True, 0.0, 20),  # more items than users
]


@pytest.mark.parametrize("case", CASES, ids=[f"case{c[0]}" for c in CASES])
def test_compiled_equals_numpy_reference_bit_for_bit(case):
    seed, n_users, n_items, density, integer, threshold, top_k = case
    m = random_matrix(seed, n_users, n_items, density, integer)
    uk, ik = keys(n_users, seed), keys(n_items, seed + 100)
    ref = cosine_topk(m, threshold, seed, top_k, uk, ik, kernel="numpy")
    fast = cosine_topk(m, threshold, seed, top_k, uk, ik, kernel="cython")
    assert_identical(ref, fast)
    assert len(fast.scores) > 0


def test_threshold_zero_is_scipy_exact_cosine_with_ties_by_index():
    m = random_matrix(7, 500, 80, 0.06, integer=True)
    m = sp.hstack([m, m[:, :5]]).tocsr()  # duplicated columns: exact ties (score 1)
    n = m.shape[1]
    topk = cosine_topk(m, 0.0, 1, n, keys(m.shape[0], 1), keys(n, 2), kernel="cython")
    got = sp.csr_matrix((topk.scores, topk.neighbors, topk.indptr), (n, n)).toarray()
    cos = exact_cosine(m)
    np.testing.assert_allclose(got, cos, atol=1e-9, rtol=0)
    assert topk.pairs == np.count_nonzero(np.triu(cos))
    assert got[0, n - 5] == 1.0 and got[n - 5, 0] == 1.0
    for i in range(n):
        nb = topk.neighbors[topk.indptr[i] : topk.indptr[i + 1]]
        sc = topk.scores[topk.indptr[i] : topk.indptr[i + 1]]
        assert list(zip(-sc, nb, strict=True)) == sorted(zip(-sc, nb, strict=True))
        assert np.count_nonzero(cos[i]) == len(nb)  # every co-occurring item, no other
    empty = np.flatnonzero(column_norms(m) == 0)
    assert len(empty) >= 2 and (np.diff(topk.indptr)[empty] == 0).all()


def test_truncation_keeps_the_best_by_score_then_index():
    m = random_matrix(8, 600, 50, 0.1, integer=True)
    uk, ik = keys(600, 3), keys(50, 4)
    full = cosine_topk(m, 0.0, 1, 10**6, uk, ik, kernel="cython")
    top = cosine_topk(m, 0.0, 1, 4, uk, ik, kernel="cython")
    assert (np.diff(top.indptr) == np.minimum(4, np.diff(full.indptr))).all()
    for i in range(50):
        want = full.neighbors[full.indptr[i] : min(full.indptr[i] + 4, full.indptr[i + 1])]
        assert top.neighbors[top.indptr[i] : top.indptr[i + 1]].tolist() == want.tolist()


def test_thread_count_does_not_change_the_output():
    m = random_matrix(9, 3000, 120, 0.05)
    uk, ik = keys(3000, 5), keys(120, 6)
    one = cosine_topk(m, 0.2, 3, 7, uk, ik, kernel="cython", n_threads=1)
    four = cosine_topk(m, 0.2, 3, 7, uk, ik, kernel="cython", n_threads=4)
    assert_identical(one, four)


def test_shrinkage_matches_the_reference():
    m = random_matrix(10, 800, 40, 0.1)
    uk, ik = keys(800, 7), keys(40, 8)
    ref = cosine_topk(m, 0.0, 1, 6, uk, ik, shrinkage=5.0, kernel="numpy")
    fast = cosine_topk(m, 0.0, 1, 6, uk, ik, shrinkage=5.0, kernel="cython")
    assert_identical(ref, fast)
    plain = cosine_topk(m, 0.0, 1, 6, uk, ik, kernel="cython")
    assert not np.array_equal(plain.scores, fast.scores)


@pytest.mark.parametrize("shape", [(0, 0), (5, 0), (0, 4), (5, 1), (3, 4)])
def test_degenerate_matrices(shape):
    m = sp.csr_matrix(shape, dtype=np.float64)
    if shape == (3, 4):
        m = sp.csr_matrix(np.array([[1.0, 0, 0, 0], [0, 2.0, 0, 0], [0, 0, 0, 3.0]]))
    uk, ik = keys(shape[0], 1), keys(shape[1], 2)
    ref = cosine_topk(m, 0.0, 1, 3, uk, ik, kernel="numpy")
    fast = cosine_topk(m, 0.0, 1, 3, uk, ik, kernel="cython")
    assert_identical(ref, fast)
    assert fast.n_items == shape[1] and len(fast.neighbors) == 0 and fast.pairs == 0


def test_bad_arguments():
    m = random_matrix(11, 50, 10, 0.2)
    with pytest.raises(ValueError, match="kernel"):
        cosine_topk(m, 0.0, 1, 3, keys(50, 1), keys(10, 2), kernel="gpu")
    with pytest.raises(ValueError, match="shape"):
        cosine_topk(m, 0.0, 1, 3, keys(49, 1), keys(10, 2), kernel="cython")
    with pytest.raises(ValueError, match="top_k"):
        cosine_topk(m, 0.0, 1, 0, keys(50, 1), keys(10, 2), kernel="cython")
