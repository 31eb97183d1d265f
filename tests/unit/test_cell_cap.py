"""The matrix rule's cell cap (step 5) against oracles: the percentile by its definition,
the capped matrix by a pandas rendering, exact cosine by scipy. (DIMSUM's sampling on the
capped matrix: tests/unit/test_similarity_local.py.)"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from simrec.core import quality
from simrec.core.matrix import build_matrix, capped_cells, cell_cap, cell_cap_sql
from simrec.core.params import DEFAULTS, ModelParams
from simrec.core.similarity import column_norms, fit_similarities


def _nearest_rank(values: np.ndarray, percentile: float) -> float:
    """Oracle: the k-th smallest value, k = ceil(n * P / 100) in exact arithmetic (>= 1)."""
    n = len(values)
    k = max(1, math.ceil(Fraction(n) * Fraction(percentile) / 100))
    return float(np.sort(values)[k - 1])


@pytest.mark.parametrize("percentile", [0.1, 10, 25, 37.5, 50, 75, 90, 99, 100])
@pytest.mark.parametrize("n", [1, 2, 7, 10, 20, 100, 1001])
def test_cap_is_the_nearest_rank_percentile(n, percentile):
    rng = np.random.default_rng(n)
    values = rng.integers(1, 6, size=n) * 0.5  # many ties, as summed action weights have
    assert cell_cap(values, percentile) == _nearest_rank(values, percentile)
    distinct = rng.permutation(np.arange(1, n + 1, dtype=np.float64)) / 7.0
    assert cell_cap(distinct, percentile) == _nearest_rank(distinct, percentile)


def test_cap_edges_and_sql():
    assert cell_cap(np.array([]), 50) == 1.0
    with pytest.raises(ValueError, match=r"\(0, 100\]"):
        cell_cap(np.array([1.0]), 0)
    assert cell_cap_sql(50) == "percentile_disc(0.5) WITHIN GROUP (ORDER BY value)"
    np.testing.assert_array_equal(capped_cells(np.array([0.5, 1.0, 6.0]), 1.0), [0.5, 1.0, 1.0])


def test_default_caps_at_the_median_and_plain_is_off():
    assert DEFAULTS.cell_cap_percentile == 50.0
    assert DEFAULTS.plain().cell_cap_percentile == quality.OFF["cell_cap_percentile"] == 0.0
    with pytest.raises(ValueError, match="cell_cap_percentile"):
        ModelParams(cell_cap_percentile=101)


def _pandas_capped(df: pd.DataFrame, params: ModelParams) -> pd.Series:
    """The rule written the obvious way: sums, filters, cap at the median, user weighting."""
    w = df["action"].map(params.weights.as_dict())
    cells = df.assign(w=w).groupby(["user_id", "sku"])["w"].sum().reset_index()
    cells = cells[cells["w"] > 0]
    n = cells.groupby("user_id")["sku"].transform("size")
    cells = cells[n >= params.min_items_per_user]
    cells = cells.sort_values(["user_id", "w", "sku"], ascending=[True, False, True])
    cells = cells[cells.groupby("user_id").cumcount() < params.max_items_per_user].copy()
    cap = _nearest_rank(cells["w"].to_numpy(), params.cell_cap_percentile)
    n = cells.groupby("user_id")["sku"].transform("size").to_numpy()
    f = quality.user_factor(n, params.user_weighting, params.user_alpha)
    cells["v"] = np.minimum(cells["w"].to_numpy(), cap) / cap * f
    return cells.set_index(["user_id", "sku"])["v"].sort_index()


def _series(m) -> pd.Series:  # noqa: ANN001
    coo = m.matrix.tocoo()
    index = pd.MultiIndex.from_arrays(
        [m.user_ids[coo.row].astype(str), m.skus[coo.col].astype(str)], names=["user_id", "sku"]
    )
    return pd.Series(coo.data, index=index).sort_index()


@pytest.mark.parametrize("percentile", [50.0, 90.0])
def test_capped_matrix_matches_a_pandas_rendering(shop_events, percentile):
    params = DEFAULTS.replace(cell_cap_percentile=percentile, max_items_per_user=12)
    m = build_matrix(shop_events["user_id"], shop_events["sku"], shop_events["action"], params)
    got, want = _series(m), _pandas_capped(shop_events, params)
    assert got.index.equals(want.index)
    np.testing.assert_allclose(got.to_numpy(), want.to_numpy(), rtol=1e-12, atol=0)
    raw = build_matrix(
        shop_events["user_id"], shop_events["sku"], shop_events["action"],
        params.replace(cell_cap_percentile=0.0, user_weighting="none"),
    )
    assert (raw.matrix.data > cell_cap(raw.matrix.data, percentile)).any()  # the cap bites
    assert np.all(got.to_numpy() <= 1.0)


def test_exact_cosine_of_the_capped_matrix_equals_scipy(shop_events):
    """threshold 0: every score is the capped matrix's cosine (scipy oracle, 1e-9)."""
    params = DEFAULTS.replace(threshold=0.0, shrinkage=0.0, top_k=1000)
    m, topk = fit_similarities(
        shop_events["user_id"], shop_events["sku"], shop_events["action"], params
    )
    want = _pandas_capped(shop_events, params)
    users = want.index.get_level_values(0).unique()
    a = sp.csr_matrix(
        (
            want.to_numpy(),
            (users.get_indexer(want.index.get_level_values(0)),
             np.searchsorted(m.skus, want.index.get_level_values(1))),
        ),
        shape=(len(users), len(m.skus)),
    )
    unit = a @ sp.diags(1.0 / column_norms(a))
    cos = (unit.T @ unit).toarray()
    np.fill_diagonal(cos, 0.0)
    got = np.zeros_like(cos)
    rows = np.repeat(np.arange(len(m.skus)), np.diff(topk.indptr))
    got[rows, topk.neighbors] = topk.scores
    assert np.count_nonzero(cos) == len(topk.scores)
    np.testing.assert_allclose(got, cos, atol=1e-9, rtol=0)
